//! Bad input: every case exits 2 with a one-line message naming the flag and value, never a panic.

use crate::common;

use common::*;

#[test]
fn a_unicast_group_is_refused() {
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--group", "10.0.0.1", "--count", "1"],
        &["--group 10.0.0.1", "not a multicast address"],
    );
    fails_with(&["respond", "--group", "192.168.1.1"], &["--group 192.168.1.1", "not a multicast address"]);
}

#[test]
fn ipv6_groups_need_an_interface_and_a_usable_scope() {
    fails_with(&["probe", "--group", "ff02::1234", "--count", "1"], &["--group ff02::1234", "need --iface NAME"]);
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--group", "ff7e::1", "--count", "1"],
        &["--group ff7e::1", "ff0X::"],
    );
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--group", "fd00::1", "--count", "1"],
        &["--group fd00::1", "not a multicast address"],
    );
    fails_with(
        &["respond", "--group", "ff12::4242", "--iface", "lo", "--source", "10.0.0.1"],
        &["--source 10.0.0.1", "not of the same family"],
    );
}

#[test]
fn an_unknown_interface_is_named() {
    fails_with(&["probe", "--iface", "nosuch0", "--count", "1"], &["--iface nosuch0", "no such interface"]);
    fails_with(&["respond", "--iface", "10.77.0.250"], &["--iface 10.77.0.250", "no local interface"]);
}

#[test]
fn bad_flag_values_name_the_flag() {
    fails_with(&["probe", "--iface", "127.0.0.1", "--interval", "fast"], &["--interval", "'fast'"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--rate", "0"], &["--rate", "'0'"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--count", "0"], &["--count"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--size", "32"], &["--size", "32"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--ttl", "300"], &["--ttl", "300"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--max-loss", "150"], &["--max-loss", "'150'"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--raw"], &["--out"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--rate", "10", "--interval", "1s"], &["--interval", "--rate"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--group", "not-an-ip"], &["--group", "not-an-ip"]);
    fails_with(&["respond", "--port", "0"], &["--port", "0"]);
    fails_with(&["probe", "--querier-wait", "0s", "--count", "1"], &["--querier-wait", "'0s'"]);
    fails_with(&["respond", "--iface", "127.0.0.1", "--querier-wait", "soon"], &["--querier-wait", "'soon'"]);
    fails_with(&["respond", "--rcvbuf", "huge"], &["--rcvbuf", "'huge'"]);
    let long = "x".repeat(65);
    fails_with(&["respond", "--iface", "127.0.0.1", "--name", &long], &["--name", "at most 64 bytes"]);
}

#[test]
fn bad_security_settings_name_the_flag() {
    fails_with(
        &["respond", "--iface", "127.0.0.1", "--key-file", "/nonexistent/mcprobe.key"],
        &["--key-file /nonexistent/mcprobe.key", "cannot read"],
    );
    fails_with(&["respond", "--iface", "127.0.0.1", "--key", ""], &["--key", "empty"]);
    fails_with(&["probe", "--iface", "127.0.0.1", "--key", "a", "--key-file", "/tmp/k"], &["--key", "--key-file"]);
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--key", "s", "--size", "70", "--count", "1"],
        &["--size 70", "at least 80"],
    );
    fails_with(&["respond", "--allow", "10.0.0.0/33"], &["--allow", "'10.0.0.0/33'"]);
    fails_with(&["respond", "--allow", "everyone"], &["--allow", "'everyone'"]);
    fails_with(&["respond", "--rate-limit", "lots"], &["--rate-limit", "'lots'"]);
    fails_with(&["respond", "--total-rate-limit", "1.5"], &["--total-rate-limit", "'1.5'"]);
    fails_with(&["respond", "--max-clock-skew", "soon"], &["--max-clock-skew", "'soon'"]);
    fails_with(
        &["respond", "--iface", "127.0.0.1", "--max-clock-skew", "10m"],
        &["--max-clock-skew 10m", "at most 60s"],
    );
}

#[test]
fn an_unwritable_output_folder_is_reported_before_probing() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let inside = file.path().join("sub");
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--count", "1", "--out", inside.to_str().unwrap()],
        &["--out", "cannot create the folder"],
    );
}

