//! A responder that cannot be abused, authentication, and faults: the real binary on loopback.

use crate::common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use mcprobe::auth::{Binding, Key, ProbeTag};
use mcprobe::wire::{self, Message, Probe};
use nix::sys::signal::Signal;

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn quick_probe(port: u16, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--count", "100", "--rate", "500", "--timeout", "300ms", "--json"];
    args.extend_from_slice(extra);
    run(probe_cmd(port, &args))
}

#[test]
fn acks_are_never_larger_than_their_probes() {
    let port = free_port();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), "amplification test key\n").unwrap();
    let long_name = "n".repeat(64);
    let open = Responder::start(port, &long_name);
    let keyed_port = free_port();
    let keyed = Responder::start_with(keyed_port, &long_name, &["--key-file", key_file.path().to_str().unwrap()]);
    let key = Key::from_file(key_file.path()).unwrap();
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    let mut buf = [0u8; 2048];
    // Every probe size from below the minimum to well above the full ack, byte for byte.
    for (size, keyed_probe) in (40..=200).map(|s| (s, false)).chain((40..=200).map(|s| (s, true))) {
        // Stamped now: a keyed responder answers only fresh probes.
        let mut probe = Probe { session: 7, seq: size as u64, tx_ns: now_ns(), asks_ext: false }.encode(size);
        let dest = if keyed_probe {
            probe.truncate(size.saturating_sub(wire::TAG_LEN).max(wire::PROBE_LEN));
            let to = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, keyed_port));
            key.seal_probe(&mut probe, &Binding { dst: to, src: Ipv4Addr::LOCALHOST.into() });
            (Ipv4Addr::LOCALHOST, keyed_port)
        } else {
            (Ipv4Addr::LOCALHOST, port)
        };
        sock.send_to(&probe, dest).unwrap();
        bytes_in += probe.len();
        let min = wire::ACK_FIXED_LEN + if keyed_probe { wire::TAG_LEN } else { 0 };
        if probe.len() < min {
            continue; // too small to answer without amplification: no ack (checked below)
        }
        let n = sock.recv(&mut buf).expect("an ack");
        assert!(n <= probe.len(), "a {}-byte probe got a {n}-byte ack", probe.len());
        bytes_out += n;
        assert!(matches!(wire::decode(&buf[..n]), Ok(Message::Ack(_))));
        if keyed_probe {
            assert!(key.verify(&buf[..n]), "keyed acks carry a valid tag");
        }
    }
    // Nothing else came back: the probes that were too small got no answer.
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(sock.recv(&mut buf).is_err(), "an unexpected extra datagram");
    println!(
        "amplification: {bytes_out} bytes out for {bytes_in} bytes in = {:.3}",
        bytes_out as f64 / bytes_in as f64
    );
    assert!(bytes_out < bytes_in);
    assert!(open.stop().contains("probes too small to answer"));
    drop(keyed);
}

#[test]
fn keys_gate_probes_and_acks_and_never_show() {
    let secret = "correct horse battery staple";
    let port = free_port();
    let mut keyed = Responder::start_with(port, "keyed", &["--key", secret]);
    let dir = tempfile::tempdir().unwrap();
    let good = quick_probe(port, &["--key", secret, "--out", dir.path().to_str().unwrap()]);
    assert_eq!(good.status.code(), Some(0));
    let v = json(&good);
    assert_eq!(v["responders"][0]["received"], 100, "{v}");
    // Unkeyed and wrongly keyed probers get nothing; the responder counts their probes.
    let unkeyed = json(&quick_probe(port, &[]));
    assert_eq!(unkeyed["responders"].as_array().unwrap().len(), 0);
    let wrong = json(&quick_probe(port, &["--key", "not the secret"]));
    assert_eq!(wrong["responders"].as_array().unwrap().len(), 0);
    // Said live, once for the source address (both probers ran on 127.0.0.1), not per probe.
    let line = keyed.wait_for("fail the key check");
    assert!(line.starts_with("probes from 127.0.0.1:"), "{line}");
    keyed.signal(Signal::SIGINT);
    let closing = keyed.wait_for("stopped:");
    assert!(closing.contains("200 unauthenticated"), "{closing}");
    assert_eq!(keyed.seen.iter().filter(|l| l.contains("key check")).count(), 1, "{:?}", keyed.seen);
    // A keyed prober rejects acks of an unkeyed responder (as it would forged ones) and counts them.
    let port2 = free_port();
    let _open = Responder::start(port2, "open");
    let forged = json(&quick_probe(port2, &["--key", secret]));
    assert_eq!(forged["responders"].as_array().unwrap().len(), 0);
    assert_eq!(forged["forged_acks"], 100);
    // The secret appears in no output and no report.
    let mut everything = String::from_utf8_lossy(&good.stdout).into_owned() + &String::from_utf8_lossy(&good.stderr);
    everything += &closing;
    for f in std::fs::read_dir(dir.path()).unwrap() {
        everything += &std::fs::read_to_string(f.unwrap().path()).unwrap();
    }
    assert!(!everything.contains(secret) && !everything.contains("horse"));
    // Keyed probes need room for a keyed ack.
    let small = run(probe_cmd(port, &["--count", "1", "--size", "64", "--key", secret]));
    assert_eq!(small.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&small.stderr).contains("--size 64"));
}

