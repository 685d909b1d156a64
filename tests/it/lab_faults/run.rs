//! Faults of the run itself in the namespace LAN (issue 19): rate-limited probes, a sender that
//! cannot keep the rate, a max-rate result capped by the responders' own --rate-limit, two
//! responders on one host, and the merge of mesh rows from hosts that started apart. Each used to
//! be reported as something else (a sender-side network fault, a LAN limit, an extra host, loss);
//! each now names what happened, and no finding contradicts the table. Needs root (CI runs as
//! root); skips with a printed reason otherwise.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common;

use common::lab::{fresh_lab, in_lab_host};
use common::*;

/// Starts a responder named `name` in host `h` with `extra` flags.
fn respond(p: &str, h: &str, name: &str, extra: &[&str]) -> Responder {
    let mut c = in_lab_host(p, h);
    c.args(["respond", "--iface", "veth0", "--port", "24242", "--name", name, "--querier-wait", "1h"]);
    c.args(extra);
    Responder::spawn(c)
}

/// The probe table's rows: the lines between the header and the summary line.
fn table_rows(stdout: &str) -> Vec<&str> {
    stdout.lines().skip(1).take_while(|l| !l.contains(" answered")).collect()
}

/// Every line of a table is as wide as its header: no value pushed a column out of line.
fn assert_aligned(stdout: &str) {
    let header = stdout.lines().next().unwrap();
    let width = header.chars().count();
    for row in table_rows(stdout) {
        assert_eq!(row.chars().count(), width, "a row wider or narrower than its header:\n{header}\n{row}");
    }
}

/// Fault 2: probes over the responders' default --rate-limit (10 000/s per prober) are limited,
/// not lost, and no shared-fault finding is made of them.
#[test]
fn rate_limited_probes_are_not_a_fault_at_the_sender() {
    let Some((_lab, _turn, p)) = fresh_lab("fr", 4) else { return };
    let _r: Vec<Responder> = ["h2", "h3", "h4"].iter().map(|h| respond(p, h, h, &[])).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--port", "24242", "--rate", "20000", "--duration", "3s", "--quiet"]);
    c.args(["--no-html", "--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().next().unwrap().contains("LIM"), "the LIM column shows the limited probes: {stdout}");
    for row in csv_rows(&dir.path().join("summary.csv")) {
        // Whatever the sender managed above 10 000/s, the responders limited it.
        assert!(num(&row, "limited") > 1000.0, "each responder limited thousands: {row:?}");
        // Limited probes, had they been taken for loss, would be forward or unknown loss. Acks
        // lost on the way back are another matter: on a loaded 2-vCPU host the responders'
        // acks can queue for hundreds of ms, and that is measured, not hidden.
        let not_returned = num(&row, "forward_lost") + num(&row, "unknown_lost");
        assert!(not_returned <= num(&row, "sent") / 100.0, "limited is not lost: {row:?}");
        let accounted = num(&row, "received") + num(&row, "limited") + num(&row, "lost");
        assert_eq!(accounted, num(&row, "sent"), "every probe is received, limited or lost: {row:?}");
    }
    assert!(!stdout.contains("lost the same"), "limited probes make no shared fault: {stdout}");
    assert!(!stdout.contains("fault at the sender"), "{stdout}");
    assert!(stdout.contains("rate-limited by responders: not loss"), "{stdout}");
    assert_aligned(&stdout);
}

/// Fault 3: a rate the sender cannot keep. The run ends at its --duration whatever the rate,
/// says in one line what it managed, blames neither the network nor a shared fault, and its
/// columns stay aligned.
#[test]
fn a_sender_that_cannot_keep_up_stops_at_its_duration_and_says_so() {
    let Some((_lab, _turn, p)) = fresh_lab("fs", 3) else { return };
    let _r: Vec<Responder> = ["h2", "h3"].iter().map(|h| respond(p, h, h, &["--rate-limit", "0"])).collect();
    let mut c = in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--port", "24242", "--rate", "1000000", "--duration", "2s"]);
    c.args(["--timeout", "500ms", "--quiet"]);
    let started = Instant::now();
    let out = run(c);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}\ntook {took:?}", String::from_utf8_lossy(&out.stderr));
    // 2 s of sending, 0.5 s for the last acks, and the set-up: a bound, not a speed claim
    // (on main this run took 26.5 s).
    assert!(took < Duration::from_secs(8), "the run must end near its --duration: {took:?}");
    let line = stdout.lines().find(|l| l.contains("this host cannot send faster")).expect("the fell-short line");
    assert!(line.contains("of the 1000000/s asked") && line.contains("--duration ended the run"), "{line}");
    let shared = stdout.lines().filter(|l| l.contains("lost the same"));
    for l in shared {
        assert!(!l.contains("fault at the sender's side") && !l.contains("on a link or switch"), "{l}");
    }
    assert_aligned(&stdout);
}

/// Fault 4: max-rate against responders with the default --rate-limit: the result is their
/// setting, marked as such, with how to lift it.
#[test]
fn a_max_rate_capped_by_the_rate_limit_is_marked() {
    let Some((_lab, _turn, p)) = fresh_lab("fm", 3) else { return };
    let _r: Vec<Responder> = ["h2", "h3"].iter().map(|h| respond(p, h, h, &[])).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut c = in_lab_host(p, "h1");
    c.args(["max-rate", "--iface", "veth0", "--port", "24242", "--trial", "1s", "--start", "5000", "--max", "40000"]);
    c.args(["--timeout", "300ms", "--quiet", "--out", dir.path().to_str().unwrap()]);
    let out = run(c);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("its --rate-limit"), "the LIMITED BY column: {stdout}");
    let capped = stdout.lines().find(|l| l.starts_with("capped:")).expect("the capped line");
    assert!(capped.contains("respond --rate-limit 0"), "{capped}");
    let rows = csv_rows(&dir.path().join("maxrate.csv"));
    assert!(rows.iter().all(|r| r["capped_by_rate_limit"] == "true"), "{rows:?}");
    // The limit is per prober, 10 000/s with bursts of a tenth: the result sits just above it.
    // A loaded machine whose sender could not send that much (with two busy loops beside it,
    // this host sent at best 4 947/s) has its results below, unconfirmed, and says why.
    let sender_limited = stdout.contains("this host could not send");
    for r in &rows {
        let rate = num(r, "max_rate");
        assert!(rate <= 13_000.0, "{}: {rate}", r["responder"]);
        // A confirmed result passed twice at a rate really sent: near the limit, loaded or not.
        if !sender_limited || r["confirmed"] == "true" {
            assert!(rate >= 9_000.0, "{}: {rate}", r["responder"]);
        }
    }
    if sender_limited {
        println!(
            "note: this machine's sender fell behind: the result's nearness to the limit was not testable in this run"
        );
    }
}

