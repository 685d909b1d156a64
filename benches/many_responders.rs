//! Memory of the prober tracking 1000 responders at 10 probes/s each, on loopback.
//!
//! One simulator thread plays 1000 responders: it joins the group on 127.0.0.1 and answers every
//! probe with 1000 acks, each with its own responder id and name. The prober runs in this process,
//! as `mcprobe probe` runs it, with per-interval figures on (as with `--out`). The figure is the
//! growth of this process's resident set (VmRSS, VmHWM) while the prober runs.
//!
//! cargo bench --bench many_responders            (MCPROBE_SIM_SECS=30 by default)

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcprobe::net;
use mcprobe::prober::{self, ProbeConfig};
use mcprobe::wire::{self, Ack, Arrival, Message};

const RESPONDERS: u64 = 1000;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = s.lines().find(|l| l.starts_with(field)).expect("field present");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

fn main() {
    let secs: u64 = std::env::var("MCPROBE_SIM_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let lo = net::resolve_iface("127.0.0.1").expect("loopback");
    let group: std::net::IpAddr = "239.255.42.43".parse().unwrap();
    let port = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let sock = net::responder_socket(group, port, Some(&lo), None, 4 << 20).expect("simulator socket");
    let stop = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let cfg = ProbeConfig {
        interval: Duration::from_millis(100),
        count: secs * 10,
        intervals: true,
        ..mcprobe::config::probe_defaults(group, port, Some(lo.clone()))
    };
    let before_rss = status_kib("VmRSS:");
    let (outcome, acks) = std::thread::scope(|s| {
        let sim = s.spawn(|| {
            let mut buf = vec![0u8; 2048];
            let mut cmsg = net::cmsg_buffer();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some(rx) = net::recv(&sock, &mut buf, &mut cmsg).unwrap() else { continue };
                let Ok(Message::Probe(p)) = wire::decode(&buf[..rx.len]) else { continue };
                for id in 1..=RESPONDERS {
                    let n = (p.seq + 1) as u32;
                    let ack = Ack {
                        session: p.session,
                        seq: p.seq,
                        tx_ns: p.tx_ns,
                        responder: id,
                        rx_ns: rx.rx_ns,
                        dwell_ns: 0,
                        received: n,
                        ack_seq: n - 1,
                        limited: 0,
                        ttl: 1,
                        arrival: Arrival::Multicast,
                        ext: None,
                        name: format!("sim-{id:04}"),
                    };
                    sock.send_to(&ack.encode_within(rx.len).unwrap(), rx.from).unwrap();
                    sent += 1;
                }
            }
            sent
        });
        let outcome = prober::run(&cfg, &never, None, None).expect("probe run");
        stop.store(true, Ordering::Relaxed);
        (outcome, sim.join().unwrap())
    });
    let after_rss = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let hosts = outcome.run.hosts();
    let received: u64 = hosts.iter().map(|h| h.received).sum();
    println!(
        "responders tracked: {} (acks sent {acks}, on time {received}, probes {})",
        hosts.len(),
        outcome.run.sent()
    );
    println!("local drops: {}", outcome.local_drops);
    println!(
        "VmRSS before {before_rss} KiB, after {after_rss} KiB, growth {} KiB",
        after_rss.saturating_sub(before_rss)
    );
    println!("VmHWM (peak) {hwm} KiB = {:.1} MiB", hwm as f64 / 1024.0);
    println!("per responder: {:.1} KiB", after_rss.saturating_sub(before_rss) as f64 / hosts.len().max(1) as f64);
}
