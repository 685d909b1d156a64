//! `mcprobe serve --groups` (issue 22) on loopback: two responders, one joined to all 64 groups
//! and one to all but 4 named ones, scraped by a real Prometheus (Debian package `prometheus`);
//! the groups reached in the last window, the missed (group, window) pairs and, with
//! `--group-series`, which groups each responder misses, read back through Prometheus's HTTP
//! API; the shipped McprobeGroupsMissing alert firing for that responder only; promtool on the
//! exposition. Without `--group-series`, or beyond `--max-series`, no series
//! per group. Only 127.0.0.1, groups joined on it, TTL 1; HTTP on 127.0.0.1.

use crate::common;
use crate::serve_prometheus::{
    dashboard_queries, have, http_get, promtool_check_metrics, query, scalar, start_prometheus,
};

use std::net::{Ipv4Addr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use common::{bin, free_port, free_tcp_port, Killed, Responder, PATIENCE};

/// 64 groups: 239.255.44.0 to 239.255.44.63.
const GROUPS: &str = "239.255.44.0/26";
/// What r2 leaves out: three consecutive groups and the last one.
const MISSING: [&str; 4] = ["239.255.44.5", "239.255.44.6", "239.255.44.7", "239.255.44.63"];
/// r2's groups: all but [`MISSING`].
const R2_GROUPS: &str = "239.255.44.0-239.255.44.4,239.255.44.8-239.255.44.62";

/// A loopback responder joined to `groups` on `port`.
fn responder(port: u16, name: &str, groups: &str, joined: usize) -> Responder {
    let mut c = bin();
    c.args(["respond", "--iface", "127.0.0.1", "--port", &port.to_string(), "--name", name, "--groups", groups]);
    let mut r = Responder::spawn(c);
    let line = r.wait_for("listening");
    assert!(line.contains(&format!("{joined} groups")), "{line}");
    r
}

/// `serve --groups` on loopback at 320 probes/s (5 rounds of the 64 groups in each 1 s window),
/// metrics on 127.0.0.1; returns once it listens.
fn serve(port: u16, extra: &[&str]) -> (Killed, u16) {
    let http = free_tcp_port();
    let child = bin()
        .args(["serve", "--iface", "127.0.0.1", "--groups", GROUPS, "--port", &port.to_string()])
        .args(["--rate", "320", "--window", "1s", "--timeout", "300ms", "--listen", &format!("127.0.0.1:{http}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    assert!(
        common::wait_for(PATIENCE, || TcpStream::connect((Ipv4Addr::LOCALHOST, http)).is_ok()),
        "serve did not listen"
    );
    (child, http)
}

fn metrics(http: u16) -> String {
    http_get(http, "/metrics", None).1
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn prometheus_reads_the_groups_each_responder_reaches_and_the_ones_it_misses() {
    if !have("prometheus") || !have("promtool") {
        common::skip_or_fail(
            "prometheus/promtool not installed (Debian package prometheus; sudo scripts/test.sh installs it)",
        );
        return;
    }
    let port = free_port();
    let _r1 = responder(port, "r1", GROUPS, 64);
    let _r2 = responder(port, "r2", R2_GROUPS, 60);
    // 2 responders x 64 groups = 128 series per group, within --max-series 200.
    let (_serve, http) = serve(port, &["--group-series", "--max-series", "200"]);
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules, McprobeGroupsMissing's 5 minutes shortened to 1 s.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("contrib/prometheus/mcprobe-rules.yml")).unwrap();
    assert!(rules.contains("- alert: McprobeGroupsMissing") && rules.contains("for: 5m"), "the rules changed shape");
    let (_prom, prom) = start_prometheus(dir.path(), &rules.replace("for: 5m", "for: 1s"), http);
    let wait = Duration::from_secs(45);
    let ready = common::wait_for(wait, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, prom)).is_ok() && http_get(prom, "/-/ready", None).0 == 200
    });
    assert!(ready, "Prometheus did not get ready");
    let r = |name: &str, metric: &str| format!("{metric}{{job=\"mcprobe\",target=\"default\",responder=\"{name}\"}}");

    // Both responders' windows folded, and Prometheus has scraped two of them at least.
    let reached = common::wait_for(wait, || {
        scalar(prom, &r("r1", "mcprobe_groups_reached")) == Some(64.0)
            && scalar(prom, &r("r2", "mcprobe_groups_reached")) == Some(60.0)
            && scalar(prom, &r("r2", "mcprobe_groups_missed_total")).is_some_and(|m| m >= 8.0)
    });
    assert!(reached, "Prometheus never read r1 at 64 groups and r2 at 60:\n{}", metrics(http));
    assert_eq!(scalar(prom, "mcprobe_groups{job=\"mcprobe\",target=\"default\"}"), Some(64.0));
    // r1 misses nothing; r2 misses exactly its 4 groups in every window: a multiple of 4, one
    // per group and window.
    assert_eq!(scalar(prom, &r("r1", "mcprobe_groups_missed_total")), Some(0.0));
    let missed = scalar(prom, &r("r2", "mcprobe_groups_missed_total")).unwrap();
    let windows = scalar(prom, "mcprobe_windows_total{job=\"mcprobe\",target=\"default\"}").unwrap();
    assert!(missed % 4.0 == 0.0 && missed <= 4.0 * windows, "r2 missed {missed} in {windows} windows");
    // The missing groups, by name, from the series per group.
    let zero = query(prom, "mcprobe_group_reached{job=\"mcprobe\",responder=\"r2\"} == 0");
    let mut named: Vec<Ipv4Addr> =
        zero.iter().map(|s| s["metric"]["group"].as_str().unwrap().parse().unwrap()).collect();
    named.sort();
    let missing: Vec<Ipv4Addr> = MISSING.iter().map(|g| g.parse().unwrap()).collect();
    assert_eq!(named, missing, "r2's missing groups");
    assert_eq!(scalar(prom, "sum(mcprobe_group_reached{job=\"mcprobe\",responder=\"r1\"})"), Some(64.0));
    assert_eq!(scalar(prom, "count(mcprobe_group_reached{job=\"mcprobe\"})"), Some(128.0));
    assert_eq!(scalar(prom, "mcprobe_group_series_capped{job=\"mcprobe\"}"), Some(0.0));
    // The ratio an alert would take: r2 reaches 60 of 64.
    let ratio = "mcprobe_groups_reached{job=\"mcprobe\",responder=\"r2\"} / ignoring(responder, address) group_left mcprobe_groups{job=\"mcprobe\"}";
    assert_eq!(scalar(prom, ratio), Some(60.0 / 64.0));
    // The queries of docs/pending/serve-groups.md run, and the first names r2 alone.
    let short = query(prom, "mcprobe_groups_reached < on(target) group_left mcprobe_groups");
    let names: Vec<&str> = short.iter().map(|s| s["metric"]["responder"].as_str().unwrap()).collect();
    assert_eq!(names, ["r2"]);
    for q in [
        "mcprobe_groups_reached / on(target) group_left mcprobe_groups",
        "increase(mcprobe_groups_missed_total[5m]) / on(target) group_left increase(mcprobe_windows_total[5m])",
        "increase(mcprobe_groups_missed_total[5m]) > 0 and mcprobe_groups_reached > 0",
    ] {
        // increase() needs two scrapes of a series.
        let want = if q.contains(" and ") { 1 } else { 2 };
        assert!(common::wait_for(wait, || query(prom, q).len() == want), "{q}: {:?}", query(prom, q));
    }

    // The dashboard's group panels show r1 and r2, the groups probed, and in the table r2's 4
    // groups.
    for q in
        dashboard_queries(&root.join("contrib/grafana/mcprobe.json")).iter().filter(|q| q.contains("mcprobe_group"))
    {
        let want = match q.as_str() {
            q if q.contains("== 0") => 4,
            q if q.starts_with("mcprobe_groups{") => 1,
            _ => 2,
        };
        assert!(common::wait_for(wait, || query(prom, q).len() == want), "{q}: {:?}", query(prom, q));
    }
    // The shipped alert fires for r2, and for r2 only.
    let alerts = "ALERTS{alertname=\"McprobeGroupsMissing\",alertstate=\"firing\"}";
    let fired = common::wait_for(wait, || !query(prom, alerts).is_empty());
    assert!(fired, "McprobeGroupsMissing never fired");
    let who: Vec<String> =
        query(prom, alerts).iter().map(|a| a["metric"]["responder"].as_str().unwrap().to_string()).collect();
    assert_eq!(who, ["r2"]);

    promtool_check_metrics(&metrics(http));
}

#[test]
fn groups_are_aggregated_without_group_series_and_capped_beyond_max_series() {
    let port = free_port();
    let _r1 = responder(port, "r1", GROUPS, 64);
    let _r2 = responder(port, "r2", R2_GROUPS, 60);
    let l = |name: &str, addr: &str| format!("{{target=\"default\",responder=\"{name}\",address=\"{addr}\"}}");
    let r2 = l("r2", "127.0.0.1");
    let ready = |text: &str| {
        sample(text, &format!("mcprobe_groups_reached{r2}")) == Some(60.0)
            && sample(text, &format!("mcprobe_groups_reached{}", l("r1", "127.0.0.1"))) == Some(64.0)
    };
    // The default: aggregated, no series per group.
    let (serve_a, http) = serve(port, &[]);
    assert!(common::wait_for(PATIENCE, || ready(&metrics(http))), "{}", metrics(http));
    let text = metrics(http);
    assert!(!text.contains("mcprobe_group_reached") && !text.contains("mcprobe_group_series_capped"), "{text}");
    assert_eq!(sample(&text, "mcprobe_groups{target=\"default\"}"), Some(64.0));
    assert_eq!(text.lines().filter(|l| l.starts_with("mcprobe_groups_reached{")).count(), 2, "{text}");
    drop(serve_a);
    // --group-series beyond --max-series 100 (2 x 64 = 128): capped, aggregated only.
    let (_serve, http) = serve(port, &["--group-series", "--max-series", "100"]);
    assert!(common::wait_for(PATIENCE, || ready(&metrics(http))), "{}", metrics(http));
    let text = metrics(http);
    assert_eq!(sample(&text, "mcprobe_group_series_capped{target=\"default\"}"), Some(1.0), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("mcprobe_group_reached{")), "{text}");
}

#[test]
fn a_window_too_short_for_its_groups_is_refused_naming_the_flags() {
    common::fails_with(
        &["serve", "--iface", "127.0.0.1", "--groups", "239.255.44.0/22", "--rate", "10", "--listen", "127.0.0.1:0"],
        &["--window 10s holds 100 probes at --rate 10, fewer than the 1024 groups"],
    );
    common::fails_with(
        &["serve", "--iface", "127.0.0.1", "--groups", GROUPS, "--group", "239.255.44.1", "--listen", "127.0.0.1:0"],
        &["'--groups <LIST[:PORT]>' cannot be used with '--group <ADDR>'"],
    );
}
