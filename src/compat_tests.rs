//! Every pairing of an old prober or responder (the version-1 encoder and decoder kept in
//! `wire/v1.rs`, exactly as mcprobe spoke before the ack extension) with a new one must measure
//! what it measured before; only the new pair learns host drops and the join delay.
//!
//! With a key it is otherwise, on purpose: a keyed probe's tag now binds its destination and
//! source (`crate::auth`), and a new responder refuses the old, unbound tags, since answering
//! them would leave the cross-group replay open for as long as an old prober runs. So the keyed
//! pairs are checked too: old with old and new with new as always, mixed pairs get no ack.
//!
//! The new responder is the real [`Engine`], driven without sockets; the new prober side is the
//! real decoder and [`Run`]. The old responder is what it always was: decode the probe, fill an
//! ack from it, encode within the probe's length (keyed: check the probe's tag over the
//! datagram, seal the ack the same way).

use std::net::{IpAddr, SocketAddr};

use crate::auth::{Binding, Key};
use crate::responder::{Datagram, Engine, Outcome, ResponderConfig};
use crate::stats::{Figures, Run, RunConfig};
use crate::wire::{self, v1, Message};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_795_000_000 * SEC;
const GROUP: [u8; 4] = [239, 255, 42, 42];
const SESSION: u64 = 0x5e55;
const ID: u64 = 0x1d;
/// Every probe takes 40 µs to reach the responder, its ack as long back; the responder dwells 7 µs.
const OWD: u64 = 40_000;
const DWELL: u64 = 7_000;

fn prober() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 40_000))
}

fn responder_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 24_242))
}

/// The prober's accounting of this session: 1 s timeout and intervals, outages of 3 probes.
fn run() -> Run {
    Run::new(RunConfig {
        session: SESSION,
        timeout_ns: SEC,
        interval_ns: SEC,
        raw: false,
        intervals: false,
        plain: false,
        outage_min: 3,
        groups: 1,
    })
}

fn engine() -> Engine {
    let cfg = ResponderConfig::for_tests(IpAddr::from(GROUP), "node7", None);
    let mut e = Engine::new(&cfg, ID);
    e.joined(T0 - 5 * SEC);
    e
}

fn tx(seq: u64) -> u64 {
    T0 + seq * 10_000_000
}

/// Probe `seq` of `size` bytes as an old prober sends it, or a new one.
fn probe_bytes(new_prober: bool, seq: u64, size: usize) -> Vec<u8> {
    if new_prober {
        wire::Probe { session: SESSION, seq, tx_ns: tx(seq), asks_ext: true }.encode(size)
    } else {
        v1::Probe { session: SESSION, seq, tx_ns: tx(seq) }.encode(size)
    }
}

/// The old responder: it decodes the probe with the version-1 decoder (which must accept the new
/// prober's probes) and answers with a version-1 ack. `received` counts the probes it got.
fn old_responder(bytes: &[u8], received: u32) -> Vec<u8> {
    let Ok(v1::Message::Probe(p)) = v1::decode(bytes) else { panic!("an old responder cannot read {bytes:?}") };
    let rx_ns = p.tx_ns + OWD;
    let ack = v1::Ack {
        session: p.session,
        seq: p.seq,
        tx_ns: p.tx_ns,
        responder: ID,
        rx_ns,
        dwell_ns: DWELL as u32,
        received,
        ack_seq: received - 1,
        limited: 0,
        ttl: 64,
        arrival: v1::Arrival::Multicast,
        name: "node7".into(),
    };
    ack.encode_within(bytes.len()).expect("an ack fits any probe of 64 bytes or more")
}

/// The new responder's ack to `bytes`, which reached it with its socket's drop count at `drops`.
fn new_responder(e: &mut Engine, bytes: &[u8], drops: u64) -> Vec<u8> {
    let Ok(Message::Probe(p)) = wire::decode(bytes) else { panic!("not a probe") };
    let rx_ns = p.tx_ns + OWD;
    e.set_local_drops(drops);
    let d = Datagram { bytes, from: prober(), dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns };
    let reply = e.step(d, || rx_ns + DWELL).reply.expect("answered").to_vec();
    e.sent(true);
    reply
}

