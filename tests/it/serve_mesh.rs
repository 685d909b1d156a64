//! `serve --mesh` on loopback, no root needed: two mesh hosts (and a plain responder) find each
//! other from their acks, neither counts itself, an expected host that never answers is
//! exported as such, the exposition passes `promtool check metrics`, and `--mesh` with
//! `--groups` is refused naming both.

use crate::common;

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use common::{bin, free_port, free_tcp_port, wait_for, Killed, Responder, GROUP, PATIENCE};

use crate::serve_prometheus::{have, http_get, promtool_check_metrics};

fn mesh_host(port: u16, name: &str, extra: &[&str]) -> (Killed, u16) {
    let http = free_tcp_port();
    let child = bin()
        .args(["serve", "--mesh", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string()])
        .args(["--name", name, "--rate", "20", "--window", "1s", "--timeout", "300ms"])
        .args(["--listen", &format!("127.0.0.1:{http}"), "--quiet"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    // Scraped from the start: wait until it listens (a loaded machine starts it slowly).
    assert!(
        wait_for(PATIENCE, || std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, http)).is_ok()),
        "serve --mesh did not listen"
    );
    (child, http)
}

/// `mcprobe_mesh_peer_up` lines of a scrape.
fn peers(http: u16) -> Vec<String> {
    let (_, body) = http_get(http, "/metrics", None);
    body.lines().filter(|l| l.starts_with("mcprobe_mesh_peer_up{")).map(String::from).collect()
}

#[test]
fn mesh_hosts_find_each_other_and_not_themselves() {
    let port = free_port();
    // 127.0.0.9 is expected and never answers (nothing listens there; loopback only).
    let (_a, a) = mesh_host(port, "ma", &["--hosts", "127.0.0.1,127.0.0.9"]);
    let (_b, b) = mesh_host(port, "mb", &[]);
    let _plain = Responder::start(port, "plain");
    let sees = |http: u16, others: &[&str]| {
        let up = peers(http);
        others.iter().all(|o| up.iter().any(|l| l.contains(&format!("peer=\"{o}\"")) && l.ends_with(" 1")))
    };
    assert!(
        wait_for(Duration::from_secs(20), || sees(a, &["mb", "plain"]) && sees(b, &["ma", "plain"])),
        "ma: {:?}\nmb: {:?}",
        peers(a),
        peers(b)
    );
    for (http, me) in [(a, "ma"), (b, "mb")] {
        let up = peers(http);
        assert!(up.iter().all(|l| !l.contains(&format!("peer=\"{me}\""))), "{me} is not its own peer: {up:?}");
        assert!(up.iter().all(|l| l.contains(&format!("source=\"{me}\""))), "{up:?}");
    }
    // The expected host that never answered, under its address; 127.0.0.1 (this host) is not
    // expected of itself.
    let up = peers(a);
    assert!(
        up.iter()
            .any(|l| l.contains("peer=\"127.0.0.9\",address=\"127.0.0.9\",expected=\"true\"") && l.ends_with(" 0")),
        "{up:?}"
    );
    assert!(up.iter().all(|l| !l.contains("peer=\"127.0.0.1\"")), "{up:?}");
    let (_, body) = http_get(a, "/metrics", None);
    assert!(body.contains("mcprobe_mesh_lost_total{target=\"default\",source=\"ma\",peer=\"mb\",path=\"multicast\",direction=\"forward\"}"), "{body}");
    if have("promtool") {
        promtool_check_metrics(&body);
    }
}

#[test]
fn mesh_with_groups_is_refused() {
    common::fails_with(
        &["serve", "--mesh", "--iface", "127.0.0.1", "--groups", "239.77.3.0/30", "--listen", "127.0.0.1:0"],
        &["--mesh", "one group"],
    );
}
