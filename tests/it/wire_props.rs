//! Property tests of the packet format: round-trips, no amplification, and no panic on any input.

use mcprobe::wire::{
    self, Ack, AckExt, Arrival, DecodeError, DelayClock, DelayFigure, GroupDelays, MembershipRefusal, Memberships,
    Message, Probe,
};
use proptest::prelude::*;

fn arrival() -> impl Strategy<Value = Arrival> {
    prop_oneof![Just(Arrival::Unknown), Just(Arrival::Multicast), Just(Arrival::Unicast)]
}

fn figure(kind: u8, ns: u64) -> DelayFigure {
    match kind {
        0 => DelayFigure::None,
        1 => DelayFigure::Measured(ns),
        2 => DelayFigure::AlreadyArriving,
        3 => DelayFigure::NeverArrived,
        4 => DelayFigure::NoneAfter,
        5 => DelayFigure::StillArriving,
        6 => DelayFigure::NotMeasurable,
        _ => DelayFigure::StartedAfter,
    }
}

/// A join/leave record (plain tuples: nested strategies overflow the test thread's stack).
fn any_join_leave() -> impl Strategy<Value = GroupDelays> {
    (any::<u32>(), 0u8..8, any::<u64>(), 0u8..8, any::<u64>(), 0u8..3).prop_map(|(joins, j, jn, l, ln, c)| {
        let clock = [DelayClock::Unknown, DelayClock::Interface, DelayClock::Syscall][usize::from(c)];
        GroupDelays { joins, join: figure(j, jn), leave: figure(l, ln), clock }
    })
}

/// A memberships record.
fn any_memberships() -> impl Strategy<Value = Memberships> {
    let counts = (proptest::option::of(0..u32::MAX), proptest::option::of(0..u32::MAX));
    (any::<u32>(), any::<u32>(), 0u8..5, counts).prop_map(|(joined, refused, r, (canary, flood_at))| {
        let refusal = [
            None,
            Some(MembershipRefusal::SocketLimit),
            Some(MembershipRefusal::Files),
            Some(MembershipRefusal::Memory),
            Some(MembershipRefusal::Other),
        ][usize::from(r)];
        Memberships { joined, refused, refusal, canary, flood_at }
    })
}

prop_compose! {
    fn any_ext()(host_drops: u32, join_delay_ns in proptest::option::of(0..u64::MAX),
                 member_ns in proptest::option::of(0..u64::MAX),
                 filtered in proptest::option::of(0..u32::MAX),
                 heard in proptest::option::of(0..u32::MAX),
                 group in proptest::option::of(prop_oneof![
                     any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
                     any::<[u8; 16]>().prop_map(std::net::IpAddr::from)
                 ]),
                 join_leave in proptest::option::of(any_join_leave()),
                 memberships in proptest::option::of(any_memberships())) -> AckExt {
        AckExt { host_drops, join_delay_ns, member_ns, filtered, heard, group, join_leave, memberships }
    }
}

prop_compose! {
    fn any_ack()(session: u64, seq: u64, tx_ns: u64, responder: u64, rx_ns: u64, dwell_ns: u32,
                 received: u32, ack_seq: u32, limited: u32, ttl: u8, arrival in arrival(),
                 ext in proptest::option::of(any_ext()), name in "\\PC{0,40}") -> Ack {
        Ack { session, seq, tx_ns, responder, rx_ns, dwell_ns, received, ack_seq, limited, ttl, arrival, ext, name }
    }
}

