//! The engine driven without sockets: synthetic datagrams, a fake clock.

use super::*;

const SEC: u64 = 1_000_000_000;
/// The responder's clock when the datagrams arrive (late 2026).
const T0: u64 = 1_795_000_000 * SEC;
const PORT: u16 = 24_242;
const GROUP: [u8; 4] = [239, 255, 42, 42];

fn cfg(key: Option<Key>) -> ResponderConfig {
    ResponderConfig { port: PORT, ..ResponderConfig::for_tests(IpAddr::from(GROUP), "node7", key) }
}

fn key() -> Key {
    Key::from_secret(b"engine test").unwrap()
}

fn from(host: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, host], 40_000))
}

/// A probe of `size` bytes, sealed with `key` if given (the tag within `size`) for the group
/// and source `from(1)`.
fn probe(key: Option<&Key>, session: u64, seq: u64, tx_ns: u64, size: usize) -> Vec<u8> {
    probe_from(key, from(1), session, seq, tx_ns, size)
}

/// The same, sealed for the group and source `src`.
fn probe_from(key: Option<&Key>, src: SocketAddr, session: u64, seq: u64, tx_ns: u64, size: usize) -> Vec<u8> {
    let tag = if key.is_some() { wire::TAG_LEN } else { 0 };
    let mut bytes = Probe { session, seq, tx_ns, asks_ext: false }.encode(size.saturating_sub(tag));
    if let Some(k) = key {
        k.seal_probe(&mut bytes, &Binding { dst: SocketAddr::from((GROUP, PORT)), src: src.ip() });
    }
    bytes
}

/// A multicast datagram from `src` received at `rx_ns`.
fn at<'a>(bytes: &'a [u8], src: SocketAddr, rx_ns: u64) -> Datagram<'a> {
    Datagram { bytes, from: src, dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns }
}

/// Steps once with a clock 7 µs after arrival; returns the outcome, the decoded ack and the
/// event. A notice is taken as sent and left out (see [`step_notice`]).
fn step(e: &mut Engine, d: Datagram<'_>) -> (Outcome, Option<Ack>, Option<Event>) {
    let (outcome, reply, event) = step_any(e, d);
    let ack = match reply {
        Some(Message::Ack(a)) => Some(a),
        Some(Message::Notice(_)) | None => None,
        other => panic!("not an ack: {other:?}"),
    };
    (outcome, ack, event)
}

/// Steps once; returns the outcome and the notice (not an ack) it replied with, if any.
fn step_notice(e: &mut Engine, d: Datagram<'_>) -> (Outcome, Option<Notice>) {
    match step_any(e, d) {
        (outcome, Some(Message::Notice(n)), _) => (outcome, Some(n)),
        (outcome, None, _) => (outcome, None),
        other => panic!("not a notice: {other:?}"),
    }
}

fn step_any(e: &mut Engine, d: Datagram<'_>) -> (Outcome, Option<Message>, Option<Event>) {
    let (rx_ns, len) = (d.rx_ns, d.bytes.len());
    let s = e.step(d, || rx_ns + 7_000);
    let notice = s.is_notice();
    let reply = s.reply.map(|b| {
        assert!(b.len() <= len, "a reply of {} bytes to {len}", b.len());
        wire::decode(b).expect("a valid reply")
    });
    let (outcome, event) = (s.outcome, s.event);
    match (&reply, notice) {
        (Some(_), true) => e.notice_sent(true),
        (Some(_), false) => e.sent(true),
        (None, _) => {}
    }
    (outcome, reply, event)
}

