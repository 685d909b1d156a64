//! Real reports, captured with tcpdump on a lab host's veth (Linux 6.18): the host joined and left
//! 239.1.1.1 (any source), 239.1.1.2 from 10.77.0.1 (source-specific) and ff15::1:1, with the
//! bridge's querier at IGMPv3/MLDv2 and then with `force_igmp_version 2` / `force_mld_version 1`.
//! Each is the whole IP packet, as the tap reads it.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

const IGMPV2_REPORT: &str = "46c0 0020 0000 4000 0102 e9c6 0a4d 0002 ef01 0101 9404 0000 1600 f9fc ef01 0101";
const IGMPV2_LEAVE: &str = "46c0 0020 0000 4000 0102 f9c6 0a4d 0002 e000 0002 9404 0000 1700 f8fc ef01 0101";
/// [gaddr 239.1.1.2 allow, 1 source(s)] [gaddr 239.1.1.1 to_ex, 0 source(s)]
const IGMPV3_JOIN: &str = "46c0 0034 0000 4000 0102 f99e 0a4d 0002 e000 0016 9404 0000 2200 eaa7 0000 0002
    0500 0001 ef01 0102 0a4d 0001 0400 0000 ef01 0101";
/// [gaddr 239.1.1.2 block, 1 source(s)] [gaddr 239.1.1.1 to_in, 0 source(s)]
const IGMPV3_LEAVE: &str = "46c0 0034 0000 4000 0102 f99e 0a4d 0002 e000 0016 9404 0000 2200 eaa7 0000 0002
    0600 0001 ef01 0102 0a4d 0001 0300 0000 ef01 0101";
/// [gaddr ff15::1:1 to_ex, 0 source(s)], after a hop-by-hop router alert.
const MLDV2_JOIN: &str = "6000 0000 0024 0001 fe80 0000 0000 0000 54cd d4ff fe9c d8f0 ff02 0000 0000 0000
    0000 0000 0000 0016 3a00 0502 0000 0100 8f00 6e9b 0000 0001 0400 0000 ff15 0000
    0000 0000 0000 0000 0001 0001";
/// [gaddr ff15::1:1 to_in, 0 source(s)]
const MLDV2_LEAVE: &str = "6000 0000 0024 0001 fe80 0000 0000 0000 54cd d4ff fe9c d8f0 ff02 0000 0000 0000
    0000 0000 0000 0016 3a00 0502 0000 0100 8f00 6f9b 0000 0001 0300 0000 ff15 0000
    0000 0000 0000 0000 0001 0001";
/// An answer to a general query: [ff15::1:1 is_ex] [ff02::1:ff9c:d8f0 is_ex] [ff02::1:ff00:2 is_ex]
const MLDV2_CURRENT: &str = "6000 0000 004c 0001 fe80 0000 0000 0000 54cd d4ff fe9c d8f0 ff02 0000 0000 0000
    0000 0000 0000 0016 3a00 0502 0000 0100 8f00 96d8 0000 0003 0200 0000 ff15 0000
    0000 0000 0000 0000 0001 0001 0200 0000 ff02 0000 0000 0000 0000 0001 ff9c d8f0
    0200 0000 ff02 0000 0000 0000 0000 0001 ff00 0002";
const MLDV1_REPORT: &str = "6000 0000 0020 0001 fe80 0000 0000 0000 54cd d4ff fe9c d8f0 ff15 0000 0000 0000
    0000 0000 0001 0001 3a00 0502 0000 0100 8300 7ea1 0000 0000 ff15 0000 0000 0000
    0000 0000 0001 0001";
const MLDV1_DONE: &str = "6000 0000 0020 0001 fe80 0000 0000 0000 54cd d4ff fe9c d8f0 ff02 0000 0000 0000
    0000 0000 0000 0002 3a00 0502 0000 0100 8400 7db4 0000 0000 ff15 0000 0000 0000
    0000 0000 0001 0001";
/// A general query from the bridge (not a report).
const MLDV2_QUERY: &str = "6000 0000 0024 0001 fe80 0000 0000 0000 e8aa beff fe4e 3ccc ff02 0000 0000 0000
    0000 0000 0000 0001 3a00 0502 0000 0000 8200 9771 03e8 0000 0000 0000 0000 0000
    0000 0000 0000 0000 0205 0000";
/// An IGMPv2 query for 239.1.1.1.
const IGMPV2_QUERY: &str = "46c0 0020 0000 4000 0102 0417 0000 0000 e000 0001 9404 0000 110a fef2 ef01 0101";

fn m(group: &str, change: Change) -> Membership {
    Membership { group: group.parse().unwrap(), change }
}

