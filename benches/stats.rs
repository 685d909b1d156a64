//! Micro-benchmarks of the prober's per-run accounting (`mcprobe::stats::Run`): what recording one
//! probe, one on-time ack and closing one probe cost. The receive thread does this work for every
//! ack while holding the run's lock, so it bounds how many responders × probes/s one prober can
//! keep up with.
//!
//! Honesty rules: each timed iteration does a representative batch (N probes, each acked by K
//! responders, in the order they would arrive), RTTs vary between 50 and 500 µs like on a LAN, the
//! run is set up as `mcprobe probe --rate 1000 --out DIR` sets it up (1 s timeout, intervals kept,
//! no raw rows), and all set-up (building the run, meeting the responders, sending the probes)
//! happens outside the timing. Divan's `ItemsCount` counter turns each median into a per-item cost.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use mcprobe::stats::{AckOutcome, Run, RunConfig};
use mcprobe::wire::{Ack, Arrival};

fn main() {
    divan::main();
}

const SESSION: u64 = 0x5eed_0000_c0ff_ee01;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// First send time: ns since the Unix epoch, late 2023.
const T0: u64 = 1_700_000_000 * SEC;
/// Probe spacing: `--rate 1000`.
const GAP_NS: u64 = MS;
/// Probes per timed batch.
const N: u64 = 100;
/// Probes acked (and then closed) before the measured batch, so the responders are already known
/// and their histograms allocated: the steady state of a run, not its first millisecond.
const WARM: u64 = N;
/// Report interval (`--report-interval 100ms`): with `N` probes 1 ms apart, the warm-up and the
/// batch are one interval each, so a batch pays exactly one interval's opening and closing, in the
/// same proportion as a 1 s interval in a 1000-probe second.
const INTERVAL_NS: u64 = N * GAP_NS;
/// What the receive loop keeps open: `--timeout` (1 s) plus the engine's 200 ms margin.
const RETAIN_NS: u64 = SEC + 200 * MS;
/// The receive loop closes old probes about every `net::READ_TICK`.
const TICK_NS: u64 = 20 * MS;

/// A run as `mcprobe probe --out DIR` makes it: per-interval figures kept (for intervals.csv), no
/// raw rows.
fn new_run() -> Run {
    Run::new(RunConfig {
        session: SESSION,
        timeout_ns: SEC,
        interval_ns: INTERVAL_NS,
        intervals: true,
        raw: false,
        plain: false,
        outage_min: 3,
        groups: 1,
    })
}

fn tx_ns(seq: u64) -> u64 {
    T0 + seq * GAP_NS
}

/// splitmix64: a deterministic stream of well-mixed values, no dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// RTT of responder `r`'s ack of probe `seq`: 50–500 µs, varying per probe and responder.
fn rtt_ns(seq: u64, r: u64) -> u64 {
    50 * US + mix((seq << 16) | r) % (450 * US)
}

fn addr(r: u64) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, (r >> 8) as u8, r as u8 + 1), 47_000))
}

/// Responder `r`'s on-time ack of probe `seq` (it has received and answered every probe so far),
/// with the time it arrives at the prober.
fn ack(seq: u64, r: u64) -> (Ack, SocketAddr, u64) {
    let tx = tx_ns(seq);
    let rtt = rtt_ns(seq, r);
    let dwell = 5 * US + mix((r << 40) | seq) % (25 * US);
    let a = Ack {
        session: SESSION,
        seq,
        tx_ns: tx,
        responder: mix(r ^ 0xabcd),
        rx_ns: tx + rtt / 2,
        dwell_ns: dwell as u32,
        received: seq as u32 + 1,
        ack_seq: seq as u32,
        limited: 0,
        ttl: 64,
        arrival: Arrival::Multicast,
        ext: None,
        name: format!("rack{:02}-node{:03}.lan", r / 100, r % 100),
    };
    (a, addr(r), tx + rtt)
}