#[test]
fn a_probe_gets_an_ack_that_echoes_it() {
    let mut e = Engine::new(&cfg(None), 0xabc);
    let bytes = probe(None, 5, 0, T0 - 80_000, 128);
    let (outcome, ack, event) = step(&mut e, at(&bytes, from(1), T0));
    assert_eq!(outcome, Outcome::Answered);
    let ack = ack.unwrap();
    assert_eq!((ack.session, ack.seq, ack.tx_ns, ack.rx_ns), (5, 0, T0 - 80_000, T0));
    assert_eq!((ack.responder, ack.name.as_str(), ack.dwell_ns), (0xabc, "node7", 7_000));
    assert_eq!((ack.received, ack.ack_seq, ack.limited, ack.ttl, ack.arrival), (1, 0, 0, 64, Arrival::Multicast));
    let arrival = Arrival::Multicast;
    assert_eq!(event, Some(Event::NewSession { session: 5, from: from(1), ttl: 64, arrival, join_delay_ns: None }));
    // The second probe of the session: no event, counters move on.
    let bytes = probe(None, 5, 1, T0, 128);
    let (_, ack, event) = step(&mut e, Datagram { dst: Some(IpAddr::from([10, 0, 0, 9])), ..at(&bytes, from(1), T0) });
    let ack = ack.unwrap();
    assert_eq!((ack.received, ack.ack_seq, ack.arrival), (2, 1, Arrival::Unicast));
    assert_eq!(event, None);
    let c = e.counters();
    assert_eq!((c.probes, c.acks_sent, c.sessions), (2, 2, 1));
}

#[test]
fn junk_acks_and_small_probes_are_counted_not_answered() {
    let mut e = Engine::new(&cfg(None), 1);
    let ack = Ack::default().encode_within(100).unwrap();
    let mut other_version = probe(None, 1, 1, T0, 64);
    other_version[3] = 9;
    let small = probe(None, 1, 2, T0, 63);
    for (bytes, want) in [
        (&b"hello"[..], Outcome::Invalid),
        (&ack[..], Outcome::Ignored),
        (&other_version[..], Outcome::Ignored),
        (&small[..], Outcome::TooSmall),
    ] {
        assert_eq!(step(&mut e, at(bytes, from(1), T0)), (want, None, None));
    }
    let c = e.counters();
    assert_eq!((c.invalid, c.ignored, c.too_small, c.probes, c.acks_sent), (1, 2, 1, 1, 0));
}

#[test]
fn no_reply_is_ever_larger_than_its_datagram() {
    for keyed in [false, true] {
        let k = keyed.then(key);
        let mut e = Engine::new(&cfg(k.clone()), 1);
        let mut answered = 0;
        for size in 0..=300usize {
            let bytes = probe(k.as_ref(), 1, size as u64, T0, size);
            let rx_ns = T0;
            let s = e.step(at(&bytes, from(1), rx_ns), || rx_ns);
            if let Some(reply) = s.reply {
                assert!(reply.len() <= bytes.len(), "{} bytes answered with {}", bytes.len(), reply.len());
                answered += 1;
            }
        }
        assert!(answered > 200, "keyed {keyed}: {answered}");
    }
}

