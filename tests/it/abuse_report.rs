//! Readers never hang (issue 24, item 7): `mcprobe report` checks every number it reads from a
//! folder and refuses one no run writes (inf, NaN, 1e308, a negative time) with an error naming
//! the file, the row and the column, exit 2, instead of drawing charts over it (an `inf` in
//! intervals.csv once kept it at 100 % CPU for ever); SIGTERM and a first Ctrl-C stop it at once.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Waits at most `limit` for `child`; kills it and fails if it is still running.
fn bounded(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("report still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report(dir: &Path, to: &Path) -> Child {
    let mut c = bin();
    c.arg("report").arg(dir).arg("--out").arg(to);
    c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A real folder: a short run against one loopback responder, with an outage's worth of
/// intervals.
fn folder(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut c =
        probe_cmd(port, &["--count", "300", "--rate", "200", "--report-interval", "500ms", "--timeout", "300ms"]);
    c.arg("--out").arg(dir.path());
    let out = run(c);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// Sets `column` of the first data row of `file` (a CSV) to `value`.
fn set_cell(dir: &Path, file: &str, column: &str, value: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let i = lines[0].split(',').position(|c| c == column).unwrap_or_else(|| panic!("{file} has no {column}"));
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    cells[i] = value.to_string();
    lines[1] = cells.join(",");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn report_refuses_numbers_no_run_writes_and_never_hangs() {
    let port = free_port();
    let _r = Responder::start(port, "r1");
    let good = folder(port);
    let to = tempfile::tempdir().unwrap();
    let (code, err) = bounded(report(good.path(), to.path()), PATIENCE);
    assert_eq!(code, Some(0), "the folder as written: {err}");

    let cases = [
        ("intervals.csv", "rtt_max_us", "inf"),
        ("intervals.csv", "rtt_p50_us", "NaN"),
        ("intervals.csv", "interval_start_s", "1e308"),
        ("summary.csv", "rtt_p99_us", "1e308"),
        ("summary.csv", "loss_pct", "-5"),
        ("summary.csv", "jitter_us", "-inf"),
        ("summary.csv", "sent", "-1"),
    ];
    for (file, column, value) in cases {
        let bad = copy(good.path());
        set_cell(bad.path(), file, column, value);
        let (code, err) = bounded(report(bad.path(), to.path()), PATIENCE);
        assert_eq!(code, Some(2), "{file} {column}={value}: {err}");
        assert!(err.contains(file) && err.contains("row 2") && err.contains(&format!("column {column}")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // An .hgrm row and meta.json.
    let bad = copy(good.path());
    let hgrm = std::fs::read_dir(bad.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hgrm"))
        .unwrap();
    let text = std::fs::read_to_string(&hgrm).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let row = lines.iter().position(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).unwrap();
    let replaced = format!("inf {}", lines[row].split_whitespace().skip(1).collect::<Vec<_>>().join(" "));
    lines[row] = &replaced;
    std::fs::write(&hgrm, lines.join("\n")).unwrap();
    let (code, err) = bounded(report(bad.path(), to.path()), PATIENCE);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(".hgrm line") && err.contains("column Value"), "{err}");

    let bad = copy(good.path());
    let path = bad.path().join("meta.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["duration_s"] = serde_json::json!(1e308);
    std::fs::write(&path, m.to_string()).unwrap();
    let (code, err) = bounded(report(bad.path(), to.path()), PATIENCE);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("meta.json, field duration_s: 1e308"), "{err}");
}

#[test]
fn sigterm_and_a_first_ctrl_c_stop_report_at_once() {
    use nix::sys::signal::Signal;
    let port = free_port();
    let _r = Responder::start(port, "r1");
    let good = folder(port);
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // intervals.csv a pipe nobody writes to: the reader waits on it for ever.
        let busy = copy(good.path());
        std::fs::remove_file(busy.path().join("intervals.csv")).unwrap();
        let made = std::process::Command::new("mkfifo").arg(busy.path().join("intervals.csv")).status().unwrap();
        assert!(made.success());
        let to = tempfile::tempdir().unwrap();
        let child = report(busy.path(), to.path());
        std::thread::sleep(Duration::from_millis(500));
        signal(&child, sig);
        let start = Instant::now();
        let (code, err) = bounded(child, Duration::from_secs(5));
        eprintln!("{sig}: report ended in {:?} with {code:?}", start.elapsed());
        assert!(start.elapsed() < Duration::from_secs(1), "{sig}: {:?}", start.elapsed());
        assert_ne!(code, Some(0), "{sig}: {err}");
        assert!(!err.contains("collecting"), "{sig}: {err}");
        assert!(!to.path().join("report.html").exists());
    }
}
