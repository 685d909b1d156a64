use super::synthetic::{outcome, Answerer};
use super::*;

fn judge(group: &str) -> Judgement {
    Judgement::new(DEFAULT_THRESHOLD_PCT, group.parse().unwrap(), false)
}

/// Three expected hosts: `a` fine on both paths, `b` answers multicast but its unicast is
/// blocked, `c` answers unicast but gets no multicast. Addresses as the family gives them.
fn lan(a: &str, b: &str, c: &str, port: u16) -> Outcome {
    let sa = |ip: &str| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let (ra, rb, rc) =
        (Answerer::new(0xa, "ha", &sa(a)), Answerer::new(0xb, "hb", &sa(b)), Answerer::new(0xc, "hc", &sa(c)));
    outcome(100, 1, &[ra.clone(), rb], &[(a, vec![ra]), (b, vec![]), (c, vec![rc])])
}

fn verdicts(f: &Findings) -> Vec<(IpAddr, Verdict)> {
    f.diagnosis.as_ref().unwrap().hosts.iter().map(|h| (h.host, h.verdict)).collect()
}

#[test]
fn hosts_are_matched_by_address_in_both_families() {
    for (a, b, c, group) in
        [("10.0.0.1", "10.0.0.2", "10.0.0.3", "239.1.1.1:31000"), ("fd77::1", "fd77::2", "fd77::3", "[ff15::99]:31000")]
    {
        let f = Findings::of(&lan(a, b, c, 31000), judge(group));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            verdicts(&f),
            [(ip(a), Verdict::Ok), (ip(b), Verdict::UnicastLost), (ip(c), Verdict::MulticastLost)],
            "{group}"
        );
        let d = f.diagnosis.as_ref().unwrap();
        assert!(d.unexpected.is_empty(), "{group}: {:?}", d.unexpected);
        assert_eq!(d.missing_on_multicast().collect::<Vec<_>>(), [ip(c)], "{group}");
        // b's multicast row belongs to b, by address alone (no unicast ack carried its id).
        let b_mc = f.rows.iter().find(|r| r.path == Path::Multicast && r.name() == "hb").unwrap();
        assert_eq!(b_mc.expected_host, Some(ip(b)));
        assert_eq!(b_mc.verdict, Some(Verdict::UnicastLost));
        assert!(d.multicast_broken());
    }
}

#[test]
fn a_multicast_row_from_another_address_is_matched_by_responder_id() {
    // The host answers unicast from 10.0.0.1 but its multicast acks leave from 10.0.1.1.
    let mc = Answerer::new(7, "multi", "10.0.1.1:24242");
    let uc = Answerer::new(7, "multi", "10.0.0.1:24242");
    let f = Findings::of(&outcome(50, 1, &[mc], &[("10.0.0.1", vec![uc])]), judge("239.1.1.1:24242"));
    assert_eq!(verdicts(&f)[0].1, Verdict::Ok);
    assert!(f.diagnosis.unwrap().unexpected.is_empty());
}

#[test]
fn one_responder_listed_under_two_addresses_is_judged_once_not_called_lost() {
    // Two interfaces of one host both listed: its responder answers the unicast probes to each
    // (from the address each went to, or one of them), and the group from one address. It is
    // judged once, as the first listed, in either order, and a note says why.
    let mc = Answerer::new(7, "multi", "10.0.0.1:24242");
    let (uc1, uc2) = (Answerer::new(7, "multi", "10.0.0.1:24242"), Answerer::new(7, "multi", "10.0.0.1:24242"));
    for hosts in [["10.0.0.1", "10.0.1.1"], ["10.0.1.1", "10.0.0.1"]] {
        let unicast = [(hosts[0], vec![uc1.clone()]), (hosts[1], vec![uc2.clone()])];
        let f = Findings::of(&outcome(50, 1, std::slice::from_ref(&mc), &unicast), judge("239.1.1.1:24242"));
        let first: IpAddr = hosts[0].parse().unwrap();
        let second: IpAddr = hosts[1].parse().unwrap();
        assert_eq!(verdicts(&f), [(first, Verdict::Ok)], "{hosts:?}");
        let d = f.diagnosis.as_ref().unwrap();
        assert!(!d.multicast_broken());
        // Every row is the first's: the second has none of its own (its unicast probes' acks
        // are the same responder's, counted under the first).
        assert!(f.rows.iter().all(|r| r.expected_host == Some(first)), "{:?}", f.rows);
        assert_eq!(d.listed_twice, [ListedTwice { host: second, as_host: first, name: "multi".into() }]);
        // One multicast row, not a silent second one.
        assert_eq!(f.rows.iter().filter(|r| r.path == Path::Multicast).count(), 1, "{:?}", f.rows);
        assert!(f.notes.iter().any(|n| matches!(n, Note::ListedTwice(t) if t.host == second)), "{:?}", f.notes);
    }
}

