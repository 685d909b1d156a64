//! Why multicast broke (issue 12), in LANs of network namespaces built by scripts/lab.sh:
//! the querier watch against a Linux bridge acting as IGMP/MLD querier, and faults shared by
//! the hosts behind a lossy trunk. Needs root (CI runs as root); skips with a printed reason
//! otherwise.

use crate::common;

use std::process::{Command, Output};

use common::lab::{
    fresh_lab as lab_up, fresh_waiting_lab, in_lab_host, in_netns, lab_in, one_lab_at_a_time, prefix, repo,
    root_or_skip, Lab, Turn,
};
use common::*;
use serde_json::Value;

fn lab(p: &str, args: &[&str]) -> String {
    lab_in(p, args)
}

fn fresh_lab(base: &str, hosts: u32) -> Option<(Lab, Turn)> {
    lab_up(base, hosts).map(|(l, turn, _)| (l, turn))
}

/// A lab for a test that waits on the querier's intervals (see common::lab).
fn waiting_lab(base: &str, hosts: u32) -> Option<(Lab, Turn)> {
    fresh_waiting_lab(base, hosts).map(|(l, turn, _)| (l, turn))
}

fn in_host(p: &str, h: &str) -> Command {
    in_lab_host(p, h)
}

fn responder(p: &str, h: &str, group: &str, port: &str) -> Responder {
    let mut c = in_host(p, h);
    c.args(["respond", "--iface", "veth0", "--group", group, "--port", port, "--name", h, "--querier-wait", "1h"]);
    Responder::spawn(c)
}

/// A probe from h1 with `--json`: the report and stderr.
fn probe_json(p: &str, group: &str, port: &str, count: u32, extra: &[&str]) -> (Value, String) {
    let mut c = in_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--group", group, "--port", port, "--count", &count.to_string(), "--json"]);
    if !extra.contains(&"--rate") {
        c.args(["--rate", "10", "--timeout", "500ms"]);
    }
    c.args(extra);
    let out: Output = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let errors: Vec<String> = schema().iter_errors(&report).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "not as docs/report.schema.json says: {errors:#?}\n{report:#}");
    (report, stderr)
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("a valid JSON schema")
}

fn only_querier(report: &Value) -> &Value {
    let q = &report["querier"];
    assert_eq!(q["watched"], Value::Bool(true), "{q}");
    let list = q["queriers"].as_array().expect("queriers");
    assert_eq!(list.len(), 1, "one querier: {q}");
    &list[0]
}

#[test]
fn a_bridge_querier_is_found_with_its_version_and_interval() {
    let Some((l, _turn)) = waiting_lab("wq", 2) else { return };
    let p = l.0;
    // IGMPv3 and MLDv2 announce their interval (QQIC): 2 s here.
    lab(p, &["querier", "on", "--interval", "2"]);
    for (group, port, version, source_v6) in
        [("239.255.42.42", "24301", "IGMPv3", false), ("ff12::4242", "24302", "MLDv2", true)]
    {
        let mut r = responder(p, "h2", group, port);
        let (report, stderr) = probe_json(p, group, port, 60, &["--querier-wait", "4s"]);
        let q = only_querier(&report);
        println!("{version}: {q}");
        assert_eq!(q["version"], version);
        assert_eq!(q["interval_s"], 2.0);
        assert_eq!(q["interval_announced"], true);
        assert_eq!(q["robustness"], 2);
        let addr: std::net::IpAddr = q["address"].as_str().unwrap().parse().unwrap();
        // A bridge without an IPv4 address queries from 0.0.0.0; MLD from br0's link-local.
        assert_eq!(addr.is_ipv6(), source_v6, "{addr}");
        let seen = q["observed_interval_s"].as_f64().expect("two general queries in 6 s");
        assert!((1.5..=2.6).contains(&seen), "observed interval {seen}");
        assert!(q["last_seen_ago_s"].as_f64().unwrap() < 2.6, "{q}");
        assert_eq!(report["querier"]["silence"], Value::Null);
        assert!(stderr.contains(&format!("heard: {version}, interval 2 s")), "{stderr}");
        // The responder reports the querier it heard when it stops.
        r.signal(nix::sys::signal::Signal::SIGINT);
        r.wait_for(&format!(": {version}, query interval 2 s (announced"));
    }
    // IGMPv2 and MLDv1 do not announce it: the default, and the interval seen on the wire.
    lab(p, &["querier", "on", "--interval", "2", "--igmp", "2", "--mld", "1"]);
    for (group, port, version) in [("239.255.42.42", "24303", "IGMPv2"), ("ff12::4242", "24304", "MLDv1")] {
        let _r = responder(p, "h2", group, port);
        let (report, _) = probe_json(p, group, port, 60, &[]);
        let q = only_querier(&report);
        println!("{version}: {q}");
        assert_eq!(q["version"], version);
        assert_eq!((q["interval_s"].as_f64(), q["interval_announced"].as_bool()), (Some(125.0), Some(false)));
        let seen = q["observed_interval_s"].as_f64().expect("two general queries in 6 s");
        assert!((1.5..=2.6).contains(&seen), "observed interval {seen}");
    }
}

