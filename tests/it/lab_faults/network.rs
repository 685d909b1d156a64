//! Network faults (issue 19): a snooping switch whose hosts hear no querier, so it forgets their
//! joins; and a router between prober and responder that the probes' TTL does not cross. Each
//! asserts the cause `probe --hosts` names, its exit code, and that it names no wrong one. Needs
//! root (CI runs as root); the router case needs smcroute (CI installs it) and skips without.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::lab::{fresh_waiting_lab, lab_in, one_lab_at_a_time, prefix, root_or_skip};
use crate::common::{run, Responder};

fn line<'a>(text: &'a str, host: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{host}: "))).unwrap_or("")
}

fn assert_no(text: &str, wrong: &[&str]) {
    for w in wrong {
        assert!(!text.contains(w), "a wrong cause, {w:?}, in:\n{text}");
    }
}

#[test]
fn a_snooping_switch_whose_hosts_hear_no_querier_is_named_from_the_silence() {
    let Some((_lab, _turn, p)) = fresh_waiting_lab("nsq", 3) else { return };
    // The bridge snoops and queries every second; memberships age out 3 s after the last report.
    lab_in(p, &["querier", "on", "--interval", "1"]);
    let responder = |h: &str| {
        let mut c = crate::common::lab::in_lab_host(p, h);
        c.args(["respond", "--iface", "veth0", "--name", h, "--querier-wait", "1h"]);
        Responder::spawn(c)
    };
    let _r = [responder("h2"), responder("h3")];
    let mut c = crate::common::lab::in_lab_host(p, "h1");
    c.args(["probe", "--iface", "veth0", "--rate", "20", "--count", "240", "--timeout", "500ms", "--quiet"]);
    c.args(["--querier-wait", "2s", "--hosts", "10.77.0.2,10.77.0.3"]);
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The queries stop reaching h1 and h2 (as on a LAN whose querier went away, from their
    // side): h2 stops reporting, the switch forgets its join, multicast to it stops.
    std::thread::sleep(Duration::from_secs(3));
    lab_in(p, &["querier", "hide", "h1"]);
    lab_in(p, &["querier", "hide", "h2"]);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{text}");
    let h2 = line(&text, "10.77.0.2");
    assert!(h2.contains("multicast stopped once memberships aged out with no querier on the LAN"), "{text}");
    assert!(!h2.contains("one of these"), "the silence explains it: {text}");
    assert!(line(&text, "10.77.0.3").is_empty(), "h3 is ok: {text}");
    assert_no(&text, &["another --group", "this host's firewall", "host is down", "try --ttl"]);
    // doctor on h2 hears no querier either, and says what to enable.
    let mut c = crate::common::lab::in_lab_host(p, "h2");
    c.args(["doctor", "--iface", "veth0", "--role", "responder", "--querier-listen", "3s"]);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("doctor on h2 -> {:?}\n{text}", out.status.code());
    assert_eq!(out.status.code(), Some(1), "{text}");
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with("FOUND")).collect();
    assert_eq!(found.len(), 1, "{text}");
    assert!(found[0].contains("no IGMP/MLD membership querier answered in 3 s"), "{text}");
    assert!(text.contains("enable a querier on the LAN's router or switch"), "{text}");
}

/// Three namespaces: prober (10.77.0.2/25), router (10.77.0.1 and 10.77.0.129, forwarding the
/// group with smcroute) and responder (10.77.0.130/25). Removed on drop.
struct Routed {
    p: &'static str,
    smcroute: Option<Child>,
}

