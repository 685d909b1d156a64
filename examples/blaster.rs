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
//!
//! The round trip (a probe is a datagram out and one back):
//! `blaster echo GROUP PORT IFADDR SECONDS`: joins GROUP as `recv` does and sends every datagram
//! straight back to its source (`recvmmsg` then one `sendmmsg` per batch), for SECONDS; prints
//! `echoed=N`.
//! `blaster paced GROUP PORT IFADDR SECONDS RATE`: the floor of a paced round trip, against
//! which a prober's send lateness and CPU per probe are judged: one datagram per deadline
//! (RATE/s), the sender sleeping to each on an absolute timer with 1 ns of timer slack as
//! `mcprobe probe`'s default pacing does (spin under 2 µs, yield under 20 µs), and a second
//! thread blocked on the socket counting the echoes (run `echo` on the other side). No
//! accounting, no histogram per echo: only the send lateness, per probe and per wake-up (a
//! probe whose deadline was still ahead, as `limits.py wakeups` counts mcprobe's). Prints
//! `sent=N echoed=M wakeups=W catchup_sends=C send_lateness_p50_us=.. send_lateness_p99_us=..
//! wake_lateness_p50_us=.. wake_lateness_p99_us=.. wake_lateness_max_us=..`.
//! `blaster ping GROUP PORT IFADDR SECONDS [WINDOW]`: sends to GROUP as `send` does, but keeps
//! at most WINDOW (default 256) datagrams unanswered, sending more as echoes come back, so no
//! buffer overflows and the rate is what one sender, one echoer and the kernel sustain round
//! trip; an echo missing for 100 ms counts the unanswered as lost and starts again. Prints
//! `sent=N echoed=M lost=L seconds=T`.
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
        eprintln!("usage: blaster send|recv|echo|ping|paced GROUP PORT IFADDR SECONDS [RATE|WINDOW]");
        std::process::exit(2);
    }
    let group: Ipv4Addr = a[2].parse().expect("GROUP: an IPv4 address");
    let port: u16 = a[3].parse().expect("PORT: a number");
    let ifaddr: Ipv4Addr = a[4].parse().expect("IFADDR: an IPv4 address");
    let secs: u64 = a[5].parse().expect("SECONDS: a number");
    assert!(secs <= 60, "SECONDS: at most 60");
    assert!(group.is_multicast() || group.is_loopback(), "GROUP: multicast or 127/8 only");
    let rate: u64 = a.get(6).map_or(0, |s| s.parse().expect("RATE: a number"));
    let secs = Duration::from_secs(secs);
    match a[1].as_str() {
        "send" => send(group, port, ifaddr, secs, rate),
        "recv" => recv(group, port, ifaddr, secs),
        "echo" => echo(group, port, ifaddr, secs),
        "ping" => ping(group, port, ifaddr, secs, if rate == 0 { 256 } else { rate }),
        "paced" => {
            assert!((1..=1_000_000).contains(&rate), "RATE: 1 to 1000000 datagrams/s");
            paced(group, port, ifaddr, secs, rate)
        }
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

/// Headers for `recvmmsg`/`sendmmsg` over `bufs`, each with room for its peer's address in
/// `names` (filled by a receive, used as the destination of a send).
fn headers(bufs: &mut [[u8; 2048]], names: &mut [libc::sockaddr_in], iov: &mut Vec<libc::iovec>) -> Vec<libc::mmsghdr> {
    *iov = bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    iov.iter_mut()
        .zip(names.iter_mut())
        .map(|(v, n)| {
            // SAFETY: as in `send`: zeroed headers pointing into `iov` and `names`, which the
            // caller keeps alive (and unmoved) while the headers are used.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = (n as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect()
}

fn echo(group: Ipv4Addr, port: u16, ifaddr: Ipv4Addr, secs: Duration) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.set_ttl_v4(1).unwrap();
    // Bound to the wildcard (a socket bound to the group could not send from it), joined on the
    // lab interface only.
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()).unwrap();
    s.join_multicast_v4(&group, &ifaddr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let s: UdpSocket = s.into();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut names = vec![unsafe { std::mem::zeroed::<libc::sockaddr_in>() }; BATCH];
    let mut iov = Vec::new();
    let mut hdrs = headers(&mut bufs, &mut names, &mut iov);
    println!("listening");
    let start = Instant::now();
    let mut echoed = 0u64;
    while start.elapsed() < secs {
        for h in hdrs.iter_mut() {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
            // SAFETY: msg_iov points at this header's own iovec (see `headers`).
            unsafe { (*h.msg_hdr.msg_iov).iov_len = 2048 };
        }
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
        if n <= 0 {
            continue;
        }
        for h in hdrs[..n as usize].iter_mut() {
            // SAFETY: as above; each datagram goes back at the length it came.
            unsafe { (*h.msg_hdr.msg_iov).iov_len = h.msg_len as usize };
        }
        let mut at = 0usize;
        while at < n as usize {
            // SAFETY: the first `n` headers were filled by recvmmsg: name, length and iovec valid.
            let m = unsafe { libc::sendmmsg(s.as_raw_fd(), hdrs[at..].as_mut_ptr(), (n as usize - at) as _, 0) };
            if m <= 0 {
                break;
            }
            at += m as usize;
        }
        echoed += at as u64;
    }
    println!("echoed={echoed}");
}

/// The sending side of a round trip: multicast out of `ifaddr` with TTL 1, a 4 MiB receive
/// buffer for the echoes, and a 100 ms read timeout so a lost echo never blocks the loop.
fn round_trip_socket(ifaddr: Ipv4Addr) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&ifaddr).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.set_ttl_v4(1).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.bind(&SocketAddrV4::new(ifaddr, 0).into()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s.into()
}

fn ping(group: Ipv4Addr, port: u16, ifaddr: Ipv4Addr, secs: Duration, window: u64) {
    let s = round_trip_socket(ifaddr);
    let dest: socket2::SockAddr = SocketAddrV4::new(group, port).into();
    let mut out = [[0u8; SIZE]; BATCH];
    let mut out_iov: Vec<libc::iovec> =
        out.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: SIZE }).collect();
    let mut out_hdrs: Vec<libc::mmsghdr> = out_iov
        .iter_mut()
        .map(|v| {
            // SAFETY: as in `send`.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = dest.len();
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut names = vec![unsafe { std::mem::zeroed::<libc::sockaddr_in>() }; BATCH];
    let mut iov = Vec::new();
    let mut in_hdrs = headers(&mut bufs, &mut names, &mut iov);
    let start = Instant::now();
    let (mut sent, mut echoed, mut lost) = (0u64, 0u64, 0u64);
    while start.elapsed() < secs {
        let room = window.saturating_sub(sent.saturating_sub(echoed + lost)).min(BATCH as u64);
        if room > 0 {
            // SAFETY: `out_hdrs` holds BATCH valid headers (see above).
            let n = unsafe { libc::sendmmsg(s.as_raw_fd(), out_hdrs.as_mut_ptr(), room as _, 0) };
            if n > 0 {
                sent += n as u64;
            }
        }
        for h in in_hdrs.iter_mut() {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
        }
        // SAFETY: `in_hdrs` holds BATCH valid headers; the read timeout bounds the wait.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                in_hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            echoed += n as u64;
        } else if sent > echoed + lost {
            // Nothing for 100 ms: what is still out is lost (a window never refills otherwise).
            lost = sent - echoed;
        }
    }
    println!("sent={sent} echoed={echoed} lost={lost} seconds={:.6}", start.elapsed().as_secs_f64());
}

