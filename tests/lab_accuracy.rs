//! Accuracy against known impairments, in a LAN of network namespaces built by scripts/lab.sh.
//! Needs root (CI runs as root); skips with a printed reason otherwise.
//!
//! h1 probes; h2's acks are delayed 10 ms; h3 loses 5 % of what it sends (acks: return loss);
//! h4 loses 5 % of what it receives (probes: forward loss); h5 is clean.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const PREFIX: &str = "mcacc";
const PROBES: u64 = 2000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab(args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/lab.sh"))
        .env("LAB_PREFIX", PREFIX)
        .args(args)
        .output()
        .expect("scripts/lab.sh runs");
    assert!(out.status.success(), "lab.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the lab even when an assertion fails.
struct Lab;
impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", PREFIX).arg("down").status();
    }
}

/// `mcprobe` inside host `h`'s namespace.
fn in_host(h: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{PREFIX}-{h}"), env!("CARGO_BIN_EXE_mcprobe")]);
    c
}

fn probe(count: u64, dir: &Path) -> HashMap<String, HashMap<String, String>> {
    let mut c = in_host("h1");
    c.args(["probe", "--iface", "veth0", "--port", "24242", "--rate", "200", "--timeout", "1s", "--quiet"]);
    c.args(["--count", &count.to_string(), "--out", dir.to_str().unwrap()]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    csv_rows(&dir.join("summary.csv")).into_iter().map(|r| (r["responder"].clone(), r)).collect()
}

/// `dropped=N seen=M` from `lab.sh counters`.
fn counters(host: &str, dir: &str) -> (f64, f64) {
    let line = lab(&["counters", host, dir]);
    let field = |k: &str| -> f64 {
        let v = line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).expect(k);
        v.parse().unwrap()
    };
    (field("dropped"), field("seen"))
}

/// The 99 % binomial interval around the realized drop count, as (low, high).
fn interval99(dropped: f64, seen: f64) -> (f64, f64) {
    let p = dropped / seen;
    let half = 2.576 * (seen * p * (1.0 - p)).sqrt();
    (dropped - half, dropped + half)
}

#[test]
fn known_impairments_are_measured() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the namespace lab needs root (CI runs this as root)");
        return;
    }
    lab(&["require"]);
    let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", PREFIX).arg("down").status();
    lab(&["up", "5"]);
    let _lab = Lab;
    let _responders: Vec<Responder> = ["h2", "h3", "h4", "h5"]
        .iter()
        .map(|h| {
            let mut c = in_host(h);
            c.args(["respond", "--iface", "veth0", "--port", "24242", "--name", h]);
            Responder::spawn(c)
        })
        .collect();

    // The delay emulator's own cost: the same path with a 0 ms delay, against the clean host.
    lab(&["impair", "h2", "egress", "--delay", "0"]);
    let dir0 = tempfile::tempdir().unwrap();
    let base = probe(1000, dir0.path());
    let p50 = |rows: &HashMap<String, HashMap<String, String>>, h: &str| num(&rows[h], "rtt_p50_us");
    let cost_us = p50(&base, "h2") - p50(&base, "h5");
    println!("emulator cost (p50, one pass): {cost_us:.1} µs");

    lab(&["impair", "h2", "egress", "--delay", "10"]);
    lab(&["impair", "h3", "egress", "--loss", "5"]);
    lab(&["impair", "h4", "ingress", "--loss", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let rows = probe(PROBES, dir.path());
    let (h3_dropped, h3_seen) = counters("h3", "egress");
    let (h4_dropped, h4_seen) = counters("h4", "ingress");

    // h2: 10 ms more than the clean host, within ±3 %, once the emulator's cost is removed.
    let extra_ms = (p50(&rows, "h2") - p50(&rows, "h5") - cost_us) / 1000.0;
    println!("h2 p50 {} µs, h5 p50 {} µs, corrected extra {extra_ms:.3} ms", p50(&rows, "h2"), p50(&rows, "h5"));
    assert!((extra_ms - 10.0).abs() <= 0.3, "h2 extra delay {extra_ms:.3} ms is not 10 ms ± 3 %");
    assert_eq!(num(&rows["h2"], "lost"), 0.0);

    // h3: acks lost on the way back.
    let h3 = &rows["h3"];
    let (lo, hi) = interval99(h3_dropped, h3_seen);
    println!(
        "h3 lost {} (fwd {} ret {} unknown {}); emulator dropped {h3_dropped} of {h3_seen}",
        h3["lost"], h3["forward_lost"], h3["return_lost"], h3["unknown_lost"]
    );
    assert!((lo..=hi).contains(&num(h3, "lost")), "h3 lost {} outside [{lo:.1}, {hi:.1}]", h3["lost"]);
    assert_eq!(num(h3, "forward_lost"), 0.0);
    assert_eq!(num(h3, "return_lost") + num(h3, "unknown_lost"), num(h3, "lost"));
    assert!(num(h3, "return_lost") >= num(h3, "lost") - 5.0, "return loss must carry h3's loss: {h3:?}");

    // h4: probes lost on the way out.
    let h4 = &rows["h4"];
    let (lo, hi) = interval99(h4_dropped, h4_seen);
    println!(
        "h4 lost {} (fwd {} ret {} unknown {}); emulator dropped {h4_dropped} of {h4_seen}",
        h4["lost"], h4["forward_lost"], h4["return_lost"], h4["unknown_lost"]
    );
    assert!((lo..=hi).contains(&num(h4, "lost")), "h4 lost {} outside [{lo:.1}, {hi:.1}]", h4["lost"]);
    assert_eq!(num(h4, "return_lost"), 0.0);
    assert!(num(h4, "forward_lost") >= num(h4, "lost") - 5.0, "forward loss must carry h4's loss: {h4:?}");

    // The clean host loses nothing.
    assert_eq!(num(&rows["h5"], "lost"), 0.0);
    assert_eq!(num(&rows["h5"], "sent"), PROBES as f64);
}
