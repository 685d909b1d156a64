//! Micro-benchmarks of the responder's per-probe decision (`mcprobe::responder::Engine::step`) and
//! of the checks issue 13 added to it: the freshness window, the session's source address, the
//! replay window and the total budget. The step runs without sockets, with a fake clock, so this
//! is the CPU cost per probe on top of the kernel's receive and send (a few µs each).
//!
//! Run with `cargo bench --bench responder`. One probe per iteration (`ItemsCount`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use mcprobe::auth::{Binding, Key};
use mcprobe::cli::{DEFAULT_RATE_LIMIT, DEFAULT_TOTAL_RATE_LIMIT};
use mcprobe::responder::{
    is_fresh, AllowList, Budget, Datagram, Engine, Outcome, ResponderConfig, SeqWindow, SessionTable,
    DEFAULT_MAX_CLOCK_SKEW_NS,
};
use mcprobe::wire::{Probe, TAG_LEN};

fn main() {
    divan::main();
}

/// Late 2026, ns since the epoch.
const T0: u64 = 1_795_000_000_000_000_000;
/// Probes 200 µs apart (5000/s): under the default per-source limit, so every probe is answered.
const GAP_NS: u64 = 200_000;
/// Probes prepared ahead (512 KiB at 128 B: they stay in cache); the engine restarts after them,
/// since a keyed engine answers each sequence number once.
const BATCH: u64 = 4096;
const SIZE: usize = 128;

fn config(key: Option<Key>) -> ResponderConfig {
    ResponderConfig {
        group: IpAddr::from([239, 255, 42, 42]),
        groups: vec![IpAddr::from([239, 255, 42, 42])],
        source: None,
        port: 24_242,
        iface: None,
        name: "rack07-node12.lan.io".into(),
        reply_from: None,
        rcvbuf: 0,
        rate_limit: DEFAULT_RATE_LIMIT,
        total_rate_limit: DEFAULT_TOTAL_RATE_LIMIT,
        max_clock_skew: Duration::from_nanos(DEFAULT_MAX_CLOCK_SKEW_NS),
        allow: AllowList::default(),
        key,
        plain: false,
        tap: false,
        churn: None,
        ramp: None,
        ack_trains: false,
    }
}

/// The probes of one prober at 10.0.0.1, keyed for the group and port of [`config`].
fn probes(key: Option<&Key>) -> Vec<Vec<u8>> {
    let binding = Binding { dst: SocketAddr::from(([239, 255, 42, 42], 24_242)), src: IpAddr::from([10, 0, 0, 1]) };
    (0..BATCH)
        .map(|seq| {
            let tag = if key.is_some() { TAG_LEN } else { 0 };
            let mut p = Probe { session: 0x5eed, seq, tx_ns: T0 + seq * GAP_NS, asks_ext: false }.encode(SIZE - tag);
            if let Some(k) = key {
                k.seal_probe(&mut p, &binding);
            }
            p
        })
        .collect()
}

/// The whole decision for a 128-byte probe that is answered: decode, checks, ack encode (and,
/// keyed, the MAC check of the probe, bound to its destination and source, and the MAC of the
/// ack).
#[divan::bench(args = [false, true])]
fn step_answered(bencher: Bencher, keyed: bool) {
    let key = keyed.then(|| Key::from_secret(b"bench").unwrap());
    let cfg = config(key.clone());
    let batch = probes(key.as_ref());
    let from = SocketAddr::from(([10, 0, 0, 1], 40_000));
    let dst = Some(IpAddr::from([239, 255, 42, 42]));
    let mut engine = Engine::new(&cfg, 1);
    let mut i = 0u64;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        if i % BATCH == 0 && i > 0 {
            engine = Engine::new(&cfg, 1);
        }
        let seq = i % BATCH;
        // 50 µs after the probe's send time; each batch replays the same span of time to a
        // fresh engine.
        let rx_ns = T0 + seq * GAP_NS + 50_000;
        let d = Datagram { bytes: black_box(&batch[seq as usize]), from, dst, ttl: 64, rx_ns };
        let step = engine.step(d, || rx_ns + 7_000);
        assert_eq!(step.outcome, Outcome::Answered);
        black_box(step.reply);
        i += 1;
    });
}

