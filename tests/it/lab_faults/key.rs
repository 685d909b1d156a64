//! Key mismatches in the namespace LAN (issue 19): a keyed responder and an unkeyed prober, an
//! unkeyed responder and a keyed prober, and two keys. Each used to look like a dead host ("no
//! answer on either path, no ICMP error either: a firewall that drops, or the host is down");
//! now `probe --hosts` names the key mismatch with its evidence, and never a dead host or a
//! firewall. Needs root (CI runs as root); skips with a printed reason otherwise.

use crate::common;

use common::lab::{fresh_waiting_lab as fresh_lab, in_lab_host};
use common::*;

const KEY: &str = "the responders' lab key";
const OTHER_KEY: &str = "another lab key";

/// The number before `label` in `text`.
fn count_before(text: &str, label: &str) -> u64 {
    let before = text.split(label).next().unwrap();
    before
        .split_whitespace()
        .last()
        .unwrap()
        .trim_start_matches('(')
        .parse()
        .unwrap_or_else(|_| panic!("no count before {label:?}: {text}"))
}

/// h2 runs a responder with `respond_key` (none: unkeyed); h1 probes it on the group and by
/// unicast with `probe_key` for 3 s. Returns what `probe --hosts` printed, its exit code, and
/// the responder's closing line.
fn probe_with_keys(base: &str, respond_key: Option<&str>, probe_key: Option<&str>) -> Option<(String, i32, String)> {
    let (_lab, _turn, p) = fresh_lab(base, 2)?;
    let mut c = in_lab_host(p, "h2");
    c.args(["respond", "--iface", "veth0", "--port", "24242", "--name", "h2", "--querier-wait", "1h"]);
    if let Some(k) = respond_key {
        c.args(["--key", k]);
    }
    let r = Responder::spawn(c);
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--port", "24242", "--hosts", "10.77.0.2", "--quiet"]);
    c.args(["--count", "30", "--rate", "10", "--timeout", "500ms"]);
    if let Some(k) = probe_key {
        c.args(["--key", k]);
    }
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let closing = r.stop();
    println!("{closing}");
    Some((stdout, out.status.code().unwrap_or(-1), closing))
}

/// What every case must show: the verdict and the cause named, no dead host or firewall, the
/// exit code of a failing host (1: not 3, multicast is not what is broken), and the notices
/// counted alike on both sides.
fn assert_key_mismatch(stdout: &str, code: i32, cause: &str) {
    let verdict = stdout.lines().find(|l| l.starts_with("10.77.0.2 ") && l.contains("  ")).expect("a verdict row");
    assert!(verdict.ends_with("key-mismatch"), "{verdict}");
    let advice = stdout.lines().find(|l| l.starts_with("10.77.0.2: ")).expect("an advice line");
    assert!(advice.starts_with("10.77.0.2: key mismatch: ") && advice.contains(cause), "{advice}");
    assert!(stdout.contains("key mismatch with 10.77.0.2: "), "the closing lines: {stdout}");
    for wrong in ["host is down", "firewall", "unreachable", "no responder answered: check"] {
        assert!(!stdout.contains(wrong), "{wrong:?} named: {stdout}");
    }
    assert_eq!(code, 1, "{stdout}");
}

#[test]
fn a_keyed_responder_tells_an_unkeyed_prober_it_needs_a_key() {
    let Some((stdout, code, closing)) = probe_with_keys("kn", Some(KEY), None) else { return };
    assert_key_mismatch(&stdout, code, "its responder needs a key and these probes carry none");
    // One notice a second to the prober's address, whichever path: about 3 in 3 s, every one
    // received (the closing line and the advice count the same ones).
    let sent = count_before(&closing, " notice");
    let received = count_before(stdout.lines().find(|l| l.starts_with("10.77.0.2: ")).unwrap(), " notice");
    assert!((2..=5).contains(&sent), "{closing}");
    assert_eq!(received, sent, "{stdout}\n{closing}");
    assert_eq!(count_before(&closing, " unauthenticated"), 60, "30 probes on each path: {closing}");
}

#[test]
fn a_keyed_prober_names_a_responder_without_a_key() {
    let Some((stdout, code, closing)) = probe_with_keys("kk", None, Some(KEY)) else { return };
    assert_key_mismatch(&stdout, code, "its responder has no key (60 acks from it without a tag, rejected)");
    // The unkeyed responder answered every probe, as before; the prober counted none of them.
    assert_eq!(count_before(&closing, " acks sent"), 60, "{closing}");
    assert!(stdout.contains("60 acks without a valid key tag rejected"), "{stdout}");
}

#[test]
fn two_keys_are_a_key_mismatch() {
    let Some((stdout, code, closing)) = probe_with_keys("k2", Some(KEY), Some(OTHER_KEY)) else { return };
    assert_key_mismatch(&stdout, code, "its responder has another key");
    let sent = count_before(&closing, " notice");
    let received = count_before(stdout.lines().find(|l| l.starts_with("10.77.0.2: ")).unwrap(), " notice");
    assert!(sent >= 2 && received == sent, "{stdout}\n{closing}");
}

/// Without `--hosts`, on loopback (no root): nothing answered, and the closing lines name the
/// key mismatch instead of the checklist of things that make a LAN silent.
#[test]
fn nothing_answered_but_a_notice_came_is_a_key_mismatch() {
    let port = free_port();
    let r = Responder::start_with(port, "keyed", &["--key", KEY]);
    let out = run(probe_cmd(port, &["--count", "20", "--rate", "10", "--timeout", "300ms"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(stdout.contains("0 responders answered"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("key mismatch with 127.0.0.1: ")).expect("the key mismatch named");
    assert!(line.contains("its responder needs a key and these probes carry none"), "{line}");
    assert!(!stdout.contains("no responder answered: check") && !stdout.contains("firewall"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "nothing answered is still a miss");
    assert!(count_before(&r.stop(), " notice") >= 2);
}
