//! `probe --realtime` on loopback: the prober's threads under SCHED_FIFO when permitted (root),
//! and a one-line notice and an ordinary run when not (the same run as `nobody`, via setpriv).

use crate::common;

use std::process::{Command, Stdio};

use common::*;

/// The scheduling policy of each of a process's threads (field 41 of /proc/PID/task/TID/stat).
fn thread_policies(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        .filter_map(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(38)?.parse().ok()))
        .collect()
}

#[test]
fn realtime_runs_under_sched_fifo_when_permitted_and_says_so_when_not() {
    if !common::root_or_skip_for("SCHED_FIFO (--realtime)") {
        return;
    }
    let port = free_port();
    let _r = Responder::start(port, "r1");
    // Permitted: every thread of the prober runs under SCHED_FIFO (1), and nothing is said.
    let mut child = probe_cmd(port, &["--count", "400", "--interval", "2ms", "--timeout", "300ms", "--realtime"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    wait_for(PATIENCE, || {
        seen = thread_policies(child.id());
        seen.iter().filter(|&&p| p == 1).count() >= 3 || child.try_wait().ok().flatten().is_some()
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The main thread, the sender and the ack receiver (and the ack tap) at least; a thread
    // started before the command ran (the signal handler's) keeps the normal policy.
    assert!(seen.iter().filter(|&&p| p == 1).count() >= 3, "thread policies {seen:?}");
    assert!(!stderr.contains("--realtime"), "{stderr}");

    // Not permitted: one notice, then the run as usual.
    if Command::new("setpriv").arg("--version").output().is_err() {
        common::skip_or_fail("the unprivileged half: setpriv is not installed (Debian package util-linux)");
        return;
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", env!("CARGO_BIN_EXE_mcprobe")]);
    c.args(["probe", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--quiet"]);
    c.args(["--count", "20", "--interval", "5ms", "--timeout", "300ms", "--realtime"]);
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let notices: Vec<&str> = stderr.lines().filter(|l| l.contains("--realtime")).collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(notices[0].starts_with("notice: --realtime: cannot use SCHED_FIFO"), "{}", notices[0]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 responder answered (1 without loss)"));
}
