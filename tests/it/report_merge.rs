//! `mcprobe report` with several folders: a matrix and matrix.csv for different probers, a trend
//! for one prober, and clear refusals for folders that cannot be merged.

use crate::common;

use std::path::Path;

use common::*;

fn report(dirs: &[&Path], to: &Path) -> std::process::Output {
    let mut c = bin();
    c.arg("report").args(dirs).arg("--out").arg(to);
    run(c)
}

fn set_meta(dir: &Path, key: &str, value: &str) {
    let path = dir.join("meta.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m[key] = value.into();
    std::fs::write(&path, m.to_string()).unwrap();
}

fn two_runs(port: u16) -> (tempfile::TempDir, tempfile::TempDir) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        let out = run(probe_cmd(
            port,
            &["--count", "200", "--rate", "200", "--timeout", "300ms", "--out", dir.path().to_str().unwrap()],
        ));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    (a, b)
}

#[test]
fn one_prober_gives_a_trend_and_two_probers_a_matrix_with_its_csv() {
    let port = free_port();
    let _r: Vec<Responder> = (1..=3).map(|i| Responder::start(port, &format!("m-{i}"))).collect();
    let (a, b) = two_runs(port);

    let trend = tempfile::tempdir().unwrap();
    let out = report(&[b.path(), a.path()], trend.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(trend.path().join("report.html")).unwrap();
    assert!(html.contains("Trend: one prober over time"), "one prober: a trend");
    assert!(!trend.path().join("matrix.csv").exists(), "a trend has no matrix");
    // Oldest first, whatever the order given.
    let start = |d: &Path| {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap()
            ["start_utc"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (sa, sb) = (start(a.path()), start(b.path()));
    let runs = &html[html.find("<section id=\"runs\"").unwrap()..];
    assert!(sa < sb && runs.find(&sa).unwrap() < runs.find(&sb).unwrap(), "oldest first");

    set_meta(b.path(), "prober_host", "prober-b");
    let matrix = tempfile::tempdir().unwrap();
    let out = report(&[a.path(), b.path()], matrix.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("matrix.csv") && stdout.contains("report.html"), "{stdout}");
    let html = std::fs::read_to_string(matrix.path().join("report.html")).unwrap();
    assert!(html.contains("Prober × responder matrix"));
    let cells = csv_rows(&matrix.path().join("matrix.csv"));
    assert_eq!(cells.len(), 6, "2 probers × 3 responders");
    for (dir, prober) in [(a.path(), None), (b.path(), Some("prober-b"))] {
        for s in csv_rows(&dir.join("summary.csv")) {
            let c = cells
                .iter()
                .find(|c| {
                    c["responder_id"] == s["responder_id"]
                        && prober.is_none_or(|p| c["prober"] == p)
                        && (prober.is_some() || c["prober"] != "prober-b")
                })
                .unwrap_or_else(|| panic!("no cell for {}", s["responder"]));
            assert_eq!(
                (num(c, "loss_pct"), num(c, "rtt_p50_us"), num(c, "sent")),
                (num(&s, "loss_pct"), num(&s, "rtt_p50_us"), num(&s, "sent"))
            );
        }
    }
}

#[test]
fn folders_that_cannot_be_merged_are_refused_by_name() {
    let port = free_port();
    let _r = Responder::start(port, "solo");
    let (a, b) = two_runs(port);
    let to = tempfile::tempdir().unwrap();

    let out = report(&[a.path(), a.path()], to.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("they hold the same run"));

    set_meta(b.path(), "group", "239.1.2.3");
    let out = report(&[a.path(), b.path()], to.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different groups"), "{err}");
    assert!(
        err.contains(&a.path().display().to_string())
            && err.contains(&format!("{} (239.1.2.3:{port})", b.path().display())),
        "{err}"
    );
    assert!(!to.path().join("report.html").exists(), "nothing written when refused");

    let out = report(&[Path::new("/nonexistent/run")], to.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/run: not a folder"));
    let empty = tempfile::tempdir().unwrap();
    let out = report(&[empty.path()], to.path());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a report folder"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A max-rate folder is named as one, not as no folder of mcprobe's at all.
    std::fs::write(empty.path().join("maxrate.csv"), "run_id\n").unwrap();
    let out = report(&[empty.path()], to.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a folder of `mcprobe max-rate` (maxrate.csv)"), "{err}");
}