#[test]
fn a_peer_address_answered_by_this_hosts_own_responder_is_no_peer() {
    // A mesh lists 10.0.0.2, which this host's kernel delivers to itself: its own responder (7)
    // answers the unicast probes to it. Not a peer that answered: unreachable, "this host".
    let own = Answerer::new(7, "me", "10.0.0.1:24242");
    let mut j = judge("239.1.1.1:24242");
    j.own = Some(ResponderId(7));
    let f = Findings::of(&outcome(30, 1, std::slice::from_ref(&own), &[("10.0.0.2", vec![own.clone()])]), j);
    assert_eq!(verdicts(&f), [("10.0.0.2".parse().unwrap(), Verdict::Unreachable)]);
    let d = f.diagnosis.as_ref().unwrap();
    assert_eq!(d.hosts[0].advice, diagnosis::Advice::ThisHost, "{:?}", d.hosts[0]);
    // The own responder's multicast row is nobody's.
    assert!(f
        .rows
        .iter()
        .filter(|r| r.path == Path::Multicast)
        .all(|r| r.expected_host.is_none() || r.responder.is_none()));
    // Without an own responder (probe), the same acks are the host's.
    let f = Findings::of(
        &outcome(30, 1, std::slice::from_ref(&own), &[("10.0.0.2", vec![own.clone()])]),
        judge("239.1.1.1:24242"),
    );
    assert_eq!(verdicts(&f)[0].1, Verdict::Ok);
}

#[test]
fn unexpected_responders_are_listed() {
    let stranger = Answerer::new(9, "stranger", "10.0.0.9:24242");
    let f = Findings::of(&outcome(10, 1, &[stranger], &[("10.0.0.1", vec![])]), judge("239.1.1.1:24242"));
    let d = f.diagnosis.unwrap();
    assert_eq!(d.unexpected, [("stranger".to_string(), "10.0.0.9:24242".parse().unwrap())]);
    assert_eq!(d.hosts[0].verdict, Verdict::Unreachable);
}

#[test]
fn the_ttl_advice_names_the_routers() {
    let mut far = Answerer::new(1, "far", "10.0.2.2:24242");
    far.hops = 2;
    let f = Findings::of(&outcome(10, 1, &[], &[("10.0.2.2", vec![far])]), judge("239.1.1.1:24242"));
    let h = &f.diagnosis.unwrap().hosts[0];
    assert_eq!(
        (h.verdict, h.hops, h.advice),
        (Verdict::MulticastLost, Some(2), diagnosis::Advice::TtlTooSmall { hops: 2, ttl: 1 })
    );
    assert!(h.advice_text().contains("try --ttl 3"), "{}", h.advice_text());
}

#[test]
fn nothing_answering_is_a_finding_and_a_miss() {
    let f = Findings::of(&outcome(20, 1, &[], &[]), judge("239.255.42.42:24242"));
    assert!(f.rows.is_empty());
    assert!(f.notes.iter().any(|n| matches!(n, Note::NothingAnswered(s) if s.group.port() == 24242)), "{:?}", f.notes);
    assert_eq!(f.misses(Thresholds::default()), [Miss::NobodyAnswered]);
}

