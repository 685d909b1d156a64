//! Forged acks must not exhaust the prober (issue 24, item 2). Without `--key` every host that
//! sees the multicast probes can answer them: here a forger on loopback, joined to the group as
//! any host of the LAN is, answers every probe with an ack of a new responder id, in the real
//! wire format. The prober tracks at most `MAX_RESPONDERS` of them, counts the rest, names the
//! flood, and its peak resident memory (VmHWM) stays under 256 MB.
//!
//! The suite runs 10 s at 10 000 probes/s (100 000 forged ids); `MCPROBE_FLOOD_SECS=60` runs
//! the 60 s, and `MCPROBE_FLOOD_BIN` runs another build of mcprobe as the prober (a
//! release build, or an older one): results/forged-acks.md has those runs and their commands.

use crate::common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mcprobe::wire::{self, Ack, Arrival, Message};

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Answers every probe on the group with an ack of a new responder id, until `stop`; returns
/// the acks sent.
fn forger(port: u16, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.bind(&SocketAddrV4::new(GROUP.parse().unwrap(), port).into()).unwrap();
    s.join_multicast_v4(&GROUP.parse().unwrap(), &Ipv4Addr::LOCALHOST).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let sock: UdpSocket = s.into();
    let out = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut id: u64 = 0x0f0f_0000_0000_0000;
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let Ok(Message::Probe(p)) = wire::decode(&buf[..n]) else { continue };
            id += 1;
            let rx_ns = now_ns();
            let ack = Ack {
                session: p.session,
                seq: p.seq,
                tx_ns: p.tx_ns,
                responder: id,
                rx_ns,
                dwell_ns: 1_000,
                received: 1,
                ack_seq: 0,
                limited: 0,
                ttl: 1,
                arrival: Arrival::Multicast,
                ext: None,
                name: format!("forged-{id:x}"),
            };
            if let Some(bytes) = ack.encode_within(n) {
                let _ = out.send_to(&bytes, from);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// VmHWM of a process in kB, while it runs.
fn hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

#[test]
fn forged_responder_ids_are_counted_not_tracked_and_the_flood_is_named() {
    let secs: u64 = std::env::var("MCPROBE_FLOOD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let port = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let forger = forger(port, stop.clone(), sent.clone());
    let mut c = match std::env::var_os("MCPROBE_FLOOD_BIN") {
        Some(bin) => std::process::Command::new(bin),
        None => bin(),
    };
    c.args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--quiet"]);
    c.args(["--rate", "10000", "--duration", &format!("{secs}s"), "--json"]);
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kb) = hwm_kb(pid) {
            peak = peak.max(kb);
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    });
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    forger.join().unwrap();
    let peak_kb = watcher.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "prober ended after {:.1} s ({}), peak VmHWM {} MiB, {} forged acks",
        took.as_secs_f64(),
        out.status,
        peak_kb / 1024,
        sent.load(Ordering::Relaxed)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let findings: Vec<&str> = json["findings"].as_array().unwrap().iter().filter_map(|f| f["text"].as_str()).collect();
    let flood = findings.iter().find(|t| t.contains("responder flood")).copied();
    let rows = json["responders"].as_array().map_or(0, Vec::len);
    let forged = sent.load(Ordering::Relaxed);
    eprintln!(
        "{secs} s at 10 000 probes/s: {forged} forged acks of new ids, {rows} rows, peak VmHWM {} MiB, run took {:.1} s\n{}",
        peak_kb / 1024,
        took.as_secs_f64(),
        flood.unwrap_or("(no flood line)")
    );
    assert!(forged > 1_100 * secs, "the forger answered only {forged} probes");
    assert!(peak_kb > 0 && peak_kb <= 256 * 1024, "peak VmHWM {peak_kb} kB");
    assert!(rows <= mcprobe::stats::MAX_RESPONDERS, "{rows} rows");
    let flood = flood.unwrap_or_else(|| panic!("the flood is not named: {findings:#?}"));
    assert!(flood.contains("use --key") && flood.contains("127.0.0.1"), "{flood}");
}
