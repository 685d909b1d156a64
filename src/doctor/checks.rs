//! The doctor's judgement over gathered [`Facts`] (pure).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::firewall::{ChainRef, Ct, Fate, Packet, Tool, ICMPV6, IGMP, UDP};
use super::{Check, Facts, Finding, Line, QuerierFacts, Report, Role, Setup};

impl Report {
    fn found(&mut self, check: Check, what: String, fix: Vec<String>) {
        self.findings.push(Finding { check, what, fix });
    }

    fn ok(&mut self, check: Check, what: String) {
        self.ok.push(Line { check, what });
    }

    fn unsure(&mut self, check: Check, what: String) {
        self.cannot_tell.push(Line { check, what });
    }
}

/// This host's address on the interface of the group's family.
fn local_addr(s: &Setup, f: &Facts) -> Option<IpAddr> {
    let i = f.iface.as_ref()?;
    let family = |a: &IpAddr| a.is_ipv6() == s.group.is_ipv6();
    let addrs = i.addrs.iter().map(|n| n.addr()).filter(family);
    // IPv6: a global address rather than the link-local one, as mcprobe sends from.
    let mut addrs: Vec<IpAddr> = addrs.collect();
    addrs.sort_by_key(|a| matches!(a, IpAddr::V6(v) if v.is_unicast_link_local()));
    addrs.first().copied()
}

/// A peer to reason about: the first given, else one of the interface's subnet.
fn a_peer(s: &Setup, f: &Facts) -> Option<IpAddr> {
    s.peers.first().copied().or_else(|| f.peers.first().map(|p| p.addr))
}

/// Checks everything; the report's findings in the order a reader fixes them.
pub fn check(s: &Setup, f: &Facts) -> Report {
    let mut r = Report::default();
    let Some(i) = &f.iface else {
        r.found(Check::Interface, format!("no interface {} on this host", s.iface), vec!["ip -br link".into()]);
        return r;
    };
    interface(s, f, &mut r);
    if !i.loopback {
        route(s, f, &mut r);
    }
    reverse_path(s, f, &mut r);
    firewall(s, f, &mut r);
    memberships(s, f, &mut r);
    ports(s, f, &mut r);
    querier(s, f, queries_dropped(s, f), &mut r);
    clock(s, f, &mut r);
    r
}

/// Whether the firewall drops the membership queries to all hosts: then the querier check,
/// which listens for them after the firewall, cannot hear them either.
fn queries_dropped(s: &Setup, f: &Facts) -> bool {
    let (Ok((rules, _)), Some(local)) = (&f.firewall, local_addr(s, f)) else { return false };
    let (src, dst, l4, kind) = if s.group.is_ipv6() {
        (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
            ICMPV6,
            130,
        )
    } else {
        (a_peer(s, f).unwrap_or(local), IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)), IGMP, 0x11)
    };
    let q = Packet {
        l4,
        src,
        dst,
        sport: None,
        dport: None,
        icmp_type: Some(kind),
        iif: Some(s.iface.clone()),
        oif: None,
        ct: Ct::New,
        multicast: true,
        inbound: true,
    };
    matches!(rules.fate(&q), Fate::Dropped { .. })
}

fn interface(s: &Setup, f: &Facts, r: &mut Report) {
    let i = f.iface.as_ref().expect("checked");
    let n = &i.name;
    let mut bad = false;
    if !i.up {
        r.found(
            Check::Interface,
            format!("{n} is down: nothing leaves or arrives on it"),
            vec![format!("ip link set dev {n} up")],
        );
        bad = true;
    } else if !i.running {
        r.found(
            Check::Interface,
            format!("{n} is up but has no carrier: the cable, the switch port or the other end of the link is down"),
            vec![format!("ip link show dev {n}"), "check the cable and the switch port".into()],
        );
        bad = true;
    }
    if !i.multicast && !i.loopback {
        r.found(
            Check::Interface,
            format!("{n} has no MULTICAST flag: the kernel neither sends nor joins groups on it"),
            vec![format!("ip link set dev {n} multicast on")],
        );
        bad = true;
    }
    let family = if s.group.is_ipv6() { "IPv6" } else { "IPv4" };
    let addrs: Vec<String> =
        (i.addrs.iter()).filter(|a| a.addr().is_ipv6() == s.group.is_ipv6()).map(|a| a.to_string()).collect();
    if addrs.is_empty() {
        r.found(
            Check::Interface,
            format!("{n} has no {family} address: probes to {} cannot leave from it, and acks have no address to come back to", s.group),
            vec![format!("ip addr add ADDRESS/PREFIX dev {n}")],
        );
        bad = true;
    }
    if !bad {
        let flags = if i.loopback { "up (loopback)" } else { "up, carrier, MULTICAST" };
        r.ok(Check::Interface, format!("{n}: {flags}, {}", addrs.join(" ")));
    }
}

