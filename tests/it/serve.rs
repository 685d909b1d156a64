//! `mcprobe serve` through its binary, on loopback: config errors, the HTTP edges, a clean
//! SIGTERM, the series cap, restarts, --forget; and the generated completions and man page.

use crate::common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, free_port, free_tcp_port, Responder, GROUP, PATIENCE};

/// Sends `request` as is; returns (status, headers, body). Reads up to the end of the body
/// (its Content-Length), as a keep-alive connection never ends by itself.
fn http_raw(port: u16, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&out).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok());
            let head_only = request.starts_with(b"HEAD ");
            if len.is_some_and(|n: usize| body.len() >= n || head_only) {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_string(), body.to_string())
}

fn get(port: u16, path: &str) -> (u16, String, String) {
    http_raw(port, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

/// A running `mcprobe serve` on loopback; killed when dropped.
struct Serve {
    child: Child,
    http: u16,
}

impl Serve {
    fn start(port: u16, extra: &[&str]) -> Self {
        let http = free_tcp_port();
        let child = bin()
            .args(["serve", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
            .args(["--rate", "20", "--window", "1s", "--timeout", "300ms"])
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let s = Serve { child, http };
        s.wait_until("/healthz to answer", |s| TcpStream::connect((Ipv4Addr::LOCALHOST, s.http)).is_ok());
        s
    }

    fn metrics(&self) -> String {
        get(self.http, "/metrics").2
    }

    /// The value of the first sample line starting with `prefix`.
    fn value(&self, prefix: &str) -> Option<f64> {
        self.metrics().lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    fn wait_until(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !f(self) {
            assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}:\n{}", self.metrics());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; returns the exit status and stderr.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        common::signal(&self.child, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < PATIENCE, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_bad_config_names_file_target_and_field_and_serve_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcprobe.toml");
    std::fs::write(
        &path,
        "[[target]]\nname = \"lan1\"\niface = \"127.0.0.1\"\n\n[[target]]\nname = \"lan2\"\ninterval = \"soon\"\n",
    )
    .unwrap();
    let out = common::run({
        let mut c = bin();
        c.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&path);
        c
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&path.display().to_string()) && err.contains("target 'lan2'") && err.contains("field 'interval'"),
        "{err}"
    );
    // Target flags and --config do not mix.
    let out = common::run({
        let mut c = bin();
        c.args(["serve", "--port", "5000", "--config"]).arg(&path);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn http_answers_its_pages_rejects_bad_requests_and_sigterm_stops_cleanly() {
    let port = free_port();
    let _r = Responder::start(port, "r1");
    let s = Serve::start(port, &[]);
    let (status, _, body) = get(s.http, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(s.http, "/");
    assert!(status == 200 && body.contains("href=\"/metrics\"") && body.contains("href=\"/healthz\""), "{body}");
    assert_eq!(get(s.http, "/nope").0, 404);
    assert_eq!(http_raw(s.http, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(http_raw(s.http, b"hello there\r\n\r\n").0, 400);
    assert_eq!(http_raw(s.http, b"GET /metrics HTTP/1.1\r\nbroken header\r\n\r\n").0, 400);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http_raw(s.http, huge.as_bytes()).0, 431);

    s.wait_until("r1's acks", |s| {
        s.value("mcprobe_acks_total{target=\"default\",responder=\"r1\"").is_some_and(|v| v > 0.0)
    });
    // Text 0.0.4 by default; OpenMetrics (with its # EOF) when Accept asks.
    let (_, head, body) = get(s.http, "/metrics");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(!body.contains("# EOF") && body.contains("mcprobe_build_info{version="));
    let (_, head, body) = http_raw(
        s.http,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n") && body.contains("# UNIT mcprobe_rtt_seconds seconds"), "{body}");

    // The small HTTP items of issue 24: a newer minor version is refused, a bare-LF request is
    // answered at once, a 9 000-byte header is too large even when it comes in one read.
    assert_eq!(http_raw(s.http, b"GET /healthz HTTP/1.9\r\n\r\n").0, 400);
    let started = Instant::now();
    assert_eq!(http_raw(s.http, b"GET /healthz HTTP/1.0\n\n").0, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "bare LF took {:?}", started.elapsed());
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9_000));
    assert_eq!(http_raw(s.http, big.as_bytes()).0, 431);

    // A connection that sends no request is closed after its 5 s; one byte a second does not
    // buy more time, since the 5 s are for the whole head.
    let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, s.http)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let started = Instant::now();
    let mut peek = [0u8; 1];
    while started.elapsed() < PATIENCE {
        if idle.write_all(b"G").is_err() || matches!(idle.peek(&mut peek), Ok(0)) {
            break;
        }
    }
    let closed_after = started.elapsed();
    assert!((Duration::from_secs(4)..Duration::from_secs(8)).contains(&closed_after), "closed after {closed_after:?}");

    // 64 connections from one address at most: a 65th takes the place of the oldest once that
    // is a second old; younger ones are not closed for it, and the newcomer then gets a 503
    // (its request read first, so it sees the answer, not a reset).
    let crowd: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect((Ipv4Addr::LOCALHOST, s.http)).unwrap()).collect();
    assert_eq!(get(s.http, "/healthz").0, 503);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(s.http, "/healthz").0, 200);
    drop(crowd);
    s.wait_until("free slots again", |s| get(s.http, "/healthz").0 == 200);

    let (status, err) = s.terminate();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("responder r1 (127.0.0.1, multicast) appeared") && err.contains("stopped"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn series_are_capped_and_the_refused_are_counted() {
    let port = free_port();
    let _r: Vec<Responder> = ["r1", "r2", "r3"].iter().map(|n| Responder::start(port, n)).collect();
    let s = Serve::start(port, &["--max-series", "2"]);
    s.wait_until("a refused series", |s| {
        s.value("mcprobe_responders_refused_total{target=\"default\"}").is_some_and(|v| v > 0.0)
    });
    let series = s.metrics().lines().filter(|l| l.starts_with("mcprobe_acks_total{")).count();
    assert_eq!(series, 2);
}

#[test]
fn a_restarted_responder_keeps_its_series_and_a_silent_one_is_forgotten() {
    let port = free_port();
    let r1 = Responder::start(port, "r1");
    let _r2 = Responder::start(port, "r2");
    let s = Serve::start(port, &["--forget", "3s"]);
    let acks = "mcprobe_acks_total{target=\"default\",responder=\"r1\"";
    s.wait_until("r1's acks", |s| s.value(acks).is_some_and(|v| v > 0.0));
    r1.stop();
    let r1 = Responder::start(port, "r1");
    let restarts = "mcprobe_responder_restarts_total{target=\"default\",responder=\"r1\"";
    s.wait_until("r1's restart", |s| s.value(restarts).is_some_and(|v| v >= 1.0));
    assert_eq!(s.metrics().lines().filter(|l| l.starts_with(acks)).count(), 1, "one series for r1");
    r1.stop();
    // Silent longer than --forget: r1 leaves the exposition, r2 stays.
    s.wait_until("r1 to be forgotten", |s| s.value(acks).is_none());
    assert!(s.value("mcprobe_acks_total{target=\"default\",responder=\"r2\"").is_some());
    let (status, err) = s.terminate();
    assert!(status.success());
    for line in ["r1 (127.0.0.1, multicast) restarted", "r1 (127.0.0.1, multicast) went silent", "forgotten"] {
        assert!(err.contains(line), "no {line:?} in: {err}");
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for (shell, needle) in [("bash", "_mcprobe()"), ("zsh", "#compdef mcprobe"), ("fish", "complete -c mcprobe")] {
        let out = common::run({
            let mut c = bin();
            c.args(["completions", shell]);
            c
        });
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains(needle) && text.contains("serve"), "{shell}: {text:.200}");
    }
    let out = common::run({
        let mut c = bin();
        c.arg("man");
        c
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(".ie") || text.contains(".TH mcprobe 1"), "{text:.300}");
    assert!(text.contains("serve"));
    let out = common::run({
        let mut c = bin();
        c.args(["man", "serve"]);
        c
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(".TH mcprobe-serve 1") && text.contains("listen") && text.contains("forget"), "{text:.300}");
    // Its header carries the program's version, as the main page's does.
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains(&format!("\"mcprobe-serve {version} (")), "{text:.300}");
    let out = common::run({
        let mut c = bin();
        c.args(["man", "nosuch"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("man nosuch: no such subcommand"));
    let out = common::run({
        let mut c = bin();
        c.args(["completions", "tcsh"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn expected_hosts_get_a_verdict_and_paths_up() {
    let port = free_port();
    let _r = Responder::start(port, "r1");
    let s = Serve::start(port, &["--hosts", "127.0.0.1"]);
    let ok = "mcprobe_host_verdict{target=\"default\",host=\"127.0.0.1\",verdict=\"ok\"}";
    s.wait_until("host 127.0.0.1 ok", |s| s.value(ok) == Some(1.0));
    let m = s.metrics();
    for path in ["multicast", "unicast"] {
        let up = format!("mcprobe_host_path_up{{target=\"default\",host=\"127.0.0.1\",path=\"{path}\"}} 1");
        assert!(m.contains(&up), "{up} missing:\n{m}");
    }
    assert_eq!(
        s.value("mcprobe_host_verdict{target=\"default\",host=\"127.0.0.1\",verdict=\"unreachable\"}"),
        Some(0.0)
    );
    assert!(s
        .value("mcprobe_acks_total{target=\"default\",responder=\"r1\",address=\"127.0.0.1\",path=\"unicast\"}")
        .is_some_and(|v| v > 0.0));
}

#[test]
fn nobody_answering_is_said_once_a_stopped_responder_is_one_outage_and_the_responder_names_serve_once() {
    let port = free_port();
    let s = Serve::start(port, &[]);
    let windows = |s: &Serve| s.value("mcprobe_windows_total{target=\"default\"}").unwrap_or(0.0);
    s.wait_until("three windows without responders", |s| windows(s) >= 3.0);
    let mut r = Responder::start(port, "r1");
    let acks = "mcprobe_acks_total{target=\"default\",responder=\"r1\"";
    s.wait_until("r1's acks", |s| s.value(acks).is_some_and(|v| v > 0.0));
    let w = windows(&s);
    s.wait_until("three windows with r1", |s| windows(s) >= w + 3.0);
    r.signal(nix::sys::signal::Signal::SIGINT);
    r.wait_for("stopped:");
    let sessions: Vec<&String> = r.seen.iter().filter(|l| l.starts_with("session ")).collect();
    assert_eq!(sessions.len(), 1, "one line for serve, whatever its windows: {sessions:?}");
    let outages = "mcprobe_outages_total{target=\"default\",responder=\"r1\"";
    s.wait_until("r1's outage", |s| s.value(outages).is_some_and(|v| v >= 1.0));
    let w = windows(&s);
    s.wait_until("three silent windows", |s| windows(s) >= w + 3.0);
    assert_eq!(s.value(outages), Some(1.0), "one stopped responder, one outage");
    let (status, err) = s.terminate();
    assert!(status.success());
    let nobody = "target default: no responder answers the probes to";
    assert_eq!(err.matches(nobody).count(), 2, "at the start, and once r1 stopped: {err}");
    assert_eq!(err.matches("target default: 1 responder(s) answer again").count(), 1, "{err}");
}
