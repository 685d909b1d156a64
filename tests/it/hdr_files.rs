//! The HdrHistogram files (`rtt.hlog`, `.hgrm`) against an independent implementation: the
//! `hdrhistogram` package from PyPI decodes them in tests/py/check_hdr.py, which compares counts
//! and percentiles with summary.csv and intervals.csv. Skips with a reason when Python or the
//! package is missing (CI installs it).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

fn python_with_hdrh() -> bool {
    let ok = Command::new("python3").args(["-c", "import hdrh"]).output().is_ok_and(|o| o.status.success());
    ok || skip_or_fail("python3 with the hdrhistogram package (import hdrh) is not installed (pip install hdrhistogram; sudo scripts/test.sh installs it)")
}

fn check(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_hdr.py");
    let out = Command::new("python3").arg(script).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("ok: "), "{text}");
}

#[test]
fn demo_histograms_match_the_summary_in_hdrhistograms_python_implementation() {
    if !python_with_hdrh() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = bin();
        c.args(["demo", "--responders", "3", "--duration", "3s", "--rate", "300", "--quiet", "--out"]).arg(dir.path());
        c
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hgrm = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".multicast.hgrm"));
    assert_eq!(hgrm.count(), 3, "one .hgrm per responder");
    check(dir.path());
}

#[test]
fn unicast_paths_get_their_own_tags_and_files() {
    if !python_with_hdrh() {
        return;
    }
    let port = free_port();
    let _r = Responder::start(port, "uni");
    let dir = tempfile::tempdir().unwrap();
    let out = run(probe_cmd(
        port,
        &[
            "--hosts",
            "127.0.0.1",
            "--count",
            "400",
            "--rate",
            "200",
            "--timeout",
            "300ms",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(dir.path().join("rtt.hlog")).unwrap();
    let tags = |path: &str| log.lines().filter(|l| l.starts_with("Tag=uni.") && l.contains(path)).count();
    assert!(tags(".multicast,") >= 2 && tags(".unicast,") >= 2, "one line per interval on each path:\n{log}");
    check(dir.path());
}