fn route(s: &Setup, f: &Facts, r: &mut Report) {
    let n = &s.iface;
    let add = if s.group.is_ipv6() {
        format!("ip -6 route add {}/128 dev {n} table local", s.group)
    } else {
        format!("ip route add 224.0.0.0/4 dev {n}")
    };
    match &f.group_route {
        Ok(route) if &route.dev == n => r.ok(Check::Route, format!("{} leaves by {n}", s.group)),
        Ok(route) => r.found(
            Check::Route,
            format!(
                "{} leaves by {}, not {n}: programs that name no interface (and mcprobe without --iface) send and join there",
                s.group, route.dev
            ),
            vec![add, format!("or always give mcprobe --iface {n}")],
        ),
        Err(e) => r.found(
            Check::Route,
            format!("no route for {}: sending it without an interface fails, and joins without one ({e})", s.group),
            vec![add, format!("or always give mcprobe --iface {n}")],
        ),
    }
}

fn reverse_path(s: &Setup, f: &Facts, r: &mut Report) {
    if s.group.is_ipv6() || f.iface.as_ref().is_some_and(|i| i.loopback) {
        return;
    }
    let n = &s.iface;
    let setting = f.rp_filter.map_or("unknown".to_string(), |v| v.to_string());
    let mut refused = false;
    for p in &f.peers {
        if let Err(kernel) = &p.accepted {
            refused = true;
            let back = p.back_via.as_deref().map_or(String::new(), |d| format!(": the route back to it leaves by {d}"));
            let who = if p.given { "" } else { " (an address of its subnet)" };
            if !crate::net::route::may_blame_rp_filter(f.rp_filter, n) {
                // The filter is off: what the kernel refuses is the source itself there.
                r.found(
                    Check::ReversePath,
                    format!(
                        "the kernel refuses packets from {}{who} arriving on {n} ({kernel}) although the reverse-path filter is off (rp_filter 0): a source that cannot arrive there (one of this host's own addresses, a loopback, broadcast or zero address), or {n} is down; probes from it are dropped before any socket",
                        p.addr
                    ),
                    vec![format!("check the address {} sends from, and that {n} is up (`ip link show {n}`)", p.addr)],
                );
                continue;
            }
            r.found(
                Check::ReversePath,
                format!(
                    "the kernel refuses packets from {}{who} arriving on {n} ({kernel}): the reverse-path filter (rp_filter {setting}){back}; probes from it (and ARP) are dropped before any socket",
                    p.addr
                ),
                vec![
                    format!("make the route back to {} leave by {n} (`ip route get {}` shows the one in use),", p.addr, p.addr),
                    format!("or, when that other route does reach it, loosen the check: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{n}.rp_filter=2"),
                ],
            );
        }
    }
    if !refused && !f.peers.is_empty() {
        let list: Vec<String> = f.peers.iter().map(|p| p.addr.to_string()).collect();
        r.ok(
            Check::ReversePath,
            format!("packets from {} on {n} pass the reverse-path filter (rp_filter {setting})", list.join(", ")),
        );
    }
}

/// The fix for a drop: an accept rule, first in the base chain the packet entered.
fn accept_rule(at: &ChainRef, v6: bool, nft_match: &str, ipt_match: &str) -> String {
    match at.tool {
        Tool::Nftables => format!(
            "nft insert rule {} {nft_match} accept",
            ChainRef { chain: at.base.clone(), ..at.clone() }.nft_name()
        ),
        Tool::Iptables => {
            let tool = if v6 { "ip6tables" } else { "iptables" };
            let table = if at.table == "filter" { String::new() } else { format!("-t {} ", at.table) };
            format!("{tool} {table}-I {} {ipt_match} -j ACCEPT", at.base)
        }
    }
}

