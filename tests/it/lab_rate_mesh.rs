//! `max-rate` and `mesh` in a LAN of network namespaces built by scripts/lab.sh. Needs root (CI
//! runs as root); skips with a printed reason otherwise. Bounded: short trials, modest rates,
//! every child killed on drop.

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::lab::*;
use common::*;

/// `mcprobe` inside host `h`'s namespace.
fn in_host(prefix: &str, h: &str) -> Command {
    in_lab_host(prefix, h)
}

/// Loads an nftables ruleset into the bridge namespace.
fn nft_in_bridge(prefix: &str, ruleset: &str) {
    nft_in(prefix, "br", ruleset);
}

fn by(rows: Vec<HashMap<String, String>>, col: &str) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r[col].clone(), r)).collect()
}

/// h3's host takes in at most 1000 probes/s (an nftables `limit` on what its bridge port
/// delivers to it); h2 and h4 are clean. The search must name h3 the weakest, near 1000/s, and
/// say its failing probes were lost forward.
///
/// The cap sits well below what this host's sender does on a quiet machine (20 000/s and
/// more), but a loaded CI machine once sent only 2 045 of 4 000/s asked (and 792 of 1 000):
/// there the search cannot confirm h3's result at a rate it could not send, and says so. Then
/// the test checks what the tool said is true (h3 weakest, never above its cap, its result
/// marked unconfirmed and why) and prints that the confirmation was not testable in this run.
#[test]
fn a_host_limited_responder_is_named_the_weakest() {
    let Some((_lab, _turn, p)) = fresh_lab("mr", 4) else { return };
    const CAP: f64 = 1000.0;
    nft_in_bridge(
        p,
        "table netdev mr_cap {
    chain cap {
        type filter hook egress device \"p3\" priority 0; policy accept;
        meta protocol ip udp dport 24242 limit rate over 1000/second burst 20 packets drop
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
    c.args(["max-rate", "--iface", "veth0", "--port", "24242", "--trial", "1s", "--start", "500", "--max", "4000"])
        .args(["--timeout", "300ms", "--min-rate", "1500", "--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Below --min-rate: exit 1, and the table says who.
    assert_eq!(out.status.code(), Some(1), "h3 is below --min-rate 1500");
    assert!(stdout.contains("weakest: h3 (10.77.0.3)"), "{stdout}");
    assert!(!stdout.contains("stopped at --max-trials"), "the search must end by itself: {stdout}");

    let results = by(csv_rows(&dir.path().join("maxrate.csv")), "responder");
    let h3 = &results["h3"];
    assert_eq!(h3["weakest"], "true");
    let rate = num(h3, "max_rate");
    assert!(rate <= CAP * 1.1, "h3's rate {rate} is above its cap {CAP}");
    let sender_limited = stdout.contains("this host could not send");
    if h3["confirmed"] == "true" {
        assert!(rate >= CAP * 0.85, "h3's rate {rate} is not near its cap {CAP}");
    } else {
        // Only a sender that fell behind leaves a result unconfirmed, and the summary says so.
        assert!(
            sender_limited && stdout.contains("unconfirmed: settling them needs a rate this host could not send"),
            "{stdout}"
        );
        println!("note: this machine's sender fell behind: h3's confirmation was not testable in this run");
    }
    for h in ["h2", "h4"] {
        let r = num(&results[h], "max_rate");
        if sender_limited {
            assert!(r > rate, "{h} is clean and must reach above h3's {rate}: {r}");
        } else {
            assert!(r >= 1.5 * CAP, "{h} is clean and must reach well above h3's cap: {r}");
        }
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

/// Four hosts run the same `mesh` command, started a little apart. h2's link loses 5 % of what
/// it receives (nft on its bridge port); h4's multicast is blocked both ways on its bridge port.
/// The list also names 10.77.0.9, which no host has: a peer that never answers. Each host's row
/// must show loss on exactly the affected peers, with the right verdicts.
#[test]
fn mesh_rows_show_the_impaired_link_and_the_blocked_host() {
    let Some((_lab, _turn, p)) = fresh_lab("mm", 4) else { return };
    lab_in(p, &["impair", "h2", "ingress", "--loss", "5"]);
    nft_in_bridge(
        p,
        "table netdev mm_block {
    chain from_h4 {
        type filter hook ingress device \"p4\" priority 0; policy accept;
        ip daddr 224.0.0.0/4 drop
    }
    chain to_h4 {
        type filter hook egress device \"p4\" priority 0; policy accept;
        ip daddr 224.0.0.0/4 drop
    }
}
",
    );
    let hosts = "10.77.0.1,10.77.0.2,10.77.0.3,10.77.0.4,10.77.0.9";
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut children = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let h = format!("h{}", i + 1);
        let mut c = in_host(p, &h);
        c.args(["mesh", "--iface", "veth0", "--port", "24242", "--hosts", hosts, "--name", &h])
            .args(["--rate", "100", "--duration", "6s", "--linger", "3s", "--timeout", "1s", "--quiet"])
            .args(["--out", dir.path().to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(KillOnDrop(Some(c.spawn().expect("mesh starts"))));
        // Hosts start at different times, as they would by hand; this places the starts, it
        // asserts nothing.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let mut rows: HashMap<String, HashMap<String, HashMap<String, String>>> = HashMap::new();
    for (i, child) in children.iter_mut().enumerate() {
        let h = format!("h{}", i + 1);
        let out = child.0.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("--- {h} (exit {:?})\n{stdout}{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        // Every host has a peer that is not ok; those that see a peer multicast-lost say so (3).
        let expected = if h == "h2" { 1 } else { 3 };
        assert_eq!(out.status.code(), Some(expected), "{h}");
        // An ordinary probe folder, plus mesh.csv.
        let dir = dirs[i].path();
        let summary = csv_rows(&dir.join("summary.csv"));
        // The host's own responder answers through multicast loop: the matrix's diagonal.
        assert!(summary.iter().any(|r| r["responder"] == h && r["path"] == "multicast"), "{h}: {summary:?}");
        assert!(dir.join("intervals.csv").exists() && dir.join("outages.csv").exists());
        let mesh = csv_rows(&dir.join("mesh.csv"));
        assert_eq!(mesh.len(), 4, "{h}: one row per peer: {mesh:?}");
        assert!(mesh.iter().all(|r| r["host"] == h));
        // The peer that never answered: a finding with no figures.
        let ghost = mesh.iter().find(|r| r["peer"] == "10.77.0.9").expect("a row for the silent peer");
        assert_eq!(ghost["verdict"], "unreachable", "{h}: {ghost:?}");
        assert_eq!((ghost["mc_sent"].as_str(), ghost["uc_sent"].as_str()), ("", ""), "{h}: {ghost:?}");
        rows.insert(h, by(mesh.into_iter().filter(|r| r["peer"] != "10.77.0.9").collect(), "peer_name"));
    }
    let cell = |from: &str, to: &str| -> &HashMap<String, String> {
        let by_addr = &rows[from];
        by_addr
            .get(to)
            .or_else(|| by_addr.values().find(|r| r["peer"].ends_with(&to[1..])))
            .unwrap_or_else(|| panic!("{from} has no row for {to}: {by_addr:?}"))
    };
    let verdict = |from: &str, to: &str| cell(from, to)["verdict"].clone();
    let mc_loss = |from: &str, to: &str| num(cell(from, to), "mc_loss_pct");
    // Clean cells: h1 <-> h3 are ok, counted from the first answer (h3 started 0.6 s after h1,
    // 60 probes that must not count). On a loaded 2-vCPU machine an ack can be descheduled past
    // the timeout, so "clean" is "well under the threshold", not exactly 0.
    for (a, b) in [("h1", "h3"), ("h3", "h1")] {
        assert_eq!(verdict(a, b), "ok", "{a} -> {b}");
        assert!(num(cell(a, b), "mc_loss_pct") < 0.5, "{a} -> {b}: {:?}", cell(a, b));
        assert!(num(cell(a, b), "uc_loss_pct") < 0.5, "{a} -> {b}: {:?}", cell(a, b));
    }
    // h2's link: probes to h2 are lost forward; h2's own view loses its acks (return).
    for a in ["h1", "h3"] {
        let c = cell(a, "h2");
        assert_eq!(verdict(a, "h2"), "degraded", "{a} -> h2: {c:?}");
        assert!((2.0..=9.0).contains(&mc_loss(a, "h2")), "{a} -> h2: {c:?}");
        assert!(num(c, "mc_forward_lost") >= num(c, "mc_lost") - 3.0, "{a} -> h2 is forward loss: {c:?}");
        let back = cell("h2", a);
        assert_eq!(verdict("h2", a), "degraded", "h2 -> {a}: {back:?}");
        assert!((2.0..=9.0).contains(&mc_loss("h2", a)), "h2 -> {a}: {back:?}");
        assert!(num(back, "mc_return_lost") >= num(back, "mc_lost") - 3.0, "h2 -> {a} is return loss: {back:?}");
    }
    // h4's multicast is blocked: nobody hears it on the group, it hears nobody, unicast works.
    for a in ["h1", "h3"] {
        assert_eq!(verdict(a, "h4"), "multicast-lost", "{a} -> h4: {:?}", cell(a, "h4"));
        assert_eq!(cell(a, "h4")["mc_sent"], "", "never answered on multicast: no figures");
        assert_eq!(num(cell(a, "h4"), "uc_lost"), 0.0);
        assert_eq!(verdict("h4", a), "multicast-lost", "h4 -> {a}");
    }
    // h2 <-> h4: no multicast, and unicast crosses h2's lossy link.
    assert_eq!(verdict("h2", "h4"), "degraded");
    assert_eq!(verdict("h4", "h2"), "degraded");
}

/// A child killed if the test fails before it ends.
struct KillOnDrop(Option<std::process::Child>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
