//! `max-rate` and `mesh` in a LAN of network namespaces built by scripts/lab.sh. Needs root (CI
//! runs as root); skips with a printed reason otherwise. Bounded: short trials, modest rates,
//! every child killed on drop.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

/// The lab tests take turns: rates measured on two vCPUs should not depend on another lab's
/// traffic.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn prefix(base: &str) -> &'static str {
    Box::leak(format!("{base}{}", std::process::id() % 100_000).into_boxed_str())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_in(prefix: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/lab.sh"))
        .env("LAB_PREFIX", prefix)
        .args(args)
        .output()
        .expect("scripts/lab.sh runs");
    assert!(out.status.success(), "lab.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the lab even when an assertion fails.
struct Lab(&'static str);
impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", self.0).arg("down").status();
    }
}

fn fresh_lab(base: &str, hosts: u32) -> Option<(Lab, std::sync::MutexGuard<'static, ()>, &'static str)> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the namespace lab needs root (CI runs this as root)");
        return None;
    }
    let turn = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let p = prefix(base);
    lab_in(p, &["require"]);
    let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", p).arg("down").status();
    lab_in(p, &["up", &hosts.to_string()]);
    Some((Lab(p), turn, p))
}

/// `mcprobe` inside host `h`'s namespace.
fn in_host(prefix: &str, h: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{prefix}-{h}"), env!("CARGO_BIN_EXE_mcprobe")]);
    c
}

/// Loads an nftables ruleset into the bridge namespace (several lines: this nft rejects one-line
/// tables).
fn nft_in_bridge(prefix: &str, ruleset: &str) {
    let mut c = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-br"), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs");
    c.stdin.take().unwrap().write_all(ruleset.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "nft -f failed for:\n{ruleset}");
}

fn by(rows: Vec<HashMap<String, String>>, col: &str) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r[col].clone(), r)).collect()
}

/// h3's host takes in at most 2000 probes/s (an nftables `limit` on what its bridge port
/// delivers to it); h2 and h4 are clean. The search must name h3 the weakest, near 2000/s, and
/// say its failing probes were lost forward.
#[test]
fn a_host_limited_responder_is_named_the_weakest() {
    let Some((_lab, _turn, p)) = fresh_lab("mr", 4) else { return };
    const CAP: f64 = 2000.0;
    nft_in_bridge(
        p,
        "table netdev mr_cap {
    chain cap {
        type filter hook egress device \"p3\" priority 0; policy accept;
        meta protocol ip udp dport 24242 limit rate over 2000/second burst 20 packets drop
    }
}
",
    );
    let _responders: Vec<Responder> = ["h2", "h3", "h4"]
        .iter()
        .map(|h| {
            let mut c = in_host(p, h);
            c.args(["respond", "--iface", "veth0", "--port", "24242", "--name", h, "--rate-limit", "0"]);
            Responder::spawn(c)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut c = in_host(p, "h1");
    c.args(["max-rate", "--iface", "veth0", "--port", "24242", "--trial", "1s", "--start", "1000", "--max", "6000"])
        .args(["--timeout", "300ms", "--min-rate", "3000", "--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Below --min-rate: exit 1, and the table says who.
    assert_eq!(out.status.code(), Some(1), "h3 is below --min-rate 3000");
    assert!(stdout.contains("weakest: h3 (10.77.0.3)"), "{stdout}");

    let results = by(csv_rows(&dir.path().join("maxrate.csv")), "responder");
    let h3 = &results["h3"];
    assert_eq!(h3["weakest"], "true");
    assert_eq!(h3["confirmed"], "true");
    let rate = num(h3, "max_rate");
    assert!((CAP * 0.85..=CAP * 1.1).contains(&rate), "h3's rate {rate} is not near its cap {CAP}");
    for h in ["h2", "h4"] {
        let r = num(&results[h], "max_rate");
        assert!(r >= 1.5 * CAP, "{h} is clean and must reach well above h3's cap: {r}");
    }

    // trials.csv: one row per trial and responder; h3's first failure is forward loss.
    let trials = csv_rows(&dir.path().join("trials.csv"));
    let n_trials = num(&results["h3"], "trials") as usize;
    assert_eq!(trials.len(), 3 * n_trials, "one row per trial and responder");
    let first_fail = trials.iter().find(|r| r["responder"] == "h3" && r["pass"] == "false").expect("h3 failed once");
    assert_eq!(first_fail["cause"], "forward", "{first_fail:?}");
    assert!(num(first_fail, "forward_lost") > 0.0 && num(first_fail, "return_lost") == 0.0, "{first_fail:?}");
    assert!(stdout.contains("probes did not reach the responder"), "{stdout}");
}