fn dropped_by(fate: &Fate) -> String {
    match fate {
        Fate::Dropped { chain, rule: Some(rule), reject } => {
            format!("{} by `{rule}` in {}", if *reject { "rejected" } else { "dropped" }, chain.describe())
        }
        Fate::Dropped { chain, rule: None, .. } => format!("dropped by the policy of {}", chain.describe()),
        _ => String::new(),
    }
}

/// One packet mcprobe sends or gets, what it is, and the fix's match in both tools.
struct Case {
    what: String,
    packet: Packet,
    nft: String,
    ipt: String,
    /// Extra steps after the rule (using --ack-port).
    then: Option<String>,
}

fn firewall(s: &Setup, f: &Facts, r: &mut Report) {
    let (rules, read) = match &f.firewall {
        Ok(x) => x,
        Err(e) => return r.unsure(Check::Firewall, format!("what the firewall does: its rules are unreadable ({e})")),
    };
    let (Some(local), Some(peer)) = (local_addr(s, f), a_peer(s, f)) else {
        return r.unsure(
            Check::Firewall,
            "what it does: the interface has no address (or subnet) to make the packets from".into(),
        );
    };
    let v6 = s.group.is_ipv6();
    let n = s.iface.clone();
    let eph = f.ephemeral.0 + (f.ephemeral.1 - f.ephemeral.0) / 2;
    let ack = s.ack_port.unwrap_or(eph);
    let p = s.port;
    let udp = |src: IpAddr, dst: IpAddr, sport: u16, dport: u16, ct: Ct, inbound: bool| Packet {
        l4: UDP,
        src,
        dst,
        sport: Some(sport),
        dport: Some(dport),
        icmp_type: None,
        iif: inbound.then(|| n.clone()),
        oif: (!inbound).then(|| n.clone()),
        ct,
        multicast: dst.is_multicast(),
        inbound,
    };
    let mut cases: Vec<Case> = Vec::new();
    if s.role.responds() {
        cases.push(Case {
            what: format!("the multicast probes a responder gets (UDP to {} port {p})", s.group),
            packet: udp(peer, s.group, eph, p, Ct::New, true),
            nft: format!("udp dport {p}"),
            ipt: format!("-p udp --dport {p}"),
            then: None,
        });
        cases.push(Case {
            what: format!("the unicast probes a responder gets (`probe --hosts`: UDP to {local} port {p})"),
            packet: udp(peer, local, eph, p, Ct::New, true),
            nft: format!("udp dport {p}"),
            ipt: format!("-p udp --dport {p}"),
            then: None,
        });
        cases.push(Case {
            what: format!("the acks a responder sends (UDP from port {p}; new to conntrack, as answers to a group)"),
            packet: udp(local, peer, p, ack, Ct::New, false),
            nft: format!("udp sport {p}"),
            ipt: format!("-p udp --sport {p}"),
            then: None,
        });
        let (query, report) = if v6 {
            let q = Packet {
                l4: ICMPV6,
                src: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
                dst: IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
                sport: None,
                dport: None,
                icmp_type: Some(130),
                iif: Some(n.clone()),
                oif: None,
                ct: Ct::New,
                multicast: true,
                inbound: true,
            };
            let rep = Packet {
                icmp_type: Some(143),
                src: local,
                dst: IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16)),
                iif: None,
                oif: Some(n.clone()),
                inbound: false,
                ..q.clone()
            };
            (q, rep)
        } else {
            let q = Packet {
                l4: IGMP,
                src: peer,
                dst: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
                sport: None,
                dport: None,
                icmp_type: Some(0x11),
                iif: Some(n.clone()),
                oif: None,
                ct: Ct::New,
                multicast: true,
                inbound: true,
            };
            let rep = Packet {
                icmp_type: Some(0x22),
                src: local,
                dst: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 22)),
                iif: None,
                oif: Some(n.clone()),
                inbound: false,
                ..q.clone()
            };
            (q, rep)
        };
        let (proto_nft, proto_ipt, name) = if v6 {
            ("icmpv6 type mld-listener-query", "-p ipv6-icmp --icmpv6-type 130", "MLD")
        } else {
            ("ip protocol igmp", "-p igmp", "IGMP")
        };
        cases.push(Case {
            what: format!("the {name} membership queries it must answer (without them, snooping switches stop forwarding the group after ~260 s)"),
            packet: query,
            nft: proto_nft.into(),
            ipt: proto_ipt.into(),
            then: None,
        });
        let (rep_nft, rep_ipt) = if v6 {
            ("icmpv6 type mld2-listener-report", "-p ipv6-icmp --icmpv6-type 143")
        } else {
            ("ip protocol igmp", "-p igmp")
        };
        cases.push(Case {
            what: format!("the {name} membership reports it sends (its joins: without them snooping switches never forward the group)"),
            packet: report,
            nft: rep_nft.into(),
            ipt: rep_ipt.into(),
            then: None,
        });
    }
    if s.role.probes() {
        cases.push(Case {
            what: format!("the probes a prober sends (UDP to {} port {p})", s.group),
            packet: udp(local, s.group, ack, p, Ct::New, false),
            nft: format!("udp dport {p}"),
            ipt: format!("-p udp --dport {p}"),
            then: None,
        });
        let (port_text, first) = match s.ack_port {
            Some(a) => (format!("its --ack-port {a}"), a),
            None => (
                format!("an ephemeral port, {}-{}, which --ack-port fixes", f.ephemeral.0, f.ephemeral.1),
                p.wrapping_add(1).max(1),
            ),
        };
        cases.push(Case {
            what: format!(
                "the acks a prober gets (UDP from port {p} to {port_text}): new to conntrack, since nothing ties them to probes sent to a group"
            ),
            packet: udp(peer, local, p, ack, Ct::New, true),
            nft: format!("udp dport {first}"),
            ipt: format!("-p udp --dport {first}"),
            then: s.ack_port.is_none().then(|| format!("then probe with --ack-port {first} (with --hosts it also takes the next ports, one per host)")),
        });
        cases.push(Case {
            what: "the acks to a prober's unicast probes (`--hosts`), which conntrack sees as answers".into(),
            packet: udp(peer, local, p, ack, Ct::Established, true),
            nft: "ct state established,related".into(),
            ipt: "-m conntrack --ctstate ESTABLISHED,RELATED".into(),
            then: None,
        });
    }
    let mut dropped = 0;
    for c in cases {
        match rules.fate(&c.packet) {
            Fate::Accepted => {}
            fate @ Fate::Dropped { .. } => {
                dropped += 1;
                let Fate::Dropped { chain, .. } = &fate else { unreachable!("matched") };
                let mut fix = vec![accept_rule(chain, v6, &c.nft, &c.ipt)];
                fix.extend(c.then);
                r.found(Check::Firewall, format!("this host's firewall drops {}: {}", c.what, dropped_by(&fate)), fix);
            }
            Fate::CannotTell { chain, rule } => r.unsure(
                Check::Firewall,
                format!("whether the firewall passes {}: it depends on `{rule}` in {}", c.what, chain.describe()),
            ),
        }
    }
    if dropped == 0 {
        let chains = rules.chains.iter().filter(|c| c.hook.is_some()).count();
        r.ok(
            Check::Firewall,
            format!(
                "no rule drops mcprobe's packets ({chains} base chain{} read from {}; read statically, see --help)",
                if chains == 1 { "" } else { "s" },
                read.join(" and ")
            ),
        );
    }
}