proptest! {
    #[test]
    fn probes_round_trip(session: u64, seq: u64, tx_ns: u64, asks_ext: bool, size in 0usize..2000) {
        let p = Probe { session, seq, tx_ns, asks_ext };
        let bytes = p.encode(size);
        prop_assert_eq!(bytes.len(), size.max(wire::PROBE_LEN));
        // A probe of exactly the fixed part has no padding byte to ask with.
        let asked = Probe { asks_ext: asks_ext && size > wire::PROBE_LEN, ..p };
        prop_assert_eq!(wire::decode(&bytes), Ok(Message::Probe(asked)));
    }

    #[test]
    fn acks_round_trip_within_any_limit(ack in any_ack(), limit in 0usize..400) {
        match ack.encode_within(limit) {
            None => prop_assert!(limit < wire::ACK_FIXED_LEN),
            Some(bytes) => {
                prop_assert!(bytes.len() <= limit, "ack of {} bytes for a {limit}-byte probe", bytes.len());
                let Ok(Message::Ack(back)) = wire::decode(&bytes) else { return Err(TestCaseError::fail("not an ack")) };
                prop_assert!(ack.name.starts_with(&back.name));
                // The extension travels when it fits, before any of the name; its group only
                // where the whole name still fits too.
                let ext_fits = limit >= wire::ACK_FIXED_LEN + 1 + wire::EXT_LEN;
                let name_len = if ack.name.is_empty() { 0 } else { 1 + ack.name.len().min(wire::MAX_NAME_LEN) };
                let group_fits = limit >= wire::ACK_FIXED_LEN + 1 + wire::EXT_GROUP_LEN + name_len;
                // The join/leave record with the group only, and where the whole name fits too.
                let join_leave_fits = limit >= wire::ACK_FIXED_LEN + 1 + wire::EXT_JOIN_LEAVE_LEN + name_len;
                // The memberships record likewise, after a join/leave record (a zero one if none).
                let memberships_fits = limit >= wire::ACK_FIXED_LEN + 1 + wire::EXT_MEMBERSHIPS_LEN + name_len;
                let sent_ext = ack.ext.filter(|_| ext_fits).map(|e| {
                    let group = e.group.filter(|_| group_fits);
                    let memberships = e.memberships.filter(|_| group.is_some() && memberships_fits);
                    let join_leave = e.join_leave.filter(|_| group.is_some() && join_leave_fits);
                    let join_leave = join_leave.or(memberships.map(|_| GroupDelays::default()));
                    AckExt { group, join_leave, memberships, ..e }
                });
                prop_assert_eq!(back.ext, sent_ext);
                let ext_len = 1 + match back.ext {
                    Some(AckExt { memberships: Some(_), .. }) => wire::EXT_MEMBERSHIPS_LEN,
                    Some(AckExt { join_leave: Some(_), .. }) => wire::EXT_JOIN_LEAVE_LEN,
                    Some(AckExt { group: Some(_), .. }) => wire::EXT_GROUP_LEN,
                    _ => wire::EXT_LEN,
                };
                let mut expect = ack.clone();
                expect.name = back.name.clone();
                expect.ext = back.ext;
                prop_assert_eq!(&back, &expect);
                let fixed = wire::ACK_FIXED_LEN + usize::from(back.ext.is_some()) * ext_len;
                if limit >= fixed + 1 + ack.name.len() && ack.name.len() <= wire::MAX_NAME_LEN {
                    prop_assert_eq!(bytes.len(), fixed + usize::from(!ack.name.is_empty()) * (1 + ack.name.len()));
                }
            }
        }
    }

    /// Arbitrary bytes: decoding returns, whatever they are.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = wire::decode(&bytes);
    }

    /// Bytes behind a valid header reach the body decoders instead of stopping at the magic.
    #[test]
    fn arbitrary_bodies_never_panic(kind in 0u8..4, flags: u8, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = b"MCP".to_vec();
        bytes.extend([wire::VERSION, kind, flags]);
        bytes.extend(body);
        let _ = wire::decode(&bytes);
    }

    /// Every strict prefix of a valid message is rejected as truncated.
    #[test]
    fn truncations_are_rejected(ack in any_ack(), cut_frac in 0.0f64..1.0) {
        let bytes = ack.encode_within(200).unwrap();
        let cut = (bytes.len() as f64 * cut_frac) as usize;
        prop_assert!(cut < bytes.len());
        match wire::decode(&bytes[..cut]) {
            Err(DecodeError::Truncated { .. }) => {}
            other => prop_assert!(false, "prefix of {cut}/{} bytes gave {other:?}", bytes.len()),
        }
    }

    /// Flipping any single byte never yields a panic, and a changed magic or version is refused.
    #[test]
    fn corrupted_headers_are_refused(ack in any_ack(), pos in 0usize..4, xor in 1u8..=255) {
        let mut bytes = ack.encode_within(200).unwrap();
        bytes[pos] ^= xor;
        prop_assert!(wire::decode(&bytes).is_err());
    }
}
