//! What one real `serve --mesh` host costs in a mesh of N hosts, measured on one machine: this
//! program plays the other N-1 hosts on loopback, so N can be 200 where N real processes would
//! not fit a small VM (scripts/mesh_bench.py runs N real ones, up to 128 here).
//!
//! The N-1 simulated hosts do to the real one what real mesh peers do: each answers every probe
//! of the real host with an ack of its own (its own responder id and name, `sim-NNNN`), and each
//! sends the group one probe a second (its own session), which the real host's embedded
//! responder answers. The real host is `$MCPROBE serve --mesh` on 127.0.0.1 at its default
//! schedule; after a warm-up its CPU (utime + stime from /proc) is read over the window, and its
//! /metrics says how many peers it sees. Loopback only: every peer answers from 127.0.0.1, so no
//! peer is probed by unicast (the unicast sample adds 4 packets per sampled peer and probe, see
//! docs/src/serve-mesh.md). Traffic: TTL 1, IP_MULTICAST_IF 127.0.0.1, bounded by the window.
//!
//!   cargo build --release --bin mcprobe --example mesh_sim
//!   MCPROBE=target/release/mcprobe target/release/examples/mesh_sim N [WARM_S] [SECS] [PEER_RATE]
//!
//! PEER_RATE (default 1) is each simulated peer's probes a second: set it to the rate the real
//! host's schedule chose (its first lines say it), as every host of a real mesh would.
//! SERVE_ARGS (environment): more arguments for the real host, e.g. `--interval 2s`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcprobe::net;
use mcprobe::wire::{self, Ack, Arrival, Message, Probe};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 9, 2);

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
    } else {
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the serve process lives");
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

fn scrape(http: u16) -> String {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, http)) else { return String::new() };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Sum of the samples of `name` (exact metric name) in an exposition.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let args: Vec<f64> =
        std::env::args().skip(1).map(|a| a.parse().expect("numbers: N [WARM_S] [SECS] [PEER_RATE]")).collect();
    let n = *args.first().expect("usage: mesh_sim N [WARM_S] [SECS] [PEER_RATE]") as u64;
    assert!((2..=2000).contains(&n), "N is 2..=2000");
    let (warm, secs) = (args.get(1).copied().unwrap_or(20.0) as u64, args.get(2).copied().unwrap_or(60.0) as u64);
    let peer_rate = args.get(3).copied().unwrap_or(1.0);
    assert!(peer_rate > 0.0 && peer_rate <= 100.0, "PEER_RATE is in (0, 100]");
    let mcprobe = std::env::var("MCPROBE").unwrap_or_else(|_| "target/release/mcprobe".into());
    let peers = n - 1;
    let port = free_port(true);
    let http = free_port(false);

    let lo = net::resolve_iface("127.0.0.1").expect("loopback");
    // The simulated hosts' responder side: the group on loopback.
    let rsock = net::responder_socket(GROUP.into(), port, Some(&lo), None, 4 << 20).expect("simulator socket");
    rsock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // Their prober side: probes to the group out of lo only, TTL 1; the real host's acks come back here.
    let psock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    psock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
    psock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    psock.set_multicast_ttl_v4(1).unwrap();
    let psock: UdpSocket = psock.into();
    psock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let sessions: Vec<u64> = (0..peers).map(|i| 0x5eed_0000_0000 + i).collect();

    let mut serve = Command::new("timeout")
        .args(["-s", "INT", &(warm + secs + 60).to_string(), &mcprobe, "serve", "--mesh", "--iface", "127.0.0.1"])
        .args(["--group", &GROUP.to_string(), "--port", &port.to_string()])
        .args(["--listen", &format!("127.0.0.1:{http}"), "--name", "real", "--forget", "1m"])
        .args(std::env::var("SERVE_ARGS").unwrap_or_default().split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs $MCPROBE serve");
    std::thread::sleep(Duration::from_millis(500));
    let pid: u32 =
        String::from_utf8(Command::new("pgrep").args(["-P", &serve.id().to_string()]).output().unwrap().stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .expect("serve runs under timeout")
            .parse()
            .unwrap();

    let stop = AtomicBool::new(false);
    let (acks_out, probes_out, acks_in) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let report = std::thread::scope(|s| {
        // Every probe of the real host is answered by every simulated peer.
        s.spawn(|| {
            let (mut buf, mut cmsg) = (vec![0u8; 2048], net::cmsg_buffer());
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(rx)) = net::recv(&rsock, &mut buf, &mut cmsg) else { continue };
                let Ok(Message::Probe(p)) = wire::decode(&buf[..rx.len]) else { continue };
                if sessions.contains(&p.session) {
                    continue; // one of ours, looped back
                }
                for id in 1..=peers {
                    let got = (p.seq + 1) as u32;
                    let ack = Ack {
                        session: p.session,
                        seq: p.seq,
                        tx_ns: p.tx_ns,
                        responder: 0x000a_11ce_0000 + id,
                        rx_ns: rx.rx_ns,
                        dwell_ns: 0,
                        received: got,
                        ack_seq: got - 1,
                        limited: 0,
                        ttl: 1,
                        arrival: Arrival::Multicast,
                        ext: None,
                        name: format!("sim-{id:04}"),
                    };
                    if let Some(b) = ack.encode_within(rx.len) {
                        let _ = rsock.send_to(&b, rx.from);
                        acks_out.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        // The real host's acks to the simulated probers: read and counted, every 50 ms, all that
        // queued meanwhile. Not a blocking read per ack: on a real LAN the ack leaves by the NIC
        // and wakes nobody on the real host's CPU, while here the real host's send would run
        // the simulator's socket wake-up (and, on a 2-vCPU machine, often a switch to it) in
        // its own context: a cost the real host does not have, charged to it.
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                while nix::sys::socket::recv(psock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT)
                    .is_ok()
                {
                    acks_in.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Each simulated peer probes the group PEER_RATE times a second, spread evenly.
        s.spawn(|| {
            let dest = SocketAddrV4::new(GROUP, port);
            let start = Instant::now();
            for k in 0u64.. {
                let due = start + Duration::from_secs_f64(k as f64 / (peers as f64 * peer_rate));
                while Instant::now() < due {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let probe =
                    Probe { session: sessions[(k % peers) as usize], seq: k / peers, tx_ns: now_ns(), asks_ext: false };
                let _ = psock.send_to(&probe.encode(64), dest);
                probes_out.fetch_add(1, Ordering::Relaxed);
            }
        });

        std::thread::sleep(Duration::from_secs(warm));
        let (c0, m0, t0) = (cpu_s(pid), scrape(http), Instant::now());
        let (a0, p0, i0) =
            (acks_out.load(Ordering::Relaxed), probes_out.load(Ordering::Relaxed), acks_in.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs(secs));
        let (c1, m1, dt) = (cpu_s(pid), scrape(http), t0.elapsed().as_secs_f64());
        let (a1, p1, i1) =
            (acks_out.load(Ordering::Relaxed), probes_out.load(Ordering::Relaxed), acks_in.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = rss.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: ? kB").to_string();
        let sent = (total(&m1, "mcprobe_probes_sent_total") - total(&m0, "mcprobe_probes_sent_total")) / dt;
        let acks_to_real = (a1 - a0) as f64 / dt;
        let probes_to_real = (p1 - p0) as f64 / dt;
        let acks_from_real = (i1 - i0) as f64 / dt;
        format!(
            "N = {n} ({peers} simulated peers), {secs} s after {warm} s: serve --mesh CPU {:.2} % of a core, {hwm}\n\
             peers up in its /metrics: {}\n\
             probes it sent/s {sent:.2}; acks it got/s {acks_to_real:.1}; probes it got/s {probes_to_real:.1}; acks it sent/s {acks_from_real:.1}\n\
             packets/s at the host: {:.0}",
            100.0 * (c1 - c0) / dt,
            total(&m1, "mcprobe_mesh_peer_up"),
            sent + acks_to_real + probes_to_real + acks_from_real,
        )
    });
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT);
    let _ = serve.wait();
    println!("{report}");
}