#[test]
fn a_captured_keyed_probe_is_answered_once_and_only_to_its_source() {
    let k = key();
    let mut e = Engine::new(&cfg(Some(k.clone())), 1);
    let original = probe(Some(&k), 77, 0, T0 - 50_000, 128);
    let (outcome, ack, event) = step(&mut e, at(&original, from(1), T0));
    assert_eq!(outcome, Outcome::Answered);
    assert!(ack.is_some() && matches!(event, Some(Event::NewSession { .. })));
    // The same bytes again, from the same address (a spoofed prober, or the network duplicating).
    assert_eq!(step(&mut e, at(&original, from(1), T0 + 1000)), (Outcome::Replayed, None, None));
    // From a victim's address: its tag binds the prober's address, so it fails like a wrong key.
    let (outcome, ack, event) = step(&mut e, at(&original, from(66), T0 + 2000));
    assert_eq!((outcome, ack), (Outcome::Unauthenticated, None));
    assert_eq!(event, Some(Event::BadMac { from: from(66) }));
    // Even a new probe of that session, made with the key for that address, is refused there.
    let next = probe_from(Some(&k), from(66), 77, 1, T0, 128);
    let (outcome, _, event) = step(&mut e, at(&next, from(66), T0 + 4 * SEC));
    assert_eq!(outcome, Outcome::WrongSource);
    assert_eq!(event, Some(Event::WrongSource { from: from(66), session: 77, bound: from(1) }));
    // The prober itself carries on; the refused copies are not counted as its probes.
    let next = probe(Some(&k), 77, 1, T0, 128);
    let (outcome, ack, _) = step(&mut e, at(&next, from(1), T0 + 100));
    assert_eq!(outcome, Outcome::Answered);
    assert_eq!(ack.unwrap().received, 2);
    let c = e.counters();
    assert_eq!((c.replayed, c.unauthenticated, c.wrong_source, c.acks_sent), (1, 1, 1, 2));
    // Another prober's session from that address is fine.
    let own = probe_from(Some(&k), from(66), 78, 0, T0, 128);
    assert_eq!(step(&mut e, at(&own, from(66), T0 + 200)).0, Outcome::Answered);
}

#[test]
fn a_keyed_probe_is_answered_only_where_it_was_sent() {
    let k = key();
    let original = probe(Some(&k), 77, 0, T0 - 50_000, 128);
    let group = IpAddr::from(GROUP);
    let other_group = IpAddr::from([239, 255, 42, 43]);
    // Each copy reaches a responder that never saw the original, so only the tag can tell.
    for (what, c, dst, src) in [
        ("as sent", cfg(Some(k.clone())), Some(group), from(1)),
        ("socket gave no destination: the configured group", cfg(Some(k.clone())), None, from(1)),
        ("another group", ResponderConfig { group: other_group, ..cfg(Some(k.clone())) }, Some(other_group), from(1)),
        ("another port", ResponderConfig { port: PORT + 1, ..cfg(Some(k.clone())) }, Some(group), from(1)),
        ("another source (an SSM channel of another source)", cfg(Some(k.clone())), Some(group), from(66)),
        ("a unicast address", cfg(Some(k.clone())), Some(IpAddr::from([10, 0, 0, 9])), from(1)),
    ] {
        let mut e = Engine::new(&c, 1);
        let (outcome, reply, _) = step_any(&mut e, Datagram { dst, ..at(&original, src, T0) });
        if what == "as sent" || what.starts_with("socket") {
            assert_eq!(outcome, Outcome::Answered, "{what}");
            assert!(matches!(reply, Some(Message::Ack(_))), "{what}");
        } else {
            assert_eq!(outcome, Outcome::Unauthenticated, "{what}");
            let Some(Message::Notice(n)) = reply else { panic!("{what}: {reply:?}") };
            assert_eq!(n.reason, NoticeReason::KeyMismatch, "{what}");
            assert_eq!((e.counters().sessions, e.counters().acks_sent), (0, 0), "{what}: no session, no ack");
        }
    }
}

#[test]
fn keyed_probes_of_earlier_versions_are_refused_and_named() {
    let k = key();
    let mut e = Engine::new(&cfg(Some(k.clone())), 1);
    // As a version-1 prober sends it: zero padding (it asks for no notice), an unbound tag.
    let mut old = wire::v1::Probe { session: 3, seq: 0, tx_ns: T0 }.encode(128 - wire::TAG_LEN);
    k.seal(&mut old);
    let (outcome, reply, event) = step_any(&mut e, at(&old, from(1), T0));
    assert_eq!((outcome, reply), (Outcome::Unbound, None));
    assert_eq!(event, Some(Event::Unbound { from: from(1) }));
    let c = e.counters();
    assert_eq!((c.unbound, c.unauthenticated, c.notices, c.sessions), (1, 0, 0, 0));
}

