use super::synthetic::{outcome, Answerer};
use super::*;

fn judge(group: &str) -> Judgement {
    Judgement { threshold_pct: DEFAULT_THRESHOLD_PCT, group: group.parse().unwrap(), keyed: false }
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
fn hosts_answering_only_unicast_suggest_a_group_or_port_mismatch() {
    let (a, b) = (Answerer::new(1, "a", "10.0.0.1:24242"), Answerer::new(2, "b", "10.0.0.2:24242"));
    let f =
        Findings::of(&outcome(20, 1, &[], &[("10.0.0.1", vec![a]), ("10.0.0.2", vec![b])]), judge("239.9.9.9:24242"));
    assert!(f.notes.contains(&Note::GroupMismatch), "{:?}", f.notes);
    let d = f.diagnosis.unwrap();
    assert!(d.hosts.iter().all(|h| h.advice == diagnosis::Advice::GroupOrPortDiffers), "{:?}", d.hosts);
    assert!(d.hosts[0].advice_text().contains("another --group or --port"));
    assert!(!f.notes.iter().any(|n| matches!(n, Note::NothingAnswered(_))));
}

#[test]
fn thresholds_judge_multicast_responders() {
    let mut lossy = Answerer::new(1, "lossy", "10.0.0.1:24242");
    lossy.drop_probe = |s| s % 10 == 0; // 10 % forward loss
    let fine = Answerer::new(2, "fine", "10.0.0.2:24242");
    let f = Findings::of(&outcome(100, 1, &[lossy, fine], &[]), judge("239.1.1.1:24242"));
    let t = Thresholds { max_loss_pct: Some(5.0), min_responders: Some(3) };
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
    use crate::net::icmp::IcmpKind;
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
    assert!(texts[0].contains("nothing listens on port 4242"), "{}", texts[0]);
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
    use crate::net::route::Neighbour;
    let mut o = outcome(20, 1, &[], &[("10.0.0.7", vec![]), ("10.0.0.8", vec![])]);
    o.unicast[0].neighbour = Some(Neighbour::Resolved);
    o.unicast[1].neighbour = Some(Neighbour::Unanswered);
    let f = Findings::of(&o, judge("239.1.1.1:4242"));
    let d = f.diagnosis.unwrap();
    assert_eq!((d.hosts[0].advice, d.hosts[1].advice), (Advice::SilentButUp, Advice::NoNeighbour));
    let text = d.hosts[0].advice_text();
    assert!(text.contains("so it is up") && text.contains("firewall") && !text.contains("down"), "{text}");
}
