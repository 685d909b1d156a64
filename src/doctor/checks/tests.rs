//! The checks over made-up facts: each fault alone, named with its fix, and nothing else named.

use std::time::Duration;

use super::*;
use crate::doctor::firewall::Ruleset;
use crate::doctor::{Bound, ClockFacts, IfaceFacts, PeerFacts, Role};
use crate::net::route::Route;

fn setup(role: Role) -> Setup {
    Setup {
        iface: "veth0".into(),
        group: "239.255.42.42".parse().unwrap(),
        port: 24242,
        role,
        ack_port: None,
        peers: Vec::new(),
        querier_wait: Duration::from_secs(3),
        keyed: false,
    }
}

/// A host with nothing wrong.
fn clean() -> Facts {
    Facts {
        iface: Some(IfaceFacts {
            name: "veth0".into(),
            up: true,
            running: true,
            multicast: true,
            loopback: false,
            addrs: vec!["10.77.0.1/24".parse().unwrap(), "fd77::1/64".parse().unwrap()],
        }),
        group_route: Ok(Route { dev: "veth0".into(), kind: "multicast".into(), prefsrc: None }),
        rp_filter: Some(0),
        peers: vec![PeerFacts {
            addr: "10.77.0.2".parse().unwrap(),
            given: false,
            accepted: Ok(()),
            back_via: Some("veth0".into()),
        }],
        firewall: Ok((Ruleset::default(), vec!["nft -j list ruleset".into()])),
        ephemeral: (32768, 60999),
        igmp_max_memberships: Some(20),
        group_port_bound: Vec::new(),
        ack_port_bound: Vec::new(),
        querier: QuerierFacts::Heard(vec![("10.77.0.254".parse().unwrap(), "IGMPv3".into())]),
        clock: Some(ClockFacts { synced: true, maxerror_us: 16_000 }),
    }
}

fn found(r: &Report) -> Vec<Check> {
    r.findings.iter().map(|f| f.check).collect()
}

#[test]
fn a_clean_host_has_no_findings() {
    let r = check(&setup(Role::Both), &clean());
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.cannot_tell.is_empty(), "{:#?}", r.cannot_tell);
    let ok: Vec<Check> = r.ok.iter().map(|l| l.check).collect();
    for c in
        [Check::Interface, Check::Route, Check::ReversePath, Check::Firewall, Check::Port, Check::Querier, Check::Clock]
    {
        assert!(ok.contains(&c), "{c:?} in {ok:?}");
    }
}

#[test]
fn interface_faults_each_with_its_command() {
    let mut f = clean();
    let i = f.iface.as_mut().unwrap();
    i.up = false;
    i.multicast = false;
    let r = check(&setup(Role::Both), &f);
    assert_eq!(found(&r), [Check::Interface, Check::Interface]);
    assert_eq!(r.findings[0].fix, ["ip link set dev veth0 up"]);
    assert_eq!(r.findings[1].fix, ["ip link set dev veth0 multicast on"]);
    let mut f = clean();
    f.iface.as_mut().unwrap().running = false;
    assert!(check(&setup(Role::Both), &f).findings[0].what.contains("no carrier"));
    let mut f = clean();
    f.iface = None;
    assert_eq!(found(&check(&setup(Role::Both), &f)), [Check::Interface]);
}

#[test]
fn a_missing_or_elsewhere_route_is_named() {
    let mut f = clean();
    f.group_route = Err("Network is unreachable".into());
    let r = check(&setup(Role::Both), &f);
    assert_eq!(found(&r), [Check::Route]);
    assert_eq!(r.findings[0].fix[0], "ip route add 224.0.0.0/4 dev veth0");
    f.group_route = Ok(Route { dev: "eth1".into(), kind: "multicast".into(), prefsrc: None });
    let r = check(&setup(Role::Both), &f);
    assert!(r.findings[0].what.contains("leaves by eth1, not veth0"), "{}", r.findings[0].what);
}

#[test]
fn the_reverse_path_filter_is_named_with_the_route_back() {
    let mut f = clean();
    f.rp_filter = Some(1);
    f.peers[0] = PeerFacts {
        addr: "10.77.0.1".parse().unwrap(),
        given: true,
        accepted: Err("Invalid argument".into()),
        back_via: Some("side0".into()),
    };
    let r = check(&setup(Role::Responder), &f);
    assert_eq!(found(&r), [Check::ReversePath]);
    let w = &r.findings[0].what;
    assert!(w.contains("10.77.0.1") && w.contains("rp_filter 1") && w.contains("leaves by side0"), "{w}");
    assert!(r.findings[0].fix[1].contains("net.ipv4.conf.veth0.rp_filter=2"));
    // With the filter off, the same refusal is not the filter's: no rp_filter fix.
    f.rp_filter = Some(0);
    let r = check(&setup(Role::Responder), &f);
    assert_eq!(found(&r), [Check::ReversePath]);
    let x = &r.findings[0];
    assert!(x.what.contains("reverse-path filter is off (rp_filter 0)"), "{}", x.what);
    assert!(x.fix.iter().all(|l| !l.contains("rp_filter")), "{:?}", x.fix);
}