/// Fault 6: two responders on one host are two responders from one host: --min-hosts counts
/// hosts, the summary line says both, and a note names the shared address.
#[test]
fn two_responders_on_one_host_count_as_one_host() {
    let Some((_lab, _turn, p)) = fresh_lab("fh", 3) else { return };
    let _r = [respond(p, "h2", "h2a", &[]), respond(p, "h2", "h2b", &[]), respond(p, "h3", "h3", &[])];
    let probe = |extra: &[&str]| {
        let mut c = in_lab_host(p, "h1");
        c.args(["probe", "--iface", "veth0", "--port", "24242", "--count", "20", "--rate", "20", "--quiet"]);
        c.args(["--timeout", "500ms"]).args(extra);
        let out = run(c);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (stdout, out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (stdout, code, stderr) = probe(&["--min-hosts", "3"]);
    assert_eq!(code, Some(1), "2 hosts < --min-hosts 3");
    assert!(stderr.contains("from 2 hosts < --min-hosts 3"), "{stderr}");
    assert!(stdout.contains("3 responders answered") && stdout.contains("from 2 hosts"), "{stdout}");
    let note = stdout.lines().find(|l| l.contains("answered from one address, 10.77.0.2")).expect("the note");
    assert!(note.contains("h2a") && note.contains("h2b"), "{note}");
    let (_, code, _) = probe(&["--min-responders", "3", "--min-hosts", "2"]);
    assert_eq!(code, Some(0));
}

/// Fault 7: hosts that start a mesh apart. Each host's row counts loss from each peer's first
/// answer; the merged report counts it the same way (main showed the start skew as 3-11 % loss
/// where the rows said 0), and labels rows and columns by the --name each host gave.
#[test]
fn a_merged_mesh_counts_loss_as_each_hosts_row_does() {
    let Some((_lab, _turn, p)) = fresh_lab("fx", 4) else { return };
    let hosts = "10.77.0.1,10.77.0.2,10.77.0.3,10.77.0.4";
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut children = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut c = in_lab_host(p, &format!("h{}", i + 1));
        c.args(["mesh", "--iface", "veth0", "--port", "24242", "--hosts", hosts, "--name", &format!("node-{}", i + 1)])
            .args([
                "--rate",
                "50",
                "--duration",
                "5s",
                "--linger",
                "3s",
                "--quiet",
                "--out",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(c.spawn().expect("mesh starts"));
        // Hosts start apart, as by hand: this places the starts, it asserts nothing.
        std::thread::sleep(Duration::from_millis(400));
    }
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        println!("--- h{}\n{}{}", i + 1, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "h{}: every peer ok", i + 1);
    }
    let to = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.arg("report").args(dirs.iter().map(|d| d.path())).arg("--out").arg(to.path());
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let matrix = csv_rows(&to.path().join("matrix.csv"));
    assert_eq!(matrix.len(), 16, "4 probers x 4 responders (each its own too): {matrix:?}");
    for cell in &matrix {
        assert!(cell["prober"].starts_with("node-") && cell["responder"].starts_with("node-"), "{cell:?}");
        // Clean LAN: no cell shows the start skew as loss. A loaded 2-vCPU machine may delay an
        // ack past the timeout now and then: "clean" is well under 1 %.
        assert!(num(cell, "loss_pct") < 0.5, "{cell:?}");
    }
    let html = std::fs::read_to_string(to.path().join("report.html")).unwrap();
    assert!((1..=4).all(|i| html.contains(&format!("node-{i}"))), "rows and columns named by --name");
}
