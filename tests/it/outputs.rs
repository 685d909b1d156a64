//! What a user sees when things go wrong in ordinary ways: an `--out` folder used twice, a run
//! nobody answers. Real binary, loopback only.

use crate::common;

use common::*;

fn ids(path: &std::path::Path) -> Vec<String> {
    csv_rows(path).into_iter().map(|r| r["run_id"].clone()).collect()
}

#[test]
fn a_reused_out_folder_holds_only_the_last_runs_files() {
    let port = free_port();
    let _r = Responder::start(port, "twice");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = ["--count", "20", "--rate", "200", "--timeout", "300ms", "--out", out];
    let first = run(probe_cmd(port, &[&args[..], &["--raw"]].concat()));
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let raw_ids = ids(&dir.path().join("probes.csv"));
    assert_eq!(raw_ids.len(), 20);
    // The second run, without --raw and not quiet: it says what it replaced.
    let mut c = bin();
    c.args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()]).args(args);
    let second = run(c);
    assert_eq!(second.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("replacing the files of an earlier run") && stderr.contains("probes.csv"), "{stderr}");
    assert!(!dir.path().join("probes.csv").exists(), "the first run's probes.csv must not stay");
    // Every file of the folder carries the second run's id, and it is not the first run's.
    let run_id = ids(&dir.path().join("summary.csv"))[0].clone();
    assert_eq!(run_id.len(), 16);
    assert_ne!(run_id, raw_ids[0]);
    for name in ["summary.csv", "intervals.csv"] {
        assert!(ids(&dir.path().join(name)).iter().all(|id| *id == run_id), "{name}");
    }
    let outages = std::fs::read_to_string(dir.path().join("outages.csv")).unwrap();
    assert!(outages.starts_with("run_id,"), "{outages}");
}

#[test]
fn a_run_nobody_answers_exits_1_with_what_to_check() {
    let port = free_port();
    let out = run(probe_cmd(port, &["--count", "5", "--rate", "100", "--timeout", "200ms"]));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 responders answered"), "{stdout}");
    let hint = stdout.lines().find(|l| l.starts_with("no responder answered")).expect("a hint line");
    for what in [&format!("port {port}"), "239.255.42.42", "--iface", "firewall", "--ttl 1", "--key"] {
        assert!(hint.contains(what), "{what} missing from: {hint}");
    }
    // A responder on another port is not found either: same exit code.
    let _r = Responder::start(free_port(), "elsewhere");
    assert_eq!(run(probe_cmd(port, &["--count", "5", "--rate", "100", "--timeout", "200ms"])).status.code(), Some(1));
}

#[test]
fn a_wrong_key_is_named_a_key_mismatch_with_the_fix() {
    let port = free_port();
    let _r = Responder::start_with(port, "keyed", &["--key", "right"]);
    let out = run(probe_cmd(port, &["--key", "wrong", "--count", "5", "--rate", "100", "--timeout", "200ms"]));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The responder's notice explains the silence: no checklist of what else could be wrong.
    let line = stdout.lines().find(|l| l.starts_with("key mismatch with 127.0.0.1: ")).expect("the mismatch named");
    assert!(line.contains("has another key") && line.contains("the same --key"), "{stdout}");
    assert!(!stdout.contains("no responder answered: check"), "{stdout}");
}

#[test]
fn an_out_path_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = run(probe_cmd(free_port(), &["--count", "1", "--out", file.path().to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a file, not a folder"));
}
