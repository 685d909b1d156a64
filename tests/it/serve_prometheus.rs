//! `mcprobe serve` scraped by a real Prometheus (Debian package `prometheus`), with the contrib
//! alert rules loaded and every query of the contrib Grafana dashboard evaluated. Everything on
//! 127.0.0.1. Skips, with a reason, where Prometheus is not installed (CI installs it).

use crate::common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, free_port, free_tcp_port, skip_or_fail, Killed, Responder, GROUP};
use serde_json::Value;

/// A failure bound for each wait on Prometheus, not a speed assertion.
const WAIT: Duration = Duration::from_secs(45);

/// Asserts that `promtool check metrics` accepts the exposition `text`.
pub(crate) fn promtool_check_metrics(text: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics:\n{said}");
}

/// A real Prometheus on 127.0.0.1 (its port returned) that scrapes mcprobe's `/metrics` on
/// `target_port` every second and evaluates `rules` (written into `dir`, with its data).
pub(crate) fn start_prometheus(dir: &Path, rules: &str, target_port: u16) -> (Killed, u16) {
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let prom_port = free_tcp_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: mcprobe\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Killed(prom), prom_port)
}

/// A plain HTTP/1.0 GET on 127.0.0.1; returns (status, body).
pub fn http_get(port: u16, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query; panics unless Prometheus says `success`.
pub fn query(port: u16, q: &str) -> Vec<Value> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={}", encode(q)), None);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}: {body}"));
    assert_eq!((status, v["status"].as_str()), (200, Some("success")), "{q}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a one-sample query result, if there is one.
pub fn scalar(port: u16, q: &str) -> Option<f64> {
    query(port, q).first().and_then(|r| r["value"][1].as_str()).and_then(|s| s.parse().ok())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The Grafana dashboard's queries, with its variables given values Prometheus accepts.
pub fn dashboard_queries(path: &Path) -> Vec<String> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            out.push(e.replace("$target", ".*").replace("$__rate_interval", "30s"));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_serve_and_alerts_on_a_silent_responder() {
    if !have("prometheus") || !have("promtool") {
        skip_or_fail("prometheus/promtool not installed (Debian package prometheus; sudo scripts/test.sh installs it)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut responders: Vec<Responder> = ["r1", "r2", "r3"].iter().map(|n| Responder::start(port, n)).collect();

    let http = free_tcp_port();
    let serve = bin()
        .args(["serve", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
        .args(["--rate", "20", "--window", "1s", "--timeout", "300ms", "--listen", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Killed(serve);

    // The shipped rules with their windows shortened, so the alert can move within the test.
    let rules = std::fs::read_to_string(root.join("contrib/prometheus/mcprobe-rules.yml")).unwrap();
    assert!(rules.contains("[2m]") && rules.contains("for: 1m"), "the silent-responder rule changed shape");
    let rules = rules.replace("[2m]", "[4s]").replace("for: 1m", "for: 1s");
    let (_prom, prom_port) = start_prometheus(dir.path(), &rules, http);
    wait_for("Prometheus to answer", || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, prom_port)).is_ok() && http_get(prom_port, "/-/ready", None).0 == 200
    });

    // Three responders with acks, and no loss.
    wait_for("three responders with acks", || {
        scalar(prom_port, "count(mcprobe_acks_total{path=\"multicast\"} > 0)") == Some(3.0)
    });
    assert_eq!(scalar(prom_port, "sum(mcprobe_lost_total)"), Some(0.0));
    assert_eq!(scalar(prom_port, "max(mcprobe_responders)"), Some(3.0));
    // RTT histogram counts rising.
    let first = scalar(prom_port, "sum(mcprobe_rtt_seconds_count)").unwrap();
    wait_for("RTT counts to rise", || scalar(prom_port, "sum(mcprobe_rtt_seconds_count)").unwrap() > first);
    let in_buckets = scalar(prom_port, "max(mcprobe_rtt_seconds_bucket{le!=\"+Inf\"})").unwrap();
    assert!(in_buckets > 0.0, "RTTs under 1 s land in the buckets");

    // promtool accepts a scrape.
    let (status, text) = http_get(http, "/metrics", None);
    assert_eq!(status, 200);
    promtool_check_metrics(&text);

    // Every query of the dashboard runs.
    let queries = dashboard_queries(&root.join("contrib/grafana/mcprobe.json"));
    assert!(queries.len() >= 10);
    for q in &queries {
        query(prom_port, q);
    }
    assert!(
        !query(prom_port, "group by (target) (mcprobe_probes_sent_total)").is_empty(),
        "the $target variable has values"
    );

    // Stop r3: its loss rises and the silent-responder alert goes pending or firing.
    responders.pop().unwrap().stop();
    wait_for("r3's loss to rise", || {
        scalar(prom_port, "sum(mcprobe_lost_total{responder=\"r3\"})").is_some_and(|v| v > 0.0)
    });
    wait_for("McprobeResponderSilent for r3", || {
        query(prom_port, "ALERTS{alertname=\"McprobeResponderSilent\",responder=\"r3\"}")
            .iter()
            .any(|r| matches!(r["metric"]["alertstate"].as_str(), Some("pending" | "firing")))
    });
    // The others still answer, without loss.
    assert_eq!(scalar(prom_port, "sum(mcprobe_lost_total{responder!=\"r3\"})"), Some(0.0));
    drop(responders);
}

/// A throwaway CA and a certificate for 127.0.0.1 that it signed, made with the openssl CLI.
fn make_certs(dir: &Path) -> bool {
    let sh = |script: &str| {
        Command::new("sh").arg("-c").arg(script).current_dir(dir).output().is_ok_and(|o| o.status.success())
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
        -days 1 -subj /CN=mcprobe-test-ca 2>/dev/null")
        && sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout serve.key -out serve.csr \
        -subj /CN=127.0.0.1 2>/dev/null")
        && sh(
            "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext \
        && openssl x509 -req -in serve.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out serve.crt -days 1 \
        -extfile ext 2>/dev/null",
        )
}

#[test]
fn prometheus_scrapes_serve_over_tls_with_basic_auth_and_a_wrong_password_is_refused() {
    if !have("prometheus") || Command::new("openssl").arg("version").output().is_err() {
        skip_or_fail("prometheus or openssl not installed (Debian packages prometheus openssl; sudo scripts/test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(make_certs(dir.path()), "openssl could not make the test certificates");
    // Cost 5: the test binary is unoptimized, and every wrong password costs a bcrypt check.
    let hash = bcrypt::hash("s3cret", 5).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "# as node_exporter takes it\ntls_server_config:\n  cert_file: serve.crt\n  key_file: serve.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _r = Responder::start(port, "r1");
    let http = free_tcp_port();
    let serve = bin()
        .args(["serve", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
        .args(["--rate", "20", "--window", "1s", "--timeout", "300ms", "--listen", &format!("127.0.0.1:{http}")])
        .args(["--web-config", web.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Killed(serve);
    wait_for("serve to listen", || TcpStream::connect((Ipv4Addr::LOCALHOST, http)).is_ok());
    // Plain HTTP to the TLS port gets no page.
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("mcprobe_"), "metrics over plain HTTP");

    let scrape = |job: &str, password: &str| {
        format!(
            "  - job_name: {job}\n    scheme: https\n    tls_config:\n      ca_file: ca.crt\n    basic_auth:\n      username: prometheus\n      password: {password}\n    static_configs:\n      - targets: ['127.0.0.1:{http}']\n"
        )
    };
    let prom_port = free_tcp_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
            scrape("mcprobe", "s3cret"),
            scrape("wrong", "guess")
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = Killed(prom);
    wait_for("Prometheus to answer", || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, prom_port)).is_ok() && http_get(prom_port, "/-/ready", None).0 == 200
    });
    wait_for("r1's acks scraped over TLS", || {
        scalar(prom_port, "sum(mcprobe_acks_total{job=\"mcprobe\",responder=\"r1\"})").is_some_and(|v| v > 0.0)
    });
    assert_eq!(scalar(prom_port, "up{job=\"mcprobe\"}"), Some(1.0));
    wait_for("the wrong password's scrape to fail", || scalar(prom_port, "up{job=\"wrong\"}") == Some(0.0));
    assert_eq!(
        scalar(prom_port, "count(mcprobe_acks_total{job=\"wrong\"})"),
        None,
        "nothing scraped without the password"
    );
    let (_, targets) = http_get(prom_port, "/api/v1/targets", None);
    let v: Value = serde_json::from_str(&targets).unwrap();
    let wrong = v["data"]["activeTargets"].as_array().unwrap().iter().find(|t| t["labels"]["job"] == "wrong").cloned();
    let error = wrong.as_ref().and_then(|t| t["lastError"].as_str()).unwrap_or("");
    assert!(error.contains("401"), "the wrong password's scrape error: {error:?}");
}