#[test]
fn keyed_probes_are_answered_in_any_order_once() {
    let k = key();
    let mut e = Engine::new(&cfg(Some(k.clone())), 1);
    let order = [0u64, 2, 1, 5, 3, 4, 2, 5, 6];
    let outcomes: Vec<_> =
        order.iter().map(|&seq| step(&mut e, at(&probe(Some(&k), 1, seq, T0, 100), from(1), T0)).0).collect();
    let answered = outcomes.iter().filter(|o| **o == Outcome::Answered).count();
    assert_eq!(answered, 7, "{outcomes:?}");
    assert_eq!(outcomes[6], Outcome::Replayed);
    assert_eq!(outcomes[7], Outcome::Replayed);
    // Far behind the newest: refused, as it cannot be told from a replay.
    let newest = 6 + SeqWindow::SPAN;
    assert_eq!(step(&mut e, at(&probe(Some(&k), 1, newest, T0, 100), from(1), T0)).0, Outcome::Answered);
    assert_eq!(step(&mut e, at(&probe(Some(&k), 1, 6, T0, 100), from(1), T0)).0, Outcome::Replayed);
}

#[test]
fn a_skewed_clock_is_refused_and_said_once_per_source() {
    let k = key();
    let mut e = Engine::new(&cfg(Some(k.clone())), 1);
    // The prober's clock is 30 s behind this one.
    let behind = probe(Some(&k), 3, 0, T0 - 30 * SEC, 128);
    let (outcome, ack, event) = step(&mut e, at(&behind, from(1), T0));
    assert_eq!((outcome, ack), (Outcome::Stale, None));
    assert_eq!(event, Some(Event::ClockSkew { from: from(1), skew_ns: 30 * SEC as i64, max_ns: 5 * SEC }));
    // Every later probe from it is refused too, without another line.
    for i in 1..100u64 {
        let p = probe(Some(&k), 3, i, T0 - 30 * SEC + i * 1000, 128);
        assert_eq!(step(&mut e, at(&p, from(1), T0 + i * 1000)), (Outcome::Stale, None, None));
    }
    // Ahead by 10 s, from another host: its own line, once the gap since the last line is over.
    let ahead = probe_from(Some(&k), from(2), 4, 0, T0 + 12 * SEC, 128);
    let (outcome, _, event) = step(&mut e, at(&ahead, from(2), T0 + 2 * SEC));
    assert_eq!(outcome, Outcome::Stale);
    assert_eq!(event, Some(Event::ClockSkew { from: from(2), skew_ns: -10 * SEC as i64, max_ns: 5 * SEC }));
    let c = e.counters();
    assert_eq!((c.stale, c.sessions, c.acks_sent), (101, 0, 0), "stale probes start no session");
    // Within the window either way: answered.
    for (i, tx) in [T0 - 4 * SEC, T0 + 4 * SEC].into_iter().enumerate() {
        let p = probe_from(Some(&k), from(3), 5, i as u64, tx, 128);
        assert_eq!(step(&mut e, at(&p, from(3), T0)).0, Outcome::Answered);
    }
}

#[test]
fn the_clock_skew_window_follows_the_configuration() {
    let k = key();
    let mut e = Engine::new(&ResponderConfig { max_clock_skew: Duration::from_millis(100), ..cfg(Some(k.clone())) }, 1);
    assert_eq!(step(&mut e, at(&probe(Some(&k), 1, 0, T0 - 150_000_000, 128), from(1), T0)).0, Outcome::Stale);
    assert_eq!(step(&mut e, at(&probe(Some(&k), 1, 1, T0 - 50_000_000, 128), from(1), T0)).0, Outcome::Answered);
    // Unkeyed probes carry no proof of anything: their timestamps are not checked.
    let mut open = Engine::new(&ResponderConfig { max_clock_skew: Duration::from_millis(100), ..cfg(None) }, 1);
    assert_eq!(step(&mut open, at(&probe(None, 1, 0, 1, 128), from(1), T0)).0, Outcome::Answered);
    assert_eq!(step(&mut open, at(&probe(None, 1, 0, 1, 128), from(2), T0)).0, Outcome::Answered);
}

