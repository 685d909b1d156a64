//! A responder that cannot be abused, authentication, and faults: the real binary on loopback.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use mcprobe::auth::Key;
use mcprobe::wire::{self, Message, Probe};
use nix::sys::signal::Signal;

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
        let mut probe = Probe { session: 7, seq: size as u64, tx_ns: 1 }.encode(size);
        let dest = if keyed_probe {
            probe.truncate(size.saturating_sub(wire::TAG_LEN).max(wire::PROBE_LEN));
            key.seal(&mut probe);
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
    let keyed = Responder::start_with(port, "keyed", &["--key", secret]);
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
    let closing = keyed.stop();
    assert!(closing.contains("200 unauthenticated"), "{closing}");
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
    let strict = Responder::start_with(port, "strict", &["--allow", "10.0.0.0/8", "--allow", "192.0.2.1"]);
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
    let port = free_port();
    let mut first = Responder::start(port, "phoenix");
    let _steady = Responder::start(port, "steady");
    let dir = tempfile::tempdir().unwrap();
    let child = probe_cmd(
        port,
        &["--count", "600", "--interval", "5ms", "--timeout", "300ms", "--out", dir.path().to_str().unwrap()],
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
    let mut child = bin()
        .args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
        .args(["--count", "100000", "--interval", "5ms", "--timeout", "60s"])
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
