//! RTT on a clock that does not step (issue 24 item 8), with the real binary under libfaketime:
//! the prober's wall clock steps 30 s back (or forward) halfway through a run. libfaketime moves
//! the process's CLOCK_REALTIME only, not the kernel's receive stamps (which step too when the
//! real clock does): the prober must see that its clock and the stamps disagree and measure on
//! its own clock. Before, a step back made every later ack 30 s late, a step forward 0 µs on time.
//! Skips, with one line, where libfaketime is not installed (Debian: `apt-get install faketime`).

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn stepped_run(port: u16, step: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faketime");
    std::fs::write(&file, "+0\n").unwrap();
    let mut c = probe_cmd(port, &["--count", "300", "--rate", "100", "--json"]);
    c.env("LD_PRELOAD", LIB)
        .env("FAKETIME_TIMESTAMP_FILE", &file)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let stepper = {
        let (file, step) = (file.clone(), step.to_string());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::write(&file, format!("{step}\n")).unwrap();
        })
    };
    let out = run(c);
    stepper.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_step_of_the_process_clock_changes_no_rtt() {
    if !Path::new(LIB).exists() {
        common::skip_or_fail(&format!("{LIB} is missing (Debian package faketime; sudo scripts/test.sh installs it)"));
        return;
    }
    let port = free_port();
    let _r = Responder::start(port, "r1");
    for step in ["-30s", "+30s"] {
        let json = stepped_run(port, step);
        let r = &json["responders"][0];
        let (received, late) = (r["received"].as_u64().unwrap(), r["late"].as_u64().unwrap());
        let (min, max) = (r["rtt_min_us"].as_f64().unwrap(), r["rtt_max_us"].as_f64().unwrap());
        eprintln!("step {step}: {received} of 300 on time, {late} late, RTT {min}..{max} µs");
        assert_eq!((received, late), (300, 0), "step {step}: {r}");
        assert!(min > 1.0 && max < 500_000.0, "step {step}: RTT {min}..{max} µs");
        assert_eq!(r["outages"].as_u64(), Some(0), "step {step}: {r}");
    }
}