/// Ten probes; the network loses probe 7 on the way out and the ack of probe 2 on the way back;
/// the responder's own socket drops probes 4 and 5 (its drop count is 2 from probe 6 on).
/// Returns the figures the prober ends with, after decoding every ack with `decode`.
fn scenario(
    new_prober: bool,
    size: usize,
    mut respond: impl FnMut(&[u8], u32, u64) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> wire::Ack,
) -> Figures {
    let mut run = run();
    let mut received = 0;
    for seq in 0..10 {
        assert_eq!(run.record_send(tx(seq)), seq);
        if [4, 5, 7].contains(&seq) {
            continue;
        }
        received += 1;
        let drops = if seq >= 6 { 2 } else { 0 };
        let ack_bytes = respond(&probe_bytes(new_prober, seq, size), received, drops);
        assert!(ack_bytes.len() <= size, "an ack of {} bytes to a probe of {size}", ack_bytes.len());
        if seq != 2 {
            run.on_ack(&decode(&ack_bytes), responder_addr(), tx(seq) + 2 * OWD + DWELL);
        }
    }
    run.finalize_all();
    run.summary(&run.hosts()[0])
}

fn decode_new(bytes: &[u8]) -> wire::Ack {
    match wire::decode(bytes) {
        Ok(Message::Ack(a)) => a,
        other => panic!("the new prober cannot read the ack: {other:?}"),
    }
}

/// The old prober's decoder, its ack carried over field by field into the accounting (which is
/// the same code as before the extension for an ack without one).
fn decode_old(bytes: &[u8]) -> wire::Ack {
    let Ok(v1::Message::Ack(a)) = v1::decode(bytes) else { panic!("the old prober cannot read {bytes:?}") };
    let arrival = match a.arrival {
        v1::Arrival::Unknown => wire::Arrival::Unknown,
        v1::Arrival::Multicast => wire::Arrival::Multicast,
        v1::Arrival::Unicast => wire::Arrival::Unicast,
    };
    wire::Ack {
        session: a.session,
        seq: a.seq,
        tx_ns: a.tx_ns,
        responder: a.responder,
        rx_ns: a.rx_ns,
        dwell_ns: a.dwell_ns,
        received: a.received,
        ack_seq: a.ack_seq,
        limited: a.limited,
        ttl: a.ttl,
        arrival,
        ext: None,
        name: a.name,
    }
}

/// What every pairing measures, old or new: 3 probes lost forward, 1 ack lost on return.
fn assert_measures_as_before(f: &Figures, what: &str) {
    assert_eq!((f.sent, f.received, f.lost), (10, 6, 4), "{what}: {f:?}");
    assert_eq!((f.loss.forward, f.loss.ret, f.loss.unknown), (3, 1, 0), "{what}: {f:?}");
    assert_eq!(f.rtt.map(|r| r.p50_ns.abs_diff(2 * OWD + DWELL) < 200), Some(true), "{what}: {f:?}");
}

#[test]
fn old_prober_and_old_responder() {
    for size in [64, 128] {
        let f = scenario(false, size, |b, n, _| old_responder(b, n), decode_old);
        assert_measures_as_before(&f, "old/old");
        assert_eq!((f.loss.host_drops, f.join_delay_ns), (None, None));
    }
}

#[test]
fn old_prober_and_new_responder_get_the_old_acks_byte_for_byte() {
    for size in [64, 100, 128, 300] {
        let mut e = engine();
        let mut received = 0;
        for seq in 0..5 {
            let probe = probe_bytes(false, seq, size);
            received += 1;
            let new = new_responder(&mut e, &probe, 3);
            assert_eq!(new, old_responder(&probe, received), "size {size}, probe {seq}");
        }
        let mut e = engine();
        let f = scenario(false, size, |b, _, drops| new_responder(&mut e, b, drops), decode_old);
        assert_measures_as_before(&f, "old prober, new responder");
        assert_eq!((f.loss.host_drops, f.join_delay_ns), (None, None));
    }
}