#[test]
fn without_a_querier_the_warning_comes_after_the_wait() {
    let Some((l, _turn)) = waiting_lab("wn", 2) else { return };
    let p = l.0;
    let _r = responder(p, "h2", "239.255.42.42", "24305");
    // 4 s of probing: silent past a 2 s wait, not past the default 135 s.
    let (report, stderr) = probe_json(p, "239.255.42.42", "24305", 40, &["--querier-wait", "2s"]);
    let q = &report["querier"];
    println!("{q}\n{stderr}");
    assert_eq!(q["queriers"], Value::Array(vec![]));
    let s = &q["silence"];
    assert!(s["silent_for_s"].as_f64().unwrap() > 2.0, "{s}");
    assert_eq!(s["limit_s"], 2.0);
    assert_eq!(s["membership_timeout_s"], 260.0);
    assert!(stderr.contains("no IGMP/MLD membership query for 2."), "{stderr}");
    let notes: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("no membership query (IGMP/MLD) seen for")), "{notes:?}");
    let (report, stderr) = probe_json(p, "239.255.42.42", "24305", 40, &[]);
    assert_eq!(report["querier"]["silence"], Value::Null, "{}", report["querier"]);
    assert!(!stderr.contains("no IGMP/MLD membership query"), "{stderr}");
}

/// `dropped=` from a `lab.sh ... counters` line.
fn dropped(line: &str) -> i64 {
    line.split_whitespace().find_map(|kv| kv.strip_prefix("dropped=")).and_then(|v| v.parse().ok()).expect(line)
}

fn groups(report: &Value) -> Vec<(Vec<String>, i64)> {
    let list = report["shared_faults"]["groups"].as_array().expect("groups");
    list.iter()
        .map(|g| {
            let members = g["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
            (members, g["probes"].as_i64().unwrap())
        })
        .collect()
}

fn alone(report: &Value, name: &str) -> i64 {
    let list = report["shared_faults"]["alone"].as_array().expect("alone");
    list.iter().find(|a| a["responder"] == name).map_or(0, |a| a["probes"].as_i64().unwrap())
}

#[test]
fn trunk_loss_is_shared_by_the_hosts_behind_it_and_access_loss_is_one_hosts_own() {
    if !root_or_skip() {
        return;
    }
    let _turn = one_lab_at_a_time();
    // h1 (prober) and h2 on br0; h3, h4, h5 on br1, behind the trunk.
    let p = prefix("wt");
    let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", p).arg("down").status();
    lab(p, &["up", "5", "--trunk", "2"]);
    let _lab = Lab(p);
    let _r: Vec<Responder> =
        ["h2", "h3", "h4", "h5"].iter().map(|h| responder(p, h, "239.255.42.42", "24306")).collect();
    let probe = |p: &str| probe_json(p, "239.255.42.42", "24306", 2000, &["--rate", "200", "--timeout", "1s"]).0;

    // Probes lost on the trunk, and on h4's own link.
    lab(p, &["trunk", "loss", "3", "down"]);
    lab(p, &["impair", "h4", "ingress", "--loss", "3"]);
    let report = probe(p);
    let (trunk, h4) =
        (dropped(&lab(p, &["trunk", "counters", "down"])), dropped(&lab(p, &["counters", "h4", "ingress"])));
    let found = groups(&report);
    println!("trunk dropped {trunk}, h4's link {h4}; groups {found:?}; alone {}", report["shared_faults"]["alone"]);
    assert_eq!(found.len(), 1, "{}", report["shared_faults"]);
    assert_eq!(found[0].0, ["h3", "h4", "h5"]);
    // The counters also count the odd IGMP report the link carried: a couple at most.
    assert!((trunk - 3..=trunk).contains(&found[0].1), "group {} vs trunk {trunk}", found[0].1);
    assert!((h4 - 3..=h4).contains(&alone(&report, "h4")), "h4 alone {} vs its link {h4}", alone(&report, "h4"));
    for h in ["h2", "h3", "h5"] {
        assert!(alone(&report, h) <= 2, "{h} alone {}", alone(&report, h));
    }
    let notes: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("h3, h4 and h5 lost the same")), "{notes:?}");

    // Only access links lossy (h3's and h4's): no group, each host's own.
    lab(p, &["trunk", "clear"]);
    lab(p, &["impair", "h3", "ingress", "--loss", "3"]);
    lab(p, &["impair", "h4", "ingress", "--loss", "3"]); // anew: its counters start again at 0
    let report = probe(p);
    let h3 = dropped(&lab(p, &["counters", "h3", "ingress"]));
    let h4 = dropped(&lab(p, &["counters", "h4", "ingress"]));
    println!("h3's link {h3}, h4's link {h4}: {}", report["shared_faults"]);
    assert_eq!(groups(&report), []);
    assert!((h3 - 3..=h3).contains(&alone(&report, "h3")), "h3 alone {} vs {h3}", alone(&report, "h3"));
    assert!((h4 - 3..=h4).contains(&alone(&report, "h4")), "h4 alone {} vs {h4}", alone(&report, "h4"));
    let notes: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("h3 and h4 lost probes independently")), "{notes:?}");
}

