//! Real queries captured in the namespace lab (a Linux 6.18 bridge as querier, read by a raw
//! IGMP / ICMPv6 socket in a host namespace), plus hand-made ones for the cases a Linux bridge
//! never sends.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Recomputes the IGMP checksum of a packet with a 24-byte IPv4 header.
fn fix_checksum(p: &mut [u8]) {
    p[26] = 0;
    p[27] = 0;
    let mut sum: u32 = p[24..].chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    p[26..28].copy_from_slice(&c.to_be_bytes());
}

/// `mcast_igmp_version 3`, `mcast_query_interval 200` (2 s): QRV 2, QQIC 2, response 1 s.
const IGMPV3: &str = "46c00024000040000102041300000000e000000194040000110aecf30000000002020000";
/// `mcast_igmp_version 2`.
const IGMPV2: &str = "46c00020000040000102041700000000e000000194040000110aeef500000000";
/// `mcast_mld_version 2`, from fe80::6cf2:67ff:fe0e:12b2.
const MLDV2: &str = "8200948703e800000000000000000000000000000000000002020000";
/// `mcast_mld_version 1`.
const MLDV1: &str = "82001ff103e8000000000000000000000000000000000000";
/// A listener report (type 131) to ff02::1:ff64:c53e, seen on the same socket.
const MLD_REPORT: &str = "8300089600000000ff0200000000000000000001ff64c53e";