#[test]
fn bad_macs_are_said_once_per_source() {
    let k = key();
    let mut e = Engine::new(&cfg(Some(k)), 1);
    let wrong = Key::from_secret(b"another key").unwrap();
    let mut events = Vec::new();
    for i in 0..50u64 {
        for (src, p) in [(from(1), probe(Some(&wrong), 1, i, T0, 128)), (from(2), probe(None, 2, i, T0, 128))] {
            let (outcome, _, event) = step(&mut e, at(&p, src, T0 + i * 100 * 1_000_000));
            assert_eq!(outcome, Outcome::Unauthenticated);
            events.extend(event);
        }
    }
    // Source 2's first bad probe came right after source 1's line: it is told at its next one
    // after the one-second gap.
    assert_eq!(events, [Event::BadMac { from: from(1) }, Event::BadMac { from: from(2) }]);
    assert_eq!(e.counters().unauthenticated, 100);
    // 50 probes each over 4.9 s: a notice at once, then one a second, per source.
    assert_eq!(e.counters().notices, 2 * 5);
}

#[test]
fn probers_are_told_why_with_notices_within_every_limit() {
    let k = key();
    let mut e = Engine::new(&ResponderConfig { total_rate_limit: 1_000, ..cfg(Some(k)) }, 0x1d);
    // No key, another key: each reason, echoing the probe, from this responder.
    let unkeyed = probe(None, 9, 4, T0 - 1000, 128);
    let (outcome, n) = step_notice(&mut e, at(&unkeyed, from(1), T0));
    assert_eq!(outcome, Outcome::Unauthenticated);
    let reason = NoticeReason::KeyNeeded;
    assert_eq!(n, Some(Notice { session: 9, seq: 4, tx_ns: T0 - 1000, responder: 0x1d, reason }));
    let wrong = probe_from(Some(&Key::from_secret(b"another").unwrap()), from(2), 8, 0, T0, 128);
    assert_eq!(step_notice(&mut e, at(&wrong, from(2), T0)).1.map(|n| n.reason), Some(NoticeReason::KeyMismatch));
    // One a second per source: the next from source 1 within the second gets none.
    assert_eq!(step_notice(&mut e, at(&unkeyed, from(1), T0 + SEC / 2)).1, None);
    assert!(step_notice(&mut e, at(&unkeyed, from(1), T0 + SEC)).1.is_some());
    // Never larger than the probe: one too short for a notice gets none; nor does a probe that
    // does not ask (an older prober, which could not read it).
    let short = probe(None, 9, 5, T0, wire::NOTICE_LEN - 1);
    assert_eq!(step_notice(&mut e, at(&short, from(3), T0 + 2 * SEC)), (Outcome::Unauthenticated, None));
    let old = wire::v1::Probe { session: 9, seq: 6, tx_ns: T0 }.encode(128);
    assert_eq!(step_notice(&mut e, at(&old, from(4), T0 + 2 * SEC)), (Outcome::Unauthenticated, None));
    assert_eq!(e.counters().notices, 3);
    // Forged probes from 1000 addresses within a second: NOTICE_TOTAL_RATE notices at most.
    let t = T0 + 10 * SEC;
    let told = (0..1000u64)
        .filter(|&h| {
            let src = SocketAddr::from(([10, 2, (h / 256) as u8, h as u8], 5000));
            step_notice(&mut e, at(&unkeyed, src, t + h * 1000)).1.is_some()
        })
        .count();
    assert_eq!(told, NOTICE_TOTAL_RATE as usize);
}