impl Routed {
    fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.p)
    }

    fn ip(&self, args: &str) {
        let out = Command::new("sh").args(["-c", &format!("ip {args}")]).output().unwrap();
        assert!(out.status.success(), "ip {args}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn up(p: &'static str) -> Routed {
        let mut r = Routed { p, smcroute: None };
        r.down();
        for n in ["a", "r", "b"] {
            r.ip(&format!("netns add {}", r.ns(n)));
            r.ip(&format!("-n {} link set lo up", r.ns(n)));
        }
        let (a, rt, b) = (r.ns("a"), r.ns("r"), r.ns("b"));
        r.ip(&format!("-n {rt} link add ra type veth peer name veth0 netns {a}"));
        r.ip(&format!("-n {rt} link add rb type veth peer name veth0 netns {b}"));
        for (ns, dev, addr) in [
            (&a, "veth0", "10.77.0.2/25"),
            (&rt, "ra", "10.77.0.1/25"),
            (&rt, "rb", "10.77.0.129/25"),
            (&b, "veth0", "10.77.0.130/25"),
        ] {
            r.ip(&format!("-n {ns} addr add {addr} dev {dev}"));
            r.ip(&format!("-n {ns} link set {dev} up"));
        }
        r.ip(&format!("-n {a} route add default via 10.77.0.1"));
        r.ip(&format!("-n {b} route add default via 10.77.0.129"));
        for ns in [&a, &b] {
            r.ip(&format!("-n {ns} route add 224.0.0.0/4 dev veth0"));
        }
        r.ip(&format!("netns exec {rt} sysctl -qw net.ipv4.ip_forward=1"));
        let conf = std::env::temp_dir().join(format!("{p}-smcroute.conf"));
        std::fs::write(&conf, "phyint ra enable\nphyint rb enable\nmroute from ra group 239.255.42.42 to rb\n")
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &rt, "smcrouted", "-n", "-N", "-l", "notice", "-i", p, "-f"])
            .arg(&conf)
            .args(["-u", &format!("/run/{p}-smcroute.sock"), "-P", &format!("/run/{p}-smcroute.pid")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smcrouted runs");
        r.smcroute = Some(child);
        // Its route is in the kernel once the multicast routing table lists it.
        let installed = crate::common::wait_for(Duration::from_secs(10), || {
            let out = Command::new("ip").args(["-n", &rt, "mroute", "show"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).contains("239.255.42.42")
                || std::fs::read_to_string(format!("/run/{p}-smcroute.pid")).is_ok()
        });
        assert!(installed, "smcrouted did not start");
        std::thread::sleep(Duration::from_millis(500));
        r
    }

    fn mcprobe(&self, which: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(which), env!("CARGO_BIN_EXE_mcprobe")]);
        c
    }

    fn down(&mut self) {
        if let Some(mut c) = self.smcroute.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in ["a", "r", "b"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(n)]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        self.down();
    }
}

fn smcroute_or_skip() -> bool {
    Command::new("smcrouted").arg("-v").output().is_ok()
        || crate::common::skip_or_fail(
            "smcrouted is not installed (Debian package smcroute; sudo scripts/test.sh installs it)",
        )
}

/// A kernel without IPv4 multicast routing (CONFIG_IP_MROUTE unset: no /proc/net/ip_mr_vif)
/// forwards no multicast whatever smcroute says: the router case cannot run there (found on a
/// CI VM whose kernel had it off).
fn mroute_or_skip() -> bool {
    std::path::Path::new("/proc/net/ip_mr_vif").exists()
        || crate::common::skip_kernel_lacks(
            "this kernel has no IPv4 multicast routing (CONFIG_IP_MROUTE unset): no router to cross",
        )
}

#[test]
fn a_ttl_too_low_to_cross_a_router_is_named_with_the_ttl_to_use() {
    if !root_or_skip() || !smcroute_or_skip() || !mroute_or_skip() {
        return;
    }
    let _turn = one_lab_at_a_time();
    let lab = Routed::up(prefix("nrt"));
    let mut c = lab.mcprobe("b");
    c.args(["respond", "--iface", "veth0", "--name", "far", "--querier-wait", "1h"]);
    let _far = Responder::spawn(c);
    let probe = |ttl: &str| {
        let mut c = lab.mcprobe("a");
        c.args(["probe", "--iface", "veth0", "--count", "30", "--rate", "20", "--timeout", "500ms", "--quiet"]);
        c.args(["--hosts", "10.77.0.130", "--ttl", ttl]);
        let out = run(c);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("--ttl {ttl} -> {:?}\n{text}{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    // The default TTL of 1 stops at the router; unicast crosses it and shows the hop.
    let (code, out) = probe("1");
    assert_eq!(code, Some(3), "{out}");
    let l = line(&out, "10.77.0.130");
    assert!(l.contains("1 router away but --ttl is 1: the probes expire on the way; try --ttl 2"), "{out}");
    assert_no(&out, &["another --group", "firewall", "snooping", "host is down", "one of these"]);
    // The TTL it names gets through.
    let (code, out) = probe("2");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 of 1 expected hosts ok"), "{out}");
}