#[test]
fn without_cap_net_raw_it_says_so_once_and_measures_on() {
    let Some((l, _turn)) = waiting_lab("wc", 2) else { return };
    let p = l.0;
    let _r = responder(p, "h2", "239.255.42.42", "24307");
    // The prober without CAP_NET_RAW: dropped from the bounding and inheritable sets, so the
    // exec'd mcprobe runs as root without it.
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{p}-h1"), "setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]);
    c.args([env!("CARGO_BIN_EXE_mcprobe"), "probe", "--iface", "veth0", "--port", "24307", "--count", "20"]);
    c.args(["--rate", "20", "--timeout", "300ms", "--json"]);
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let notice: Vec<&str> = stderr.lines().filter(|l| l.contains("CAP_NET_RAW")).collect();
    assert_eq!(notice, ["mcprobe: not watching for IGMP queries: a raw socket needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on mcprobe)"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["querier"]["watched"], false);
    assert_eq!(report["responders"][0]["received"], 20, "{report:#}");
}

/// Real snooping: the bridge stays querier, but its queries stop reaching h1 (the prober) and
/// h2. h2 stops reporting, the bridge ages its membership out (2 × 1 s + 1 s, as the queries
/// announce) and stops forwarding the group to it, while h3, still queried, keeps getting it.
/// The prober's report names the silence and says it explains h2's outage, also under the
/// verdicts of `--hosts`.
#[test]
fn a_querier_gone_quiet_explains_the_outage_that_follows() {
    let Some((l, _turn)) = waiting_lab("wh", 3) else { return };
    let p = l.0;
    lab(p, &["querier", "on", "--interval", "1"]);
    let _r: Vec<Responder> = ["h2", "h3"].iter().map(|h| responder(p, h, "239.255.42.42", "24308")).collect();
    let mut c = in_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--port", "24308", "--rate", "20", "--count", "240", "--timeout", "500ms"]);
    c.args(["--querier-wait", "2s", "--hosts", "10.77.0.2,10.77.0.3", "--out"]);
    let dir = tempfile::tempdir().unwrap();
    c.arg(dir.path());
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Let the prober hear the querier first, then hide the queries from h1 and h2.
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab(p, &["querier", "hide", "h1"]);
    lab(p, &["querier", "hide", "h2"]);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(3), "multicast broken for h2: {stderr}");
    let outages = csv_rows(&dir.path().join("outages.csv"));
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["responder"], "h2");
    let line = stdout.lines().find(|l| l.starts_with("querier 0.0.0.0 (IGMPv3) silent for")).expect("the silence line");
    assert!(line.contains("about 3 s (robustness 2 × 1 s + response time)"), "{line}");
    assert!(line.contains("this explains the outages of h2 from "), "{line}");
    assert!(!line.contains("h3"), "{line}");
    assert!(stdout.lines().any(|l| l.starts_with("10.77.0.2: outage from ")), "{stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with("10.77.0.3: outage")), "{stdout}");
    let queriers = csv_rows(&dir.path().join("queriers.csv"));
    assert_eq!((queriers[0]["version"].as_str(), queriers[0]["interval_s"].as_str()), ("IGMPv3", "1.0"));
}