/// Acks of probes `seqs`, each from responders `0..k`, in arrival order: probes are 1 ms apart and
/// RTTs at most 0.5 ms, so all of a probe's acks arrive before the next probe's.
fn acks(seqs: std::ops::Range<u64>, k: u64) -> Vec<(Ack, SocketAddr, u64)> {
    let mut v: Vec<_> = seqs.flat_map(|s| (0..k).map(move |r| ack(s, r))).collect();
    v.sort_by_key(|&(_, _, rx)| rx);
    v
}

/// A run in its steady state: `WARM` probes sent, acked by `k` responders and closed, then `N` more
/// probes sent and still open.
fn warm_run(k: u64, warm_acks: &[(Ack, SocketAddr, u64)]) -> Run {
    let mut run = new_run();
    for seq in 0..WARM {
        run.record_send(tx_ns(seq));
    }
    for (a, from, rx) in warm_acks {
        run.on_ack(a, *from, *rx);
    }
    for seq in WARM..WARM + N {
        run.record_send(tx_ns(seq));
    }
    // Close the warm-up probes (and their report interval), as the receive loop would have.
    run.finalize_older_than(tx_ns(WARM) + RETAIN_NS, RETAIN_NS);
    debug_assert_eq!(run.finalized(), WARM);
    debug_assert_eq!(run.hosts().len() as u64, k);
    run
}

/// The send thread calls `record_send` once per probe. Timed: 1000 probes (1 s at `--rate 1000`)
/// into a fresh run, so the window's growth is included as it is in a real run's first second.
#[divan::bench]
fn record_send(bencher: Bencher) {
    const PROBES: u64 = 1000;
    bencher.with_inputs(new_run).counter(ItemsCount::new(PROBES)).bench_local_refs(|run| {
        for seq in 0..PROBES {
            black_box(run.record_send(black_box(tx_ns(seq))));
        }
    });
}

/// The receive thread calls `on_ack` once per ack: with K responders, K times per probe. Timed: the
/// N × K on-time acks of N open probes, in arrival order; the counter gives the cost per ack. Going
/// from 1 to 100 responders shows how it scales (each ack is checked against the probe's earlier
/// acks for duplicates, and the per-host state no longer stays in cache).
#[divan::bench(args = [1, 10, 100])]
fn on_ack(bencher: Bencher, k: u64) {
    let warm_acks = acks(0..WARM, k);
    let batch = acks(WARM..WARM + N, k);
    // Check once that every ack of the batch is counted on time, as intended.
    let mut check = warm_run(k, &warm_acks);
    for (a, from, rx) in &batch {
        assert_eq!(check.on_ack(a, *from, *rx), AckOutcome::OnTime);
    }
    bencher.with_inputs(|| warm_run(k, &warm_acks)).counter(ItemsCount::new(N * k)).bench_local_refs(|run| {
        for (a, from, rx) in black_box(&batch) {
            black_box(run.on_ack(a, *from, *rx));
        }
    });
}

/// The receive loop calls `finalize_older_than` about every 20 ms; each call closes the probes whose
/// ack window has passed (about 20 at `--rate 1000`) and the report intervals they complete. Timed:
/// closing the N acked probes of a steady-state run over N / 20 such calls; the counter gives the
/// cost per closed probe, for 1, 10 and 100 responders.
#[divan::bench(args = [1, 10, 100])]
fn finalize_older_than(bencher: Bencher, k: u64) {
    let warm_acks = acks(0..WARM, k);
    let batch = acks(WARM..WARM + N, k);
    let make = || {
        let mut run = warm_run(k, &warm_acks);
        for (a, from, rx) in &batch {
            run.on_ack(a, *from, *rx);
        }
        run
    };
    let first = tx_ns(WARM) + RETAIN_NS;
    let last = tx_ns(WARM + N - 1) + RETAIN_NS + TICK_NS;
    let mut check = make();
    let mut now = first;
    while now <= last {
        check.finalize_older_than(now, RETAIN_NS);
        now += TICK_NS;
    }
    assert_eq!(check.finalized(), WARM + N);
    bencher.with_inputs(make).counter(ItemsCount::new(N)).bench_local_refs(|run| {
        let mut now = first;
        while now <= last {
            run.finalize_older_than(black_box(now), RETAIN_NS);
            now += TICK_NS;
        }
    });
}