/// A keyed responder's cost per probe keyed with another key (or a copy sent to another group),
/// from one source or from 1000 in turn: the MAC check, the derivation of the bound key when the
/// source's is not kept (every probe, with 1000 sources), and the notice limits (at 5000 probes
/// a second nearly every probe is only checked). What a flood of wrong-key probes costs.
#[divan::bench(args = [1, 1000])]
fn step_refused_wrong_key(bencher: Bencher, sources: u64) {
    let cfg = config(Some(Key::from_secret(b"bench").unwrap()));
    let batch = probes(Some(&Key::from_secret(b"another key").unwrap()));
    let dst = Some(IpAddr::from([239, 255, 42, 42]));
    let mut engine = Engine::new(&cfg, 1);
    let mut i = 0u64;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        let seq = i % BATCH;
        let rx_ns = T0 + i * GAP_NS + 50_000;
        let host = (i % sources) as u32;
        let from = SocketAddr::from(([10, 1, (host >> 8) as u8, host as u8], 40_000));
        let d = Datagram { bytes: black_box(&batch[seq as usize]), from, dst, ttl: 64, rx_ns };
        let step = engine.step(d, || rx_ns + 7_000);
        assert_eq!(step.outcome, Outcome::Unauthenticated);
        black_box(step.reply);
        i += 1;
    });
}

/// The four checks a keyed probe now passes (freshness, source address, replay window, budget),
/// together, with the session lookup the step made already, against a table of 1000 live
/// sessions: minus `session_get_before`, what issue 13 added per probe.
#[divan::bench]
fn new_checks_together(bencher: Bencher) {
    let from = SocketAddr::from(([10, 0, 0, 1], 40_000));
    let mut sessions = SessionTable::default();
    for s in 0..1000u64 {
        sessions.get(s, from, T0);
    }
    let mut budget = Budget::new(DEFAULT_TOTAL_RATE_LIMIT).unwrap();
    let mut seq = 0u64;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        seq += 1;
        let rx_ns = T0 + seq * GAP_NS;
        let fresh = is_fresh(black_box(rx_ns - 50_000), rx_ns, DEFAULT_MAX_CLOCK_SKEW_NS);
        let state = sessions.get(black_box(500), from, rx_ns).0;
        let bound = state.source == Some(from);
        let new = state.seqs.check(seq);
        state.received += 1;
        let budget_ok = budget.allow(rx_ns);
        black_box((fresh, bound, new, budget_ok, state.received));
    });
}

/// The session lookup every probe already made before issue 13 (same table, same session):
/// subtract it from `new_checks_together` for what the checks add.
#[divan::bench]
fn session_get_before(bencher: Bencher) {
    let from = SocketAddr::from(([10, 0, 0, 1], 40_000));
    let mut sessions = SessionTable::default();
    for s in 0..1000u64 {
        sessions.get(s, from, T0);
    }
    let mut seq = 0u64;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        seq += 1;
        let state = sessions.get(black_box(500), from, T0 + seq * GAP_NS).0;
        state.received += 1;
        black_box(state.received);
    });
}

/// The replay window alone, probes in order (the usual case: one bit set, one cleared).
#[divan::bench]
fn seq_window_in_order(bencher: Bencher) {
    let mut w = SeqWindow::default();
    let mut seq = 0u64;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        seq += 1;
        black_box(w.check(black_box(seq)));
    });
}

/// The total budget alone: one token bucket.
#[divan::bench]
fn budget_allow(bencher: Bencher) {
    let mut b = Budget::new(DEFAULT_TOTAL_RATE_LIMIT).unwrap();
    let mut t = T0;
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        t += GAP_NS;
        black_box(b.allow(black_box(t)));
    });
}
