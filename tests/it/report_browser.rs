//! report.html in a real browser: headless Chromium renders the demo's page and a merged one;
//! the DOM must have every chart with one series per responder and ask for no URL; a screenshot
//! is saved for a human to look at. Skips with a reason when Chromium is not installed (CI
//! installs it).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        skip_or_fail("chromium is not installed (Debian package chromium; sudo scripts/test.sh installs it)");
    }
    found
}

fn browser(bin: &str, extra: &[&str], page: &Path) -> std::process::Output {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    let mut c = Command::new(bin);
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]).args(extra).arg(url);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn dom(bin: &str, page: &Path) -> String {
    let dom = String::from_utf8(browser(bin, &["--dump-dom"], page).stdout).unwrap();
    assert!(dom.contains("</html>"), "not a rendered page: {}", &dom[..dom.len().min(300)]);
    dom
}

fn screenshot(bin: &str, page: &Path, name: &str) -> PathBuf {
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&png);
    browser(bin, &[&format!("--screenshot={}", png.display()), "--window-size=1280,2000"], page);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000, "a blank or missing screenshot");
    eprintln!("screenshot: {}", png.display());
    png
}

/// The part of the DOM inside `<section id="ID">`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom.find(&format!("<section id=\"{id}\"")).unwrap_or_else(|| panic!("no section {id}"));
    let end = dom[start..].find("</section>").unwrap() + start;
    &dom[start..end]
}

/// Values of `attr="…"` in `html`, in order.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let key = format!("{attr}=\"");
    html.match_indices(&key).map(|(i, _)| &html[i + key.len()..][..html[i + key.len()..].find('"').unwrap()]).collect()
}

/// Nothing on the page is fetched: no src/href, no CSS url() or @import, no script, link,
/// image or frame. (The SVG namespace URI names the language; nothing loads it.)
fn assert_asks_for_no_url(dom: &str) {
    let lower = dom.to_lowercase();
    for needle in [" src=", " href=", "url(", "@import", "<script", "<link", "<img", "<iframe", "<object", "<embed"] {
        assert!(!lower.contains(needle), "the page refers to something outside itself: {needle}");
    }
    let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"), "a URL in the page");
}

fn demo(dir: &Path, n: &str) -> PathBuf {
    let mut c = bin();
    c.args(["demo", "--responders", n, "--duration", "3s", "--rate", "200", "--quiet", "--out"]).arg(dir);
    let out = run(c);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().find_map(|l| l.strip_prefix("report: ")).expect("the demo prints the report's path");
    assert_eq!(Path::new(path), dir.join("report.html"));
    PathBuf::from(path)
}

#[test]
fn the_demo_report_renders_every_chart_with_one_series_per_responder() {
    let Some(chrome) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = demo(dir.path(), "4");
    let dom = dom(chrome, &page);
    assert_asks_for_no_url(&dom);
    let names: Vec<String> = (1..=4).map(|i| format!("demo-{i}")).collect();
    for id in ["percentiles", "timeline", "loss"] {
        let s = section(&dom, id);
        assert_eq!(s.matches("<svg").count(), 1, "section {id} has one chart");
        let mut series: Vec<&str> = attrs(s, "data-responder");
        series.sort();
        assert_eq!(series, names, "section {id}: one series per responder");
        // The colour of each responder's legend entry is drawn in the chart.
        for color in attrs(s, "data-color") {
            assert!(s.contains(&format!("stroke=\"{color}\"")), "section {id}: no line in {color}");
        }
    }
    let summary = section(&dom, "summary");
    assert_eq!(summary.matches("<tr").count(), 5, "a header and one row per responder");
    let png = screenshot(chrome, &page, "demo-report.png");
    assert!(png.exists());
}

/// Two probe runs of the same three responders, with `--html`; returns their folders.
pub fn two_runs(port: u16) -> (tempfile::TempDir, tempfile::TempDir) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        let out = run(probe_cmd(
            port,
            &["--count", "300", "--rate", "200", "--timeout", "300ms", "--out", dir.path().to_str().unwrap()],
        ));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(dir.path().join("report.html").exists(), "--html writes report.html");
    }
    (a, b)
}

#[test]
fn a_merged_report_renders_the_matrix_with_one_column_per_responder() {
    let Some(chrome) = chromium() else { return };
    let port = free_port();
    let _r: Vec<Responder> = (1..=3).map(|i| Responder::start(port, &format!("r-{i}"))).collect();
    let (a, b) = two_runs(port);
    // A second prober: the same kind of run, its metadata saying it came from elsewhere.
    let meta = b.path().join("meta.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    m["prober_host"] = "second-prober".into();
    std::fs::write(&meta, m.to_string()).unwrap();
    let to = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = bin();
        c.arg("report").arg(a.path()).arg(b.path()).arg("--out").arg(to.path());
        c
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dom = dom(chrome, &to.path().join("report.html"));
    assert_asks_for_no_url(&dom);
    for id in ["matrix-loss", "matrix-rtt"] {
        let s = section(&dom, id);
        let mut cols = attrs(s, "data-responder");
        cols.sort();
        assert_eq!(cols, ["r-1", "r-2", "r-3"], "{id}: one column per responder");
        assert_eq!(s.matches("<tr>").count(), 3, "{id}: a header and one row per prober");
        assert!(s.contains("second-prober"), "{id}: rows are named by prober");
    }
    screenshot(chrome, &to.path().join("report.html"), "merged-report.png");
}