#[test]
fn rate_limited_probes_are_reported_as_such_not_as_loss() {
    let port = free_port();
    let r = Responder::start_with(port, "limited", &["--rate-limit", "200"]);
    let out = run(probe_cmd(port, &["--count", "600", "--rate", "2000", "--timeout", "300ms", "--json"]));
    let v = json(&out);
    let h = &v["responders"][0];
    let (sent, received, limited, lost) = (
        h["sent"].as_u64().unwrap(),
        h["received"].as_u64().unwrap(),
        h["limited"].as_u64().unwrap(),
        h["lost"].as_u64().unwrap(),
    );
    assert_eq!(sent, 600);
    assert!(limited >= 300, "{h}");
    assert_eq!(received + limited + lost, sent);
    // Only probes limited after the last ack can stay unexplained (at most a token's worth of gap).
    assert!(lost <= 20, "{h}");
    assert_eq!(h["forward_lost"], 0);
    assert_eq!(h["return_lost"], 0);
    let closing = r.stop();
    assert!(closing.contains(&format!("{limited} rate-limited")) || closing.contains("rate-limited"), "{closing}");
}

#[test]
fn allow_lists_filter_sources() {
    let port = free_port();
    let strict = Responder::start_with(port, "strict", &["--allow", "10.0.0.0/8", "--allow", "172.16.0.1"]);
    let v = json(&quick_probe(port, &[]));
    assert_eq!(v["responders"].as_array().unwrap().len(), 0);
    assert!(strict.stop().contains("100 from sources not allowed"));
    let port = free_port();
    let _lo = Responder::start_with(port, "lo-only", &["--allow", "127.0.0.0/8"]);
    let v = json(&quick_probe(port, &[]));
    assert_eq!(v["responders"][0]["received"], 100);
}

#[test]
fn a_restarted_responder_is_reported_with_its_gap() {
    restarted_responder("128");
}

/// Acks to 64-byte probes have no room for a name: the prober pads the probe after a new id's
/// first ack, so the name arrives in time to recognize the restart.
#[test]
fn a_restart_is_recognized_with_64_byte_probes() {
    restarted_responder("64");
}