#[test]
fn igmp_reports_of_every_version() {
    assert_eq!(parse_report(&hex(IGMPV2_REPORT)), [m("239.1.1.1", Change::Join)]);
    assert_eq!(parse_report(&hex(IGMPV2_LEAVE)), [m("239.1.1.1", Change::Leave)]);
    let v3 = [m("239.1.1.2", Change::Join), m("239.1.1.1", Change::Join)];
    assert_eq!(parse_report(&hex(IGMPV3_JOIN)), v3);
    let v3 = [m("239.1.1.2", Change::Leave), m("239.1.1.1", Change::Leave)];
    assert_eq!(parse_report(&hex(IGMPV3_LEAVE)), v3);
    // IGMPv1 reports have type 0x12 and the same layout.
    let mut v1 = hex(IGMPV2_REPORT);
    v1[24] = 0x12;
    assert_eq!(parse_report(&v1), [m("239.1.1.1", Change::Join)]);
    assert!(parse_report(&hex(IGMPV2_QUERY)).is_empty());
}

#[test]
fn mld_reports_of_both_versions() {
    assert_eq!(parse_report(&hex(MLDV2_JOIN)), [m("ff15::1:1", Change::Join)]);
    assert_eq!(parse_report(&hex(MLDV2_LEAVE)), [m("ff15::1:1", Change::Leave)]);
    let current =
        [m("ff15::1:1", Change::Join), m("ff02::1:ff9c:d8f0", Change::Join), m("ff02::1:ff00:2", Change::Join)];
    assert_eq!(parse_report(&hex(MLDV2_CURRENT)), current);
    assert_eq!(parse_report(&hex(MLDV1_REPORT)), [m("ff15::1:1", Change::Join)]);
    assert_eq!(parse_report(&hex(MLDV1_DONE)), [m("ff15::1:1", Change::Leave)]);
    assert!(parse_report(&hex(MLDV2_QUERY)).is_empty());
}

#[test]
fn record_types_map_to_changes() {
    assert_eq!(record_change(MODE_IS_EXCLUDE, 0), Some(Change::Join));
    assert_eq!(record_change(CHANGE_TO_EXCLUDE, 3), Some(Change::Join));
    assert_eq!(record_change(CHANGE_TO_INCLUDE, 0), Some(Change::Leave));
    assert_eq!(record_change(CHANGE_TO_INCLUDE, 1), Some(Change::Join));
    assert_eq!(record_change(MODE_IS_INCLUDE, 2), Some(Change::Join));
    assert_eq!(record_change(ALLOW_NEW_SOURCES, 1), Some(Change::Join));
    assert_eq!(record_change(BLOCK_OLD_SOURCES, 1), Some(Change::Leave));
    assert_eq!(record_change(9, 0), None);
}

#[test]
fn truncated_reports_keep_the_whole_records() {
    let full = hex(IGMPV3_JOIN);
    // Cut inside the second record: only the first one is read.
    assert_eq!(parse_report(&full[..full.len() - 2]), [m("239.1.1.2", Change::Join)]);
    for n in 0..full.len() {
        let _ = parse_report(&full[..n]);
    }
    let v6 = hex(MLDV2_CURRENT);
    for n in 0..v6.len() {
        assert!(parse_report(&v6[..n]).len() <= 2);
    }
    assert!(parse_report(&[]).is_empty());
    assert!(parse_report(&[0x45]).is_empty());
}

const MS: u64 = 1_000_000;

fn g(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn join_delay_is_from_the_first_report_to_the_first_datagram() {
    let mut t = DelayTracker::new(50 * MS);
    t.report(1000 * MS, m("239.1.1.1", Change::Join));
    // The kernel's repeat and a query's answer are not joins.
    t.report(1400 * MS, m("239.1.1.1", Change::Join));
    t.datagram(1003 * MS, g("239.1.1.1"));
    t.datagram(1004 * MS, g("239.1.1.1"));
    let d = t.take();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].kind, d[0].report_ns, d[0].delay_ns()), (DelayKind::Join, 1000 * MS, Some(3 * MS)));
    assert!(t.finish(2000 * MS).is_empty());
}

#[test]
fn leave_delay_is_from_the_leave_to_the_last_datagram() {
    let mut t = DelayTracker::new(50 * MS);
    t.report(0, m("ff15::1", Change::Join));
    t.datagram(5 * MS, g("ff15::1"));
    t.report(1000 * MS, m("ff15::1", Change::Leave));
    t.report(1200 * MS, m("ff15::1", Change::Leave));
    for ms in [1010, 1500, 1990] {
        t.datagram(ms * MS, g("ff15::1"));
    }
    let d = t.finish(3000 * MS);
    assert_eq!(d.len(), 2);
    assert_eq!((d[1].kind, d[1].report_ns, d[1].delay_ns()), (DelayKind::Leave, 1000 * MS, Some(990 * MS)));
}