#[test]
fn new_prober_and_old_responder_measure_as_before_without_host_drops() {
    for size in [64, 128, 300] {
        let f = scenario(true, size, |b, n, _| old_responder(b, n), decode_new);
        assert_measures_as_before(&f, "new prober, old responder");
        assert_eq!((f.loss.host_drops, f.join_delay_ns), (None, None), "size {size}");
    }
}

#[test]
fn new_prober_and_new_responder_split_forward_loss() {
    let mut e = engine();
    let f = scenario(true, wire::INFO_PROBE_LEN, |b, _, drops| new_responder(&mut e, b, drops), decode_new);
    assert_measures_as_before(&f, "new/new");
    // Of the 3 probes lost forward, the responder's socket dropped 2: the network lost 1.
    assert_eq!(f.loss.host_drops, Some(2));
    // It joined 5 s before the run's first probe: that is not a join delay.
    assert_eq!(f.join_delay_ns, None);
    // At 64 bytes there is no room: the acks are the fixed part alone, and nothing is guessed.
    let mut e = engine();
    let f = scenario(true, 64, |b, _, drops| new_responder(&mut e, b, drops), decode_new);
    assert_measures_as_before(&f, "new/new at 64 bytes");
    assert_eq!(f.loss.host_drops, None);
}

#[test]
fn the_extension_goes_first_and_the_name_takes_what_is_left() {
    let mut e = engine();
    let cases =
        [(64, false, ""), (92, false, "node7"), (93, true, ""), (94, true, ""), (95, true, "n"), (154, true, "node7")];
    for (size, ext, name) in cases {
        let probe = probe_bytes(true, 0, size);
        let ack = decode_new(&new_responder(&mut e, &probe, 0));
        assert_eq!((ack.ext.is_some(), ack.name.as_str()), (ext, name), "probe of {size} bytes");
    }
}

#[test]
fn a_responder_that_joins_during_the_run_reports_its_join_delay() {
    let mut run = run();
    let mut e = engine();
    // It joins 35 ms after the first probe left; probes leave every 10 ms; probe 5, sent 15 ms
    // after the join, is the first it gets: its join delay is 15.04 ms.
    e.joined(tx(0) + 35_000_000);
    for seq in 0..8 {
        run.record_send(tx(seq));
        if seq < 5 {
            continue;
        }
        let probe = probe_bytes(true, seq, 200);
        let rx_ns = tx(seq) + OWD;
        let d = Datagram { bytes: &probe, from: prober(), dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns };
        let step = e.step(d, || rx_ns + DWELL);
        if seq == 5 {
            let join = match step.event {
                Some(crate::responder::Event::NewSession { join_delay_ns, .. }) => join_delay_ns,
                _ => None,
            };
            assert_eq!(join, Some(15_040_000), "the responder's log line");
        }
        let ack = decode_new(step.reply.unwrap());
        run.on_ack(&ack, responder_addr(), tx(seq) + 2 * OWD + DWELL);
    }
    run.finalize_all();
    let f = run.summary(&run.hosts()[0]);
    assert_eq!(f.join_delay_ns, Some(tx(5) + OWD - (tx(0) + 35_000_000)));
}

fn keyed_engine(key: &Key) -> Engine {
    let cfg = ResponderConfig::for_tests(IpAddr::from(GROUP), "node7", Some(key.clone()));
    let mut e = Engine::new(&cfg, ID);
    e.joined(T0 - 5 * SEC);
    e
}

/// Keyed probe `seq`, 128 bytes with its tag: an old prober's tag covers the datagram, a new
/// one's also the group, port and the prober's address.
fn keyed_probe_bytes(new_prober: bool, seq: u64, key: &Key) -> Vec<u8> {
    let mut bytes = probe_bytes(new_prober, seq, 128 - wire::TAG_LEN);
    if new_prober {
        let binding = Binding { dst: SocketAddr::new(IpAddr::from(GROUP), 24_242), src: prober().ip() };
        key.seal_probe(&mut bytes, &binding);
    } else {
        key.seal(&mut bytes);
    }
    bytes
}

