//! `--hosts`: missing and unexpected hosts, the unicast path beside the multicast one, verdicts
//! and their exit codes. On loopback here; tests/lab_accuracy.rs covers a namespace LAN.

use crate::common;

use std::process::Output;

use common::*;

fn probe_hosts(port: u16, hosts: &str, dir: &std::path::Path) -> Output {
    run(probe_cmd(
        port,
        &["--hosts", hosts, "--count", "40", "--rate", "200", "--timeout", "300ms", "--out", dir.to_str().unwrap()],
    ))
}

#[test]
fn a_healthy_host_gets_both_paths_and_ok() {
    let port = free_port();
    let _r = Responder::start(port, "healthy");
    let dir = tempfile::tempdir().unwrap();
    let out = probe_hosts(port, "127.0.0.1", dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let rows = csv_rows(&dir.path().join("summary.csv"));
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str()).collect();
    assert_eq!(paths, ["multicast", "unicast"]);
    for r in &rows {
        assert_eq!((num(r, "received"), r["verdict"].as_str(), r["expected_host"].as_str()), (40.0, "ok", "127.0.0.1"));
        assert_eq!(r["hops"], "0");
    }
    assert_eq!(rows[1]["arrival"], "unicast", "the responder saw the unicast probes arrive as unicast");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 of 1 expected hosts ok"), "{stdout}");
}

/// One host listed under two of its addresses (on lo, 127.0.0.9 reaches the same responder):
/// judged once, with a line saying so; not "multicast lost" for the second address.
#[test]
fn a_host_listed_twice_is_judged_once() {
    let port = free_port();
    let _r = Responder::start(port, "twice");
    let dir = tempfile::tempdir().unwrap();
    let out = probe_hosts(port, "127.0.0.1,127.0.0.9", dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("127.0.0.9 is 127.0.0.1 again: one responder, twice,"), "{stdout}");
    assert!(stdout.contains("1 of 1 expected hosts ok"), "{stdout}");
    let rows = csv_rows(&dir.path().join("summary.csv"));
    assert!(rows.iter().all(|r| r["expected_host"] == "127.0.0.1" && r["verdict"] == "ok"), "{rows:?}");
}

#[test]
fn multicast_lost_where_unicast_works_has_its_own_exit_code() {
    let port = free_port();
    // Listening on the port but joined to another group: unicast reaches it, multicast does not,
    // as with a missing join or IGMP snooping without a querier.
    let mut c = bin();
    c.args([
        "respond",
        "--iface",
        "127.0.0.1",
        "--group",
        "239.255.42.99",
        "--port",
        &port.to_string(),
        "--name",
        "deaf",
    ]);
    let _r = Responder::spawn(c);
    let dir = tempfile::tempdir().unwrap();
    let out = probe_hosts(port, "127.0.0.1", dir.path());
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("multicast-lost") && stdout.contains("missing on multicast: 127.0.0.1"), "{stdout}");
    let rows = csv_rows(&dir.path().join("summary.csv"));
    let mc = rows.iter().find(|r| r["path"] == "multicast").unwrap();
    let uc = rows.iter().find(|r| r["path"] == "unicast").unwrap();
    assert_eq!((num(mc, "received"), num(uc, "received")), (0.0, 40.0));
    assert!(rows.iter().all(|r| r["verdict"] == "multicast-lost"));
}

#[test]
fn hosts_files_take_comments_and_unexpected_responders_are_named() {
    let port = free_port();
    let _r = Responder::start(port, "stray");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("hosts.txt");
    // A file of comments only lists nobody: a mistake, not a quiet switch-off of the diagnosis.
    std::fs::write(&list, "# cluster nodes\n\n").unwrap();
    let out = run(probe_cmd(
        port,
        &["--hosts-file", list.to_str().unwrap(), "--count", "10", "--rate", "100", "--timeout", "300ms"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lists no host"));
    std::fs::write(&list, "# cluster nodes\n127.0.0.1   # this host\n127.0.0.1\n").unwrap();
    let out = run(probe_cmd(
        port,
        &["--hosts-file", list.to_str().unwrap(), "--count", "10", "--rate", "100", "--timeout", "300ms", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnosis"]["hosts"].as_array().unwrap().len(), 1, "repeats are dropped: {v}");
    assert_eq!(v["diagnosis"]["unexpected"].as_array().unwrap().len(), 0);
}

#[test]
fn bad_host_lists_are_refused() {
    let out = run(probe_cmd(free_port(), &["--hosts", "239.1.1.1", "--count", "1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hosts 239.1.1.1: 239.1.1.1 is not a host address"));
    let out = run(probe_cmd(free_port(), &["--hosts-file", "/nonexistent/hosts", "--count", "1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hosts-file /nonexistent/hosts: cannot read"));
}

#[test]
fn the_soak_preset_runs_ten_minutes_at_one_probe_per_second() {
    let port = free_port();
    let mut r = Responder::start(port, "patient");
    let mut child = bin()
        .args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--preset", "soak"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let first = lines.recv_timeout(PATIENCE).unwrap();
    assert!(first.contains("600 probes every 1s"), "{first}");
    // No need to wait ten minutes: the schedule is what the preset sets. Stop it like a user.
    r.wait_for("session");
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped early"));
}

#[test]
fn a_group_typo_is_called_a_configuration_mistake() {
    // The responder serves the default group; the prober was given another one by mistake.
    let port = free_port();
    let _r = Responder::start(port, "serving");
    let mut c = bin();
    c.args(["probe", "--iface", "127.0.0.1", "--group", "239.255.42.99", "--port", &port.to_string(), "--quiet"])
        .args(["--hosts", "127.0.0.1", "--count", "20", "--rate", "100", "--timeout", "300ms"]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    // The responder says which group it serves: named alone, with the flag to fix it.
    assert!(
        stdout
            .contains("127.0.0.1: its responder serves group 239.255.42.42, not 239.255.42.99 that this prober probes"),
        "{stdout}"
    );
    assert!(stdout.contains("probe with --group 239.255.42.42"), "{stdout}");
    assert!(!stdout.contains("snooping") && !stdout.contains("firewall"), "not blamed on the network: {stdout}");
}