#[test]
fn a_rejoin_closes_the_leave() {
    let mut t = DelayTracker::new(50 * MS);
    t.report(0, m("239.1.1.1", Change::Leave));
    t.datagram(100 * MS, g("239.1.1.1"));
    t.report(500 * MS, m("239.1.1.1", Change::Join));
    t.datagram(520 * MS, g("239.1.1.1"));
    let d = t.take();
    assert_eq!(d[0].outcome, Outcome::Measured { data_ns: 100 * MS });
    assert_eq!((d[1].kind, d[1].delay_ns()), (DelayKind::Join, Some(20 * MS)));
    // A leave the next join interrupts while the group still flows has no delay.
    t.report(600 * MS, m("239.1.1.1", Change::Leave));
    t.datagram(690 * MS, g("239.1.1.1"));
    t.report(700 * MS, m("239.1.1.1", Change::Join));
    assert_eq!(t.take()[0].outcome, Outcome::StillArriving { last_ns: 690 * MS });
}

#[test]
fn a_flooding_network_has_neither_delay() {
    let mut t = DelayTracker::new(50 * MS);
    for ms in (0..3000).step_by(10) {
        if ms == 1000 {
            t.report(ms * MS + 1, m("239.1.1.1", Change::Join));
        }
        if ms == 2000 {
            t.report(ms * MS + 1, m("239.1.1.1", Change::Leave));
        }
        t.datagram(ms * MS, g("239.1.1.1"));
    }
    let d = t.finish(2995 * MS);
    assert_eq!(d[0].outcome, Outcome::AlreadyArriving);
    assert_eq!(d[1].outcome, Outcome::StillArriving { last_ns: 2990 * MS });
    assert!(d.iter().all(|d| d.delay_ns().is_none()));
}

#[test]
fn joins_without_data_and_leaves_without_data_after() {
    let mut t = DelayTracker::new(50 * MS);
    t.report(0, m("239.1.1.1", Change::Join));
    t.report(100 * MS, m("239.1.1.1", Change::Leave));
    t.report(200 * MS, m("239.1.1.2", Change::Join));
    let d = t.finish(1000 * MS);
    let outcomes: Vec<_> = d.iter().map(|d| (d.group, d.kind, d.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (g("239.1.1.1"), DelayKind::Join, Outcome::NeverArrived),
            (g("239.1.1.1"), DelayKind::Leave, Outcome::NoneAfter),
            (g("239.1.1.2"), DelayKind::Join, Outcome::NeverArrived),
        ]
    );
}

#[test]
fn sparse_datagrams_stretch_the_quiet_time() {
    // A flooding LAN, a datagram of the group every 100 ms, a quiet time of 50 ms given: the
    // group's own gaps make it 300 ms, so neither delay is taken for a number.
    let mut t = DelayTracker::new(50 * MS);
    t.report(0, m("239.1.1.1", Change::Join));
    for ms in (10..5000).step_by(100) {
        if ms == 2010 {
            t.report(ms * MS - 60 * MS, m("239.1.1.1", Change::Leave));
        }
        if ms == 3010 {
            t.report(ms * MS - 80 * MS, m("239.1.1.1", Change::Join));
        }
        t.datagram(ms * MS, g("239.1.1.1"));
    }
    let d = t.finish(5000 * MS);
    let outcomes: Vec<_> = d.iter().map(|d| (d.kind, d.outcome)).collect();
    assert_eq!(outcomes[0], (DelayKind::Join, Outcome::Measured { data_ns: 10 * MS }));
    assert!(matches!(outcomes[1], (DelayKind::Leave, Outcome::StillArriving { .. })), "{outcomes:?}");
    assert_eq!(outcomes[2], (DelayKind::Join, Outcome::AlreadyArriving));
}

#[test]
fn datagrams_stamped_before_the_report_are_not_after_it() {
    let mut t = DelayTracker::new(50 * MS);
    t.report(1000 * MS, m("239.1.1.1", Change::Join));
    t.datagram(999 * MS, g("239.1.1.1"));
    t.datagram(1002 * MS, g("239.1.1.1"));
    t.report(2000 * MS, m("239.1.1.1", Change::Leave));
    t.datagram(1999 * MS, g("239.1.1.1"));
    let d = t.finish(3000 * MS);
    assert_eq!(d[0].delay_ns(), Some(2 * MS));
    assert_eq!(d[1].outcome, Outcome::NoneAfter);
}
