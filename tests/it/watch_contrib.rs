//! The watch's ops files in contrib/: its alert rules checked and unit-tested by promtool, its
//! Grafana dashboard's queries using only the metric names docs/src/watch.md defines. A
//! tool that is not installed skips its check with a printed reason (CI installs promtool).

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The metric names the documentation defines (its table's first column).
fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/src/watch.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `mcprobe_watch_"))
        .map(|l| format!("mcprobe_watch_{}", l.split('`').next().unwrap()))
        .collect()
}

fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("mcprobe_watch_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn watch_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = root().join("contrib/prometheus");
    let rules = std::fs::read_to_string(dir.join("mcprobe-watch-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("mcprobe-watch-rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts, ["McprobeStreamStopped", "McprobeStreamMediaLoss", "McprobeStreamLoss"]);
    for a in &alerts {
        assert!(tests.contains(&format!("alertname: {a}")), "no unit test for {a}");
    }
    let known = documented_metrics();
    assert!(known.len() >= 10, "{known:?}");
    for m in metrics_in(&rules) {
        assert!(known.contains(&m), "{m} is not in docs/src/watch.md");
    }
    if Command::new("promtool").arg("--version").output().is_err() {
        crate::common::skip_or_fail(
            "promtool not installed (Debian package prometheus; sudo scripts/test.sh installs it)",
        );
        return;
    }
    for args in [["check", "rules", "mcprobe-watch-rules.yml"], ["test", "rules", "mcprobe-watch-rules.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        if args[0] == "check" {
            assert!(text.contains("3 rules found"), "{text}");
        }
    }
}

#[test]
fn watch_dashboard_queries_documented_metrics() {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("contrib/grafana/mcprobe-watch.json")).unwrap())
            .unwrap();
    let known = documented_metrics();
    let exprs: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 6);
    for e in exprs {
        for m in metrics_in(e) {
            assert!(known.contains(&m), "{m} (in {e}) is not in docs/src/watch.md");
        }
    }
}