fn paced(group: Ipv4Addr, port: u16, ifaddr: Ipv4Addr, secs: Duration, rate: u64) {
    use nix::time::{clock_gettime, clock_nanosleep, ClockId, ClockNanosleepFlags};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let s = round_trip_socket(ifaddr);
    let dest = SocketAddrV4::new(group, port);
    let done = AtomicBool::new(false);
    let echoed = AtomicU64::new(0);
    let interval = Duration::from_secs(1) / rate as u32;
    let count = (secs.as_secs_f64() * rate as f64) as u64;
    // ns, 3 significant digits, to an hour.
    let new_hist = || hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    let (mut all, mut wake) = (new_hist(), new_hist());
    let (mut wakeups, mut catchup) = (0u64, 0u64);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if s.recv(&mut buf).is_ok() {
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // As mcprobe's sender: the timer fires at the deadline, not up to 50 µs after it.
        let _ = nix::sys::prctl::set_timerslack(1);
        let payload = [0u8; SIZE];
        let start = Instant::now();
        let mono0 = clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap();
        let mono0 = Duration::new(mono0.tv_sec() as u64, mono0.tv_nsec() as u32);
        for k in 0..count {
            let due = interval * k as u32;
            let deadline = start + due;
            let waited = Instant::now() < deadline;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let ahead = deadline - now;
                if ahead <= Duration::from_micros(2) {
                    std::hint::spin_loop();
                } else if ahead < Duration::from_micros(20) {
                    std::thread::yield_now();
                } else {
                    let at = nix::sys::time::TimeSpec::from_duration(mono0 + (now - start) + ahead);
                    let _ = clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &at);
                }
            }
            let late = (Instant::now() - deadline).as_nanos() as u64;
            let _ = s.send_to(&payload, dest);
            all.saturating_record(late.max(1));
            if waited {
                wakeups += 1;
                wake.saturating_record(late.max(1));
            } else {
                catchup += 1;
            }
        }
        // The last echoes' time to come back, then the receiver's read timeout ends it.
        std::thread::sleep(Duration::from_millis(200));
        done.store(true, Ordering::Relaxed);
    });
    let us = |ns: u64| format!("{:.2}", ns as f64 / 1e3);
    println!(
        "sent={count} echoed={} wakeups={wakeups} catchup_sends={catchup} send_lateness_p50_us={} \
         send_lateness_p99_us={} wake_lateness_p50_us={} wake_lateness_p99_us={} wake_lateness_max_us={}",
        echoed.load(Ordering::Relaxed),
        us(all.value_at_quantile(0.5)),
        us(all.value_at_quantile(0.99)),
        us(wake.value_at_quantile(0.5)),
        us(wake.value_at_quantile(0.99)),
        us(wake.max()),
    );
}