/// Forward loss split by where it happened: h2's own host (a 4 KiB receive buffer, its process
/// stopped for 300 ms while probes arrive at 2000/s) and h3's link (3 % of what it receives
/// dropped by nftables). The responders report their socket's drops in their acks.
#[test]
fn forward_loss_is_split_into_the_responders_own_drops_and_the_networks() {
    let Some((l, _turn)) = fresh_lab("wd", 3) else { return };
    let p = l.0;
    let mut c = in_host(p, "h2");
    c.args(["respond", "--iface", "veth0", "--group", "239.255.42.42", "--port", "24307", "--name", "h2"]);
    c.args(["--querier-wait", "1h", "--rcvbuf", "4k"]);
    let mut h2 = Responder::spawn(c);
    let _h3 = responder(p, "h3", "239.255.42.42", "24307");
    lab(p, &["impair", "h3", "ingress", "--loss", "3"]);
    let mut c = in_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--group", "239.255.42.42", "--port", "24307", "--json", "--quiet"]);
    c.args(["--count", "3000", "--rate", "2000", "--timeout", "500ms"]);
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    h2.wait_for("session");
    std::thread::sleep(std::time::Duration::from_millis(300));
    h2.signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_millis(300));
    h2.signal(nix::sys::signal::Signal::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let link = dropped(&lab(p, &["counters", "h3", "ingress"]));
    let rows = report["responders"].as_array().unwrap();
    let row = |n: &str| rows.iter().find(|r| r["responder"] == n).unwrap_or_else(|| panic!("{n}: {report:#}"));
    let num = |r: &Value, k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} in {r}"));
    let (h2, h3) = (row("h2"), row("h3"));
    println!("h3's link dropped {link}\nh2 {h2}\nh3 {h3}");
    // h2: about 600 probes came while it was stopped, and its buffer holds a handful.
    assert!(num(h2, "forward_lost") >= 300, "{h2}");
    assert_eq!(num(h2, "forward_host_drops") + num(h2, "forward_unreported"), num(h2, "forward_lost"), "{h2}");
    assert!(num(h2, "forward_unreported") * 20 <= num(h2, "forward_lost"), "at most 5 % untold: {h2}");
    assert_eq!(num(h2, "forward_network_lost"), 0, "{h2}");
    // h3: what its link dropped is the network's (the counter also counts an odd IGMP report).
    assert_eq!(num(h3, "forward_host_drops"), 0, "{h3}");
    assert!((link - 3..=link).contains(&num(h3, "forward_network_lost")), "{h3} vs {link} dropped");
    assert!(num(h3, "forward_network_lost") >= 30, "3 % of 3000: {h3}");
    let notes: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("h2: ") && n.contains("dropped by its own host")), "{notes:?}");
    assert!(!notes.iter().any(|n| n.starts_with("h3: ")), "{notes:?}");
}

/// A responder stalled again and again (its process stopped 18 times for 30 ms, then over the
/// run's end, at 2 000 probes/s into a 4 KiB buffer): its host dropped what it missed, and the prober must never
/// call any of that network loss. Only padded probes ask for the drop count (one a second
/// here), so after each stall the prober pads its next probe; what no report covered is
/// untold (`forward_unreported`), and stays small.
#[test]
fn a_responder_stalled_again_and_again_is_never_called_network_loss() {
    let Some((l, _turn)) = fresh_lab("wr", 2) else { return };
    let p = l.0;
    let mut c = in_host(p, "h2");
    c.args(["respond", "--iface", "veth0", "--group", "239.255.42.42", "--port", "24310", "--name", "h2"]);
    c.args(["--querier-wait", "1h", "--rcvbuf", "4k"]);
    let mut h2 = Responder::spawn(c);
    let mut c = in_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--group", "239.255.42.42", "--port", "24310", "--json", "--quiet"]);
    c.args(["--count", "3000", "--rate", "2000", "--timeout", "500ms"]);
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    h2.wait_for("session");
    // Stalls all through the run (1.5 s), the last one over its end: the last probes, padded
    // to ask for the report, never reach it, so only the probes after each stall can tell.
    let ms = std::time::Duration::from_millis;
    for i in 0..19 {
        std::thread::sleep(ms(40));
        h2.signal(nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(if i < 18 { ms(30) } else { ms(600) });
        h2.signal(nix::sys::signal::Signal::SIGCONT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let closing = h2.stop();
    let r = &report["responders"][0];
    let num = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    println!("h2 {r}\nresponder: {closing}");
    // About 60 probes a stall; a busy machine stalls it more, never less.
    assert!(num("forward_lost") >= 300, "{r}");
    assert_eq!(num("forward_network_lost"), 0, "{r}\nresponder: {closing}");
    assert_eq!(num("forward_host_drops") + num("forward_unreported"), num("forward_lost"), "{r}");
    assert!(num("forward_unreported") * 20 <= num("forward_lost"), "at most 5 % untold: {r}\nresponder: {closing}");
    let notes: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("h2: ") && n.contains("dropped by its own host")), "{notes:?}");
}

/// `GET /metrics` from `serve` listening on 127.0.0.1:`port` inside lab host h1.
fn metrics_in_h1(p: &str, port: u16) -> String {
    use std::io::{Read, Write};
    in_netns(&format!("{p}-h1"), || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_string())
    })
}

