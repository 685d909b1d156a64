//! The kernel's UDP ceiling for scripts/limits.sh: a bare `sendmmsg` sender and `recvmmsg`
//! receiver of 64-byte datagrams, with no accounting beyond a count, so the rate it reaches is
//! what this machine's kernel can move, the bound for any loss-free probe rate.
//!
//! `blaster recv GROUP PORT IFADDR SECONDS`: joins GROUP on the interface with address IFADDR
//! (4 MB receive buffer), counts datagrams for SECONDS, prints `received=N first_to_last_s=T`.
//! `blaster send GROUP PORT IFADDR SECONDS [RATE]`: sends to GROUP out of IFADDR's interface, TTL
//! 1, in batches of 64 per `sendmmsg`, for SECONDS (RATE datagrams/s, paced per batch; 0 or absent:
//! as fast as the kernel takes them); prints `sent=N seconds=T`.
//!
//! Network safety: the group must be multicast (TTL 1) or a 127/8 address; run it inside a lab
//! namespace (scripts/limits.sh does) or on loopback only. Every run is bounded by SECONDS (≤ 60).

use nix::libc;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const SIZE: usize = 64;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!("usage: blaster send|recv GROUP PORT IFADDR SECONDS [RATE]");
        std::process::exit(2);
    }
    let group: Ipv4Addr = a[2].parse().expect("GROUP: an IPv4 address");
    let port: u16 = a[3].parse().expect("PORT: a number");
    let ifaddr: Ipv4Addr = a[4].parse().expect("IFADDR: an IPv4 address");
    let secs: u64 = a[5].parse().expect("SECONDS: a number");
    assert!(secs <= 60, "SECONDS: at most 60");
    assert!(group.is_multicast() || group.is_loopback(), "GROUP: multicast or 127/8 only");
    let rate: u64 = a.get(6).map_or(0, |s| s.parse().expect("RATE: a number"));
    match a[1].as_str() {
        "send" => send(group, port, ifaddr, Duration::from_secs(secs), rate),
        "recv" => recv(group, port, ifaddr, Duration::from_secs(secs)),
        other => panic!("unknown mode {other}"),
    }
}

fn send(group: Ipv4Addr, port: u16, ifaddr: Ipv4Addr, secs: Duration, rate: u64) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&ifaddr).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.set_ttl_v4(1).unwrap();
    s.bind(&SocketAddrV4::new(ifaddr, 0).into()).unwrap();
    let s: UdpSocket = s.into();
    let dest: socket2::SockAddr = SocketAddrV4::new(group, port).into();
    let mut bufs = [[0u8; SIZE]; BATCH];
    let mut iov: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: SIZE }).collect();
    let mut hdrs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: an all-zero mmsghdr is a valid empty header; the fields set point into
            // `iov` and `dest`, which outlive every use below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = dest.len();
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < secs {
        if rate > 0 {
            // Paced per batch: the batch goes when the schedule has reached it.
            let due = Duration::from_secs_f64((sent + BATCH as u64) as f64 / rate as f64);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
        }
        // SAFETY: `hdrs` holds BATCH valid headers (see above).
        let n = unsafe { libc::sendmmsg(s.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as _, 0) };
        if n > 0 {
            sent += n as u64;
        }
    }
    println!("sent={sent} seconds={:.6}", start.elapsed().as_secs_f64());
}

fn recv(group: Ipv4Addr, port: u16, ifaddr: Ipv4Addr, secs: Duration) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.bind(&SocketAddrV4::new(group, port).into()).unwrap();
    if group.is_multicast() {
        s.join_multicast_v4(&group, &ifaddr).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let s: UdpSocket = s.into();
    let mut bufs = [[0u8; 2048]; BATCH];
    let mut iov: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    let mut hdrs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: as in `send`: zeroed headers pointing into `iov`.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    println!("listening");
    let start = Instant::now();
    let (mut received, mut first, mut last) = (0u64, None, start);
    while start.elapsed() < secs {
        // SAFETY: `hdrs` holds BATCH valid headers; the read timeout bounds the wait.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            received += n as u64;
        }
    }
    let span = first.map_or(0.0, |f| last.saturating_duration_since(f).as_secs_f64());
    println!("received={received} first_to_last_s={span:.6}");
}