#[test]
fn notices_spend_the_total_budget_and_stop_when_it_is_spent() {
    let k = key();
    // A budget of 1000 acks/s, in bursts of 100: 60 answered probes leave 40 for notices.
    let mut e = Engine::new(&ResponderConfig { total_rate_limit: 1_000, ..cfg(Some(k.clone())) }, 1);
    let src = |h: u64| SocketAddr::from(([10, 3, (h / 256) as u8, h as u8], 1));
    for h in 0..60 {
        let p = probe_from(Some(&k), src(h), h, 0, T0, 128);
        assert_eq!(step(&mut e, at(&p, src(h), T0)).0, Outcome::Answered);
    }
    let unkeyed = probe(None, 9, 4, T0, 128);
    let told = (100..300u64).filter(|&h| step_notice(&mut e, at(&unkeyed, src(h), T0)).1.is_some()).count();
    assert_eq!(told, 40, "what the acks left of the budget's burst");
    assert_eq!((e.counters().notices, e.counters().acks_sent), (40, 60));
}

#[test]
fn the_total_budget_holds_across_sources_and_travels_in_the_acks() {
    let c = ResponderConfig { rate_limit: 10_000, total_rate_limit: 1_000, ..cfg(None) };
    let mut e = Engine::new(&c, 1);
    // 1000 sources, each far under its own limit, 10 probes each over one second.
    let mut answered = 0u64;
    let mut events = Vec::new();
    let mut last_limited = std::collections::HashMap::new();
    for round in 0..10u64 {
        for host in 0..1000u64 {
            let src = SocketAddr::from(([10, 1, (host / 256) as u8, host as u8], 5000));
            let rx = T0 + round * SEC / 10 + host * 100;
            let (outcome, ack, event) = step(&mut e, at(&probe(None, host, round, rx, 64), src, rx));
            events.extend(event.filter(|e| !matches!(e, Event::NewSession { .. })));
            match outcome {
                Outcome::Answered => {
                    answered += 1;
                    last_limited.insert(host, ack.unwrap().limited);
                }
                o => assert_eq!(o, Outcome::OverBudget),
            }
        }
    }
    // The burst (100) plus one second at 1000/s.
    assert!((1000..=1100).contains(&answered), "{answered}");
    assert_eq!(e.counters().over_budget, 10_000 - answered);
    assert_eq!(events, [Event::OverBudget { rate: 1_000 }], "one line, not one per probe");
    // Hosts 0-99 came first in every round and took the budget; a later host, probing again
    // once the flood is over, learns from its ack that its 10 probes were limited, not lost.
    assert_eq!(last_limited.get(&5), Some(&0));
    assert_eq!(last_limited.get(&500), None);
    let rx = T0 + 2 * SEC;
    let (outcome, ack, _) =
        step(&mut e, at(&probe(None, 500, 10, rx, 64), SocketAddr::from(([10, 1, 1, 244], 5000)), rx));
    assert_eq!(outcome, Outcome::Answered);
    let ack = ack.unwrap();
    assert_eq!((ack.received, ack.limited), (11, 10));
    let lim = e.counters().limited;
    assert_eq!(lim, 0, "no source was over its own limit");
}

#[test]
fn a_source_over_its_own_limit_spends_none_of_the_budget() {
    // Bursts: 100 per source, 200 in all.
    let c = ResponderConfig { rate_limit: 100, total_rate_limit: 2_000, ..cfg(None) };
    let mut e = Engine::new(&c, 1);
    let hog: Vec<Outcome> = (0..1000u64).map(|i| step(&mut e, at(&probe(None, 1, i, T0, 64), from(1), T0)).0).collect();
    assert_eq!(hog.iter().filter(|o| **o == Outcome::Answered).count(), 100);
    assert_eq!(e.counters().limited, 900);
    // Only the hog's 100 answered probes spent the budget: the other half of its burst is left.
    let others = (0..100u8)
        .filter(|&h| step(&mut e, at(&probe(None, 2, h as u64, T0, 64), from(h + 2), T0)).0 == Outcome::Answered)
        .count();
    assert_eq!(others, 100);
}