fn memberships(s: &Setup, f: &Facts, r: &mut Report) {
    if !s.role.responds() || s.group.is_ipv6() {
        return;
    }
    match f.igmp_max_memberships {
        Some(0) => r.found(
            Check::Memberships,
            "net.ipv4.igmp_max_memberships is 0: no socket can join any group".into(),
            vec!["sysctl -w net.ipv4.igmp_max_memberships=20".into()],
        ),
        Some(n) => r.ok(
            Check::Memberships,
            format!("net.ipv4.igmp_max_memberships {n} (per socket; a responder joins one group)"),
        ),
        None => r.unsure(Check::Memberships, "net.ipv4.igmp_max_memberships: unreadable".into()),
    }
}

fn ports(s: &Setup, f: &Facts, r: &mut Report) {
    let p = s.port;
    if s.role.responds() {
        let others: Vec<&super::Bound> =
            f.group_port_bound.iter().filter(|b| b.owner.as_ref().is_none_or(|(c, _)| c != "mcprobe")).collect();
        let ours = f.group_port_bound.len() - others.len();
        for b in others {
            let who = b
                .owner
                .as_ref()
                .map_or("a program (run as root to see which)".to_string(), |(c, pid)| format!("{c} (pid {pid})"));
            r.found(
                Check::Port,
                format!(
                    "port {p} is already bound by {who} at {}: a responder can share it only if that socket allows it, and then the kernel hands each unicast probe to one socket only; with IP_MULTICAST_ALL on (Linux's default) a socket bound to the port on every address also gets every group joined on this host at that port, mcprobe's probes included",
                    b.local
                ),
                vec![format!("ss -ulpn sport = :{p}"), format!("or run mcprobe on another --port than {p}")],
            );
        }
        if ours > 0 {
            r.ok(Check::Port, format!("port {p}: bound by mcprobe (a responder already runs here)"));
        } else if f.group_port_bound.is_empty() {
            r.ok(Check::Port, format!("port {p} is free for a responder"));
        }
    }
    if let (true, Some(a)) = (s.role.probes(), s.ack_port) {
        match f.ack_port_bound.first() {
            Some(b) => {
                let who = b.owner.as_ref().map_or("a program".to_string(), |(c, pid)| format!("{c} (pid {pid})"));
                r.found(
                    Check::Port,
                    format!("--ack-port {a} is already bound by {who} at {}: the prober cannot take it", b.local),
                    vec![
                        format!("ss -ulpn sport = :{a}"),
                        "or pick another --ack-port (and open it in the firewall)".into(),
                    ],
                );
            }
            None => r.ok(Check::Port, format!("--ack-port {a} is free")),
        }
    }
}

