//! `mcprobe serve` against a careless operator and a hostile local user (issue 24): each absurd
//! configuration is refused in one line (exit 2) or runs within stated bounds; a stalled window
//! is an overrun, counted and logged once; SIGTERM stops at once whatever the timeout; and 64
//! slowloris connections plus 64 slow readers of a large exposition leave a normal scraper its
//! scrapes. Everything on 127.0.0.1.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bin, free_port, free_tcp_port, GROUP, PATIENCE};

/// Runs `serve` on `config` and expects it refused: exit 2 and one line naming `needles`.
fn refused(config: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    std::fs::write(&path, config).unwrap();
    let out = common::run({
        let mut c = bin();
        c.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&path);
        c
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{config:.200}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

const LO: &str = "[[target]]\nname = \"a\"\niface = \"127.0.0.1\"\n";

#[test]
fn absurd_configs_are_refused_in_one_line_naming_file_target_and_field() {
    refused(&format!("{LO}interval = \"1ns\"\n"), &["target 'a'", "field 'interval' 1ns", "100µs"]);
    refused(&format!("{LO}rate = 1000000\n"), &["target 'a'", "field 'rate' 1000000", "10000 probes/s"]);
    refused(
        &format!("{LO}timeout = \"1000000h\"\nwindow = \"1s\"\n"),
        &["target 'a'", "field 'timeout'", "half the window"],
    );
    refused(&format!("{LO}window = \"1000000h\"\n"), &["target 'a'", "field 'window'", "3600s"]);
    refused(
        &format!("{LO}[[target]]\nname = \"b\"\niface = \"127.0.0.1\"\n"),
        &["target 'b'", "same group, port and interface"],
    );
    let hosts: Vec<String> = (0..300).map(|i| format!("\"127.0.{}.{}\"", i / 250, i % 250 + 1)).collect();
    refused(&format!("{LO}hosts = [{}]\n", hosts.join(",")), &["target 'a'", "field 'hosts'", "300 hosts", "256"]);
    refused(&format!("{LO}rate = 5000\nhosts = [\"127.0.0.1\", \"127.0.0.2\"]\n"), &["field 'rate'", "15000 probes/s"]);
    let many: String = (0..2000)
        .map(|i| format!("[[target]]\nname = \"t{i}\"\niface = \"127.0.0.1\"\nport = {}\n", 20000 + i))
        .collect();
    refused(&many, &["2000 targets", "at most 64"]);
    // 64 targets at 1000 probes/s each: 64 000 in all, over the 50 000 that serve sends.
    let fast: String = (0..64)
        .map(|i| format!("[[target]]\nname = \"t{i}\"\niface = \"127.0.0.1\"\nport = {}\nrate = 1000\n", 20000 + i))
        .collect();
    refused(&fast, &["64000 probes/s together", "50000"]);
    common::fails_with(
        &["serve", "--iface", "127.0.0.1", "--listen", "127.0.0.1:0", "--timeout", "1000000h", "--window", "1s"],
        &["--timeout", "half the window"],
    );
}

/// A running `serve`; killed when dropped.
struct Serve {
    child: Child,
    http: u16,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        let http = free_tcp_port();
        let child = bin()
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let s = Serve { child, http };
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, s.http)).is_err() {
            assert!(start.elapsed() < PATIENCE, "serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn metrics(&self) -> String {
        scrape(self.http, Duration::from_secs(10)).unwrap_or_default()
    }

    fn value(&self, prefix: &str) -> Option<f64> {
        self.metrics().lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Threads and resident kB, from /proc.
    fn threads_and_rss_kb(&self) -> (usize, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("Threads:") as usize, field("VmRSS:"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape with `Connection: close`: the body, if the answer was a complete 200.
fn scrape(port: u16, within: Duration) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let out = String::from_utf8(out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length: "))?.trim().parse().ok()?;
    (head.starts_with("HTTP/1.1 200") && body.len() == len).then(|| body.to_string())
}

#[test]
fn the_largest_config_stays_within_its_thread_and_memory_bounds() {
    // 64 targets (the most), each at 780 probes/s (50 000 in all, the most): threads stay under
    // 64 × 10 + 3 (two windows of four threads with the ack tap a root test gets, the target's
    // loop and its querier watch; main, HTTP and its helper), RSS under 256 MB. Here for 10 s; the report has a 60 s run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    // Probes go to these ports of the group; nothing needs to listen there.
    let base = 30_000;
    let targets: String = (0..64)
        .map(|i| {
            format!(
                "[[target]]\nname = \"t{i}\"\niface = \"127.0.0.1\"\ngroup = \"{GROUP}\"\nport = {}\nrate = 780\nwindow = \"1s\"\ntimeout = \"500ms\"\n",
                base + i
            )
        })
        .collect();
    std::fs::write(&path, targets).unwrap();
    let s = Serve::start(&["-q", "--config", path.to_str().unwrap()]);
    let (mut threads, mut rss) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let (t, r) = s.threads_and_rss_kb();
        (threads, rss) = (threads.max(t), rss.max(r));
        std::thread::sleep(Duration::from_millis(200));
    }
    let overruns: f64 = (s.metrics().lines())
        .filter(|l| l.starts_with("mcprobe_window_overruns_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // Printed, not asserted: on a machine shared with other tests, windows may run late.
    eprintln!("64 targets, 10 s: at most {threads} threads, {} MB resident, {overruns} overruns", rss / 1024);
    assert!(threads <= 64 * 10 + 3, "{threads} threads");
    assert!(rss < 256 * 1024, "{rss} kB");
    assert!(s.value("mcprobe_windows_total{target=\"t63\"}").is_some_and(|v| v >= 5.0));
}

#[test]
fn a_stalled_window_is_an_overrun_counted_and_logged_once_and_sigterm_is_prompt() {
    // A 30 min timeout in 1 h windows: SIGTERM must not wait for it.
    let port = free_port().to_string();
    let mut s = Serve::start(&[
        "--iface",
        "127.0.0.1",
        "--group",
        GROUP,
        "--port",
        &port,
        "--rate",
        "20",
        "--window",
        "1s",
        "--timeout",
        "400ms",
    ]);
    let lines = common::stderr_lines(&mut s.child);
    std::thread::sleep(Duration::from_millis(2500));
    // The machine stalls serve for 3 s: the window due meanwhile starts late.
    common::signal(&s.child, nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    common::signal(&s.child, nix::sys::signal::Signal::SIGCONT);
    let start = Instant::now();
    while !s.value("mcprobe_window_overruns_total{target=\"default\"}").is_some_and(|v| v >= 1.0) {
        assert!(start.elapsed() < PATIENCE, "no overrun counted:\n{}", s.metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let said: Vec<String> = lines.try_iter().filter(|l| l.contains("overran")).collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("target default: a window overran --window 1.000 s"), "{said:?}");
    drop(s);

    let port = free_port().to_string();
    let mut s = Serve::start(&[
        "--iface",
        "127.0.0.1",
        "--group",
        GROUP,
        "--port",
        &port,
        "--window",
        "1h",
        "--timeout",
        "30m",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    common::signal(&s.child, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "SIGTERM did not stop serve");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    eprintln!("SIGTERM with a 30 min timeout: stopped in {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

/// Answers every probe of the group with `n` acks of as many made-up responders, so the
/// exposition grows large (the responders are this test's own, on loopback).
fn crowd(port: u16, n: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.set_reuse_address(true).unwrap();
    sock.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()).unwrap();
    sock.join_multicast_v4(&GROUP.parse().unwrap(), &Ipv4Addr::LOCALHOST).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let sock: UdpSocket = sock.into();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = sock.recv_from(&mut buf) else { continue };
            let Ok(mcprobe::wire::Message::Probe(p)) = mcprobe::wire::decode(&buf[..len]) else { continue };
            for id in 1..=n {
                let ack = mcprobe::wire::Ack {
                    session: p.session,
                    seq: p.seq,
                    tx_ns: p.tx_ns,
                    responder: id,
                    received: p.seq as u32 + 1,
                    ack_seq: p.seq as u32,
                    name: format!("crowd-{id:04}"),
                    ..Default::default()
                };
                let _ = sock.send_to(&ack.encode_within(len.max(200)).unwrap(), from);
            }
        }
    })
}

/// One attacker connection: a slowloris sends a request head a byte a second; a slow reader
/// sends a whole request and reads the answer a byte a second through a tiny receive buffer.
struct Attacker {
    slowloris: bool,
    stream: Option<TcpStream>,
    sent: usize,
}

impl Attacker {
    fn connect(&mut self, port: u16) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if !self.slowloris {
            let _ = s.set_recv_buffer_size(4096);
        }
        if s.connect(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into()).is_err() {
            return;
        }
        let mut s: TcpStream = s.into();
        s.set_nonblocking(true).unwrap();
        self.sent = 0;
        if !self.slowloris {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        }
        self.stream = Some(s);
    }

    /// One second's worth of mischief; reconnects when the server closed the connection.
    fn tick(&mut self, port: u16) {
        let Some(s) = self.stream.as_mut() else { return self.connect(port) };
        const HEAD: &[u8] =
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let alive = if self.slowloris {
            let b = HEAD[self.sent % HEAD.len()];
            self.sent += 1;
            s.write(&[b]).is_ok() && !matches!(s.read(&mut [0u8; 512]), Ok(0))
        } else {
            match s.read(&mut [0u8; 1]) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == ErrorKind::WouldBlock,
            }
        };
        if !alive {
            self.stream = None;
            self.connect(port);
        }
    }
}

#[test]
fn slowloris_and_slow_readers_do_not_blind_the_scraper() {
    let port = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let crowd = crowd(port, 250, stop.clone());
    let s = Serve::start(&[
        "-q",
        "--iface",
        "127.0.0.1",
        "--group",
        GROUP,
        "--port",
        &port.to_string(),
        "--rate",
        "10",
        "--window",
        "1s",
        "--timeout",
        "300ms",
    ]);
    let start = Instant::now();
    let size = loop {
        let n = s.metrics().len();
        if n > 1_000_000 {
            break n;
        }
        assert!(start.elapsed() < PATIENCE, "the exposition stays at {n} bytes");
        std::thread::sleep(Duration::from_millis(300));
    };
    let http = s.http;
    let attack = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut attackers: Vec<Attacker> =
                (0..128).map(|i| Attacker { slowloris: i % 2 == 0, stream: None, sent: 0 }).collect();
            attackers.iter_mut().for_each(|a| a.connect(http));
            // Bounded: at most a minute, whatever the test does.
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_secs(1));
                attackers.iter_mut().for_each(|a| a.tick(http));
            }
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let mut answered = 0;
    // Prometheus' own default scrape_timeout (10 s): a scrape that takes longer on a loaded
    // machine (4 of 60 passed 5 s with four busy loops beside the suite) is one it would miss.
    for _ in 0..60 {
        if scrape(http, Duration::from_secs(10)).is_some_and(|b| b.len() > 1_000_000) {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    crowd.join().unwrap();
    eprintln!("64 slowloris + 64 slow readers of a {size}-byte exposition: {answered} of 60 scrapes answered");
    assert!(answered >= 59, "{answered} of 60");
}
