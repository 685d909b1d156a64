//! Host-side faults (issue 19): a stateful firewall on the prober's host, a firewall on a
//! responder's host, and rp_filter on a responder with an asymmetric route. Each case asserts
//! what `probe --hosts` says (the cause, its exit code, no wrong cause), what the responder logs,
//! and what `doctor` says on the faulty host; the rules of docs/src/firewall.md are loaded
//! exactly as written and must make the run clean. Needs root (CI runs as root).

use std::process::{Command, Output};

use crate::common::lab::{fresh_waiting_lab as fresh_lab, in_lab_host, nft_in};
use crate::common::{run, Responder};

const HOSTS: &str = "10.77.0.2,10.77.0.3";

/// The stateful firewall of issue 19's first fault, as given there.
const STATEFUL: &str = "table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    udp dport 24242 accept
  }
}
";

/// The same without the probes' port: a responder host that opened nothing for mcprobe.
const STATEFUL_CLOSED: &str = "table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
  }
}
";

/// `sh -c LINE` in a lab host's namespace; it must succeed.
fn sh(p: &str, h: &str, line: &str) {
    let out = Command::new("ip").args(["netns", "exec", &format!("{p}-{h}"), "sh", "-c", line]).output().unwrap();
    assert!(out.status.success(), "{h}: {line}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The command lines of the block after `<!-- lab: NAME -->` in docs/src/firewall.md.
fn documented(name: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(crate::common::lab::repo().join("docs/src/firewall.md")).unwrap();
    let after = doc.split(&format!("<!-- lab: {name} -->")).nth(1).unwrap_or_else(|| panic!("no block {name}"));
    let block = after.split("```").nth(1).expect("a fenced block after the marker");
    block.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

fn responder(p: &str, h: &str) -> Responder {
    let mut c = in_lab_host(p, h);
    c.args(["respond", "--iface", "veth0", "--name", h, "--querier-wait", "1h"]);
    Responder::spawn(c)
}

/// `probe --hosts` from h1: exit code, stdout.
fn probe(p: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--count", "30", "--rate", "20", "--timeout", "500ms", "--quiet"]);
    c.args(["--hosts", HOSTS]).args(extra);
    let out: Output = run(c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("probe {extra:?} -> {:?}\n{text}", out.status.code());
    (out.status.code(), text)
}

/// `doctor` on host `h`: exit code, stdout.
fn doctor(p: &str, h: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut c = in_lab_host(p, h);
    c.args(["doctor", "--iface", "veth0", "--querier-listen", "3s"]).args(extra);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("doctor on {h} {extra:?} -> {:?}\n{text}", out.status.code());
    (out.status.code(), text)
}

/// The lines of `text` with `FOUND` findings.
fn findings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("FOUND")).collect()
}

/// The verdict line of host `host` (`10.77.0.3: …`).
fn advice<'a>(text: &'a str, host: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{host}: "))).unwrap_or("")
}

fn assert_no(text: &str, wrong: &[&str]) {
    for w in wrong {
        assert!(!text.contains(w), "a wrong cause, {w:?}, in:\n{text}");
    }
}

#[test]
fn a_stateful_firewall_on_the_probers_host_is_named_and_the_documented_rules_fix_it() {
    let Some((_lab, _turn, p)) = fresh_lab("hfa", 3) else { return };
    // A querier, so that doctor's querier check has one to hear on a clean host.
    crate::common::lab::lab_in(p, &["querier", "on"]);
    let _r = [responder(p, "h2"), responder(p, "h3")];
    nft_in(p, "h1", STATEFUL);
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(1), "acks dropped here: not exit 3, multicast reached the responders");
    assert!(
        out.contains("this host's firewall drops the acks: 60 acks from 10.77.0.2 (30) and 10.77.0.3 (30)"),
        "{out}"
    );
    assert!(out.contains("Fix: probe with --ack-port 24243"), "{out}");
    for h in ["10.77.0.2", "10.77.0.3"] {
        assert!(advice(&out, h).contains("this host's firewall drops them"), "{h}: {out}");
    }
    assert_no(&out, &["another --group", "host is down", "snooping", "rejects", "its responder's socket"]);

    // The same prober without CAP_NET_RAW, so no tap here: the responders say in their acks to
    // the unicast probes that the multicast probes reached them, so the acks were lost on the
    // way back, and this host's firewall is the first place named.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{p}-h1"), "setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]);
    c.args([env!("CARGO_BIN_EXE_mcprobe"), "probe", "--iface", "veth0", "--count", "30", "--rate", "20"]);
    c.args(["--timeout", "500ms", "--quiet", "--hosts", HOSTS]);
    let untapped = run(c);
    let text = String::from_utf8_lossy(&untapped.stdout).into_owned();
    println!("without CAP_NET_RAW -> {:?}\n{text}", untapped.status.code());
    assert_eq!(untapped.status.code(), Some(1), "multicast reaches the responders: not exit 3: {text}");
    for h in ["10.77.0.2", "10.77.0.3"] {
        let a = advice(&text, h);
        assert!(
            a.contains("multicast probes from this host during the run") && a.contains("so multicast reaches it"),
            "{text}"
        );
        assert!(a.contains("lost on the way back: this host's firewall drops them"), "{text}");
    }
    assert_no(&text, &["another --group", "host is down", "snooping", "does not reach"]);

    let (code, out) = doctor(p, "h1", &["--role", "prober"]);
    assert_eq!(code, Some(1));
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("firewall drops the acks a prober gets") && found[0].contains("policy of inet filter input")
    );
    assert!(out.contains("fix: nft insert rule inet filter input udp dport 24243 accept"), "{out}");

    // The documented prober rule, and --ack-port: clean.
    for line in documented("prober-nft") {
        sh(p, "h1", &line);
    }
    let (code, out) = probe(p, &["--ack-port", "24243"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 of 2 expected hosts ok"), "{out}");
    assert_no(&out, &["firewall"]);
    let (code, out) = doctor(p, "h1", &["--role", "prober", "--ack-port", "24243"]);
    assert_eq!((code, findings(&out).len()), (Some(0), 0), "{out}");

    // The same with iptables: its stateful firewall, then the documented rule.
    sh(p, "h1", "nft flush ruleset");
    for line in [
        "iptables -P INPUT DROP",
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "iptables -A INPUT -i lo -j ACCEPT",
        "iptables -A INPUT -p udp --dport 24242 -j ACCEPT",
    ] {
        sh(p, "h1", line);
    }
    let (code, out) = probe(p, &["--ack-port", "24243"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("this host's firewall drops the acks") && out.contains("Fix: open this prober's --ack-port"),
        "{out}"
    );
    let (_, out) = doctor(p, "h1", &["--role", "prober", "--ack-port", "24243"]);
    assert!(out.contains("fix: iptables -I INPUT -p udp --dport 24243 -j ACCEPT"), "{out}");
    for line in documented("prober-iptables") {
        sh(p, "h1", &line);
    }
    let (code, out) = probe(p, &["--ack-port", "24243"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = doctor(p, "h1", &["--role", "prober", "--ack-port", "24243"]);
    assert_eq!((code, findings(&out).len()), (Some(0), 0), "{out}");
}

#[test]
fn a_firewall_on_a_responders_host_is_named_there_and_by_the_prober_as_far_as_it_can_tell() {
    let Some((_lab, _turn, p)) = fresh_lab("hfb", 3) else { return };
    crate::common::lab::lab_in(p, &["querier", "on"]);
    let _h2 = responder(p, "h2");
    // h3 drops everything mcprobe sends it.
    nft_in(p, "h3", STATEFUL_CLOSED);
    let mut h3 = responder(p, "h3");
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(1), "{out}");
    let a = advice(&out, "10.77.0.3");
    assert!(a.contains("so it is up") && a.contains("firewall"), "{out}");
    assert_no(a, &["down", "rp_filter"]);
    assert!(advice(&out, "10.77.0.2").is_empty(), "h2 is ok: {out}");
    let line = h3.wait_for("reached this host's interface but never the responder's socket");
    assert!(line.contains("from 10.77.0.1") && line.contains("this host's firewall drops them"), "{line}");
    assert_no(&line, &["reverse-path"]);
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!(code, Some(1));
    let found = findings(&out).join("\n");
    assert!(found.contains("drops the multicast probes a responder gets"), "{out}");
    assert!(found.contains("drops the unicast probes a responder gets"), "{out}");
    assert!(out.contains("fix: nft insert rule inet filter input udp dport 24242 accept"), "{out}");
    assert_no(&found, &["rp_filter", "route", "interface"]);
    drop(h3);

    // A firewall opened to the host's own address only: unicast passes, multicast does not,
    // and the unicast acks carry h3's count of the multicast probes it dropped.
    sh(p, "h3", "nft flush ruleset");
    nft_in(
        p,
        "h3",
        &STATEFUL_CLOSED.replace("iif lo accept", "iif lo accept\n    ip daddr 10.77.0.3 udp dport 24242 accept"),
    );
    let _h3 = responder(p, "h3");
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(3), "multicast lost where unicast works: {out}");
    let a = advice(&out, "10.77.0.3");
    assert!(a.contains("probes reached its interface but never its responder's socket"), "{out}");
    assert_no(a, &["snooping", "this host's firewall drops the acks"]);
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!(code, Some(1));
    let found = findings(&out).join("\n");
    assert!(found.contains("drops the multicast probes"), "{out}");
    assert_no(&found, &["unicast probes", "rp_filter"]);

    // The documented responder rules: clean, and doctor finds nothing.
    for line in documented("responder-nft") {
        sh(p, "h3", &line);
    }
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!((code, findings(&out).len()), (Some(0), 0), "{out}");

    // iptables: a closed stateful firewall, then the documented rules.
    sh(p, "h3", "nft flush ruleset");
    for line in [
        "iptables -P INPUT DROP",
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "iptables -A INPUT -i lo -j ACCEPT",
    ] {
        sh(p, "h3", line);
    }
    let (code, _) = probe(p, &[]);
    assert_eq!(code, Some(1));
    for line in documented("responder-iptables") {
        sh(p, "h3", &line);
    }
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!((code, findings(&out).len()), (Some(0), 0), "{out}");
}

#[test]
fn rp_filter_on_a_responder_with_an_asymmetric_route_is_named_there() {
    let Some((_lab, _turn, p)) = fresh_lab("hfc", 3) else { return };
    crate::common::lab::lab_in(p, &["querier", "on"]);
    let _h2 = responder(p, "h2");
    // h3 has a second link, and its route back to the prober leaves by it.
    for line in [
        "ip link add side0 type veth peer name side1",
        "ip addr add 10.99.0.3/24 dev side0",
        "ip link set side0 up",
        "ip link set side1 up",
        "ip route add 10.77.0.1/32 dev side0",
        "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter",
        "echo 1 > /proc/sys/net/ipv4/conf/veth0/rp_filter",
    ] {
        sh(p, "h3", line);
    }
    let mut h3 = responder(p, "h3");
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(1), "{out}");
    let a = advice(&out, "10.77.0.3");
    // It did not answer ARP either: the prober lists what that can mean, rp_filter included.
    assert!(a.contains("no answer to ARP") && a.contains("rp_filter"), "{out}");
    assert_no(a, &["firewall"]);
    let line = h3.wait_for("reached this host's interface but never the responder's socket");
    assert!(
        line.contains("reverse-path filter (rp_filter 1) refuses packets from 10.77.0.1 arriving on veth0"),
        "{line}"
    );
    assert!(line.contains("leaves by side0"), "{line}");
    assert_no(&line, &["firewall"]);
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!(code, Some(1));
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{out}");
    assert!(
        found[0].contains("rp_filter") && found[0].contains("10.77.0.1") && found[0].contains("leaves by side0"),
        "{out}"
    );
    // The route back by veth0 again (here the other link leads nowhere, so a loose check alone
    // would let the probes in and send the acks nowhere): clean, rp_filter still strict.
    sh(p, "h3", "ip route del 10.77.0.1/32 dev side0");
    let (code, out) = probe(p, &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!((code, findings(&out).len()), (Some(0), 0), "{out}");
    // With the filter off, a source the kernel still refuses on veth0 (h3's own side0 address,
    // a martian there) is not put down to rp_filter, and no rp_filter fix is offered.
    sh(p, "h3", "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter");
    sh(p, "h3", "echo 0 > /proc/sys/net/ipv4/conf/veth0/rp_filter");
    let (code, out) = doctor(p, "h3", &["--role", "responder", "--peer", "10.99.0.3"]);
    assert_eq!(code, Some(1), "{out}");
    let found = findings(&out).join("\n");
    assert!(found.contains("10.99.0.3") && found.contains("reverse-path filter is off (rp_filter 0)"), "{out}");
    assert_no(&out, &["sysctl -w"]);
}

#[test]
fn issue_19s_firewall_on_a_responders_host_drops_the_queries_and_the_switch_then_the_group() {
    let Some((_lab, _turn, p)) = fresh_lab("hfd", 3) else { return };
    // Queries every 2 s: a membership the host never renews ages out after 5 s (2 x 2 + 1).
    crate::common::lab::lab_in(p, &["querier", "on", "--interval", "2"]);
    let _h3 = responder(p, "h3");
    // h2 has the very firewall of issue 19's first fault: the probes' port is open, IGMP is not.
    nft_in(p, "h2", STATEFUL);
    let _h2 = responder(p, "h2");
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--count", "120", "--rate", "10", "--timeout", "500ms", "--quiet"]);
    c.args(["--hosts", HOSTS]);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    // Multicast reaches h2 until its membership ages out, then the bridge keeps the group away.
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.lines().any(|l| l.starts_with("outage: h2 from") && l.contains("to the end of the run")), "{text}");
    assert!(advice(&text, "10.77.0.3").is_empty(), "h3 is ok: {text}");
    // The querier is heard here, so the switch dropped h2's join because h2 stopped answering.
    let h2 = advice(&text, "10.77.0.2");
    assert!(h2.contains("multicast stopped for the last") && h2.contains("while unicast went on"), "{text}");
    assert!(h2.contains("is heard here") && h2.contains("its firewall drops IGMP"), "{text}");
    // The probes that do not come never reach h2's interface: nothing to blame on its host path.
    assert_no(&text, &["reached its interface but never", "this host's firewall drops the acks"]);
    // doctor on h2 names the rule's gap, and does not call the LAN querier-less.
    let (code, out) = doctor(p, "h2", &["--role", "responder", "--peer", "10.77.0.1"]);
    assert_eq!(code, Some(1));
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{out}");
    assert!(found[0].contains("drops the IGMP membership queries"), "{out}");
    assert!(out.contains("fix: nft insert rule inet filter input ip protocol igmp accept"), "{out}");
    assert!(
        out.contains("cannot tell whether the LAN has a membership querier: this host's firewall drops the queries"),
        "{out}"
    );
}