fn querier(s: &Setup, f: &Facts, firewalled: bool, r: &mut Report) {
    match &f.querier {
        QuerierFacts::Loopback => {}
        // A responder must answer the queries, so the firewall check names the rule; a prober
        // joins nothing and needs none, but cannot hear them either.
        QuerierFacts::Silent(_) if firewalled && s.role == Role::Prober => r.unsure(
            Check::Querier,
            "whether the LAN has a membership querier: this host's firewall drops the queries before they can be heard (a prober needs none; run doctor on a responder's host to check)".into(),
        ),
        QuerierFacts::Silent(_) if firewalled => r.unsure(
            Check::Querier,
            "whether the LAN has a membership querier: this host's firewall drops the queries before they can be heard (see the firewall line about them)".into(),
        ),
        QuerierFacts::NotWatched(why) => r.unsure(Check::Querier, format!("whether the LAN has a membership querier: {why}")),
        QuerierFacts::Heard(list) => {
            let l: Vec<String> = list.iter().map(|(a, v)| format!("{a} ({v})")).collect();
            r.ok(Check::Querier, format!("membership querier heard: {}", l.join(", ")));
        }
        QuerierFacts::Silent(w) => r.found(
            Check::Querier,
            format!(
                "no IGMP/MLD membership querier answered in {:.0} s, not even the leave this check sent: where switches snoop IGMP, they stop forwarding a group about 260 s after its last report",
                w.as_secs_f64()
            ),
            vec![
                "enable a querier on the LAN's router or switch".into(),
                "or on a Linux bridge: ip link set BRIDGE type bridge mcast_querier 1".into(),
                "(no switch snooping on this LAN: nothing to do; `mcprobe probe --preset soak` shows it)".into(),
            ],
        ),
    }
}

fn clock(s: &Setup, f: &Facts, r: &mut Report) {
    let Some(c) = f.clock else {
        return r.unsure(Check::Clock, "whether the clock is synchronised: adjtimex failed".into());
    };
    match (c.synced, s.keyed) {
        (true, _) => r.ok(Check::Clock, format!("synchronised (estimated error up to {} ms)", c.maxerror_us / 1000)),
        (false, true) => r.found(
            Check::Clock,
            "this host's clock is not synchronised: keyed probes stamped more than --max-clock-skew (5 s) away from a responder's clock are refused as stale".into(),
            vec!["timedatectl set-ntp true   (or start chrony / ntpd)".into(), "timedatectl timesync-status".into()],
        ),
        (false, false) => r.ok(Check::Clock, "not synchronised (matters only with --key)".into()),
    }
}

#[cfg(test)]
mod tests;
