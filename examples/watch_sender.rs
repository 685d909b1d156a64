//! Load for scripts/watch-bench.sh: numbered datagrams (u32 big-endian at byte 0, each group
//! counting on its own) to groups 239.255.50.1.. on port 5000, round robin, at a fixed total
//! rate, through loopback only (IP_MULTICAST_IF 127.0.0.1, TTL 1: run it in a namespace whose
//! only interface is lo, as the script does).
//!
//! `watch_sender GROUPS RATE SECONDS [SIZE]`; prints the datagrams sent and the rate reached.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| a.get(i).map_or(d, |s| s.parse().expect("a number"));
    let (groups, rate, secs, size) = (arg(1, 1).clamp(1, 250), arg(2, 10_000).max(1), arg(3, 3), arg(4, 1316) as usize);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let s: UdpSocket = s.into();
    let to: Vec<SocketAddrV4> =
        (1..=groups).map(|g| SocketAddrV4::new(Ipv4Addr::new(239, 255, 50, g as u8), 5000)).collect();
    let mut buf = vec![0u8; size.max(4)];
    let mut seq = vec![0u32; to.len()];
    let start = Instant::now();
    let (mut sent, mut g) = (0u64, 0usize);
    // Per millisecond tick, the datagrams due by then: the rate holds on average, in 1 ms bursts.
    // A sender that falls behind stops at the deadline all the same (what it reached is printed).
    let end = Duration::from_secs(secs);
    while start.elapsed() < end {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due && (sent % 64 != 0 || start.elapsed() < end) {
            buf[..4].copy_from_slice(&seq[g].to_be_bytes());
            if s.send_to(&buf, to[g]).is_ok() {
                seq[g] += 1;
                sent += 1;
            }
            g = (g + 1) % to.len();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let el = start.elapsed().as_secs_f64();
    println!("sent {sent} datagrams in {el:.3} s: {:.0}/s", sent as f64 / el);
}