#[test]
fn hosts_answering_only_unicast_get_every_cause_that_fits_or_the_group_they_serve() {
    use diagnosis::Advice;
    let (a, b) = (Answerer::new(1, "a", "10.0.0.1:24242"), Answerer::new(2, "b", "10.0.0.2:24242"));
    let hosts = [("10.0.0.1", vec![a.clone()]), ("10.0.0.2", vec![b.clone()])];
    let f = Findings::of(&outcome(20, 1, &[], &hosts), judge("239.9.9.9:24242"));
    assert!(f.notes.contains(&Note::NoneOnTheGroup), "{:?}", f.notes);
    assert!(!f.notes.iter().any(|n| matches!(n, Note::NothingAnswered(_))));
    // Nothing tells a firewall here from a group typo or the network: all of them, in order.
    let d = f.diagnosis.unwrap();
    for h in &d.hosts {
        let causes: Vec<Advice> = h.causes().collect();
        assert_eq!(causes[..2], [Advice::AcksMaybeDroppedHere, Advice::MaybeOtherGroup { everyone: true }]);
        assert!(matches!(causes[2], Advice::NotReaching { .. }), "{causes:?}");
        let text = h.advice_text();
        assert!(text
            .starts_with("multicast lost but unicast fine: one of these, likeliest first: (1) this host's firewall"));
        assert!(
            text.contains("(2) the responders serve another --group") && text.contains("(3) multicast does not reach")
        );
    }
    // Responders that say which group they serve: named, alone.
    let serving = |mut x: Answerer| {
        x.reports = Some(None);
        x.serves = Some("239.1.1.1".parse().unwrap());
        x
    };
    let hosts = [("10.0.0.1", vec![serving(a)]), ("10.0.0.2", vec![serving(b)])];
    let f = Findings::of(&outcome(20, 1, &[], &hosts), judge("239.9.9.9:24242"));
    for h in &f.diagnosis.unwrap().hosts {
        assert_eq!(
            h.causes().collect::<Vec<_>>(),
            [Advice::OtherGroup { serves: "239.1.1.1".parse().unwrap(), probed: "239.9.9.9".parse().unwrap() }]
        );
        assert!(h.advice_text().contains("probe with --group 239.1.1.1, or run the responder with --group 239.9.9.9"));
    }
}

#[test]
fn thresholds_judge_multicast_responders() {
    let mut lossy = Answerer::new(1, "lossy", "10.0.0.1:24242");
    lossy.drop_probe = |s| s % 10 == 0; // 10 % forward loss
    let fine = Answerer::new(2, "fine", "10.0.0.2:24242");
    let f = Findings::of(&outcome(100, 1, &[lossy, fine], &[]), judge("239.1.1.1:24242"));
    let t = Thresholds { max_loss_pct: Some(5.0), min_responders: Some(3), min_hosts: None };
    let misses = f.misses(t);
    assert_eq!(misses.len(), 2, "{misses:?}");
    assert!(
        matches!(&misses[0], Miss::Loss { name, loss_pct, .. } if name == "lossy" && (*loss_pct - 10.0).abs() < 1e-9)
    );
    assert_eq!(misses[1], Miss::TooFew { answered: 2, min: 3 });
    assert!(f.misses(Thresholds::default()).is_empty());
}

#[test]
fn restarts_link_ids_with_the_same_name_and_address() {
    let mut old = Answerer::new(1, "node", "10.0.0.1:24242");
    old.drop_probe = |s| s >= 40;
    let mut new = Answerer::new(2, "node", "10.0.0.1:24242");
    new.drop_probe = |s| s < 45;
    // Same name, another address: a different host that kept the default name.
    let mut other = Answerer::new(3, "node", "10.0.0.2:24242");
    other.drop_probe = |s| s < 60;
    let f = Findings::of(&outcome(100, 1, &[old, new, other], &[]), judge("239.1.1.1:24242"));
    assert_eq!(f.restarts.len(), 1, "{:?}", f.restarts);
    let r = &f.restarts[0];
    assert_eq!((r.before, r.after, r.last_seq, r.first_seq, r.unanswered), (ResponderId(1), ResponderId(2), 39, 45, 5));
    let shared = f.notes.iter().find(|n| matches!(n, Note::SharedName { .. }));
    assert!(
        matches!(shared, Some(Note::SharedName { name, addrs }) if name == "node" && addrs.len() == 2),
        "{:?}",
        f.notes
    );
}

#[test]
fn responder_ids_print_as_16_hex_digits() {
    assert_eq!(ResponderId(0xabc).to_string(), "0000000000000abc");
    assert_eq!(ResponderId(u64::MAX).to_string(), "ffffffffffffffff");
}