#[test]
fn help_teaches_with_examples() {
    let out = run({
        let mut c = bin();
        c.args(["probe", "--help"]);
        c
    });
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["Examples:", "--max-loss", "a bare number means seconds", "--iface"] {
        assert!(help.contains(needle), "{needle:?} missing from probe --help");
    }
}

#[test]
fn a_port_held_without_sharing_is_named() {
    // A socket bound without SO_REUSEADDR: a responder cannot share the port with it.
    let holder = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    fails_with(&["respond", "--iface", "127.0.0.1", "--port", &port], &[&format!("--port {port}"), "in use"]);
}

#[test]
fn ipv6_over_loopback_is_explained() {
    fails_with(
        &["probe", "--iface", "lo", "--group", "ff12::4242", "--count", "1"],
        &["does not carry IPv6 multicast over lo"],
    );
}

#[test]
fn an_ipv6_group_without_iface_is_refused_before_the_run_starts() {
    // Refused by validation: no "probing … via" line, no socket. (Even unvalidated, an IPv6
    // group without an interface cannot be joined or sent to, so nothing leaves this host.)
    for cmd in ["probe", "discover", "respond"] {
        let out = run({
            let mut c = bin();
            c.args([cmd, "--group", "ff12::4242"]);
            c
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(stderr.contains("--group ff12::4242: IPv6 groups need --iface NAME"), "{cmd}: {stderr}");
        assert!(out.stdout.is_empty(), "{cmd}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

/// `--groups`: a bad list names the flag and the value; a responder that runs out of file
/// descriptors for its sockets (one per 20 memberships) says what to raise. Loopback only.
#[test]
fn bad_group_lists_and_too_few_descriptors_are_named() {
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--groups", "239.1.1.9-239.1.1.1", "--count", "1"],
        &["--groups", "ends before it starts"],
    );
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--groups", "239.0.0.0/8", "--count", "1"],
        &["--groups", "more than the 4096"],
    );
    fails_with(
        &["respond", "--iface", "127.0.0.1", "--groups", "239.1.1.1", "--group", "239.1.1.2"],
        &["--groups", "--group"],
    );
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--groups", "239.1.1.1-239.1.1.3", "--plain", "--count", "1"],
        &["--plain", "one --group"],
    );
    fails_with(
        &["watch", "--iface", "127.0.0.1", "--groups", "239.1.1.0/30", "--duration", "1s"],
        &["--groups 239.1.1.0/30", "port"],
    );
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 24 && exec \"$0\" respond --iface 127.0.0.1 --port \"$1\" --groups 239.1.0.0-239.1.3.231 --quiet"])
        .arg(bin_path())
        .arg(free_port().to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("1000 groups need more sockets") && err.contains("ulimit -n"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Values that parse but cannot mean anything: refused before any socket, naming the flag.
#[test]
fn values_that_cannot_mean_anything_are_refused() {
    fails_with(&["probe", "--iface", "127.0.0.1", "--min-hosts", "0"], &["--min-hosts", "'0'"]);
    fails_with(&["discover", "--iface", "127.0.0.1", "--min-responders", "0"], &["--min-responders", "'0'"]);
    fails_with(
        &["max-rate", "--iface", "127.0.0.1", "--min-rate", "200k"],
        &["--min-rate 200000", "above --max 100000"],
    );
    fails_with(
        &["max-groups", "--iface", "127.0.0.1", "--groups", "239.1.1.0/30", "--min-groups", "0"],
        &["--min-groups", "'0'"],
    );
    fails_with(
        &["max-groups", "--iface", "127.0.0.1", "--groups", "239.1.1.1", "--min-groups", "5"],
        &["--min-groups 5", "--groups has 1"],
    );
    fails_with(&["serve", "--iface", "127.0.0.1", "--target", ""], &["--target \"\"", "non-empty"]);
    fails_with(&["respond", "--iface", "127.0.0.1", "--churn", "2s"], &["--churn", "--groups"]);
    fails_with(
        &["respond", "--iface", "127.0.0.1", "--groups", "239.1.1.1", "--churn", "2s"],
        &["--churn 2s", "one group"],
    );
}
