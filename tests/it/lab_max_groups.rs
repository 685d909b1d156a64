//! The group capacity search (`max-groups`, issue 22, RFC 3918 section 7.1) against a Linux
//! bridge with snooping and a querier, in the namespace LAN of scripts/lab.sh. What the bridge
//! does when its table is full was measured first (results/groups-capacity-lab-2026-12-02.md):
//! `mcast_hash_max N` holds N groups in all, 6 of them the three hosts' IPv6 solicited-node
//! groups, and the next turns snooping off (everything floods); a port's `mcast_max_groups N`
//! (set with scripts/lab/mgroups.py: iproute2 6.1 cannot) drops the groups beyond N, 2 of them
//! its host's own. The search must report those counts (to its step's resolution), name the
//! failure, and tell a responder host's own refusal (ENOBUFS) from the network's limit. Needs
//! root; skips with a printed reason otherwise.

use std::process::Command;

use crate::common;

use common::lab::*;
use common::*;

const PORT: &str = "24242";

/// A fresh 3-host lab whose bridge is an IGMP querier (snooping really filters), with
/// `bridge_setup` applied before any responder joins.
fn querier_lab(base: &str, bridge_setup: &[&str]) -> Option<(Lab, Turn, &'static str)> {
    if !root_or_skip() {
        return None;
    }
    let turn = beside_another_waiting_lab();
    let p = prefix(base);
    let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", p).arg("down").status();
    lab_in(p, &["up", "3", "--querier"]);
    let lab = Lab(p);
    if !bridge_setup.is_empty() {
        let ok = Command::new("ip").args(["-n", &format!("{p}-br")]).args(bridge_setup).status().unwrap();
        assert!(ok.success(), "ip {bridge_setup:?}");
    }
    // The hosts' IPv6 solicited-node reports reach the bridge's table first, as on a real LAN.
    std::thread::sleep(std::time::Duration::from_secs(2));
    Some((lab, turn, p))
}

fn in_ns(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip").args(["netns", "exec", ns]).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ramping(p: &str, h: &str, groups: &str, ramp: &str) -> Responder {
    let mut c = in_lab_host(p, h);
    c.args(["respond", "--iface", "veth0", "--port", PORT, "--name", h, "--groups", groups, "--ramp", ramp]);
    let mut r = Responder::spawn(c);
    r.wait_for("listening");
    r
}

