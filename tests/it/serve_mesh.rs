//! `serve --mesh` on loopback, no root needed: two mesh hosts (and a plain responder) find each
//! other from their acks, neither counts itself, an expected host that never answers is
//! exported as such, the exposition passes `promtool check metrics`, and `--mesh` with
//! `--groups` is refused naming both.

use crate::common;

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use common::{bin, free_port, free_tcp_port, samples, wait_for, Killed, Responder, GROUP, PATIENCE};

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

/// Without --rate or --interval, the first line says the mesh schedule: the rate, the packet
/// budget it is lowered to keep, and the unicast sample's bound.
#[test]
fn the_first_line_says_the_mesh_schedule() {
    let http = free_tcp_port();
    let mut c = bin();
    c.args(["serve", "--mesh", "--iface", "127.0.0.1", "--group", GROUP, "--port", &free_port().to_string()]).args([
        "--name",
        "mx",
        "--listen",
        &format!("127.0.0.1:{http}"),
    ]);
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = common::stderr_lines(&mut child);
    let _serve = Killed(child);
    let line = lines.recv_timeout(PATIENCE).expect("serve prints its first line");
    for needle in [
        "serving http://127.0.0.1:",
        "mesh default: 1.000 probes/s",
        "a host answers at most 45 probes/s",
        "at most 16 peers by unicast a window",
    ] {
        assert!(line.contains(needle), "{needle:?} in {line}");
    }
}

/// The sum of family `name` over the samples whose labels include every pair of `want`.
fn sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let has = |labels: &std::collections::HashMap<String, String>| {
        want.iter().all(|(k, v)| labels.get(*k).is_some_and(|b| b == v))
    };
    samples(text, name).into_iter().filter(|(l, _)| has(l)).map(|(_, v)| v).sum()
}

/// Three lab hosts run `serve --mesh` without --hosts: each learns the others from their acks
/// and probes them by unicast too (path="unicast"). h3 drops every unicast datagram to its
/// responder's port (an nftables rule in its namespace; multicast to the group passes): the
/// others' unicast cells towards h3 are all lost while their multicast cells towards it stay
/// clean, and the h1 -> h2 cells stay clean on both paths. Needs root; about 15 s.
#[test]
fn a_peer_that_drops_unicast_only_shows_unicast_loss_with_multicast_clean() {
    use common::lab::{fresh_lab, in_lab_host, in_netns, lab_in, nft_in};
    let Some((_lab, _turn, p)) = fresh_lab("msu", 3) else { return };
    let hosts = ["h1", "h2", "h3"];
    let addrs: Vec<String> = hosts.iter().map(|h| lab_in(p, &["addr", h]).trim().to_string()).collect();
    nft_in(
        p,
        "h3",
        &format!(
            "table inet msu {{\n  chain input {{\n    type filter hook input priority 0;\n    ip daddr {} udp dport 24242 counter drop\n  }}\n}}\n",
            addrs[2]
        ),
    );
    let http = 9464;
    let mut children = Vec::new();
    for (h, a) in hosts.iter().zip(&addrs) {
        let mut c = in_lab_host(p, h);
        c.args(["serve", "--mesh", "--iface", "veth0", "--port", "24242", "--name", h])
            .args(["--rate", "20", "--window", "1s", "--timeout", "300ms"])
            .args(["--listen", &format!("{a}:{http}"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(Killed(c.spawn().expect("serve starts")));
    }
    let scrape = |i: usize| -> String {
        let addr: std::net::SocketAddr = format!("{}:{http}", addrs[i]).parse().unwrap();
        in_netns(&format!("{p}-{}", hosts[i]), || {
            use std::io::{Read, Write};
            let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                return String::new();
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
        })
    };
    let probes = |t: &str, src: &str, peer: &str, path: &str| {
        sum(t, "mcprobe_mesh_probes_total", &[("source", src), ("peer", peer), ("path", path)])
    };
    let lost = |t: &str, src: &str, peer: &str, path: &str| {
        sum(t, "mcprobe_mesh_lost_total", &[("source", src), ("peer", peer), ("path", path)])
    };
    // Enough unicast windows: 40 probes by unicast from h1 to each peer, after the window that
    // learned them.
    let ready = |t: &str| probes(t, "h1", "h2", "unicast") >= 40.0 && probes(t, "h1", "h3", "unicast") >= 40.0;
    let mut t1 = scrape(0);
    assert!(
        wait_for(Duration::from_secs(30), || {
            t1 = scrape(0);
            ready(&t1)
        }),
        "h1 probes both peers by unicast:\n{t1}"
    );
    let t2 = scrape(1);
    // h3's unicast cells: every probe lost (no ack ever: direction unknown); multicast clean.
    for (t, src) in [(&t1, "h1"), (&t2, "h2")] {
        let (p_u, l_u) = (probes(t, src, "h3", "unicast"), lost(t, src, "h3", "unicast"));
        assert!(p_u > 0.0 && l_u == p_u, "{src} -> h3 by unicast: {l_u} of {p_u} lost\n{t}");
        let unknown = sum(
            t,
            "mcprobe_mesh_lost_total",
            &[("source", src), ("peer", "h3"), ("path", "unicast"), ("direction", "unknown")],
        );
        assert_eq!(unknown, l_u, "{src} -> h3: no ack, so no direction\n{t}");
        let (p_m, l_m) = (probes(t, src, "h3", "multicast"), lost(t, src, "h3", "multicast"));
        assert!(p_m > 0.0 && l_m <= p_m * 0.02, "{src} -> h3 by multicast: {l_m} of {p_m} lost\n{t}");
        // h3 still answers the group: up.
        assert_eq!(sum(t, "mcprobe_mesh_peer_up", &[("source", src), ("peer", "h3")]), 1.0, "{t}");
    }
    // h1 -> h2 on both paths: clean.
    for path in ["multicast", "unicast"] {
        let (pr, l) = (probes(&t1, "h1", "h2", path), lost(&t1, "h1", "h2", path));
        assert!(pr > 0.0 && l <= pr * 0.02, "h1 -> h2 by {path}: {l} of {pr} lost\n{t1}");
    }
    // h3 itself probes the others by unicast (its probes leave; only what comes in to its
    // responder's port is dropped), and they answer.
    let t3 = scrape(2);
    let (pr, l) = (probes(&t3, "h3", "h1", "unicast"), lost(&t3, "h3", "h1", "unicast"));
    assert!(pr > 0.0 && l <= pr * 0.02, "h3 -> h1 by unicast: {l} of {pr} lost\n{t3}");
}