#[test]
fn plain_mode_answers_anything_but_an_answer() {
    let mut e = Engine::new(&ResponderConfig { plain: true, ..cfg(None) }, 1);
    let s = e.step(at(b"hello", from(1), T0), || T0);
    assert_eq!((s.outcome, s.reply), (Outcome::Answered, Some(PLAIN_ACK)));
    assert!(matches!(s.event, Some(Event::NewSession { .. })));
    assert_eq!(e.step(at(b"hello", from(1), T0), || T0).event, None, "one event per source");
    assert_eq!(e.step(at(b"ack", from(2), T0), || T0).outcome, Outcome::Ignored);
    assert_eq!(e.step(at(b"hi", from(2), T0), || T0).outcome, Outcome::TooSmall);
    let from_group_port = SocketAddr::from(([10, 0, 0, 3], PORT));
    assert_eq!(e.step(at(b"hello", from_group_port, T0), || T0).outcome, Outcome::Ignored);
}

#[test]
fn the_allow_list_comes_first() {
    let c = ResponderConfig { allow: AllowList(vec!["10.0.0.0/31".parse().unwrap()]), ..cfg(None) };
    let mut e = Engine::new(&c, 1);
    let p = probe(None, 1, 0, T0, 64);
    assert_eq!(step(&mut e, at(&p, from(1), T0)).0, Outcome::Answered);
    assert_eq!(step(&mut e, at(&p, from(2), T0)).0, Outcome::Denied);
    assert_eq!(e.counters().denied, 1);
}

#[test]
fn the_clock_skew_flag_is_bounded() {
    assert!(check_max_clock_skew(Duration::from_secs(60)).is_ok());
    let err = check_max_clock_skew(Duration::from_secs(61)).unwrap_err().to_string();
    assert!(err.contains("--max-clock-skew 1m 1s") && err.contains("at most 60s"), "{err}");
}

/// Two sessions on one socket (another prober, or `--hosts`' unicast session): B's probes 50..140
/// are dropped by the socket, A's 10..15 by the network. Each session's acks carry its own drops.
#[test]
fn host_drops_are_told_per_session_on_a_shared_socket() {
    let mut e = Engine::new(&cfg(None), 1);
    let mut drops = 0;
    let mut newest = [None, None];
    for seq in 0..200u64 {
        for (i, session) in [0xa, 0xb].into_iter().enumerate() {
            if session == 0xa && (10..15).contains(&seq) {
                continue; // lost on the way: the socket never sees it
            }
            if session == 0xb && (50..140).contains(&seq) {
                drops += 1; // the socket's buffer was full
                continue;
            }
            let bytes = Probe { session, seq, tx_ns: T0, asks_ext: true }.encode(200);
            e.set_local_drops(drops);
            let (_, ack, _) = step(&mut e, at(&bytes, from(1), T0 + seq));
            newest[i] = ack.and_then(|a| a.ext);
        }
    }
    let [a, b] = newest.map(|x| x.expect("acks with the extension").host_drops);
    assert_eq!((a, b), (0, 90));
}

/// A gap that the socket's count did not grow across is the network's, and a gap is never
/// charged more than its length.
#[test]
fn a_gap_is_put_down_to_the_host_at_most_as_far_as_the_socket_dropped() {
    let mut s = guard::SessionState::default();
    s.note_arrival(0, 100);
    s.note_arrival(5, 100); // 4 lost, socket dropped nothing
    s.note_arrival(9, 102); // 3 lost, socket dropped 2
    s.note_arrival(10, 150); // no gap, whatever the socket dropped (another session's)
    s.note_arrival(8, 150); // late copy: nothing
    s.note_arrival(12, 400); // 1 lost, socket dropped 250
    assert_eq!(s.host_drops, 2 + 1);
}
