//! contrib/ for `serve --mesh`: the matrix's recording rules and alerts pass promtool and their
//! unit tests, every alert has one, and the Grafana dashboard (a heatmap of the matrix) queries
//! only the mesh families and the recording rules. promtool missing: the rules check skips with
//! a printed reason (CI installs it).

use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).current_dir(dir().join("prometheus")).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn mesh_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    if !Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success()) {
        crate::common::skip_or_fail(
            "promtool not installed (Debian package prometheus; sudo scripts/test.sh installs it)",
        );
        return;
    }
    assert!(promtool(&["check", "rules", "mcprobe-mesh-rules.yml"]).contains("9 rules found"));
    promtool(&["test", "rules", "mcprobe-mesh-rules.test.yml"]);
    let p = dir().join("prometheus");
    let rules = std::fs::read_to_string(p.join("mcprobe-mesh-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(p.join("mcprobe-mesh-rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(
        alerts,
        [
            "McprobeMeshHostLostByEveryPeer",
            "McprobeMeshHostLosesEveryPeer",
            "McprobeMeshUnicastOnlyLoss",
            "McprobeMeshMulticastOnlyLoss"
        ]
    );
    for a in alerts {
        assert!(tests.contains(&format!("alertname: {a}")), "no unit test for {a}");
    }
}

#[test]
fn the_mesh_dashboard_has_a_heatmap_and_queries_known_series_only() {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("grafana/mcprobe-mesh.json")).unwrap()).unwrap();
    let rules = std::fs::read_to_string(dir().join("prometheus/mcprobe-mesh-rules.yml")).unwrap();
    let recorded: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- record: ")).collect();
    let families = ["mcprobe_mesh_probes_total", "mcprobe_mesh_lost_total", "mcprobe_mesh_peer_up"];
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.iter().any(|p| p["type"] == "heatmap"), "a heatmap panel of the matrix");
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            let names: Vec<&str> = e
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.starts_with("mcprobe"))
                .collect();
            assert!(!names.is_empty(), "{e}");
            for n in names {
                assert!(
                    families.contains(&n) || recorded.contains(&n),
                    "{n} (in {e}) is neither a mesh family nor a recording rule"
                );
            }
        }
    }
}
