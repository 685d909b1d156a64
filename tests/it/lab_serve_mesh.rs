//! `serve --mesh` on every host of a namespace LAN (scripts/lab.sh): each host answers the group
//! and probes it, learns its peers from their acks, and exports its row of the matrix; scraped
//! over HTTP inside each namespace. Needs root (CI runs as root); skips with a printed reason
//! otherwise. Bounded: 4 hosts at 50 probes/s for about 30 s, every child killed on drop.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::*;
use common::samples;

const HOSTS: [&str; 4] = ["h1", "h2", "h3", "h4"];
const HTTP_PORT: u16 = 9464;

/// A child killed if the test ends before it.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET /metrics from `addr`, from inside namespace `ns` (a thread that setns's).
fn scrape(ns: &str, addr: SocketAddr) -> String {
    in_netns(ns, || {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return String::new() };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    })
}

/// (source, peer) -> (probes, forward, return, unknown) on the multicast path.
type Matrix = HashMap<(String, String), [f64; 4]>;

fn matrix(texts: &[String]) -> Matrix {
    let mut m: Matrix = HashMap::new();
    for t in texts {
        for (l, v) in samples(t, "mcprobe_mesh_probes_total").into_iter().filter(|(l, _)| l["path"] == "multicast") {
            m.entry((l["source"].clone(), l["peer"].clone())).or_default()[0] += v;
        }
        for (l, v) in samples(t, "mcprobe_mesh_lost_total").into_iter().filter(|(l, _)| l["path"] == "multicast") {
            let i = match l["direction"].as_str() {
                "forward" => 1,
                "return" => 2,
                _ => 3,
            };
            m.entry((l["source"].clone(), l["peer"].clone())).or_default()[i] += v;
        }
    }
    m
}