/// The old keyed responder: a probe whose tag does not verify over the datagram gets nothing.
fn old_keyed_responder(bytes: &[u8], received: u32, key: &Key) -> Option<Vec<u8>> {
    if !key.verify(bytes) {
        return None;
    }
    let mut ack = old_responder(bytes, received);
    // Within the probe's length less the tag, as the old responder encoded keyed acks.
    let Ok(v1::Message::Ack(a)) = v1::decode(&ack) else { panic!("the old responder's own ack") };
    ack = a.encode_within(bytes.len() - wire::TAG_LEN).expect("room for a keyed ack");
    key.seal(&mut ack);
    Some(ack)
}

#[test]
fn keyed_pairs_of_one_version_answer_and_mixed_pairs_do_not() {
    let key = Key::from_secret(b"compat test key").unwrap();
    for (new_prober, new_responder, answered) in
        [(false, false, 10), (true, true, 10), (false, true, 0), (true, false, 0)]
    {
        let what = format!(
            "{} prober, {} responder",
            ["old", "new"][new_prober as usize],
            ["old", "new"][new_responder as usize]
        );
        let mut run = run();
        let mut e = keyed_engine(&key);
        for seq in 0..10 {
            run.record_send(tx(seq));
            let probe = keyed_probe_bytes(new_prober, seq, &key);
            let reply = if new_responder {
                let rx_ns = tx(seq) + OWD;
                let d = Datagram { bytes: &probe, from: prober(), dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns };
                let step = e.step(d, || rx_ns + DWELL);
                let outcome = step.outcome;
                let reply = step.reply.map(<[u8]>::to_vec);
                // The old prober's unbound probes: refused, counted apart, and no notice (it
                // does not ask for one, and could not read it).
                if !new_prober {
                    assert_eq!((outcome, reply.as_ref()), (Outcome::Unbound, None), "{what}");
                }
                reply
            } else {
                old_keyed_responder(&probe, seq as u32 + 1, &key)
            };
            let Some(ack) = reply else { continue };
            // Keyed acks did not change: either prober verifies the other responder's.
            assert!(key.verify(&ack), "{what}");
            let ack = if new_prober { decode_new(&ack) } else { decode_old(&ack) };
            run.on_ack(&ack, responder_addr(), tx(seq) + 2 * OWD + DWELL);
        }
        run.finalize_all();
        let received = run.hosts().first().map_or(0, |h| run.summary(h).received);
        assert_eq!(received, answered, "{what}");
    }
}

#[test]
fn an_old_prober_never_gets_a_datagram_it_cannot_decode() {
    // A new keyed responder sends notices only to probes that ask; an old prober's never do.
    let key = Key::from_secret(b"compat test key").unwrap();
    let mut e = keyed_engine(&key);
    let other = Key::from_secret(b"another key").unwrap();
    let mut wrong_key = probe_bytes(false, 1, 128 - wire::TAG_LEN);
    other.seal(&mut wrong_key);
    for (seq, probe) in [(0, probe_bytes(false, 0, 128)), (1, wrong_key)] {
        let rx_ns = tx(seq) + OWD;
        let d = Datagram { bytes: &probe, from: prober(), dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns };
        let step = e.step(d, || rx_ns + DWELL);
        assert_eq!((step.outcome, step.reply), (Outcome::Unauthenticated, None), "probe {seq}");
    }
    // A new unkeyed prober asks, and is told.
    let probe = probe_bytes(true, 2, 128);
    let rx_ns = tx(2) + OWD;
    let d = Datagram { bytes: &probe, from: prober(), dst: Some(IpAddr::from(GROUP)), ttl: 64, rx_ns };
    let step = e.step(d, || rx_ns + DWELL);
    assert!(step.is_notice());
    assert!(matches!(v1::decode(step.reply.unwrap()), Err(v1::DecodeError::Type(3))), "an old decoder would refuse it");
}
