//! `max-rate` and `mesh` on loopback (no root): a responder's own rate limit as the host limit,
//! Ctrl-C keeping the trials run so far, and bad input. Only 127.0.0.1 and the test group on it.

use crate::common;

use common::*;

fn max_rate_cmd(port: u16, extra: &[&str]) -> std::process::Command {
    let mut c = bin();
    c.args(["max-rate", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()]);
    c.args(extra);
    c
}

/// A responder limited to 2000 probes/s from one prober (its --rate-limit, bursts of 200) beside
/// an unlimited one: the limited one is the weakest, near its limit, and the cause is named.
#[test]
fn a_rate_limited_responder_is_the_weakest() {
    let port = free_port();
    let _fast = Responder::start_with(port, "fast", &["--rate-limit", "0"]);
    let _slow = Responder::start_with(port, "slow", &["--rate-limit", "2000"]);
    let dir = tempfile::tempdir().unwrap();
    let out = run(max_rate_cmd(
        port,
        &[
            "--trial",
            "1s",
            "--start",
            "500",
            "--max",
            "4000",
            "--timeout",
            "300ms",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("weakest: slow"), "{stdout}");
    assert!(stdout.contains("the responder's --rate-limit"), "{stdout}");
    let results: Vec<_> = csv_rows(&dir.path().join("maxrate.csv"));
    let slow = results.iter().find(|r| r["responder"] == "slow").unwrap();
    let fast = results.iter().find(|r| r["responder"] == "fast").unwrap();
    // The limiter passes 2000/s plus its burst of 200 within a 1 s trial.
    let rate = num(slow, "max_rate");
    // Under a loaded machine an unrelated drop can fail a lower step: the lower bound allows it.
    assert!((1500.0..=2400.0).contains(&rate), "slow: {rate}\n{stdout}");
    assert_eq!(slow["weakest"], "true");
    assert!(num(fast, "max_rate") > rate, "fast {} must beat slow {rate}\n{stdout}", fast["max_rate"]);
    let trials = csv_rows(&dir.path().join("trials.csv"));
    assert!(trials.iter().any(|r| r["responder"] == "slow" && r["cause"] == "rate-limited"), "{trials:?}");
    // Every trial row carries the search's run id.
    assert!(trials.iter().all(|r| r["run_id"] == slow["run_id"]));
}

/// Ctrl-C during a search: the running trial is dropped, the finished ones are reported and
/// written.
#[test]
fn ctrl_c_keeps_the_trials_run_so_far() {
    let port = free_port();
    let _r = Responder::start_with(port, "r1", &["--rate-limit", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = max_rate_cmd(port, &["--trial", "1s", "--start", "200", "--max", "3200", "--timeout", "200ms"]);
    c.args(["--out", dir.path().to_str().unwrap()]);
    let mut child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let lines = stderr_lines(&mut child);
    loop {
        let line = lines.recv_timeout(PATIENCE).expect("a trial line");
        if line.starts_with("trial 1 ") {
            break;
        }
    }
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let trials = csv_rows(&dir.path().join("trials.csv"));
    assert!(!trials.is_empty() && trials.iter().all(|r| r["pass"] == "true"), "{trials:?}");
    let results = csv_rows(&dir.path().join("maxrate.csv"));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["complete"], "false");
}

/// A search that its last allowed trial settles is complete: "stopped at --max-trials" only when
/// a result is left unconfirmed.
#[test]
fn the_last_allowed_trial_can_complete_the_search() {
    let port = free_port();
    let _r = Responder::start_with(port, "r1", &["--rate-limit", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--trial", "1s", "--start", "100", "--max", "400", "--max-trials", "4", "--timeout", "200ms"];
    let mut c = max_rate_cmd(port, &args);
    c.args(["--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = csv_rows(&dir.path().join("maxrate.csv"));
    assert_eq!(results.len(), 1, "{stdout}");
    let confirmed = results[0]["confirmed"] == "true";
    // On a quiet loopback 100 and 400/s pass and 400/s is confirmed within the 4 trials; a
    // trial failed by this machine's load leaves it unconfirmed, and then "stopped" is right.
    assert_eq!(results[0]["complete"] == "true", confirmed, "{results:?}\n{stdout}");
    assert_eq!(stdout.contains("stopped at --max-trials"), !confirmed, "{stdout}");
}

#[test]
fn bad_input_names_the_flag() {
    fails_with(
        &["max-rate", "--iface", "127.0.0.1", "--start", "5000", "--max", "1000"],
        &["--start 5000", "--max 1000"],
    );
    fails_with(&["max-rate", "--trial", "0"], &["--trial", "greater than 0"]);
    fails_with(&["max-rate", "--max-loss", "150"], &["--max-loss", "'150'"]);
    // Neither address is this host's (no interface has 127.0.0.2 or .3): refused before anything
    // is sent. Should that check ever break, the run it turns into still stays on loopback.
    fails_with(&["mesh", "--iface", "127.0.0.1", "--hosts", "127.0.0.2,127.0.0.3"], &["--hosts", "none of them"]);
    fails_with(&["mesh", "--iface", "127.0.0.1", "--hosts", "127.0.0.1"], &["only this host"]);
    fails_with(&["mesh", "--iface", "127.0.0.1"], &["--hosts"]);
    fails_with(&["mesh", "--iface", "127.0.0.1", "--hosts", "127.0.0.1,not a host name"], &["--hosts not a host name"]);
}

/// A listed peer that this host's kernel delivers to itself (127.0.0.2 on lo): its own responder
/// answers the unicast probes to it, and that is no peer answering.
#[test]
fn a_peer_address_of_this_host_is_no_peer_that_answered() {
    let port = free_port().to_string();
    let mut c = bin();
    c.args(["mesh", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port, "--hosts", "127.0.0.1,127.0.0.2"]);
    c.args(["--duration", "2s", "--rate", "10", "--linger", "100ms"]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.starts_with("127.0.0.2 ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.ends_with("unreachable"), "{stdout}");
    assert!(stdout.contains("127.0.0.2: this is the prober's own address"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}