#[test]
fn the_kernels_icmp_errors_become_advice() {
    use crate::run::IcmpKind;
    use diagnosis::Advice;
    let hosts: Vec<(&str, Vec<Answerer>)> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.100"]
        .iter()
        .map(|h| (*h, vec![]))
        .collect();
    let mut o = outcome(20, 1, &[], &hosts);
    let me: IpAddr = "10.0.0.100".parse().unwrap();
    let set = |o: &mut Outcome, i: usize, kind: IcmpKind, from: IpAddr| {
        o.unicast[i].icmp.port_unreachable += u64::from(kind == IcmpKind::PortUnreachable);
        o.unicast[i].icmp.host_unreachable += u64::from(kind == IcmpKind::HostUnreachable);
        o.unicast[i].icmp.admin_prohibited += u64::from(kind == IcmpKind::AdminProhibited);
        o.unicast[i].icmp.reporter = Some(from);
        o.unicast[i].icmp.last = Some(kind);
    };
    set(&mut o, 0, IcmpKind::PortUnreachable, "10.0.0.1".parse().unwrap());
    set(&mut o, 1, IcmpKind::HostUnreachable, me);
    set(&mut o, 2, IcmpKind::HostUnreachable, "10.0.9.1".parse().unwrap()); // a router's word
    set(&mut o, 3, IcmpKind::AdminProhibited, "10.0.0.4".parse().unwrap());
    // 10.0.0.5: nothing at all. 10.0.0.100: this machine.
    let f = Findings::of(&o, judge("239.1.1.1:4242"));
    let advice: Vec<Advice> = f.diagnosis.as_ref().unwrap().hosts.iter().map(|h| h.advice).collect();
    assert_eq!(
        advice,
        [
            Advice::NoResponderOnPort { port: 4242 },
            Advice::NoNeighbour,
            Advice::Unreachable { kind: IcmpKind::HostUnreachable, by: Some("10.0.9.1".parse().unwrap()) },
            Advice::Rejected { by: Some("10.0.0.4".parse().unwrap()) },
            Advice::Silence,
            Advice::ThisHost,
        ]
    );
    let texts: Vec<String> = f.diagnosis.unwrap().hosts.iter().map(|h| h.advice_text()).collect();
    assert!(texts[0].contains("port unreachable to port 4242: no responder listens there"), "{}", texts[0]);
    assert!(
        texts[1].contains("down, not on this LAN, or it drops this host's requests (its rp_filter"),
        "{}",
        texts[1]
    );
    assert!(texts[4].contains("no ICMP error"), "{}", texts[4]);
    // Probes the kernel refused outright (an address that never resolved) say the same as
    // its host unreachable.
    let mut o = outcome(20, 1, &[], &[("10.0.0.7", vec![])]);
    o.unicast[0].not_sent = 12;
    let f = Findings::of(&o, judge("239.1.1.1:4242"));
    assert_eq!(f.diagnosis.unwrap().hosts[0].advice, Advice::NoNeighbour);
    // Silence, and what the neighbour table says: a host that answered ARP is up (so not
    // "down"); one asked and silent is the neighbour case.
    use crate::run::Neighbour;
    let mut o = outcome(20, 1, &[], &[("10.0.0.7", vec![]), ("10.0.0.8", vec![])]);
    o.unicast[0].neighbour = Some(Neighbour::Resolved);
    o.unicast[1].neighbour = Some(Neighbour::Unanswered);
    let f = Findings::of(&o, judge("239.1.1.1:4242"));
    let d = f.diagnosis.unwrap();
    assert_eq!((d.hosts[0].advice, d.hosts[1].advice), (Advice::SilentButUp, Advice::NoNeighbour));
    let text = d.hosts[0].advice_text();
    assert!(text.contains("so it is up") && text.contains("firewall") && !text.contains("down"), "{text}");
}

