//! Helpers for tests that run the real binary on loopback. Everything sends to 127.0.0.1 or the
//! test's own group joined on 127.0.0.1 only, with TTL 1.
#![allow(dead_code)]

pub mod lab;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const GROUP: &str = "239.255.42.42";
/// Upper bound for any wait on the binary: a failure bound, not a speed assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// True under `MCPROBE_REQUIRE_ALL=1` (scripts/test.sh and so CI set it): every test that needs
/// root, a tool or a kernel feature must run, and a skip is a failure.
pub fn require_all() -> bool {
    std::env::var_os("MCPROBE_REQUIRE_ALL").is_some_and(|v| v == "1")
}

/// The one way a test skips: prints `skipped: REASON` (one line, naming what is missing and the
/// package that brings it) and returns false, for `if !…_or_skip() { return; }`. Under
/// `MCPROBE_REQUIRE_ALL=1` the test fails instead, so a run of scripts/test.sh (CI) cannot pass
/// with a skipped test.
pub fn skip_or_fail(reason: &str) -> bool {
    assert!(!require_all(), "MCPROBE_REQUIRE_ALL=1, and this test would skip: {reason}");
    println!("skipped: {reason}");
    false
}

/// For a kernel feature no package brings (scripts/test.sh cannot install it): prints
/// `skipped: REASON` and returns false even under `MCPROBE_REQUIRE_ALL=1`, where a missing root
/// or tool fails instead. The one such case: a kernel built without multicast routing.
pub fn skip_kernel_lacks(reason: &str) -> bool {
    println!("skipped: {reason}");
    false
}

/// True when `tool ARG` runs and exits 0; otherwise skips (see [`skip_or_fail`]) naming the
/// Debian package that brings it.
pub fn tool_or_skip(tool: &str, arg: &str, package: &str) -> bool {
    let ok = Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    ok || skip_or_fail(&format!("{tool} is not installed (Debian package {package}; sudo scripts/test.sh installs it)"))
}

/// True as root; otherwise skips (see [`skip_or_fail`]) saying what needs root.
pub fn root_or_skip_for(what: &str) -> bool {
    nix::unistd::geteuid().is_root() || skip_or_fail(&format!("{what} needs root (sudo scripts/test.sh runs it)"))
}

/// The binary under test: the one cargo built, or `MCPROBE_BIN` (scripts/release.sh runs the
/// loopback tests against the portable binary it built).
pub fn bin_path() -> std::path::PathBuf {
    std::env::var_os("MCPROBE_BIN").map_or_else(|| env!("CARGO_BIN_EXE_mcprobe").into(), Into::into)
}

pub fn bin() -> Command {
    Command::new(bin_path())
}

/// A port nobody uses right now: each test probes on its own port, so tests run in parallel.
pub fn free_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A TCP port on 127.0.0.1 nobody listens on right now (for `serve --listen`, Prometheus).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A child process (serve, Prometheus) killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `mcprobe respond` on loopback; killed when dropped.
pub struct Responder {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Responder {
    pub fn start(port: u16, name: &str) -> Self {
        Self::start_with(port, name, &[])
    }

    /// A loopback responder with extra arguments.
    pub fn start_with(port: u16, name: &str, extra: &[&str]) -> Self {
        let mut c = bin();
        c.args(["respond", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--name", name]);
        c.args(extra);
        Self::spawn(c)
    }

    /// Starts a responder from a prepared command (for example one run inside a namespace).
    pub fn spawn(mut c: Command) -> Self {
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("mcprobe respond starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut r = Responder { child, lines: rx, seen: Vec::new() };
        r.wait_for("listening");
        r
    }

    /// Waits until the responder prints a line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("responder never printed {needle:?}; saw {:?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        signal(&self.child, sig);
    }

    /// Stops it with SIGINT and returns its closing counter line.
    pub fn stop(mut self) -> String {
        self.signal(nix::sys::signal::Signal::SIGINT);
        let line = self.wait_for("stopped:");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "responder exited with {status}");
        line
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mcprobe probe` on loopback against `port`, with extra arguments.
pub fn probe_cmd(port: u16, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--quiet"]);
    c.args(extra);
    c
}

pub fn run(mut c: Command) -> Output {
    let out = c.output().expect("mcprobe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "mcprobe panicked: {stderr}");
    out
}

/// The rows of a CSV file, as maps from column to value.
pub fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r.deserialize().map(|row| row.unwrap()).collect()
}

pub fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap_or_else(|_| panic!("column {col} = {:?} is not a number", row[col]))
}

/// A socket that sends to the test group through loopback only.
pub fn loopback_multicast_sender() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    s.into()
}

pub fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Reads a child's stderr line by line on a thread, so a test can wait for a line.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let err = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The port the prober of a session sends from, read from the responder's session line.
pub fn prober_port(session_line: &str) -> u16 {
    let from = session_line.split(" from ").nth(1).and_then(|s| s.split(':').nth(1)).expect("an address");
    from.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().expect("a port")
}

/// Runs mcprobe with `args`; asserts exit code 2 and that stderr contains each of `needles`.
pub fn fails_with(args: &[&str], needles: &[&str]) {
    let out = run({
        let mut c = bin();
        c.args(args);
        c
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: expected {n:?} in {stderr}");
    }
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

/// Polls `cond` every 20 ms until it holds or `limit` passes (a failure bound, not a speed
/// assertion); whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Samples of family `name` in a Prometheus exposition: labels (as a map) and value.
pub fn samples(text: &str, name: &str) -> Vec<(std::collections::HashMap<String, String>, f64)> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
        let (Some(open), Some(close)) = (l.find('{'), l.rfind('}')) else { continue };
        let labels = l[open + 1..close]
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        if let Ok(v) = l[close + 1..].trim().parse() {
            out.push((labels, v));
        }
    }
    out
}