#[test]
fn igmpv3_general_query_from_a_bridge() {
    let q = parse_igmp(&hex(IGMPV3)).unwrap();
    assert_eq!(q.source, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(q.version, QueryVersion::IgmpV3);
    assert!(q.is_general());
    assert_eq!(q.max_response, Duration::from_secs(1));
    assert_eq!(q.robustness, Some(2));
    assert_eq!(q.interval, Some(Duration::from_secs(2)));
}

#[test]
fn igmpv2_query_announces_no_interval() {
    let q = parse_igmp(&hex(IGMPV2)).unwrap();
    assert_eq!(q.version, QueryVersion::IgmpV2);
    assert_eq!(q.max_response, Duration::from_secs(1));
    assert_eq!((q.robustness, q.interval), (None, None));
}

#[test]
fn igmpv1_query_has_a_zero_code() {
    let mut p = hex(IGMPV2);
    p[25] = 0;
    fix_checksum(&mut p);
    let q = parse_igmp(&p).unwrap();
    assert_eq!(q.version, QueryVersion::IgmpV1);
    assert_eq!(q.max_response, DEFAULT_RESPONSE);
}

#[test]
fn igmpv3_floating_point_codes_and_group_specific_queries() {
    let mut p = hex(IGMPV3);
    p[25] = 0x8f; // max resp code: mant 15, exp 0 -> 248 tenths
    p[28..32].copy_from_slice(&[239, 1, 2, 3]);
    p[33] = 0x9a; // QQIC: mant 10, exp 1 -> 26 << 4 = 416 s
    p[32] = 0x0b; // S flag + QRV 3
    fix_checksum(&mut p);
    let q = parse_igmp(&p).unwrap();
    assert_eq!(q.group, Some("239.1.2.3".parse().unwrap()));
    assert_eq!(q.max_response, Duration::from_millis(24_800));
    assert_eq!(q.interval, Some(Duration::from_secs(416)));
    assert_eq!(q.robustness, Some(3));
}

#[test]
fn igmp_bad_checksum_reports_and_truncation_are_rejected() {
    let mut p = hex(IGMPV3);
    p[30] ^= 1;
    assert_eq!(parse_igmp(&p), Err(NotAQuery::Malformed));
    let mut report = hex(IGMPV2);
    report[24] = 0x16; // IGMPv2 membership report
    fix_checksum(&mut report);
    assert_eq!(parse_igmp(&report), Err(NotAQuery::OtherType));
    let p = hex(IGMPV3);
    for n in 0..28 {
        assert!(parse_igmp(&p[..n]).is_err(), "{n} bytes");
    }
    let mut v6 = hex(IGMPV3);
    v6[0] = 0x66;
    assert_eq!(parse_igmp(&v6), Err(NotAQuery::Malformed));
}

#[test]
fn mld_queries_from_a_bridge() {
    let src: Ipv6Addr = "fe80::6cf2:67ff:fe0e:12b2".parse().unwrap();
    let q = parse_mld(src, &hex(MLDV2)).unwrap();
    assert_eq!(q.source, IpAddr::V6(src));
    assert_eq!(q.version, QueryVersion::MldV2);
    assert!(q.is_general());
    assert_eq!(q.max_response, Duration::from_secs(1));
    assert_eq!((q.robustness, q.interval), (Some(2), Some(Duration::from_secs(2))));
    let q = parse_mld(src, &hex(MLDV1)).unwrap();
    assert_eq!(q.version, QueryVersion::MldV1);
    assert_eq!(q.max_response, Duration::from_secs(1));
    assert_eq!(q.interval, None);
    assert_eq!(parse_mld(src, &hex(MLD_REPORT)), Err(NotAQuery::OtherType));
    assert!(parse_mld(src, &hex(MLDV2)[..26]).is_err());
}

#[test]
fn mldv2_large_response_code_is_floating_point() {
    let mut p = hex(MLDV2);
    p[4..6].copy_from_slice(&0x8001u16.to_be_bytes()); // mant 1, exp 0 -> (1 | 0x1000) << 3
    let q = parse_mld(Ipv6Addr::LOCALHOST, &p).unwrap();
    assert_eq!(q.max_response, Duration::from_millis(0x1001 << 3));
}

#[test]
fn the_log_keeps_each_querier_and_its_observed_interval() {
    let mut log = QuerierLog::default();
    let v3 = parse_igmp(&hex(IGMPV3)).unwrap();
    log.record(&v3, 1_000_000_000);
    log.record(&v3, 3_000_000_000);
    let v2 = parse_igmp(&hex(IGMPV2)).unwrap();
    let mut other = v2.clone();
    other.source = "10.0.0.9".parse().unwrap();
    log.record(&other, 3_500_000_000);
    assert_eq!(log.queriers.len(), 2);
    let q = &log.queriers[0];
    assert_eq!((q.queries, q.version, q.announced), (2, QueryVersion::IgmpV3, true));
    assert_eq!(q.interval, Duration::from_secs(2));
    assert_eq!(q.observed_interval, Some(Duration::from_secs(2)));
    assert_eq!(q.membership_timeout(), Duration::from_secs(5));
    let o = &log.queriers[1];
    assert_eq!((o.interval, o.robustness, o.announced), (DEFAULT_QUERY_INTERVAL, DEFAULT_ROBUSTNESS, false));
    assert_eq!(o.observed_interval, None);
    assert_eq!(log.latest().map(|q| q.address), Some(other.source));
    // The defaults give the 260 s every snooping switch documents.
    let mut d = o.clone();
    d.max_response = DEFAULT_RESPONSE;
    assert_eq!(d.membership_timeout(), Duration::from_secs(260));
}

#[test]
fn silence_is_measured_from_the_last_query_or_the_start() {
    const S: u64 = 1_000_000_000;
    let mut log = QuerierLog::default();
    // Nothing heard: the default 125 s + 10 s, from the start of the watch.
    assert_eq!(log.silence(0, 135 * S, None), None);
    let s = log.silence(0, 136 * S, None).unwrap();
    assert_eq!((s.silent_for, s.limit, s.last), (Duration::from_secs(136), Duration::from_secs(135), None));
    assert_eq!(s.age_out_unix_ns, 260 * S);
    // When the watch must look again: the first moment `silence` says so is just after it.
    assert_eq!(log.silent_after_unix_ns(0, None), 135 * S);
    assert_eq!(log.silent_after_unix_ns(0, Some(Duration::from_secs(2))), 2 * S);
    // A short --querier-wait.
    assert!(log.silence(0, 3 * S, Some(Duration::from_secs(2))).is_some());
    // A v3 querier announcing 2 s: silent after 12 s without a query.
    log.record(&parse_igmp(&hex(IGMPV3)).unwrap(), 10 * S);
    assert_eq!(log.silence(0, 21 * S, None), None);
    let s = log.silence(0, 23 * S, None).unwrap();
    assert_eq!(log.silent_after_unix_ns(0, None), 22 * S);
    assert_eq!(log.silence(0, 22 * S, None), None);
    assert!(log.silence(0, 22 * S + 1, None).is_some());
    assert_eq!(s.limit, Duration::from_secs(12));
    assert_eq!(s.age_out_unix_ns, 15 * S);
    assert_eq!(s.last.map(|q| q.version), Some(QueryVersion::IgmpV3));
}

#[test]
fn a_flood_of_forged_queriers_never_pushes_out_one_that_keeps_querying() {
    const S: u64 = 1_000_000_000;
    let mut log = QuerierLog::default();
    // The real querier: IGMPv3 announcing 2 s, so its membership timeout is 5 s.
    let mut q = parse_igmp(&hex(IGMPV3)).unwrap();
    let real: IpAddr = "10.0.0.1".parse().unwrap();
    q.source = real;
    log.record(&q, S);
    // 100 forged sources in a row, all within the real querier's timeout.
    for i in 0..100u32 {
        q.source = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i));
        log.record(&q, 2 * S);
    }
    assert_eq!((log.queriers.len(), log.refused), (MAX_QUERIERS, 100 - (MAX_QUERIERS as u64 - 1)));
    assert_eq!(log.queriers[0].address, real);
    // The real one queries on; the forged ones fall silent and age out after 5 s. A new querier
    // then gets the place of one of them, and the real one keeps its count.
    q.source = real;
    log.record(&q, 3 * S);
    log.record(&q, 8 * S);
    q.source = "10.0.0.2".parse().unwrap();
    log.record(&q, 8 * S);
    assert!(log.queriers.iter().any(|x| x.address == q.source));
    assert_eq!(log.queriers.len(), MAX_QUERIERS);
    assert_eq!(log.queriers.iter().find(|x| x.address == real).map(|x| x.queries), Some(3));
}