/// `max-groups` from h1, steps of 1 s; h2's result line: (worked, failure tag, the count in its
/// explanation), and all of stdout.
fn search(p: &str, groups: &str) -> (u32, String, u32, String) {
    let mut c = in_lab_host(p, "h1");
    c.args([
        "max-groups",
        "--iface",
        "veth0",
        "--port",
        PORT,
        "--groups",
        groups,
        "--step",
        "1s",
        "--max-steps",
        "120",
    ]);
    let o = run(c);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    let line = out.lines().find(|l| l.starts_with("h2 (")).unwrap_or_else(|| panic!("no h2 line:\n{out}\n{err}"));
    let worked: u32 = line.split(": ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    let tag = line.split("failure: ").nth(1).and_then(|s| s.split(':').next()).unwrap().to_string();
    let at: u32 = line
        .split("failure: ")
        .nth(1)
        .and_then(|s| s.split(" groups joined").next())
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (worked, tag, at, format!("{out}\n{err}"))
}

fn bridge_table(p: &str) -> (usize, usize) {
    let out = Command::new("bridge").args(["-n", &format!("{p}-br"), "mdb", "show"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    (s.lines().count(), s.lines().filter(|l| l.contains("grp ff02::")).count())
}

fn snooping(p: &str) -> bool {
    let out = Command::new("ip").args(["-n", &format!("{p}-br"), "-d", "link", "show", "br0"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("mcast_snooping 1")
}

/// mcast_hash_max 64 and 256: 58 and 250 groups fit next to the hosts' 6 IPv6 entries; the next
/// turns snooping off. h2 keeps the default igmp_max_memberships of 20, and the search does
/// not stop there: a host's per-socket limit is not taken for the network's.
#[test]
fn a_full_bridge_table_floods_and_the_search_names_it() {
    for (hash_max, groups, ramp, fits) in
        [(64u32, "239.9.0.1-239.9.0.100", "3/1s", 58u32), (256, "239.9.0.1-239.9.1.44", "10/1s", 250)]
    {
        let Some((lab, _turn, p)) =
            querier_lab("mg", &["link", "set", "br0", "type", "bridge", "mcast_hash_max", &hash_max.to_string()])
        else {
            return;
        };
        assert_eq!(in_ns(&format!("{p}-h2"), &["sysctl", "-n", "net.ipv4.igmp_max_memberships"]).trim(), "20");
        let mut r = ramping(p, "h2", groups, ramp);
        let (worked, tag, at, out) = search(p, groups);
        assert_eq!(tag, "snooping-flooded", "{out}");
        // The true count lies in (worked, at]; the steps bound how close they are.
        let step: u32 = ramp.split('/').next().unwrap().parse().unwrap();
        assert!(worked <= fits && fits < at && at - worked <= 4 * step, "{worked}..{at} vs {fits}:\n{out}");
        // Where flooding began is the responder's count when the first canary probe came: at
        // most one ramp step past the true figure.
        assert!(at <= fits + step, "flooding by {at}, {fits} fit:\n{out}");
        assert!(worked > 20, "stopped at the per-socket limit:\n{out}");
        assert!(out.contains("its size is the count that worked plus those"), "{out}");
        // The bridge: full, 6 of its entries the hosts' IPv6 groups, snooping off.
        let (entries, v6) = bridge_table(p);
        assert_eq!((entries, v6), (hash_max as usize, 6), "the bridge's table");
        assert!(!snooping(p), "the bridge still snoops");
        // The flood brings h2 the probes of groups its ramp has not joined yet: by design its
        // socket never sees them, and its host drops nothing. Its log must not say otherwise.
        r.signal(nix::sys::signal::Signal::SIGINT);
        r.wait_for("stopped:");
        let dropped: Vec<&String> = r.seen.iter().filter(|l| l.contains("never the responder's socket")).collect();
        assert!(dropped.is_empty(), "{dropped:?}");
        drop(lab);
    }
}

/// A per-port limit (mcast_max_groups 40 on h2's port): the groups beyond it are dropped, none
/// flooded; 38 fit next to h2's 2 IPv6 groups, and the search says exactly 38.
#[test]
fn a_port_limit_drops_new_groups_and_the_search_counts_them() {
    let Some((lab, _turn, p)) = querier_lab("mgp", &[]) else { return };
    let mgroups = repo().join("scripts/lab/mgroups.py");
    let set = in_ns(
        &format!("{p}-br"),
        &["python3", mgroups.to_str().unwrap(), "port-max-groups", "--dev", "p2", "--max", "40"],
    );
    if !set.contains("\"mcast_max_groups\": 40") {
        // A kernel before 6.3 has no per-port limit.
        if skip_or_fail(&format!("this kernel has no bridge port mcast_max_groups: {set}")) {
            return;
        }
    }
    let groups = "239.9.0.1-239.9.0.60";
    let _r = ramping(p, "h2", groups, "4/1s");
    let (worked, tag, _, out) = search(p, groups);
    assert_eq!((worked, tag.as_str()), (38, "new-groups-dropped"), "{out}");
    assert!(snooping(p), "a port limit does not turn snooping off");
    drop(lab);
}

/// h2's own kernel refuses memberships (its igmp_max_memberships lowered to 10 after it opened
/// its sockets for 20 each): the search reports 10 and a host limit, not the network's.
#[test]
fn a_responder_hosts_refusal_is_a_host_limit() {
    let Some((lab, _turn, p)) = querier_lab("mgh", &[]) else { return };
    let groups = "239.9.0.1-239.9.0.40";
    let _r = ramping(p, "h2", groups, "4/1s");
    in_ns(&format!("{p}-h2"), &["sysctl", "-qw", "net.ipv4.igmp_max_memberships=10"]);
    let (worked, tag, at, out) = search(p, groups);
    assert_eq!((worked, tag.as_str(), at), (10, "host-limit", 10), "{out}");
    assert!(out.contains("ENOBUFS") && out.contains("not of the network"), "{out}");
    drop(lab);
}
