//! The real binary on loopback: responders as child processes, probes against them.

use crate::common;

use std::collections::HashMap;
use std::process::Stdio;

use common::*;
use nix::sys::signal::Signal;

fn by_name(rows: &[HashMap<String, String>]) -> HashMap<String, HashMap<String, String>> {
    rows.iter().map(|r| (r["responder"].clone(), r.clone())).collect()
}

#[test]
fn three_responders_give_three_lossless_rows() {
    let port = free_port();
    let _rs: Vec<Responder> = ["r1", "r2", "r3"].iter().map(|n| Responder::start(port, n)).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = run(probe_cmd(
        port,
        &["--count", "300", "--interval", "2ms", "--timeout", "500ms", "--out", dir.path().to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = csv_rows(&dir.path().join("summary.csv"));
    assert_eq!(rows.len(), 3);
    let rows = by_name(&rows);
    for name in ["r1", "r2", "r3"] {
        let r = &rows[name];
        assert_eq!((num(r, "sent"), num(r, "received"), num(r, "lost")), (300.0, 300.0, 0.0), "{name}: {r:?}");
        assert_eq!(num(r, "duplicates"), 0.0);
        assert!(num(r, "rtt_min_us") > 0.0 && num(r, "rtt_min_us") <= num(r, "rtt_p50_us"));
        assert!(num(r, "rtt_p50_us") <= num(r, "rtt_p99_us") && num(r, "rtt_p99_us") <= num(r, "rtt_max_us"));
        assert_eq!(r["arrival"], "multicast");
    }
    // The table on stdout has a row per responder and the count line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 responders answered (3 without loss)"), "{stdout}");
    // intervals.csv: per responder per 1 s interval, adding up to the totals.
    let intervals = csv_rows(&dir.path().join("intervals.csv"));
    let sent: f64 = intervals.iter().filter(|r| r["responder"] == "r1").map(|r| num(r, "sent")).sum();
    assert_eq!(sent, 300.0);
    assert!(intervals.iter().all(|r| num(r, "lost") == 0.0));
    assert!(!dir.path().join("probes.csv").exists(), "probes.csv only with --raw");
}

#[test]
fn a_stopped_responder_shows_its_loss_and_the_others_none() {
    let port = free_port();
    let mut rs: Vec<Responder> = ["keep1", "keep2", "dies"].iter().map(|n| Responder::start(port, n)).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut probe = probe_cmd(
        port,
        &["--count", "400", "--interval", "5ms", "--timeout", "500ms", "--out", dir.path().to_str().unwrap()],
    );
    let child = probe.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Once "dies" has answered the run's first probe, kill it: the rest of the run is lost to it.
    rs[2].wait_for("session");
    rs[2].signal(Signal::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = by_name(&csv_rows(&dir.path().join("summary.csv")));
    assert_eq!(rows.len(), 3);
    let dead = &rows["dies"];
    assert!(num(dead, "received") >= 1.0, "{dead:?}");
    assert!(num(dead, "lost") > 0.0 && num(dead, "loss_pct") > 0.0, "{dead:?}");
    assert_eq!(num(dead, "sent"), num(dead, "received") + num(dead, "lost"));
    for name in ["keep1", "keep2"] {
        assert_eq!(num(&rows[name], "lost"), 0.0, "{name}: {:?}", rows[name]);
    }
}

#[test]
fn foreign_datagrams_are_ignored_and_counted() {
    let port = free_port();
    let mut r = Responder::start(port, "target");
    let dir = tempfile::tempdir().unwrap();
    let child = probe_cmd(
        port,
        &["--count", "300", "--interval", "5ms", "--timeout", "500ms", "--out", dir.path().to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    r.wait_for("session");
    // During the run: 500 datagrams of junk and 500 that start like mcprobe but are cut short,
    // sent to the group through loopback.
    let s = loopback_multicast_sender();
    let dest = (GROUP, port);
    for i in 0..500u32 {
        s.send_to(format!("junk {i}: b'very important data'").as_bytes(), dest).unwrap();
        s.send_to(&b"MCP\x01\x01\x00\x00\x00"[..(i as usize % 8)], dest).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let row = &csv_rows(&dir.path().join("summary.csv"))[0];
    assert_eq!((num(row, "received"), num(row, "lost")), (300.0, 0.0), "{row:?}");
    let closing = r.stop();
    assert!(closing.contains("1 session, 300 probes, 300 acks sent"), "{closing}");
    assert!(closing.contains("ignored 1000 invalid datagrams"), "{closing}");
}

#[test]
fn concurrent_sessions_do_not_see_each_others_acks() {
    let port = free_port();
    let rs: Vec<Responder> = ["a", "b"].iter().map(|n| Responder::start(port, n)).collect();
    let spawn = || {
        probe_cmd(port, &["--count", "300", "--interval", "3ms", "--timeout", "500ms", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn(), spawn());
    for p in [p1.wait_with_output().unwrap(), p2.wait_with_output().unwrap()] {
        assert_eq!(p.status.code(), Some(0));
        let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
        let hosts = v["responders"].as_array().unwrap();
        assert_eq!(hosts.len(), 2);
        for h in hosts {
            assert_eq!(h["received"], 300, "{h}");
            assert_eq!(h["duplicates"], 0, "{h}");
        }
        assert_eq!(v["foreign_acks"], 0);
    }
    for r in rs {
        // Each responder saw both runs, as two sessions.
        let closing = r.stop();
        assert!(closing.contains("2 sessions, 600 probes, 600 acks sent"), "{closing}");
    }
}

#[test]
fn raw_rows_and_json_agree_with_the_summary() {
    let port = free_port();
    let _r = Responder::start(port, "solo");
    let dir = tempfile::tempdir().unwrap();
    let out = run(probe_cmd(
        port,
        &[
            "--count",
            "50",
            "--rate",
            "500",
            "--timeout",
            "300ms",
            "--raw",
            "--json",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(0));
    let raw = csv_rows(&dir.path().join("probes.csv"));
    assert_eq!(raw.len(), 50);
    assert!(raw.iter().all(|r| r["status"] == "ok" && r["responder"] == "solo"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sent"], 50);
    assert_eq!(v["responders"][0]["received"], 50);
    // No temporary files are left behind: the one hidden file is the folder's manifest.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.') || n == ".mcprobe-files"), "{names:?}");
}

#[test]
fn thresholds_set_the_exit_code() {
    let port = free_port();
    let _r = Responder::start(port, "one");
    let ok = run(probe_cmd(
        port,
        &["--count", "20", "--rate", "200", "--timeout", "300ms", "--max-loss", "0", "--min-responders", "1"],
    ));
    assert_eq!(ok.status.code(), Some(0));
    let missing =
        run(probe_cmd(port, &["--count", "20", "--rate", "200", "--timeout", "300ms", "--min-responders", "2"]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--min-responders 2"));
    // Nobody listens on this port: 100 % loss is no loss at all to --max-loss, but 0 responders
    // fail --min-responders.
    let empty =
        run(probe_cmd(free_port(), &["--count", "5", "--rate", "100", "--timeout", "200ms", "--min-responders", "1"]));
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stdout).contains("0 responders answered"));
}

#[test]
fn ctrl_c_still_reports() {
    let port = free_port();
    let mut r = Responder::start(port, "steady");
    let dir = tempfile::tempdir().unwrap();
    let child = probe_cmd(
        port,
        &["--count", "100000", "--interval", "5ms", "--timeout", "300ms", "--out", dir.path().to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    r.wait_for("session");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped early"), "{stdout}");
    let row = &csv_rows(&dir.path().join("summary.csv"))[0];
    let sent = num(row, "sent");
    assert!((1.0..100000.0).contains(&sent), "{row:?}");
    assert_eq!(num(row, "lost"), 0.0, "in-flight acks were collected: {row:?}");
}

#[test]
fn demo_runs_and_writes_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = bin();
        c.args(["demo", "--duration", "1s", "--responders", "3", "--quiet", "--out", dir.path().to_str().unwrap()]);
        c
    });
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = by_name(&csv_rows(&dir.path().join("summary.csv")));
    assert_eq!(rows.len(), 3);
    for (i, name) in ["demo-1", "demo-2", "demo-3"].iter().enumerate() {
        let r = &rows[*name];
        assert_eq!(num(r, "sent"), 200.0);
        assert!(r["address"].starts_with(&format!("127.0.0.{}:", i + 2)), "{r:?}");
    }
}

#[test]
fn discover_lists_and_counts_responders() {
    let port = free_port();
    let _rs: Vec<Responder> = ["alpha", "beta", "gamma"].iter().map(|n| Responder::start(port, n)).collect();
    let list = |extra: &[&str]| {
        let mut c = bin();
        c.args(["discover", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()]);
        c.args(extra);
        run(c)
    };
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The unit is in the header, the figures in the rows.
    assert!(stdout.lines().next().is_some_and(|h| h.contains("P50 µs")), "{stdout}");
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name) && l.contains("127.0.0.1") && l.contains("5/5")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("3 responders answered"), "{stdout}");
    assert_eq!(list(&["--min-responders", "3"]).status.code(), Some(0));
    let short = list(&["--min-responders", "4"]);
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("--min-responders 4"));
}

/// `respond --ack-trains`: the acks of a batch go as UDP GSO trains, and every one still arrives
/// as its own datagram, answering its own probe (20 000 probes at 20 000/s, batches guaranteed
/// by the rate on a small machine; loopback has no loss to turn into bursts).
#[test]
fn ack_trains_still_answer_every_probe_once() {
    let port = free_port();
    let _r = Responder::start_with(port, "trains", &["--ack-trains", "--rate-limit", "0", "--rcvbuf", "16M"]);
    let out =
        run(probe_cmd(port, &["--count", "20000", "--rate", "20000", "--timeout", "1s", "--rcvbuf", "16M", "--json"]));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let r = &doc["responders"][0];
    assert_eq!((r["responder"].as_str(), r["sent"].as_u64()), (Some("trains"), Some(20000)), "{doc:#}");
    // Acks this host dropped itself (its socket full) are not the trains' doing.
    assert_eq!(r["received"].as_u64().unwrap() + doc["local_drops"].as_u64().unwrap(), 20000, "{doc:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
}
