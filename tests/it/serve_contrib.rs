//! The ops files in contrib/, each checked by its own tool: promtool for the alert rules (and
//! their unit tests) and the example scrape config, systemd-analyze for the units. A tool that is
//! not installed skips its check with a printed reason (CI installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success())
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    if !have("promtool", "--version") {
        crate::common::skip_or_fail(
            "promtool not installed (Debian package prometheus; sudo scripts/test.sh installs it)",
        );
        return;
    }
    let dir = root().join("contrib/prometheus");
    let out = run(Command::new("promtool").args(["check", "rules", "mcprobe-rules.yml"]).current_dir(&dir));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 rules found"));
    run(Command::new("promtool").args(["check", "config", "prometheus.yml"]).current_dir(&dir));
    run(Command::new("promtool").args(["test", "rules", "mcprobe-rules.test.yml"]).current_dir(&dir));
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(dir.join("mcprobe-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("mcprobe-rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 6);
    for a in alerts {
        assert!(tests.contains(&format!("alertname: {a}")), "no unit test for {a}");
    }
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    let units = ["mcprobe-respond.service", "mcprobe-serve.service"];
    for u in units {
        let text = std::fs::read_to_string(root().join("contrib/systemd").join(u)).unwrap();
        for setting in [
            "DynamicUser=yes",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
            "RestrictAddressFamilies=",
            "ProtectSystem=strict",
            "SystemCallFilter=@system-service",
        ] {
            assert!(text.contains(setting), "{u} lacks {setting:?}");
        }
    }
    if !have("systemd-analyze", "--version") {
        crate::common::skip_or_fail(
            "systemd-analyze not installed (Debian package systemd; sudo scripts/test.sh installs it)",
        );
        return;
    }
    // Verify copies whose ExecStart names the binary just built, so the check covers the binary
    // path too.
    let dir = tempfile::tempdir().unwrap();
    let mut copies: Vec<(String, String)> = (units.iter())
        .map(|u| (u.to_string(), std::fs::read_to_string(root().join("contrib/systemd").join(u)).unwrap()))
        .collect();
    // serve with the CAP_NET_RAW drop-in its comment shows for the querier watch.
    let serve = copies[1].1.clone();
    let drop_in = "CapabilityBoundingSet=CAP_NET_RAW\nAmbientCapabilities=CAP_NET_RAW\n";
    assert!(serve.contains(&drop_in.lines().map(|l| format!("#   {l}\n")).collect::<String>()), "the drop-in");
    let with_raw = serve.replace("CapabilityBoundingSet=\nAmbientCapabilities=\n", drop_in);
    assert_ne!(with_raw, serve);
    copies.push(("mcprobe-serve-net-raw.service".to_string(), with_raw));
    for (u, text) in &copies {
        let path = dir.path().join(u);
        std::fs::write(&path, text.replace("/usr/bin/mcprobe", env!("CARGO_BIN_EXE_mcprobe"))).unwrap();
        let out = run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let own: Vec<&str> = stderr.lines().filter(|l| l.contains(u.as_str())).collect();
        assert!(own.is_empty(), "systemd-analyze verify {u}: {own:?}");
        // systemd's own scoring of the sandbox: 0 (locked down) to 10 (exposed).
        let out = run(Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path));
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .split("Overall exposure level for ")
            .nth(1)
            .and_then(|t| t.split(": ").nth(1))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in: {text}"));
        println!("{u}: exposure level {level}");
        assert!(level <= 2.0, "{u}: exposure level {level}");
    }
}

#[test]
fn grafana_dashboard_is_valid_json_with_queries() {
    let path: &Path = &root().join("contrib/grafana/mcprobe.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    // What the issue asks the dashboard to show.
    for needle in [
        "mcprobe_lost_total",
        "mcprobe_rtt_seconds_bucket",
        "mcprobe_responders",
        "mcprobe_host_verdict",
        "mcprobe_querier",
        "mcprobe_groups_reached",
        "mcprobe_group_reached",
    ] {
        assert!(exprs.iter().any(|e| e.contains(needle)), "no panel queries {needle}");
    }
}