fn restarted_responder(size: &str) {
    let port = free_port();
    let mut first = Responder::start(port, "phoenix");
    let _steady = Responder::start(port, "steady");
    let dir = tempfile::tempdir().unwrap();
    let child = probe_cmd(
        port,
        &[
            "--count",
            "600",
            "--interval",
            "5ms",
            "--timeout",
            "300ms",
            "--size",
            size,
            "--out",
            dir.path().to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    first.wait_for("session");
    first.signal(Signal::SIGKILL);
    // Away for at least 100 ms (20 probes): long enough to be an outage.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut second = Responder::start(port, "phoenix");
    second.wait_for("session");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("phoenix restarted: id"), "{stdout}");
    let rows: Vec<_> =
        csv_rows(&dir.path().join("summary.csv")).into_iter().filter(|r| r["responder"] == "phoenix").collect();
    assert_eq!(rows.len(), 1, "a restart is one responder: {rows:?}");
    let row = &rows[0];
    // Charged with the probes it missed while away, which are the only loss.
    assert_eq!(num(row, "sent"), 600.0);
    assert_eq!(num(row, "received") + num(row, "lost"), 600.0, "{row:?}");
    assert!(num(row, "lost") >= 20.0, "{row:?}");
    // Its outage ended when it came back.
    let outages: Vec<_> =
        csv_rows(&dir.path().join("outages.csv")).into_iter().filter(|r| r["responder"] == "phoenix").collect();
    assert_eq!(outages.len(), 1, "{outages:?} {row:?}");
    assert!(!outages[0]["end_s"].is_empty(), "{outages:?}");
    assert_eq!(num(&outages[0], "probes_lost"), num(row, "lost"));
    // intervals.csv counts the same probes, under the same id.
    let iv: Vec<_> =
        csv_rows(&dir.path().join("intervals.csv")).into_iter().filter(|r| r["responder"] == "phoenix").collect();
    assert!(iv.iter().all(|r| r["responder_id"] == row["responder_id"]), "{iv:?}");
    let sum = |col: &str| iv.iter().map(|r| num(r, col)).sum::<f64>();
    assert_eq!((sum("sent"), sum("received"), sum("lost")), (600.0, num(row, "received"), num(row, "lost")));
    assert!(stdout.contains("probes unanswered in between"), "{stdout}");
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let port = free_port();
    let mut r = Responder::start(port, "patient");
    // A 60 s grace period: only the second Ctrl-C can end this run soon.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("new").join("run");
    let mut child = bin()
        .args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
        .args(["--count", "100000", "--interval", "5ms", "--timeout", "60s", "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    r.wait_for("session");
    signal(&child, Signal::SIGINT);
    // Wait until the first one was taken, so the two signals cannot merge into one.
    while !lines.recv_timeout(PATIENCE).expect("a stopping line").contains("again to quit") {}
    signal(&child, Signal::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // Nothing half-written is left, nor the --out folder the run created for it.
    assert!(!tmp.path().join("new").exists(), "{:?}", std::fs::read_dir(&out).map(|d| d.count()));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let port = free_port();
    let _r = Responder::start(port, "piped");
    let mut child = probe_cmd(port, &["--count", "50", "--rate", "500", "--timeout", "300ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // as `| head -0` would
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn garbage_floods_change_nothing_and_are_counted() {
    const EACH: u32 = 50_000;
    let port = free_port();
    let mut r = Responder::start(port, "target");
    let dir = tempfile::tempdir().unwrap();
    let child = probe_cmd(
        port,
        &[
            "--count",
            "2000",
            "--interval",
            "4ms",
            "--timeout",
            "500ms",
            "--json",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let session = r.wait_for("session");
    let prober = (Ipv4Addr::LOCALHOST, prober_port(&session));
    let group = loopback_multicast_sender();
    let unicast = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut junk = [0u8; 200];
    for i in 0..EACH {
        for b in junk.iter_mut() {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            *b = rng_state as u8;
        }
        let len = (rng_state % 200) as usize;
        group.send_to(&junk[..len], (GROUP, port)).unwrap();
        unicast.send_to(&junk[..len], prober).unwrap();
        if i % 500 == 499 {
            // Paced so the sockets' buffers keep up: the point is garbage, not a buffer overflow.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let h = &v["responders"][0];
    assert_eq!(
        (h["sent"].as_u64(), h["received"].as_u64(), h["lost"].as_u64()),
        (Some(2000), Some(2000), Some(0)),
        "{h}"
    );
    // Every junk datagram is counted, unless the kernel dropped it for buffer space (also counted).
    let prober_junk = v["invalid"].as_u64().unwrap() + v["local_drops"].as_u64().unwrap();
    assert_eq!(prober_junk, EACH as u64, "{v}");
    let closing = r.stop();
    let count = |label: &str| -> u64 {
        let before = closing.split(label).next().unwrap();
        before.split_whitespace().last().unwrap().parse().unwrap()
    };
    let responder_junk = count(" invalid datagrams") + count(" other mcprobe messages") + count(" local drops");
    assert_eq!(responder_junk, EACH as u64, "{closing}");
}

/// Waits for a child up to `PATIENCE` (a failure bound); `None` if it is still running then.
fn wait_bounded(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < until {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn ctrl_c_is_acted_on_between_distant_probes() {
    let port = free_port();
    let mut r = Responder::start(port, "slow");
    // One probe a minute: Ctrl-C must not wait for the next one to be due.
    let mut child = probe_cmd(port, &["--count", "3", "--interval", "60s", "--timeout", "300ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    r.wait_for("session");
    signal(&child, Signal::SIGINT);
    let status = wait_bounded(&mut child);
    let _ = child.kill();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "the run did not end after Ctrl-C");
}

#[test]
fn a_steady_trickle_of_datagrams_does_not_keep_the_prober_running() {
    let port = free_port();
    let mut r = Responder::start(port, "steady");
    let mut child = probe_cmd(port, &["--count", "20", "--rate", "100", "--timeout", "300ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = r.wait_for("session");
    let prober = (Ipv4Addr::LOCALHOST, prober_port(&session));
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    // Junk every 2 ms (more often than the receiver's 20 ms read timeout) until the prober ends,
    // for at most PATIENCE: the prober must end while the junk still flows.
    let until = std::time::Instant::now() + PATIENCE;
    let mut ended = None;
    while std::time::Instant::now() < until {
        let _ = sock.send_to(b"junk", prober);
        if let Some(st) = child.try_wait().unwrap() {
            ended = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    assert_eq!(ended.and_then(|s| s.code()), Some(0), "the prober kept running while junk arrived");
    let out = child.wait_with_output().unwrap();
    let v = json(&out);
    assert_eq!(v["responders"][0]["received"], 20);
    assert!(v["invalid"].as_u64().unwrap() > 0);
}

/// A socket joined to the test group on loopback, as any host of the LAN is: it sees every probe.
fn group_listener(port: u16) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&std::net::SocketAddrV4::new(GROUP.parse().unwrap(), port).into()).unwrap();
    s.join_multicast_v4(&GROUP.parse().unwrap(), &Ipv4Addr::LOCALHOST).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.into()
}

/// A socket bound to `addr` that sends to the test group through loopback.
fn group_sender_from(addr: std::net::SocketAddrV4) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.bind(&addr.into()).unwrap();
    s.into()
}

/// Sends `datagram` to the group `times` times; returns how many acks came back within `wait`
/// after the last one (a failure bound: the responder answers within microseconds). Notices
/// about the key are not acks.
fn send_and_count_replies(sock: &UdpSocket, port: u16, datagram: &[u8], times: usize, wait: Duration) -> usize {
    for _ in 0..times {
        sock.send_to(datagram, (GROUP, port)).unwrap();
    }
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 2048];
    let mut acks = 0;
    while let Ok(n) = sock.recv(&mut buf) {
        acks += usize::from(matches!(wire::decode(&buf[..n]), Ok(Message::Ack(_))));
    }
    acks
}

/// A keyed probe for the group and `port`, sent from `sock`'s address.
fn keyed_probe(key: &Key, sock: &UdpSocket, port: u16, session: u64, seq: u64, tx_ns: u64) -> Vec<u8> {
    let mut p = Probe { session, seq, tx_ns, asks_ext: false }.encode(128 - wire::TAG_LEN);
    let binding =
        Binding { dst: (GROUP.parse::<Ipv4Addr>().unwrap(), port).into(), src: sock.local_addr().unwrap().ip() };
    key.seal_probe(&mut p, &binding);
    p
}

/// The number before `label` in a responder's closing line.
fn count_before(closing: &str, label: &str) -> u64 {
    let before = closing.split(label).next().unwrap();
    before.split_whitespace().last().unwrap().parse().unwrap_or_else(|_| panic!("no count before {label:?}: {closing}"))
}

#[test]
fn a_captured_keyed_probe_replayed_earns_nothing() {
    let secret = "replay test secret";
    let key = Key::from_secret(secret.as_bytes()).unwrap();
    let port = free_port();
    let mut r = Responder::start_with(port, "keyed", &["--key", secret]);
    let capture = group_listener(port);
    // A real keyed prober; the capturing socket sees its probes like every host of the LAN.
    let out = run(probe_cmd(port, &["--count", "3", "--rate", "100", "--timeout", "300ms", "--json", "--key", secret]));
    assert_eq!(json(&out)["responders"][0]["received"], 3);
    let mut buf = [0u8; 2048];
    let (n, prober) = capture.recv_from(&mut buf).unwrap();
    let captured = buf[..n].to_vec();
    let Ok(Message::Probe(p)) = wire::decode(&captured) else { panic!("captured a non-probe") };
    let std::net::SocketAddr::V4(prober) = prober else { panic!("{prober}") };
    let sent_for = Binding { dst: (GROUP.parse::<Ipv4Addr>().unwrap(), port).into(), src: (*prober.ip()).into() };
    assert_eq!(key.check_probe(&captured, &sent_for), ProbeTag::Valid);
    let wait = Duration::from_millis(500);

    // From a victim's address: no ack comes back, however often it is sent (its tag binds the
    // prober's address; `abuse_replay` has the other groups, ports and sources).
    let victim = group_sender_from("127.0.0.77:0".parse().unwrap());
    assert_eq!(send_and_count_replies(&victim, port, &captured, 20, wait), 0);
    r.wait_for("probes from 127.0.0.77:");
    // The victim's socket does get acks of a session of its own (the absence above is the check's).
    let own = keyed_probe(&key, &victim, port, p.session ^ 1, 0, now_ns());
    assert_eq!(send_and_count_replies(&victim, port, &own, 1, wait), 1);

    // From the prober's own address (it has exited, so its port is free): no duplicate ack.
    let same = group_sender_from(prober);
    assert_eq!(send_and_count_replies(&same, port, &captured, 20, wait), 0);
    // A new probe of that session from that address is still answered.
    let next = keyed_probe(&key, &same, port, p.session, p.seq + 1000, now_ns());
    assert_eq!(send_and_count_replies(&same, port, &next, 1, wait), 1);

    let closing = r.stop();
    assert_eq!(count_before(&closing, " replayed"), 20, "{closing}");
    assert_eq!(count_before(&closing, " unauthenticated"), 20, "{closing}");
    assert_eq!(count_before(&closing, " acks sent"), 5, "{closing}");
}

#[test]
fn a_responder_says_why_it_refuses_probes_from_a_skewed_clock() {
    let secret = "skew test secret";
    let key = Key::from_secret(secret.as_bytes()).unwrap();
    let port = free_port();
    let mut r = Responder::start_with(port, "keyed", &["--key", secret, "--max-clock-skew", "2s"]);
    let wait = Duration::from_millis(300);
    // Two probers whose clocks are 30 s behind and 30 s ahead of the responder's.
    let behind = group_sender_from("127.0.0.21:0".parse().unwrap());
    let ahead = group_sender_from("127.0.0.22:0".parse().unwrap());
    for seq in 0..10 {
        let p = keyed_probe(&key, &behind, port, 21, seq, now_ns() - 30_000_000_000);
        assert_eq!(send_and_count_replies(&behind, port, &p, 1, Duration::from_millis(1)), 0);
    }
    let line = r.wait_for("127.0.0.21");
    assert!(line.contains("behind this host's clock") && line.contains("--max-clock-skew 2.000 s"), "{line}");
    let secs: f64 = line.split("stamped ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((29.0..31.0).contains(&secs), "{line}");
    // Notices are at least a second apart: the second prober, probing on, is named once that
    // second is over.
    for seq in 0..20 {
        let p = keyed_probe(&key, &ahead, port, 22, seq, now_ns() + 30_000_000_000);
        assert_eq!(send_and_count_replies(&ahead, port, &p, 1, Duration::from_millis(100)), 0);
    }
    let line = r.wait_for("127.0.0.22");
    assert!(line.contains("ahead of this host's clock"), "{line}");
    // A prober in sync is answered.
    let fresh = keyed_probe(&key, &behind, port, 23, 0, now_ns());
    assert_eq!(send_and_count_replies(&behind, port, &fresh, 1, wait), 1);
    r.signal(Signal::SIGINT);
    let closing = r.wait_for("stopped:");
    assert_eq!(count_before(&closing, " stale (clock skew)"), 30, "{closing}");
    // One line per source, not one per probe.
    assert_eq!(r.seen.iter().filter(|l| l.contains("stamped")).count(), 2, "{:?}", r.seen);
}

#[test]
fn the_total_budget_shows_at_the_prober_as_rate_limited() {
    let port = free_port();
    let mut r = Responder::start_with(port, "budget", &["--rate-limit", "0", "--total-rate-limit", "200"]);
    let out = run(probe_cmd(port, &["--count", "600", "--rate", "2000", "--timeout", "300ms", "--json"]));
    let v = json(&out);
    let h = &v["responders"][0];
    let (sent, received, limited, lost) = (
        h["sent"].as_u64().unwrap(),
        h["received"].as_u64().unwrap(),
        h["limited"].as_u64().unwrap(),
        h["lost"].as_u64().unwrap(),
    );
    assert_eq!(sent, 600);
    assert!(limited >= 300, "{h}");
    assert_eq!(received + limited + lost, sent);
    assert!(lost <= 20, "only probes refused after the last ack stay unexplained: {h}");
    r.wait_for("over the total budget of 200 acks/s");
    let closing = r.stop();
    assert_eq!(count_before(&closing, " rate-limited"), 0, "{closing}");
    assert!(count_before(&closing, " over the total budget") >= limited, "{closing}");
}

/// A network namespace of its own, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = std::process::Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        let ok = std::process::Command::new("ip").args(["netns", "add", &name]).status().unwrap().success();
        assert!(ok, "ip netns add {name}");
        let ok = std::process::Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]).status().unwrap();
        assert!(ok.success());
        Netns(name)
    }

    /// Runs `f` on a thread that has joined the namespace; sockets it makes live there.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Sends `datagram` to `to` from source address `src` (any local address) through `sock`.
fn send_from(sock: &UdpSocket, src: Ipv4Addr, to: std::net::SocketAddrV4, datagram: &[u8]) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
    use std::os::fd::AsRawFd;
    let info = nix::libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: nix::libc::in_addr { s_addr: u32::from(src).to_be() },
        ipi_addr: nix::libc::in_addr { s_addr: 0 },
    };
    let iov = [std::io::IoSlice::new(datagram)];
    let dest = SockaddrIn::from(to);
    sendmsg(sock.as_raw_fd(), &iov, &[ControlMessage::Ipv4PacketInfo(&info)], MsgFlags::empty(), Some(&dest)).unwrap();
}

#[test]
fn the_total_budget_holds_under_a_flood_from_1000_sources() {
    if !crate::common::root_or_skip_for("the flood (a network namespace of its own)") {
        return;
    }
    const SOURCES: u32 = 1000;
    const ROUNDS: u32 = 10;
    const BUDGET: u64 = 2000;
    let ns = Netns::new(format!("mcp-flood-{}", std::process::id()));
    let port = 24_300;
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_mcprobe")]);
    c.args(["respond", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--name", "flooded"]);
    c.args(["--total-rate-limit", &BUDGET.to_string()]);
    let mut r = Responder::spawn(c);
    // One socket in the namespace sends from 1000 addresses of 127.1/16 (IP_PKTINFO) and gets
    // every ack back, whatever address it went to.
    let sock = ns.enter(move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_recv_buffer_size(4 << 20).unwrap();
        s.bind(&std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port + 1).into()).unwrap();
        UdpSocket::from(s)
    });
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let reader = sock.try_clone().unwrap();
    let acks = std::thread::spawn(move || {
        let (mut n, mut limited_seen) = (0u64, 0u64);
        let mut buf = [0u8; 2048];
        while let Ok(len) = reader.recv(&mut buf) {
            if let Ok(Message::Ack(a)) = wire::decode(&buf[..len]) {
                n += 1;
                limited_seen = limited_seen.max(a.limited as u64);
            }
        }
        (n, limited_seen)
    });
    let responder = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let start = std::time::Instant::now();
    for round in 0..ROUNDS {
        // Each round starts at another source, so sources refused earlier get an ack later.
        for i in 0..SOURCES {
            let k = (i + round * 97) % SOURCES;
            let src = Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250 + 1) as u8);
            let probe = Probe { session: k as u64, seq: round as u64, tx_ns: now_ns(), asks_ext: false }.encode(64);
            send_from(&sock, src, responder, &probe);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (received, limited_seen) = acks.join().unwrap();
    r.signal(Signal::SIGINT);
    let closing = r.wait_for("stopped:");
    let probes = count_before(&closing, " probes,");
    let sent = count_before(&closing, " acks sent");
    let refused = count_before(&closing, " over the total budget");
    println!(
        "flood: {probes} probes from {SOURCES} sources in {elapsed:.2} s, {sent} acks sent (budget {BUDGET}/s), {refused} refused"
    );
    assert_eq!(probes + count_before(&closing, " local drops"), (SOURCES * ROUNDS) as u64, "{closing}");
    // The burst (a tenth of a second's worth) plus the budget for the flood's duration, with a
    // tenth of a second of slack for when the responder read the last probes.
    let bound = (BUDGET as f64 * (elapsed + 0.2)) as u64;
    assert!(sent <= bound, "{sent} acks > {bound}: {closing}");
    assert!(sent >= BUDGET / 2, "the budget still answers: {closing}");
    assert_eq!(sent + refused, probes, "{closing}");
    assert_eq!(received, sent, "every ack reached its (loopback) source");
    assert!(limited_seen > 0, "the acks carry the refused probes as limited");
    assert_eq!(count_before(&closing, " rate-limited"), 0, "no single source was over its own limit");
}