/// Four hosts each run `serve --mesh`; every host must see the three others (and not itself).
/// Then h2's link loses 5 % of what it receives: over the next windows the cells of h2's column
/// (the others' probes to h2) are lossy in the forward direction, h2's own row loses its acks
/// (return), and every other cell stays clean.
#[test]
fn every_host_sees_the_others_and_an_ingress_loss_shows_in_its_column() {
    let Some((_lab, _turn, p)) = fresh_waiting_lab("sm", 4) else { return };
    let addrs: Vec<IpAddr> = HOSTS.iter().map(|h| lab_in(p, &["addr", h]).trim().parse().unwrap()).collect();
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut children = Vec::new();
    for (h, a) in HOSTS.iter().zip(&addrs) {
        let mut c = in_lab_host(p, h);
        c.args(["serve", "--mesh", "--iface", "veth0", "--port", "24242", "--name", h])
            .args(["--hosts", &list.join(","), "--rate", "50", "--window", "2s", "--timeout", "500ms"])
            .args(["--listen", &format!("{a}:{HTTP_PORT}"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(KillOnDrop(c.spawn().expect("serve starts")));
    }
    let ns = |h: &str| format!("{p}-{h}");
    let scrape_all = || -> Vec<String> {
        HOSTS.iter().zip(&addrs).map(|(h, a)| scrape(&ns(h), SocketAddr::new(*a, HTTP_PORT))).collect()
    };
    // Every host sees the three others answering, on multicast and by unicast (--hosts).
    let sees_all = |texts: &[String]| {
        HOSTS.iter().zip(texts).all(|(h, t)| {
            let up = samples(t, "mcprobe_mesh_peer_up");
            let peers: Vec<&str> = up.iter().filter(|(_, v)| *v == 1.0).map(|(l, _)| l["peer"].as_str()).collect();
            peers.len() == 3 && HOSTS.iter().filter(|o| *o != h).all(|o| peers.contains(o))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut texts = scrape_all();
    while !sees_all(&texts) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        texts = scrape_all();
    }
    assert!(sees_all(&texts), "every host must see the 3 others:\n{}", texts.join("\n---\n"));
    for (h, t) in HOSTS.iter().zip(&texts) {
        assert!(samples(t, "mcprobe_mesh_peer_up").iter().all(|(l, _)| l["peer"] != *h), "{h} is not its own peer");
        assert!(samples(t, "mcprobe_mesh_peer_up").iter().all(|(l, _)| l["expected"] == "true"), "{h}: {t}");
        assert!(
            samples(t, "mcprobe_mesh_probes_total").iter().any(|(l, v)| l["path"] == "unicast" && *v > 0.0),
            "{h}: expected peers are probed by unicast too"
        );
    }

    lab_in(p, &["impair", "h2", "ingress", "--loss", "5"]);
    // Whole windows from here on: skip the one under way when the loss began.
    std::thread::sleep(Duration::from_secs(3));
    let before = matrix(&scrape_all());
    std::thread::sleep(Duration::from_secs(16));
    let after = matrix(&scrape_all());
    let delta = |a: &str, b: &str| -> [f64; 4] {
        let k = (a.to_string(), b.to_string());
        let (x, y) = (before.get(&k).copied().unwrap_or_default(), after.get(&k).copied().unwrap_or_default());
        [y[0] - x[0], y[1] - x[1], y[2] - x[2], y[3] - x[3]]
    };
    let mut table = String::new();
    for a in HOSTS {
        for b in HOSTS.iter().filter(|b| **b != a) {
            let d = delta(a, b);
            table += &format!("{a} -> {b}: probes {} forward {} return {} unknown {}\n", d[0], d[1], d[2], d[3]);
        }
    }
    println!("{table}");
    for a in HOSTS {
        for b in HOSTS.iter().copied().filter(|b| *b != a) {
            let d = delta(a, b);
            assert!(d[0] >= 500.0, "{a} -> {b}: about 800 probes in 16 s at 50/s\n{table}");
            let loss = (d[1] + d[2] + d[3]) / d[0];
            if b == "h2" {
                // h2's column: its ingress loses the probes.
                assert!((0.02..=0.10).contains(&loss), "{a} -> h2 is lossy: {loss}\n{table}");
                assert!(d[1] >= 0.8 * (d[1] + d[2] + d[3]), "{a} -> h2 is forward loss\n{table}");
            } else if a == "h2" {
                // h2's row: the acks back to it cross the same ingress.
                assert!((0.02..=0.10).contains(&loss), "h2 -> {b} is lossy: {loss}\n{table}");
                assert!(d[2] >= 0.8 * (d[1] + d[2] + d[3]), "h2 -> {b} is return loss\n{table}");
            } else {
                // A loaded 2-vCPU machine may push an ack past the timeout: clean is well under 1 %.
                assert!(loss < 0.01, "{a} -> {b} is clean: {loss}\n{table}");
            }
        }
    }
}

/// Runs an instant query against the Prometheus at `addr` inside namespace `ns`; the result.
fn prom_query(ns: &str, addr: SocketAddr, q: &str) -> Vec<serde_json::Value> {
    let path: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = in_netns(ns, || {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return String::new() };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET /api/v1/query?query={path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    });
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The lab: 8 hosts each run `serve --mesh`; a real Prometheus in a namespace of its own
/// on the lab bridge (h9) scrapes all 8 with contrib's mesh rules (their 5 m ranges and 2 m
/// `for` scaled down to 20 s and 10 s, so the test takes a minute and a half). With 5 % ingress
/// loss on h5, the recording rule shows h5's column lossy and every cell outside h5's row and
/// column clean, and McprobeMeshHostLostByEveryPeer fires for h5 (read from Prometheus's API);
/// it clears when the loss is removed.
#[test]
fn prometheus_sees_the_matrix_and_the_alert_fires_and_clears_for_the_lossy_host() {
    if !common::tool_or_skip("prometheus", "--version", "prometheus") {
        return;
    }
    let Some((_lab, _turn, p)) = fresh_waiting_lab("sp", 9) else { return };
    let hosts: Vec<String> = (1..=8).map(|i| format!("h{i}")).collect();
    let addrs: Vec<IpAddr> = hosts.iter().map(|h| lab_in(p, &["addr", h]).trim().parse().unwrap()).collect();
    let mut children = Vec::new();
    for (h, a) in hosts.iter().zip(&addrs) {
        let mut c = in_lab_host(p, h);
        c.args(["serve", "--mesh", "--iface", "veth0", "--port", "24242", "--name", h])
            .args(["--rate", "20", "--window", "2s", "--timeout", "500ms"])
            .args(["--listen", &format!("{a}:{HTTP_PORT}"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(KillOnDrop(c.spawn().expect("serve starts")));
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(repo().join("contrib/prometheus/mcprobe-mesh-rules.yml"))
        .unwrap()
        .replace("[5m]", "[20s]")
        .replace("for: 2m", "for: 10s");
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let targets: Vec<String> = addrs.iter().map(|a| format!("'{a}:{HTTP_PORT}'")).collect();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: mcprobe-mesh\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let prom_addr = SocketAddr::new(lab_in(p, &["addr", "h9"]).trim().parse().unwrap(), 9090);
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &format!("{p}-h9"), "prometheus"])
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _prom = KillOnDrop(c.spawn().expect("prometheus starts"));
    let ns = format!("{p}-h9");
    let q = |e: &str| prom_query(&ns, prom_addr, e);
    let wait_for = |what: &str, limit: u64, cond: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !cond() && start.elapsed() < Duration::from_secs(limit) {
            std::thread::sleep(Duration::from_secs(1));
        }
        assert!(cond(), "{what} within {limit} s");
        println!("{what}: after {:.0} s", start.elapsed().as_secs_f64());
    };
    // The whole matrix: 8 x 7 cells.
    wait_for("the 56 cells of the matrix", 60, &|| q("mcprobe:mesh_loss:ratio5m").len() == 56);

    lab_in(p, &["impair", "h5", "ingress", "--loss", "5"]);
    let firing = |peer: &str| {
        q(&format!("ALERTS{{alertname=\"McprobeMeshHostLostByEveryPeer\",alertstate=\"firing\",peer=\"{peer}\"}}"))
            .len()
            == 1
    };
    wait_for("McprobeMeshHostLostByEveryPeer firing for h5", 90, &|| firing("h5"));
    let cells = q("mcprobe:mesh_loss:ratio5m");
    let mut table = String::new();
    for c in &cells {
        table += &format!("{} -> {}: {}\n", c["metric"]["source"], c["metric"]["peer"], c["value"][1]);
    }
    println!("{table}");
    for c in &cells {
        let (s, t) = (c["metric"]["source"].as_str().unwrap(), c["metric"]["peer"].as_str().unwrap());
        let v: f64 = c["value"][1].as_str().unwrap().parse().unwrap();
        if t == "h5" {
            assert!(v > 0.01, "{s} -> h5 is lossy\n{table}");
        } else if s != "h5" {
            assert!(v < 0.01, "{s} -> {t} is clean\n{table}");
        }
    }
    // Only h5 is lost by every peer.
    let alerts = q("ALERTS{alertname=\"McprobeMeshHostLostByEveryPeer\",alertstate=\"firing\"}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    for a in q("ALERTS") {
        println!("{}", a["metric"]);
    }

    lab_in(p, &["clear", "h5", "ingress"]);
    wait_for("McprobeMeshHostLostByEveryPeer cleared", 90, &|| {
        q("ALERTS{alertname=\"McprobeMeshHostLostByEveryPeer\"}").is_empty()
    });
}