/// Polls `serve`'s metrics in h1 until `ok` holds (bounded by a failure timeout); returns them.
fn metrics_until(p: &str, port: u16, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = metrics_in_h1(p, port);
        if ok(&text) {
            return text;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "timed out waiting for {what}:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `serve` exports the querier it hears: the bridge's IGMPv3 querier with the interval it
/// announces, then, with the querier stopped, mcprobe_querier_silent after --querier-wait. The
/// exposition passes `promtool check metrics`.
#[test]
fn serve_exports_the_querier_and_its_silence() {
    let Some((l, _turn)) = waiting_lab("ws", 2) else { return };
    let p = l.0;
    lab(p, &["querier", "on", "--interval", "1"]);
    let _r = responder(p, "h2", "239.255.42.42", "24309");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut c = in_host(p, "h1");
    // Windows of 5 s: the querier metrics follow the watch (read once a second), not the windows.
    c.args(["serve", "--iface", "veth0", "--port", "24309", "--rate", "20", "--window", "5s", "--timeout", "300ms"]);
    c.args(["--querier-wait", "3s", "--listen", "127.0.0.1:19798"]);
    let child = c.stdout(std::process::Stdio::null()).stderr(log.reopen().unwrap()).spawn().unwrap();
    let _serve = common::Killed(child);
    let q = r#"target="default",querier="0.0.0.0""#;
    let queries = |t: &str| -> u64 {
        let line = format!("mcprobe_querier_queries_total{{{q}}} ");
        t.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let text = metrics_until(p, 19798, "two queries", |t| queries(t) >= 2);
    println!("{}", text.lines().filter(|l| l.contains("mcprobe_querier")).collect::<Vec<_>>().join("\n"));
    for line in [
        r#"mcprobe_querier_watching{target="default"} 1"#.to_string(),
        r#"mcprobe_querier_silent{target="default"} 0"#.to_string(),
        format!("mcprobe_querier_info{{{q},version=\"IGMPv3\"}} 1"),
        format!("mcprobe_querier_interval_seconds{{{q}}} 1.0"),
        format!("mcprobe_querier_robustness{{{q}}} 2"),
        r#"mcprobe_querier_refused_total{target="default"} 0"#.to_string(),
    ] {
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
    let last_seen: f64 = (text.lines())
        .find_map(|l| l.strip_prefix(&format!("mcprobe_querier_last_seen_timestamp_seconds{{{q}}} ")))
        .and_then(|v| v.parse().ok())
        .expect("a last-seen timestamp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((0.0..5.0).contains(&(now - last_seen)), "last seen {last_seen}, now {now}");
    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut check = Command::new("promtool");
        check.args(["check", "metrics"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        let mut check = check.spawn().unwrap();
        std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool check metrics: {}", String::from_utf8_lossy(&out.stdout));
    } else {
        skip_or_fail("linting the exposition: promtool is not installed (Debian package prometheus)");
    }
    // The querier stops: silent once no query came for 3 s, and said once on stderr.
    lab(p, &["querier", "off"]);
    metrics_until(p, 19798, "the silence", |t| t.contains(r#"mcprobe_querier_silent{target="default"} 1"#));
    let start = std::time::Instant::now();
    let stderr = loop {
        let stderr = std::fs::read_to_string(log.path()).unwrap();
        if stderr.contains("no IGMP/MLD membership query for") || start.elapsed() > std::time::Duration::from_secs(10) {
            break stderr;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    println!("{stderr}");
    assert!(stderr.contains("target default: querier 0.0.0.0 heard: IGMPv3, interval 1 s"), "{stderr}");
    let silence = "mcprobe: target default: no IGMP/MLD membership query for";
    assert_eq!(stderr.matches(silence).count(), 1, "{stderr}");
    assert!(stderr.contains("(mcprobe_querier_silent is 1)"), "{stderr}");
}