#[test]
fn a_stateful_firewall_drops_a_probers_acks_and_nothing_of_a_responder() {
    let mut f = clean();
    f.firewall = Ok((crate::doctor::firewall::tests::stateful(), vec!["nft -j list ruleset".into()]));
    // As a prober: the multicast acks (new to conntrack), with the fix and --ack-port.
    let r = check(&setup(Role::Prober), &f);
    assert_eq!(found(&r), [Check::Firewall]);
    let x = &r.findings[0];
    assert!(x.what.contains("the acks a prober gets") && x.what.contains("policy of inet filter input"), "{}", x.what);
    assert_eq!(x.fix[0], "nft insert rule inet filter input udp dport 24243 accept");
    assert!(x.fix[1].contains("--ack-port 24243"));
    // With --ack-port and the rule's port not open: the same, for that port, no extra step.
    let s = Setup { ack_port: Some(40000), ..setup(Role::Prober) };
    let r = check(&s, &f);
    assert_eq!(r.findings[0].fix, ["nft insert rule inet filter input udp dport 40000 accept"]);
    // As a responder: probes on 24242 pass; the IGMP queries do not, so a silent querier
    // watch proves nothing.
    f.querier = QuerierFacts::Silent(Duration::from_secs(3));
    let r = check(&setup(Role::Responder), &f);
    assert_eq!(found(&r), [Check::Firewall]);
    assert!(r.cannot_tell.iter().any(|l| l.check == Check::Querier && l.what.contains("drops the queries")));
    assert!(r.findings[0].what.contains("IGMP membership queries"), "{}", r.findings[0].what);
    assert_eq!(r.findings[0].fix, ["nft insert rule inet filter input ip protocol igmp accept"]);
}

#[test]
fn an_unreadable_firewall_is_said_not_guessed() {
    let mut f = clean();
    f.firewall = Err("nft: Operation not permitted".into());
    let r = check(&setup(Role::Both), &f);
    assert!(r.findings.is_empty());
    assert!(r.cannot_tell.iter().any(|l| l.check == Check::Firewall && l.what.contains("Operation not permitted")));
}

#[test]
fn ports_memberships_querier_and_clock() {
    let mut f = clean();
    f.igmp_max_memberships = Some(0);
    f.group_port_bound = vec![
        Bound { local: "0.0.0.0:24242".parse().unwrap(), owner: Some(("vlc".into(), 4242)) },
        Bound { local: "0.0.0.0:24242".parse().unwrap(), owner: Some(("mcprobe".into(), 77)) },
    ];
    f.ack_port_bound = vec![Bound { local: "0.0.0.0:40000".parse().unwrap(), owner: None }];
    f.querier = QuerierFacts::Silent(Duration::from_secs(3));
    f.clock = Some(ClockFacts { synced: false, maxerror_us: 16_000_000 });
    let s = Setup { ack_port: Some(40000), keyed: true, ..setup(Role::Both) };
    let r = check(&s, &f);
    assert_eq!(found(&r), [Check::Memberships, Check::Port, Check::Port, Check::Querier, Check::Clock]);
    assert!(r.findings[1].what.contains("vlc (pid 4242)") && r.findings[1].what.contains("IP_MULTICAST_ALL"));
    assert!(r.findings[2].what.contains("--ack-port 40000"));
    assert!(r.ok.iter().any(|l| l.what.contains("bound by mcprobe")));
    // Unsynchronised without keys: said, not a finding.
    let r = check(&setup(Role::Both), &Facts { clock: Some(ClockFacts { synced: false, maxerror_us: 0 }), ..clean() });
    assert!(
        r.findings.is_empty() && r.ok.iter().any(|l| l.check == Check::Clock && l.what.contains("only with --key"))
    );
}

/// doctor's report as the terminal and `--json` show it, pinned: a prober behind issue 19's
/// stateful firewall, on a LAN whose querier is silent, with rp_filter refusing a peer.
#[test]
fn the_report_in_words_and_json() {
    let mut f = clean();
    f.firewall = Ok((crate::doctor::firewall::tests::stateful(), vec!["nft -j list ruleset".into()]));
    f.querier = QuerierFacts::Silent(Duration::from_secs(3));
    f.clock = None;
    let s = setup(Role::Prober);
    let r = check(&s, &f);
    let mut text = Vec::new();
    crate::output::doctor::write_text(&mut text, &s, &r).unwrap();
    let mut json = Vec::new();
    crate::output::doctor::write_json(&mut json, &s, &r).unwrap();
    insta::assert_snapshot!(format!("{}\n{}", String::from_utf8(text).unwrap(), String::from_utf8(json).unwrap()));
}