#[test]
fn a_host_that_says_its_key_differs_is_a_key_mismatch_not_down() {
    use crate::run::KeySign;
    use diagnosis::Advice;
    // Four silent hosts: .1 needs a key (told on both paths), .2 has another one (told on the
    // group only), .3 has none (it answered the keyed probes without a tag), .4 said nothing.
    let hosts: Vec<(&str, Vec<Answerer>)> =
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().map(|h| (*h, vec![])).collect();
    let mut o = outcome(20, 1, &[], &hosts);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    (0..3).for_each(|_| o.keys.record(ip("10.0.0.1"), KeySign::KeyNeeded));
    o.unicast[0].keys.record(ip("10.0.0.1"), KeySign::KeyNeeded);
    o.keys.record(ip("10.0.0.2"), KeySign::OtherKey);
    (0..20).for_each(|_| o.unicast[2].keys.record(ip("10.0.0.3"), KeySign::UnkeyedAck));
    let f = Findings::of(&o, judge("239.1.1.1:24242"));
    let d = f.diagnosis.as_ref().unwrap();
    let got: Vec<(Verdict, Advice)> = d.hosts.iter().map(|h| (h.verdict, h.advice)).collect();
    let counts = |key_needed, other_key, unkeyed_acks| crate::run::KeyCounts { key_needed, other_key, unkeyed_acks };
    assert_eq!(
        got,
        [
            (Verdict::KeyMismatch, Advice::KeyMismatch(counts(4, 0, 0))),
            (Verdict::KeyMismatch, Advice::KeyMismatch(counts(0, 1, 0))),
            (Verdict::KeyMismatch, Advice::KeyMismatch(counts(0, 0, 20))),
            (Verdict::Unreachable, Advice::Silence),
        ]
    );
    for h in &d.hosts[..3] {
        let text = h.advice_text();
        assert!(text.starts_with("key mismatch: ") && !text.contains("down") && !text.contains("firewall"), "{text}");
    }
    assert!(d.hosts[0].advice_text().contains("(4 notices from it); give this prober the responders' --key"));
    assert!(d.hosts[1].advice_text().contains("another key (1 notice from it)"));
    assert!(d.hosts[2].advice_text().contains("no key (20 acks from it without a tag, rejected)"));
    // Not multicast broken (exit 3), but failing (exit 1).
    assert!(!d.multicast_broken() && d.failing() == 4);
    // The closing lines explain the silence instead of the generic hint, one line per source.
    assert!(!f.notes.iter().any(|n| matches!(n, Note::NothingAnswered(_))), "{:?}", f.notes);
    let sources: Vec<IpAddr> = f
        .notes
        .iter()
        .filter_map(|n| if let Note::KeyMismatch { source, .. } = n { Some(*source) } else { None })
        .collect();
    assert_eq!(sources, [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
}

#[test]
fn without_hosts_notices_replace_the_silence_hint() {
    use crate::run::KeySign;
    let mut o = outcome(20, 1, &[], &[]);
    o.keys.record("10.0.0.7".parse().unwrap(), KeySign::KeyNeeded);
    let f = Findings::of(&o, judge("239.1.1.1:24242"));
    assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
    assert!(matches!(f.notes[0], Note::KeyMismatch { counts, .. } if counts.key_needed == 1));
    // Still a run in which nothing answered: the exit code says so.
    assert_eq!(f.misses(Thresholds::default()), [Miss::NobodyAnswered]);
    // A responder that answers beside one that refuses: both said.
    let mut o = outcome(20, 1, &[Answerer::new(1, "a", "10.0.0.1:24242")], &[]);
    o.keys.record("10.0.0.7".parse().unwrap(), KeySign::OtherKey);
    let f = Findings::of(&o, judge("239.1.1.1:24242"));
    assert!(matches!(f.notes[..], [Note::KeyMismatch { counts, .. }] if counts.other_key == 1), "{:?}", f.notes);
}

/// Loss patterns for the generated runs: none, periodic ones that coincide (7 and 21), a late
/// start, a burst, and scattered loss.
const PATTERNS: [fn(u64) -> bool; 7] = [
    |_| false,
    |s| s % 7 == 3,
    |s| s % 21 == 3,
    |s| s % 11 == 5,
    |s| s < 20,
    |s| (40..60).contains(&s),
    |s| (s.wrapping_mul(2_654_435_761) >> 7) % 13 == 0,
];
/// What a responder does not answer (its rate limit), or whose ack goes missing.
const LIMITS: [fn(u64) -> bool; 3] = [|_| false, |s| s % 5 == 1, |s| s >= 100];
const ACK_LOSS: [fn(u64) -> bool; 3] = [|_| false, |s| s % 9 == 4, |s| s % 7 == 3];

const NAMES: [&str; 6] = ["h1", "h2", "h3", "h4", "h5", "h6"];
const ADDRS: [&str; 6] =
    ["10.0.0.1:24242", "10.0.0.2:24242", "10.0.0.3:24242", "10.0.0.4:24242", "10.0.0.5:24242", "10.0.0.6:24242"];
const HOSTS: [&str; 6] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Whatever the run, no finding contradicts the table: a loss several responders share, or
    /// one put down to a responder alone, counts only probes each of them lost by the table;
    /// host drops are part of the forward loss; the loss split adds up; and every verdict
    /// agrees with its host's rows.
    #[test]
    fn findings_never_contradict_the_table(
        sent in 30u64..300,
        who in proptest::collection::vec((0..PATTERNS.len(), 0..LIMITS.len(), 0..ACK_LOSS.len(), 0..PATTERNS.len()), 1..6),
        listed in proptest::prelude::any::<u8>(),
    ) {
        let answerer = |i: usize, drop: usize, limit: usize, ack: usize| Answerer {
            drop_probe: PATTERNS[drop],
            limit_probe: LIMITS[limit],
            lose_ack: ACK_LOSS[ack],
            host_dropped: |s| s % 2 == 0,
            reports: Some(None),
            ..Answerer::new(i as u64 + 1, NAMES[i], ADDRS[i])
        };
        let multicast: Vec<Answerer> = who.iter().enumerate().map(|(i, &(d, l, a, _))| answerer(i, d, l, a)).collect();
        let unicast: Vec<(&str, Vec<Answerer>)> = who
            .iter()
            .enumerate()
            .filter(|(i, _)| listed & (1 << i) != 0)
            .map(|(i, &(_, l, a, u))| (HOSTS[i], vec![answerer(i, u, l, a)]))
            .collect();
        let f = Findings::of(&outcome(sent, 1, &multicast, &unicast), judge("239.255.42.42:24242"));
        let lost_of = |name: &str| {
            f.rows.iter().filter(|r| r.path == Path::Multicast && r.name() == name).map(|r| r.figures.lost).max().unwrap_or(0)
        };
        for g in &f.shared.groups {
            for m in &g.members {
                proptest::prop_assert!(g.probes <= lost_of(m), "{m} shares {} probes but lost {}", g.probes, lost_of(m));
            }
        }
        for (name, probes) in &f.shared.alone {
            proptest::prop_assert!(*probes <= lost_of(name), "{name} alone lost {probes} but the table says {}", lost_of(name));
        }
        for r in &f.rows {
            let g = &r.figures;
            proptest::prop_assert_eq!(g.lost, g.loss.forward + g.loss.ret + g.late + g.loss.unknown);
            proptest::prop_assert_eq!(g.sent, g.received + g.lost + g.limited);
            proptest::prop_assert!(g.loss.host_drops.unwrap_or(0) + g.loss.unreported <= g.loss.forward);
        }
        for n in &f.notes {
            if let Note::HostDrops { name, host, network, path, unreported } = n {
                let fwd = f.rows.iter().filter(|r| r.path == *path && r.label().as_deref() == Some(name.as_str())).map(|r| r.figures.loss.forward).max();
                proptest::prop_assert_eq!(Some(host + network + unreported), fwd);
            }
        }
        if let Some(d) = &f.diagnosis {
            for h in &d.hosts {
                let row = |path: Path| f.rows.iter().filter(|r| r.path == path && r.expected_host == Some(h.host)).max_by_key(|r| r.figures.received);
                let ok = |r: Option<&Row>| r.is_some_and(|r| r.figures.received > 0 && r.figures.loss_pct() <= DEFAULT_THRESHOLD_PCT);
                let (mc, uc) = (ok(row(Path::Multicast)), ok(row(Path::Unicast)));
                let silent = |r: Option<&Row>| r.is_none_or(|r| r.figures.received == 0);
                let want = match (mc, uc) {
                    _ if silent(row(Path::Multicast)) && silent(row(Path::Unicast)) => vec![Verdict::Unreachable, Verdict::KeyMismatch],
                    (true, true) => vec![Verdict::Ok],
                    (false, true) => vec![Verdict::MulticastLost],
                    (true, false) => vec![Verdict::UnicastLost],
                    (false, false) => vec![Verdict::Degraded],
                };
                proptest::prop_assert!(want.contains(&h.verdict), "{}: verdict {:?}, rows say {:?}", h.host, h.verdict, want);
            }
        }
    }
}

/// Every cause's words, in each verdict it comes with, pinned: a change to what mcprobe tells
/// an engineer is a reviewed change.
#[test]
fn every_cause_in_words() {
    use crate::run::{IcmpKind, KeyCounts};
    use diagnosis::{Advice, HostDiagnosis, QuerierHeard, Verdict};
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let host = |verdict: Verdict, advice: Advice, others: Vec<Advice>| HostDiagnosis {
        host: ip("10.77.0.2"),
        responders: vec!["h2".into()],
        multicast_received: if verdict == Verdict::UnicastLost { 100 } else { 0 },
        multicast_loss_pct: if verdict == Verdict::UnicastLost { 0.0 } else { 100.0 },
        unicast_received: if verdict == Verdict::MulticastLost { 100 } else { 0 },
        unicast_loss_pct: if verdict == Verdict::MulticastLost { 0.0 } else { 100.0 },
        hops: Some(0),
        verdict,
        advice,
        others,
    };
    let (lost, down, uc_lost) = (Verdict::MulticastLost, Verdict::Unreachable, Verdict::UnicastLost);
    let keys = KeyCounts { key_needed: 4, other_key: 0, unkeyed_acks: 0 };
    let cases = [
        host(lost, Advice::TtlTooSmall { hops: 2, ttl: 1 }, vec![]),
        host(down, Advice::ThisHost, vec![]),
        host(down, Advice::NoResponderOnPort { port: 24242 }, vec![]),
        host(down, Advice::NoNeighbour, vec![]),
        host(uc_lost, Advice::NoNeighbour, vec![]),
        host(down, Advice::Unreachable { kind: IcmpKind::TimeExceeded, by: Some(ip("10.77.0.254")) }, vec![]),
        host(down, Advice::Unreachable { kind: IcmpKind::NetUnreachable, by: None }, vec![]),
        host(down, Advice::Unreachable { kind: IcmpKind::HostUnreachable, by: Some(ip("10.77.0.254")) }, vec![]),
        host(down, Advice::Rejected { by: Some(ip("10.77.0.2")) }, vec![]),
        host(down, Advice::Silence, vec![]),
        host(uc_lost, Advice::Silence, vec![]),
        host(down, Advice::SilentButUp, vec![]),
        host(uc_lost, Advice::SilentButUp, vec![]),
        host(lost, Advice::AcksLostComingBack { probes: 30, tapped: false }, vec![]),
        host(lost, Advice::AcksLostComingBack { probes: 30, tapped: true }, vec![]),
        host(lost, Advice::OtherGroup { serves: ip("239.1.1.1"), probed: ip("239.255.42.42") }, vec![]),
        host(
            lost,
            Advice::AcksMaybeDroppedHere,
            vec![
                Advice::MaybeOtherGroup { everyone: true },
                Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::NotWatched },
                Advice::HostMayDropProbes,
            ],
        ),
        host(
            lost,
            Advice::NotReaching { host_tap_clean: true, querier: QuerierHeard::Heard(ip("10.77.0.254")) },
            vec![Advice::MaybeOtherGroup { everyone: false }],
        ),
        host(lost, Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::Silent }, vec![]),
        host(lost, Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::NoneYet }, vec![]),
        host(lost, Advice::MulticastLossy, vec![]),
        host(lost, Advice::GroupsMissing { missing: 7, of: 1000 }, vec![]),
        host(lost, Advice::MulticastStopped { probes: 57, querier: QuerierHeard::Heard(ip("10.77.0.254")) }, vec![]),
        host(lost, Advice::MulticastStopped { probes: 57, querier: QuerierHeard::Silent }, vec![]),
        host(lost, Advice::MulticastStopped { probes: 57, querier: QuerierHeard::NotWatched }, vec![]),
        host(lost, Advice::QuerierSilent, vec![]),
        host(Verdict::KeyMismatch, Advice::KeyMismatch(keys), vec![]),
        host(lost, Advice::AcksDroppedHere, vec![]),
        host(lost, Advice::ProbesDroppedAtHost { probes: 39 }, vec![]),
        host(Verdict::Degraded, Advice::Usual, vec![]),
    ];
    let text: Vec<String> = cases
        .iter()
        .map(|h| {
            format!(
                "{} / {}: {}",
                h.verdict.as_str(),
                h.causes().map(Advice::kind).collect::<Vec<_>>().join(", "),
                h.advice_text()
            )
        })
        .collect();
    insta::assert_snapshot!(text.join("\n\n"));
}

/// The rate the probes left at: (sent − 1) gaps over the span; nothing to say below two probes
/// or without a span.
#[test]
fn the_rate_sent_is_the_gaps_over_the_span() {
    assert_eq!(super::sent_per_s(1001, Duration::from_secs(2)), Some(500.0));
    assert_eq!(super::sent_per_s(1, Duration::from_secs(2)), None);
    assert_eq!(super::sent_per_s(10, Duration::ZERO), None);
}
