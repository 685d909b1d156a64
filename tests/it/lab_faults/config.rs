//! Configuration faults (issue 19): a responder on another group, and responders on another
//! port. Both look like network faults from the prober's sockets alone; the first is named for
//! certain from what the responder says in its acks to unicast probes, the second is listed with
//! the other cause its evidence fits (a firewall's reject). Needs root (CI runs as root).

use crate::common::lab::{fresh_waiting_lab as fresh_lab, in_lab_host};
use crate::common::{run, Responder};

const HOSTS: &str = "10.77.0.2,10.77.0.3";
const WRONG: [&str; 4] = ["host is down", "this host's firewall", "snooping", "try --ttl"];

fn responder(p: &str, h: &str, extra: &[&str]) -> Responder {
    let mut c = in_lab_host(p, h);
    c.args(["respond", "--iface", "veth0", "--name", h, "--querier-wait", "1h"]).args(extra);
    Responder::spawn(c)
}

/// `probe --hosts` from h1: exit code, stdout, the JSON report.
fn probe(p: &str) -> (Option<i32>, String, serde_json::Value) {
    probe_hosts(p, HOSTS)
}

fn probe_hosts(p: &str, hosts: &str) -> (Option<i32>, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--count", "30", "--rate", "20", "--timeout", "500ms", "--quiet"]);
    c.args(["--hosts", hosts, "--no-html", "--out"]).arg(dir.path());
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("probe -> {:?}\n{text}{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    (out.status.code(), text, json)
}

fn line<'a>(text: &'a str, host: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{host}: "))).unwrap_or("")
}

/// The causes the JSON report gives for `host`, by kind.
fn causes(json: &serde_json::Value, host: &str) -> Vec<String> {
    let hosts = json["diagnosis"]["hosts"].as_array().unwrap();
    let h = hosts.iter().find(|h| h["host"] == host).unwrap();
    h["causes"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap().to_string()).collect()
}

fn assert_no(text: &str, wrong: &[&str]) {
    for w in wrong {
        assert!(!text.contains(w), "a wrong cause, {w:?}, in:\n{text}");
    }
}

#[test]
fn a_responder_on_another_group_is_named_with_the_group_it_serves() {
    let Some((_lab, _turn, p)) = fresh_lab("cfg", 3) else { return };
    let _h2 = responder(p, "h2", &["--group", "239.1.2.3"]);
    let _h3 = responder(p, "h3", &[]);
    let (code, out, json) = probe(p);
    assert_eq!(code, Some(3), "multicast does not reach h2's responder: {out}");
    let h2 = line(&out, "10.77.0.2");
    assert!(h2.contains("its responder serves group 239.1.2.3, not 239.255.42.42"), "{out}");
    assert!(h2.contains("probe with --group 239.1.2.3, or run the responder with --group 239.255.42.42"), "{out}");
    assert!(!h2.contains("one of these"), "proven, so named alone: {out}");
    assert_eq!(causes(&json, "10.77.0.2"), ["another-group"]);
    assert!(line(&out, "10.77.0.3").is_empty(), "h3 is ok: {out}");
    assert_no(&out, &WRONG);
}

/// A host listed under two of its addresses (h2 with a second one on its link): one responder
/// answers the unicast probes to both. It is judged once, and said to be listed twice; nothing
/// calls the second address lost.
#[test]
fn a_host_listed_under_two_of_its_addresses_is_judged_once() {
    let Some((_lab, _turn, p)) = fresh_lab("cft", 3) else { return };
    let ns = format!("{p}-h2");
    let o = std::process::Command::new("ip").args(["-n", &ns, "addr", "add", "10.77.0.12/24", "dev", "veth0"]).output();
    assert!(o.as_ref().is_ok_and(|o| o.status.success()), "{o:?}");
    let _h2 = responder(p, "h2", &[]);
    let _h3 = responder(p, "h3", &[]);
    let (code, out, json) = probe_hosts(p, "10.77.0.2,10.77.0.12,10.77.0.3");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("10.77.0.12 is 10.77.0.2 again: one responder, h2, answered the unicast probes to both"),
        "{out}"
    );
    assert!(out.contains("2 of 2 expected hosts ok"), "{out}");
    let hosts: Vec<&str> =
        json["diagnosis"]["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["10.77.0.2", "10.77.0.3"]);
    assert!(line(&out, "10.77.0.12").is_empty(), "{out}");
    assert_no(&out, &WRONG);
    assert_no(&out, &["multicast-lost", "multicast lost"]);
}

#[test]
fn every_responder_on_another_group_is_named_and_the_firewall_is_not_blamed() {
    let Some((_lab, _turn, p)) = fresh_lab("cfh", 3) else { return };
    let _r = [responder(p, "h2", &["--group", "239.1.2.3"]), responder(p, "h3", &["--group", "239.1.2.3"])];
    let (code, out, json) = probe(p);
    assert_eq!(code, Some(3), "{out}");
    for h in ["10.77.0.2", "10.77.0.3"] {
        assert!(line(&out, h).contains("its responder serves group 239.1.2.3"), "{h}: {out}");
        assert_eq!(causes(&json, h), ["another-group"]);
    }
    assert!(out.contains("no expected host answered on the group, though every one answered unicast on this port"));
    assert_no(&out, &WRONG);
}

#[test]
fn responders_on_another_port_are_told_apart_from_a_dead_host() {
    let Some((_lab, _turn, p)) = fresh_lab("cfp", 3) else { return };
    let _r = [responder(p, "h2", &["--port", "24300"]), responder(p, "h3", &["--port", "24300"])];
    let (code, out, json) = probe(p);
    // Nothing answered at all: unreachable, which is exit 1, not the multicast-broken exit 3.
    assert_eq!(code, Some(1), "{out}");
    for h in ["10.77.0.2", "10.77.0.3"] {
        let l = line(&out, h);
        assert!(l.contains("says ICMP port unreachable to port 24242: no responder listens there"), "{out}");
        assert!(l.contains("one on another --port") && l.contains("or its firewall rejects"), "{out}");
        assert_eq!(causes(&json, h), ["no-responder-on-port"]);
    }
    assert_no(&out, &WRONG);
}
