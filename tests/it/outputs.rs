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
    // The second run, without --raw: the first run's probes.csv goes, since that run wrote it.
    let second = run(probe_cmd(port, &args));
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
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

/// The user's own files in an --out folder are never touched: the folder is refused, and with
/// --force they stay beside the run's.
#[test]
fn a_folder_with_foreign_files_is_refused_unless_forced_and_they_stay() {
    let port = free_port();
    let _r = Responder::start(port, "mine");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summary.csv"), "my own spreadsheet\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me\n").unwrap();
    let out = dir.path().to_str().unwrap();
    let args = ["--count", "20", "--rate", "200", "--timeout", "300ms", "--out", out];
    let refused = run(probe_cmd(port, &args));
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no mcprobe run wrote") && stderr.contains("notes.txt") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("summary.csv")).unwrap(), "my own spreadsheet\n");
    // With --force: written beside notes.txt, which stays; the next run needs no --force.
    let forced = run(probe_cmd(port, &[&args[..], &["--force"]].concat()));
    assert_eq!(forced.status.code(), Some(0), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "keep me\n");
    assert!(dir.path().join("report.html").exists());
    assert_eq!(csv_rows(&dir.path().join("summary.csv"))[0]["responder"], "mine");
    let again = run(probe_cmd(port, &args));
    assert_eq!(again.status.code(), Some(2), "notes.txt is still not mcprobe's");
}

/// A run killed mid-way (kill -9) leaves the earlier run's files whole; the next run removes
/// what the killed one left.
#[test]
fn a_killed_run_leaves_the_earlier_runs_files_intact() {
    let port = free_port();
    let _r = Responder::start(port, "steady");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let first = run(probe_cmd(port, &["--count", "20", "--rate", "200", "--timeout", "300ms", "--out", out]));
    assert_eq!(first.status.code(), Some(0));
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    let mut c = probe_cmd(port, &["--count", "100000", "--rate", "1000", "--raw", "--out", out]);
    let mut child = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Killed once it is writing: its staging folder exists and holds rows.
    let staged = wait_for(PATIENCE, || {
        std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).any(|e| {
            e.file_name().to_string_lossy().starts_with(".mcprobe-staging-")
                && std::fs::read_dir(e.path()).is_ok_and(|d| d.count() > 0)
        })
    });
    assert!(staged, "the run never started writing");
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    for (name, bytes) in &before {
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), bytes, "{name} changed");
    }
    // The next run in the folder removes the leftovers, and needs no --force.
    let next = run(probe_cmd(port, &["--count", "20", "--rate", "200", "--timeout", "300ms", "--out", out]));
    assert_eq!(next.status.code(), Some(0), "{}", String::from_utf8_lossy(&next.stderr));
    let hidden: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".mcprobe-files")
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// A full disk: the write error is said on stderr within a second of the disk filling, writing
/// stops, the run goes on and prints its table, and it ends with exit code 2. Needs root for a
/// small tmpfs.
#[test]
fn a_full_disk_is_said_at_once_and_the_run_still_reports() {
    if !crate::common::root_or_skip_for("a small tmpfs (mount)") {
        return;
    }
    let port = free_port();
    let _r = Responder::start(port, "steady");
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        crate::common::skip_or_fail("cannot mount a tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let out = mnt.join("run");
    let mut c = bin();
    c.args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()]);
    c.args(["--rate", "1000", "--duration", "4s", "--timeout", "300ms", "--raw", "--out"]).arg(&out);
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send((std::time::Instant::now(), line));
        }
    });
    // When the disk became full, as the test sees it (free space below one 4 KiB page).
    let mut full_at = None;
    let mut said_at = None;
    let start = std::time::Instant::now();
    while start.elapsed() < PATIENCE && said_at.is_none() {
        let st = nix::sys::statvfs::statvfs(&mnt).unwrap();
        if full_at.is_none() && st.blocks_available() == 0 {
            full_at = Some(std::time::Instant::now());
        }
        while let Ok((t, line)) = rx.try_recv() {
            if line.contains("No space left on device") {
                said_at = Some(t);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let said_at = said_at.expect("the write error was said on stderr");
    let full_at = full_at.unwrap_or(said_at);
    assert!(
        said_at.saturating_duration_since(full_at) < std::time::Duration::from_secs(1),
        "said {:?} after the disk filled",
        said_at - full_at
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("steady") && stdout.contains("1 responder answered"), "the table still comes: {stdout}");
    // Nothing half-written stays: the staging folder is gone.
    let left: Vec<String> = std::fs::read_dir(mnt.join("run"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| !n.starts_with(".mcprobe-staging")), "{left:?}");
}
