//! Constructed sequences with exact expected figures.

use super::host::Outage;
use super::*;
use crate::wire::{Ack, AckExt, Arrival};

const SESSION: u64 = 0xabc;
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * 1_000_000_000;

fn run(raw: bool) -> Run {
    Run::new(RunConfig {
        session: SESSION,
        timeout_ns: 1000 * MS,
        interval_ns: 1000 * MS,
        raw,
        intervals: true,
        plain: false,
        outage_min: 3,
        groups: 1,
    })
}

fn addr() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// The ack responder `id` sends for `seq`, having received `received` probes and sent `acks` acks.
fn ack(id: u64, seq: u64, tx_ns: u64, received: u32, acks: u32) -> Ack {
    Ack {
        session: SESSION,
        seq,
        tx_ns,
        responder: id,
        rx_ns: tx_ns + MS / 2,
        dwell_ns: 10_000,
        received,
        ack_seq: acks - 1,
        limited: 0,
        ttl: 1,
        arrival: Arrival::Multicast,
        ext: None,
        name: format!("host{id}"),
    }
}

/// Sends `n` probes 10 ms apart; returns their send times.
fn send(r: &mut Run, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let t = T0 + i * 10 * MS;
            assert_eq!(r.record_send(t), i);
            t
        })
        .collect()
}

#[test]
fn clean_run_has_no_loss_and_exact_rtt() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    for (i, &t) in tx.iter().enumerate() {
        let a = ack(1, i as u64, t, i as u32 + 1, i as u32 + 1);
        assert_eq!(r.on_ack(&a, addr(), t + 2 * MS), AckOutcome::OnTime);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.sent, s.received, s.lost, s.duplicates, s.reordered, s.late), (100, 100, 0, 0, 0, 0));
    assert_eq!(r.hosts()[0].name, "host1");
    // Every RTT is exactly 2 ms: the histogram keeps 2 significant digits (1/128).
    let rtt = s.rtt.unwrap();
    assert!(rtt.p50_ns >= 2_000_000 && rtt.p50_ns - 2_000_000 <= 2_000_000 / 128, "{rtt:?}");
    assert_eq!(rtt.stddev_ns, 0.0);
    assert_eq!(rtt.jitter_ns, 0.0);
    assert!(rtt.net_p50_ns.unwrap().abs_diff(1_990_000) <= 20_000);
    assert_eq!(s.first_ack_ns, Some(2 * MS));
}

/// A responder's state after acks with RTTs from 1 ns up to the timeout, with intervals on.
fn tracked_responder(timeout_ns: u64) -> Run {
    let mut r = Run::new(RunConfig { timeout_ns, ..run(false).cfg });
    let rtts: Vec<u64> = (0..64).map(|k| (timeout_ns >> k).max(1)).take_while(|&v| v > 1).chain([1]).collect();
    let tx = send(&mut r, rtts.len() as u64);
    for (i, (&t, &rtt)) in tx.iter().zip(&rtts).enumerate() {
        // Half the acks claim no dwell, so the net RTT spans the whole range too.
        let a = Ack {
            dwell_ns: if i % 2 == 0 { 0 } else { (rtt / 2) as u32 },
            ..ack(1, i as u64, t, i as u32 + 1, i as u32 + 1)
        };
        assert_eq!(r.on_ack(&a, addr(), t + rtt), AckOutcome::OnTime, "RTT {rtt} ns");
    }
    r
}

#[test]
fn a_tracked_responder_costs_at_most_32_kib_up_to_a_60_s_timeout() {
    for timeout_ns in [10 * MS, 1000 * MS, 10_000 * MS, 60_000 * MS] {
        let r = tracked_responder(timeout_ns);
        let h = &r.hosts()[0];
        assert_eq!(h.rtt.max(), h.rtt.highest_equivalent(timeout_ns), "the timeout itself was recorded");
        assert!(h.rtt.count_at(1) >= 1, "the 1 ns RTT counts in the lowest step, 0 to 15 ns");
        assert_eq!(h.rtt.len(), h.received);
        // Allocated once at the timeout's range: recording up to it did not grow them.
        let fresh = super::host::rtt_histogram(timeout_ns);
        assert_eq!(h.rtt.distinct_values(), fresh.distinct_values());
        assert_eq!(h.net_rtt.distinct_values(), fresh.distinct_values());
        let bytes = h.footprint_bytes();
        assert!(bytes <= 32 * 1024, "{bytes} bytes with a {} ms timeout", timeout_ns / MS);
    }
    // What the histograms' comment says they cost: 10 KiB each up to 1 s, 512 bytes more per
    // doubling of the timeout.
    let bytes = |t: u64| super::host::rtt_histogram(t).distinct_values() * std::mem::size_of::<u32>();
    assert_eq!(bytes(1000 * MS), 10 * 1024);
    assert_eq!(bytes(2000 * MS) - bytes(1000 * MS), 512);
    assert_eq!((bytes(60_000 * MS), bytes(3_600_000 * MS)), (13 * 1024, 16 * 1024));
}

#[test]
fn rtt_figures_are_within_the_histograms_precision() {
    // Two significant digits: a percentile is the top of its bucket, at most 1/128 above the
    // value; the minimum the bottom, at most 1/128 below.
    let mut r = run(false);
    let tx = send(&mut r, 3);
    for (i, (&t, rtt)) in tx.iter().zip([40_000, 1_000_000, 10_000_000]).enumerate() {
        let a = Ack { dwell_ns: 0, ..ack(1, i as u64, t, i as u32 + 1, i as u32 + 1) };
        r.on_ack(&a, addr(), t + rtt);
    }
    r.finalize_all();
    let rtt = r.summary(&r.hosts()[0]).rtt.unwrap();
    let above = |got: u64, want: u64| got >= want && got - want <= want / 128;
    assert!(above(rtt.p50_ns, 1_000_000) && rtt.p50_ns != 1_000_000, "{rtt:?}");
    assert!(above(rtt.max_ns, 10_000_000), "{rtt:?}");
    assert!(rtt.min_ns <= 40_000 && 40_000 - rtt.min_ns <= 40_000 / 128, "{rtt:?}");
    let h = &r.hosts()[0].rtt;
    assert_eq!(
        (h.equivalent_range(40_000), h.equivalent_range(1_000_000), h.equivalent_range(10_000_000)),
        (256, 4096, 65_536)
    );
}

#[test]
fn forward_return_and_unknown_loss_are_split() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    // Probes 10..20 never reach the responder (forward loss); acks of 30..35 are lost on the way
    // back (return loss); nothing comes back after probe 89 (unknown: could be either).
    let mut received = 0;
    let mut acks = 0;
    for (i, &t) in tx.iter().enumerate().take(90) {
        if (10..20).contains(&i) {
            continue;
        }
        received += 1;
        acks += 1;
        if (30..35).contains(&i) {
            continue;
        }
        r.on_ack(&ack(1, i as u64, t, received, acks), addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!(s.received, 75);
    assert_eq!(s.lost, 25);
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown, s.late), (10, 5, 10, 0));
    assert!((s.loss_pct() - 25.0).abs() < 1e-9);
}

#[test]
fn duplicates_reordering_late_and_foreign_acks() {
    let mut r = run(false);
    let tx = send(&mut r, 6);
    let at = |i: usize| tx[i] + MS;
    assert_eq!(r.on_ack(&ack(1, 0, tx[0], 1, 1), addr(), at(0)), AckOutcome::OnTime);
    assert_eq!(r.on_ack(&ack(1, 0, tx[0], 1, 1), addr(), at(0)), AckOutcome::Duplicate);
    assert_eq!(r.on_ack(&ack(1, 2, tx[2], 3, 2), addr(), at(2)), AckOutcome::OnTime);
    assert_eq!(r.on_ack(&ack(1, 1, tx[1], 3, 3), addr(), at(2)), AckOutcome::OnTime); // reordered
                                                                                      // Probe 3's ack takes 1.5 s: past the 1 s timeout.
    assert_eq!(r.on_ack(&ack(1, 3, tx[3], 4, 4), addr(), tx[3] + 1500 * MS), AckOutcome::Late);
    let mut other = ack(1, 4, tx[4], 5, 5);
    other.session = 999;
    assert_eq!(r.on_ack(&other, addr(), at(4)), AckOutcome::Foreign);
    assert_eq!(r.on_ack(&ack(1, 77, tx[4], 5, 5), addr(), at(4)), AckOutcome::Bogus);
    let mut forged = ack(1, 4, tx[4] + 1, 5, 5);
    forged.tx_ns += 1;
    assert_eq!(r.on_ack(&forged, addr(), at(4)), AckOutcome::Bogus);
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.received, s.duplicates, s.reordered, s.late), (3, 1, 1, 1));
    assert_eq!(s.lost, 3); // probes 3 (late), 4 and 5 (no ack)
    assert_eq!(s.lost, s.loss.forward + s.loss.ret + s.loss.unknown + s.late);
    assert_eq!((r.foreign_acks, r.bogus_acks), (1, 2));
}

#[test]
fn jitter_follows_rfc3550() {
    let mut r = run(false);
    let tx = send(&mut r, 4);
    // RTTs 1, 3, 2, 6 ms: |D| = 2, 1, 4 ms.
    for (i, rtt) in [1u64, 3, 2, 6].into_iter().enumerate() {
        r.on_ack(&ack(1, i as u64, tx[i], i as u32 + 1, i as u32 + 1), addr(), tx[i] + rtt * MS);
    }
    r.finalize_all();
    let mut j = 0.0f64;
    for d in [2000.0, 1000.0, 4000.0] {
        j += (d - j) / 16.0;
    }
    let s = r.summary(&r.hosts()[0]);
    let jitter_us = s.rtt.unwrap().jitter_ns / 1000.0;
    assert!((jitter_us - j).abs() < 0.001, "{jitter_us} vs {j}");
}

#[test]
fn responders_are_keyed_by_id_not_address() {
    let mut r = run(false);
    let tx = send(&mut r, 10);
    for (i, &t) in tx.iter().enumerate() {
        let n = i as u32 + 1;
        r.on_ack(&ack(1, i as u64, t, n, n), addr(), t + MS);
        if i >= 5 {
            // A second responder behind the same address, which joined at probe 5.
            r.on_ack(&ack(2, i as u64, t, n - 5, n - 5), addr(), t + MS);
        }
    }
    r.finalize_all();
    assert_eq!(r.hosts().len(), 2);
    let late = r.summary(&r.hosts()[1]);
    // The late joiner is charged with every probe of the run; its first ack came at 50 + 1 ms.
    assert_eq!((late.sent, late.received, late.lost), (10, 5, 5));
    assert_eq!(late.loss.forward, 5);
    assert_eq!(late.first_ack_ns, Some(51 * MS));
    // Counted from its first ack, it lost nothing.
    assert_eq!((late.lost_after_first, late.loss_after_first_pct()), (0, 0.0));
}

#[test]
fn intervals_and_raw_rows() {
    let mut r = run(true);
    // 250 probes 10 ms apart: intervals of 100, 100 and 50 probes.
    let tx = send(&mut r, 250);
    for (i, &t) in tx.iter().enumerate() {
        if i % 10 == 0 {
            continue; // one in ten lost
        }
        let rtt = if i < 100 { MS } else { 3 * MS };
        r.on_ack(&ack(1, i as u64, t, i as u32 + 1, i as u32 + 1), addr(), t + rtt);
    }
    // A second responder that only answers from probe 200 on.
    for (i, &t) in tx.iter().enumerate().skip(200) {
        let n = (i - 199) as u32;
        r.on_ack(&ack(2, i as u64, t, n, n), addr(), t + MS);
    }
    // Half-way: probes older than 1.1 s at 1.5 s are closed, the first interval is complete.
    r.finalize_older_than(T0 + 1500 * MS, 1100 * MS);
    assert_eq!(r.finalized(), 40);
    // Responder 2 has answered none of those 40 probes yet.
    assert_eq!(r.worst_loss_pct(), Some(100.0));
    r.finalize_all();
    assert_eq!(r.sent_per_interval(), &[100, 100, 50]);
    let iv = r.drain_interval_rows();
    // Responder 2 was heard before the first interval closed, so it has a row in every interval.
    assert_eq!(iv.len(), 3 * 2);
    let h1: Vec<_> = iv.iter().filter(|r| r.responder == "host1").collect();
    assert_eq!(h1.iter().map(|r| (r.sent, r.received)).collect::<Vec<_>>(), [(100, 90), (100, 90), (50, 45)]);
    assert_eq!(h1[0].rtt_p50_us, Some(1000.0));
    assert_eq!(h1[1].rtt_max_us, Some(3000.0));
    assert_eq!(h1[2].interval_start_s, 2.0);
    let h2: Vec<_> = iv.iter().filter(|r| r.responder == "host2").map(|r| (r.sent, r.received, r.lost)).collect();
    assert_eq!(h2, [(100, 0, 100), (100, 0, 100), (50, 50, 0)]);
    let rows = r.drain_raw_rows();
    assert_eq!(rows.len(), 500, "one row per probe and responder");
    let lost = rows.iter().filter(|r| r.status == "lost").count();
    assert_eq!(lost, 25 + 200);
}

/// A responder that rate-limits probes in a pattern: `limit(i)` says whether it limits probe
/// `i`; acks listed in `ack_lost` are lost on the way back. Returns the run, finalized.
fn limited_run(n: u64, limit: impl Fn(u64) -> bool, ack_lost: &[u64]) -> Run {
    let mut r = run(false);
    let tx = send(&mut r, n);
    let (mut received, mut acks, mut limited) = (0u32, 0u32, 0u32);
    for (i, &t) in tx.iter().enumerate() {
        received += 1;
        if limit(i as u64) {
            limited += 1;
            continue;
        }
        acks += 1;
        let mut a = ack(1, i as u64, t, received, acks);
        a.limited = limited;
        if !ack_lost.contains(&(i as u64)) {
            r.on_ack(&a, addr(), t + MS);
        }
    }
    r.finalize_all();
    r
}

#[test]
fn rate_limited_probes_are_not_loss() {
    // The responder receives every probe but, over its limit, leaves every fifth unanswered; one
    // answered ack is also lost on the way back.
    let r = limited_run(100, |i| i % 5 == 4, &[50]);
    let s = r.summary(&r.hosts()[0]);
    // Probe 99 was limited after the last ack (probe 98): no counter says so, but the responder
    // was seen to limit runs of one probe entirely, so a tail of one is taken as limited.
    assert_eq!((s.received, s.limited, s.limited_tail, s.lost), (79, 20, 1, 1));
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown), (0, 1, 0));
    assert_eq!(s.sent, s.received + s.limited + s.lost);
    assert_eq!(s.outages, 0);
}

#[test]
fn rate_limited_gaps_are_not_outages() {
    // As `respond --rate-limit 100` against `probe --rate 1000`: nine probes of ten limited.
    // Runs of nine limited probes are not outages (outage_min is 3), and nor is the tail.
    let r = limited_run(1003, |i| i % 10 != 0, &[]);
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.received, s.limited, s.lost, s.outages), (101, 902, 0, 0));
    assert_eq!(s.limited_tail, 2);
    // A real outage among limited probes: acks of probes 500, 510 and 520 are lost. The gap
    // from 491 to 529 holds 39 probes; the counters say 36 were limited, so 3 are an outage.
    let r = limited_run(1003, |i| i % 10 != 0, &[500, 510, 520]);
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.received, s.limited, s.lost, s.loss.ret, s.outages), (98, 902, 3, 3, 1));
    assert_eq!(
        r.hosts()[0].outages,
        [Outage {
            first_lost_seq: 491,
            probes_lost: 3,
            start_unix_ns: T0 + 491 * 10 * MS,
            end_unix_ns: Some(T0 + 5300 * MS)
        }]
    );
}

#[test]
fn a_long_tail_after_rate_limiting_stays_unknown() {
    // Limited runs of four probes; from probe 76 on the responder limits everything. The last
    // ack (probe 75) counts 60 limited; the 24 probes after it are a longer run than any it was
    // seen to limit, so nothing says they were limited: unknown loss.
    let r = limited_run(100, |i| i % 5 != 0 || i >= 80, &[]);
    let s = r.summary(&r.hosts()[0]);
    assert_eq!(s.limited_tail, 0);
    assert_eq!((s.received, s.limited, s.lost, s.loss.unknown), (16, 60, 24, 24));
}

#[test]
fn outages_are_found_after_the_first_answer() {
    let mut r = run(false);
    let tx = send(&mut r, 60);
    let mut n = 0;
    for (i, &t) in tx.iter().enumerate() {
        // Joins at 5 (not an outage), silent 20..30 (an outage), 40..42 (2 probes: plain loss),
        // and from 50 to the end (an outage still open when the run ends).
        let silent = i < 5 || (20..30).contains(&i) || (40..42).contains(&i) || i >= 50;
        if !silent {
            n += 1;
            r.on_ack(&ack(1, i as u64, t, n, n), addr(), t + MS);
        }
    }
    r.finalize_all();
    let h = &r.hosts()[0];
    assert_eq!(
        h.outages,
        [
            Outage { first_lost_seq: 20, probes_lost: 10, start_unix_ns: tx[20], end_unix_ns: Some(tx[30]) },
            Outage { first_lost_seq: 50, probes_lost: 10, start_unix_ns: tx[50], end_unix_ns: None },
        ]
    );
    let s = r.summary(h);
    assert_eq!((s.outages, s.longest_outage_probes), (2, 10));
}

#[test]
fn duplicated_probes_neither_hide_forward_loss_nor_pose_as_return_loss() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    // The network duplicates every tenth probe and drops probes 50..55 on the way out; the
    // responder answers every copy it gets, and every ack arrives.
    let (mut received, mut acks) = (0u32, 0u32);
    for (i, &t) in tx.iter().enumerate() {
        if (50..55).contains(&i) {
            continue;
        }
        let copies = if i % 10 == 3 { 2 } else { 1 };
        for _ in 0..copies {
            received += 1;
            acks += 1;
            r.on_ack(&ack(1, i as u64, t, received, acks), addr(), t + MS);
        }
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.received, s.duplicates, s.lost), (95, 9, 5)); // probe 53 was dropped, not duplicated
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown), (5, 0, 0));
}

#[test]
fn a_late_copy_of_an_ack_is_a_duplicate_not_a_late_ack() {
    let mut r = run(false);
    let tx = send(&mut r, 10);
    for (i, &t) in tx.iter().enumerate() {
        if i != 3 {
            r.on_ack(&ack(1, i as u64, t, i as u32 + 1, i as u32 + 1), addr(), t + MS);
        }
    }
    r.finalize_older_than(tx[9] + 5000 * MS, 1100 * MS);
    // A copy of probe 7's ack turns up after its probe was closed.
    assert_eq!(r.on_ack(&ack(1, 7, tx[7], 8, 8), addr(), tx[7] + 4000 * MS), AckOutcome::Duplicate);
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.lost, s.late, s.duplicates), (1, 0, 1));
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown), (0, 1, 0));
}

#[test]
fn seq_bits_slide() {
    let mut b = SeqBits::new();
    assert!(b.insert(5) && !b.insert(5));
    assert!(b.insert(SeqBits::SPAN + 10)); // slides: 5 leaves the span
    assert!(b.insert(5), "older than the span counts as new");
    assert!(!b.insert(SeqBits::SPAN + 10));
    assert!(b.insert(11) && !b.insert(11));
    assert!(b.insert(10 * SeqBits::SPAN) && !b.insert(10 * SeqBits::SPAN));
    assert!(b.insert(10 * SeqBits::SPAN - 1));
}

proptest::proptest! {
    /// Whatever the network does to probes and acks (loss either way, duplication, delay past the
    /// timeout), the loss split adds up: lost = forward + return + late + unknown.
    #[test]
    fn the_loss_split_always_adds_up(fates in proptest::collection::vec(0u8..6, 1..200)) {
        let mut r = run(false);
        let tx = send(&mut r, fates.len() as u64);
        let (mut received, mut acks) = (0u32, 0u32);
        for (i, (&t, &fate)) in tx.iter().zip(&fates).enumerate() {
            // 0 ok, 1 probe lost, 2 ack lost, 3 probe duplicated, 4 ack late, 5 ack duplicated
            if fate == 1 {
                continue;
            }
            let copies = if fate == 3 { 2 } else { 1 };
            for _ in 0..copies {
                received += 1;
                acks += 1;
                let a = ack(1, i as u64, t, received, acks);
                match fate {
                    2 => {}
                    4 => { r.on_ack(&a, addr(), t + 2000 * MS); }
                    5 => { r.on_ack(&a, addr(), t + MS); r.on_ack(&a, addr(), t + 2 * MS); }
                    _ => { r.on_ack(&a, addr(), t + MS); }
                }
            }
        }
        r.finalize_all();
        if let Some(h) = r.hosts().first() {
            let s = r.summary(h);
            proptest::prop_assert_eq!(s.lost, s.loss.forward + s.loss.ret + s.late + s.loss.unknown, "{:?}", s);
            proptest::prop_assert_eq!(s.sent, s.received + s.lost + s.limited);
        }
    }
}

/// Probes 10..15 lost on the way out, acks of 30..40 on the way back, nothing after probe 89.
fn split_case(r: &mut Run, tx: &[u64]) -> Ack {
    let (mut received, mut acks) = (0, 0);
    let mut newest = None;
    for (i, &t) in tx.iter().enumerate().take(90) {
        if (10..15).contains(&i) {
            continue;
        }
        received += 1;
        acks += 1;
        let a = ack(1, i as u64, t, received, acks);
        if !(30..40).contains(&i) {
            r.on_ack(&a, addr(), t + MS);
        }
        newest = Some(a);
    }
    newest.unwrap()
}

#[test]
fn a_counter_that_goes_backwards_is_flagged_and_moves_nothing() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    let newest = split_case(&mut r, &tx);
    // A second copy of the newest ack whose counter went backwards, and a later-numbered ack
    // that claims fewer probes received: neither can be true.
    let mut copy = newest.clone();
    copy.received -= 50;
    assert_eq!(r.on_ack(&copy, addr(), tx[89] + 2 * MS), AckOutcome::Duplicate);
    let mut later = newest.clone();
    later.ack_seq += 1;
    later.received -= 30;
    assert_eq!(r.on_ack(&later, addr(), tx[89] + 3 * MS), AckOutcome::Duplicate);
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.inconsistent_acks, s.duplicates), (2, 2));
    assert_eq!((s.lost, s.loss.forward, s.loss.ret, s.loss.unknown, s.late), (25, 5, 10, 10, 0));
}

#[test]
fn what_the_counters_cannot_attribute_is_unknown() {
    // The responder counts 10 probes it neither acks nor limits (a send that failed without
    // using an ack number): forward and return loss are both 0, so the 10 are unknown.
    let mut r = run(false);
    let tx = send(&mut r, 100);
    let (mut received, mut acks) = (0, 0);
    for (i, &t) in tx.iter().enumerate() {
        received += 1;
        if (40..50).contains(&i) {
            continue;
        }
        acks += 1;
        r.on_ack(&ack(1, i as u64, t, received, acks), addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.lost, s.loss.forward, s.loss.ret, s.loss.unknown), (10, 0, 0, 10));
    assert_eq!(s.inconsistent_acks, 0);
    // A counter that jumps: from probe 50 on the responder claims 10 more probes than it got.
    // Forward loss cannot be negative, and the identity still holds.
    let mut r = run(false);
    let tx = send(&mut r, 100);
    for (i, &t) in tx.iter().enumerate().take(90) {
        let n = i as u32 + 1;
        if (20..30).contains(&i) {
            continue; // acks lost
        }
        let claimed = if i >= 50 { n + 10 } else { n };
        r.on_ack(&ack(1, i as u64, t, claimed, n), addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!(s.lost, 20);
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown), (0, 10, 10));
}

#[test]
fn a_dwell_longer_than_the_rtt_is_counted_and_kept_out_of_the_net_rtt() {
    let mut r = run(false);
    let tx = send(&mut r, 10);
    for (i, &t) in tx.iter().enumerate() {
        let n = i as u32 + 1;
        let mut a = ack(1, i as u64, t, n, n);
        // RTT 1 ms; two acks claim a dwell of 5 ms, the others 0.2 ms.
        a.dwell_ns = if i % 5 == 0 { 5_000_000 } else { 200_000 };
        r.on_ack(&a, addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!(s.dwell_over_rtt, 2);
    let rtt = s.rtt.unwrap();
    assert!(rtt.net_p50_ns.unwrap().abs_diff(800_000) <= 8_000, "{rtt:?}");
    assert!((rtt.net_mean_ns.unwrap() - 800_000.0).abs() <= 8_000.0, "{rtt:?}");
    // Only impossible dwells: no net RTT at all, rather than a made-up 0.
    let mut r = run(false);
    let tx = send(&mut r, 3);
    for (i, &t) in tx.iter().enumerate() {
        let mut a = ack(1, i as u64, t, i as u32 + 1, i as u32 + 1);
        a.dwell_ns = 2_000_000;
        r.on_ack(&a, addr(), t + MS);
    }
    r.finalize_all();
    let rtt = r.summary(&r.hosts()[0]).rtt.unwrap();
    assert_eq!((rtt.net_p50_ns, rtt.net_mean_ns), (None, None));
}

/// Old id 1 answers probes 0..=39 and dies; new id 2 (same name and address) starts hearing
/// probes at 55, its acks of 55..60 are lost, and it answers 60..100.
fn restart_run() -> (Run, Vec<u64>) {
    let mut r = run(true);
    let tx = send(&mut r, 100);
    for (i, &t) in tx.iter().enumerate() {
        let seq = i as u64;
        let mut a = if i < 40 {
            ack(1, seq, t, i as u32 + 1, i as u32 + 1)
        } else if i >= 55 {
            let n = (i - 54) as u32;
            ack(2, seq, t, n, n)
        } else {
            continue;
        };
        a.name = "phoenix".into();
        if !(55..60).contains(&i) {
            r.on_ack(&a, addr(), t + MS);
        }
        // Probes close as the run goes, 1.1 s after they were sent.
        r.finalize_older_than(t + MS, 1100 * MS);
    }
    r.finalize_all();
    (r, tx)
}

/// With probes too small for the whole name, a restarted id's first ack carries the name cut
/// short, or none: still the same responder, once its whole name has come (a padded probe).
#[test]
fn a_restart_is_recognized_when_its_first_acks_carry_a_shortened_name_or_none() {
    for first_name in ["phoe", ""] {
        let mut r = run(false);
        let tx = send(&mut r, 100);
        assert!(!r.take_name_wanted());
        for (i, &t) in tx.iter().enumerate() {
            let seq = i as u64;
            let mut a = match i {
                0..40 => ack(1, seq, t, i as u32 + 1, i as u32 + 1),
                60.. => ack(2, seq, t, (i - 59) as u32, (i - 59) as u32),
                _ => continue,
            };
            a.name = match i {
                0..3 | 61 => "phoenix".into(), // padded probes: the whole name
                _ => first_name.into(),        // the others: cut short, or none
            };
            r.on_ack(&a, addr(), t + MS);
            // A new id asks for a padded probe, once.
            assert_eq!(r.take_name_wanted(), i == 0 || i == 60, "probe {i}");
            r.finalize_older_than(t + MS, 1100 * MS);
        }
        r.finalize_all();
        assert_eq!(r.hosts().len(), 1, "{first_name:?}: one responder, two ids");
        let h = &r.hosts()[0];
        assert_eq!((h.name.as_str(), h.restarts.len()), ("phoenix", 1));
    }
    // Another responder at that address, with a name of its own, stays apart.
    let mut r = run(false);
    let tx = send(&mut r, 3);
    for (id, name) in [(1, "phoenix"), (2, "sparrow")] {
        let mut a = ack(id, 0, tx[0], 1, 1);
        a.name = name.into();
        r.on_ack(&a, addr(), tx[0] + MS);
    }
    r.finalize_all();
    assert_eq!(r.hosts().len(), 2);
}

#[test]
fn a_restart_is_one_responder_that_was_away() {
    let (mut r, tx) = restart_run();
    assert_eq!(r.hosts().len(), 1, "one responder, two ids");
    let h = &r.hosts()[0];
    assert_eq!((h.responder_id, h.ids().collect::<Vec<_>>()), (1, vec![1, 2]));
    assert_eq!(h.restarts, [Restart { old_id: 1, new_id: 2, old_last_seq: 39, new_first_seq: 60 }]);
    assert_eq!(h.restarts[0].gap_probes(), 20);
    let s = r.summary(h);
    assert_eq!((s.sent, s.received, s.lost, s.restarts), (100, 80, 20, 1));
    // 40..55: nobody heard them (away); 55..60: heard by the new id, acks lost.
    assert_eq!((s.loss.forward, s.loss.ret, s.loss.unknown, s.restart_gap_lost), (0, 5, 15, 15));
    // The outage ends when it came back.
    assert_eq!(
        h.outages,
        [Outage { first_lost_seq: 40, probes_lost: 20, start_unix_ns: tx[40], end_unix_ns: Some(tx[60]) }]
    );
    // Every output counts the same probes under one id.
    let iv = r.drain_interval_rows();
    assert!(iv.iter().all(|row| row.responder_id == format_id(1)));
    let sum = |f: fn(&IntervalRow) -> u64| iv.iter().map(f).sum::<u64>();
    assert_eq!((sum(|r| r.sent), sum(|r| r.received), sum(|r| r.lost)), (100, 80, 20));
    let raw = r.drain_raw_rows();
    assert_eq!(raw.len(), 100);
    assert!(raw.iter().all(|row| row.responder_id == format_id(1)));
    assert_eq!(raw.iter().filter(|row| row.status == "lost").count(), 20);
    // A stray copy of an old id's ack is a duplicate of the one responder.
    let mut copy = ack(1, 39, tx[39], 40, 40);
    copy.name = "phoenix".into();
    assert_eq!(r.on_ack(&copy, addr(), tx[39] + 3000 * MS), AckOutcome::Duplicate);
    assert_eq!(r.hosts().len(), 1);
}

#[test]
fn responders_that_share_a_name_and_answer_together_are_two() {
    // Two live responders with one name behind one address (say, two default-named ones in
    // namespaces behind a NAT): the second is not a restart of the first.
    let mut r = run(false);
    let tx = send(&mut r, 100);
    for (i, &t) in tx.iter().enumerate() {
        let n = i as u32 + 1;
        let mut a = ack(1, i as u64, t, n, n);
        a.name = "vm".into();
        r.on_ack(&a, addr(), t + MS);
        if i >= 50 {
            let mut b = ack(2, i as u64, t, n - 50, n - 50);
            b.name = "vm".into();
            // The second one is faster: its ack of each probe comes first.
            r.on_ack(&b, addr(), t + MS / 2);
        }
        r.finalize_older_than(t + MS, 1100 * MS);
    }
    r.finalize_all();
    assert_eq!(r.hosts().len(), 2);
    assert!(r.hosts().iter().all(|h| h.restarts.is_empty()));
    // Another address with that name: a name clash worth a warning.
    let mut c = ack(3, 99, tx[99], 1, 1);
    c.name = "vm".into();
    r.on_ack(&c, "127.0.0.2:5000".parse().unwrap(), tx[99] + MS);
    let clashes = r.name_clashes();
    assert_eq!(clashes.len(), 1);
    assert_eq!(clashes[0].0, "vm");
    assert_eq!(clashes[0].1.len(), 2);
}

#[test]
fn interval_edges_follow_the_schedule() {
    // 100 probes a second for 3 s, each sent up to 0.9 ms late (or early): by send time some
    // would cross an edge, by schedule each second holds exactly 100.
    let mut r = run(false);
    for k in 0..300u64 {
        let due = k * 10 * MS;
        let wobble = (k * 7919 % 1800) * 1000; // 0..1.8 ms
        let tx = (T0 + due + wobble).saturating_sub(900_000);
        r.record_send_at(tx, due);
    }
    assert_eq!(r.sent_per_interval(), &[100, 100, 100]);
    // A Poisson schedule: each probe falls in the interval its scheduled time falls in,
    // counted from the first probe's.
    let mut r = run(false);
    let mut due = 0u64;
    let mut expect = Vec::<u64>::new();
    let mut x = 12345u64;
    for _ in 0..500 {
        let i = (due / (1000 * MS)) as usize;
        if expect.len() <= i {
            expect.resize(i + 1, 0);
        }
        expect[i] += 1;
        r.record_send_at(T0 + due + 50_000, due);
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        due += (-u.ln() * 10.0 * MS as f64) as u64;
    }
    assert_eq!(r.sent_per_interval(), expect.as_slice());
    assert!(expect.len() >= 4, "{expect:?}");
}

#[test]
fn a_row_shows_the_longest_name_its_acks_carried() {
    let mut r = run(false);
    let tx = send(&mut r, 4);
    for (i, name) in ["lab-host-1", "lab-ho", "", "lab-host-2"].into_iter().enumerate() {
        let mut a = ack(1, i as u64, tx[i], i as u32 + 1, i as u32 + 1);
        a.name = name.into();
        r.on_ack(&a, addr(), tx[i] + MS);
        let expect = if i < 3 { "lab-host-1" } else { "lab-host-2" };
        assert_eq!(r.hosts()[0].name, expect, "after ack {i}");
    }
}

#[test]
fn ack_numbers_start_at_zero_and_received_includes_the_probe() {
    // A responder that answers every probe: its first ack says received 1, ack_seq 0. Read
    // any other way (ack_seq from 1, received without this probe) the split would show loss.
    let mut r = run(false);
    let tx = send(&mut r, 5);
    for (i, &t) in tx.iter().enumerate() {
        let a = ack(1, i as u64, t, i as u32 + 1, i as u32 + 1);
        assert_eq!(a.ack_seq, i as u32);
        r.on_ack(&a, addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.lost, s.loss.forward, s.loss.ret, s.inconsistent_acks), (0, 0, 0, 0));
    // Counters off by one the other way contradict themselves: flagged.
    let mut r = run(false);
    let tx = send(&mut r, 1);
    let mut a = ack(1, 0, tx[0], 0, 1);
    a.ack_seq = 0;
    r.on_ack(&a, addr(), tx[0] + MS);
    r.finalize_all();
    assert_eq!(r.summary(&r.hosts()[0]).inconsistent_acks, 1);
}

proptest::proptest! {
    /// Arbitrary ack streams: three ids that may share a name and an address (restarts, or
    /// not), counters anywhere from consistent to absurd, copies, late acks, probes closing
    /// while acks still come. Whatever arrives, every responder's figures add up, and
    /// intervals.csv and probes.csv count the same probes as the summary.
    #[test]
    fn every_output_counts_the_same_probes(
        n in 1u64..120,
        events in proptest::collection::vec(
            (1u64..4, 0u64..1000, 0u32..150, 0u32..150, 0u32..40, 0u8..8, 0u8..3, 0u8..2),
            0..250,
        ),
        plain in proptest::bool::ANY,
        split in proptest::bool::ANY,
        honest in proptest::bool::ANY,
    ) {
        let mut r = Run::new(RunConfig { plain, ..run(true).cfg });
        let tx = send(&mut r, n);
        for (id, seq, received, ack_seq, limited, fate, name, at) in events {
            // With `split`, id 1 acks only the first half and id 2 only the second: a restart
            // when they share name and address.
            let half = n / 2;
            let (seq, base) = match (split && half > 0, id) {
                (true, 1) => (seq % half, 0),
                (true, 2) => (half + seq % (n - half), half),
                _ => (seq % n, 0),
            };
            let mut a = ack(id, seq, tx[seq as usize], received.max(1), ack_seq + 1);
            a.limited = limited;
            if honest {
                // A responder that limits every third probe from its start and counts truly.
                let k = seq - base;
                if k % 3 == 2 {
                    continue;
                }
                let lim = (k + 1) / 3;
                (a.received, a.ack_seq, a.limited) = ((k + 1) as u32, (k - lim) as u32, lim as u32);
            }
            let t = tx[seq as usize];
            // Under `split`, ids 1 and 2 are one responder restarted: one name, one address.
            let (name, at) = if split && id < 3 { (0, 0) } else { (name, at) };
            a.name = ["phoenix", "other", ""][name as usize].into();
            a.dwell_ns = if fate == 7 { 5_000_000 } else { 1000 };
            let from: SocketAddr = if at == 0 { addr() } else { "127.0.0.2:5001".parse().unwrap() };
            // 0-3 on time, 4 late, 5 twice, 6 on time after closing older probes.
            let rx = if fate == 4 { t + 2000 * MS } else { t + MS };
            r.on_ack(&a, from, rx);
            if fate == 5 {
                r.on_ack(&a, from, rx + MS);
            }
            if fate == 6 {
                r.finalize_older_than(rx, 1100 * MS);
            }
        }
        r.finalize_all();
        let iv = r.drain_interval_rows();
        let raw = r.drain_raw_rows();
        let mut ids = std::collections::HashSet::new();
        for h in r.hosts() {
            let s = r.summary(h);
            proptest::prop_assert!(ids.insert(h.responder_id));
            proptest::prop_assert_eq!(s.sent, n);
            proptest::prop_assert_eq!(s.lost, s.loss.forward + s.loss.ret + s.late + s.loss.unknown, "{:?}", s);
            proptest::prop_assert_eq!(s.sent, s.received + s.lost + s.limited, "{:?}", s);
            proptest::prop_assert!(s.restart_gap_lost <= s.loss.unknown && s.limited_tail <= s.limited);
            proptest::prop_assert_eq!(s.restarts as usize + 1, h.segments.len());
            let id = format_id(h.responder_id);
            let rows: Vec<_> = iv.iter().filter(|row| row.responder_id == id).collect();
            proptest::prop_assert_eq!(rows.iter().map(|row| row.sent).sum::<u64>(), n);
            proptest::prop_assert_eq!(rows.iter().map(|row| row.received).sum::<u64>(), s.received);
            let probes: Vec<_> = raw.iter().filter(|row| row.responder_id == id).collect();
            proptest::prop_assert_eq!(probes.len() as u64, n);
            proptest::prop_assert_eq!(probes.iter().filter(|row| row.status == "ok").count() as u64, s.received);
            let outage_probes: u64 = h.outages.iter().map(|o| o.probes_lost).sum();
            proptest::prop_assert!(outage_probes <= s.sent - s.received);
        }
        proptest::prop_assert_eq!(iv.len(), r.hosts().len() * r.sent_per_interval().len());
    }
}

#[test]
fn plain_replies_carry_no_counters_to_contradict() {
    let mut r = Run::new(RunConfig { plain: true, ..run(false).cfg });
    let tx = send(&mut r, 10);
    for (i, &t) in tx.iter().enumerate().take(8) {
        // What the prober makes of a plain reply: zero counters.
        let mut a = ack(1, i as u64, t, 1, 1);
        (a.received, a.ack_seq, a.name) = (0, 0, String::new());
        r.on_ack(&a, addr(), t + MS);
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    assert_eq!((s.inconsistent_acks, s.lost, s.loss.unknown, s.loss.forward), (0, 2, 2, 0));
}

#[test]
fn a_late_joiner_has_interval_rows_from_the_start() {
    let mut r = run(false);
    let tx = send(&mut r, 250);
    for (i, &t) in tx.iter().enumerate() {
        let n = i as u32 + 1;
        r.on_ack(&ack(1, i as u64, t, n, n), addr(), t + MS);
        if i >= 200 {
            let k = (i - 199) as u32;
            r.on_ack(&ack(2, i as u64, t, k, k), addr(), t + MS);
        }
        // Probes close 0.5 s after they leave: interval 0 closes before responder 2 is first
        // heard (at 2.0 s), interval 1 after.
        r.finalize_older_than(t + MS, 500 * MS);
    }
    r.finalize_all();
    let iv = r.drain_interval_rows();
    let late: Vec<_> = iv.iter().filter(|row| row.responder == "host2").collect();
    // Its row of interval 0 comes last, with nothing received.
    let starts: Vec<_> = late.iter().map(|row| (row.interval_start_s, row.received)).collect();
    assert_eq!(starts, [(1.0, 0), (2.0, 50), (0.0, 0)]);
    let s = r.summary(&r.hosts()[1]);
    assert_eq!(late.iter().map(|row| row.sent).sum::<u64>(), s.sent);
    assert_eq!(late.iter().map(|row| row.lost).sum::<u64>(), s.lost);
}

#[test]
fn an_out_of_order_ack_must_fit_between_the_first_and_the_newest() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    let mut at = |seq: usize, received, acks, limited| {
        let mut a = ack(1, seq as u64, tx[seq], received, acks);
        a.limited = limited;
        r.on_ack(&a, addr(), tx[seq] + MS)
    };
    at(3, 4, 1, 3);
    at(99, 100, 10, 3);
    // Agrees with the newest, but says fewer probes limited than the first ack already did.
    at(50, 5, 5, 0);
    r.finalize_all();
    assert_eq!(r.summary(&r.hosts()[0]).inconsistent_acks, 1);
}

#[test]
fn ids_beyond_the_bound_are_counted_not_tracked() {
    let mut r = run(false);
    let tx = send(&mut r, 3);
    let n = MAX_RESPONDERS as u64 + 500;
    for id in 1..=n {
        let outcome = r.on_ack(&ack(id, 0, tx[0], 1, 1), addr(), tx[0] + MS);
        let want = if id as usize <= MAX_RESPONDERS { AckOutcome::OnTime } else { AckOutcome::Untracked };
        assert_eq!(outcome, want, "id {id}");
    }
    // A tracked id goes on being tracked; an untracked one is counted again, once as an id.
    assert_eq!(r.on_ack(&ack(1, 1, tx[1], 2, 2), addr(), tx[1] + MS), AckOutcome::OnTime);
    assert_eq!(r.on_ack(&ack(n, 1, tx[1], 2, 2), addr(), tx[1] + MS), AckOutcome::Untracked);
    r.finalize_all();
    assert_eq!(r.hosts().len(), MAX_RESPONDERS);
    let u = r.untracked().unwrap();
    assert_eq!((u.acks, u.ids, u.ids_at_least), (501, 500, false));
    assert_eq!(u.from, [addr().ip()]);
}

#[test]
fn a_silent_responders_losses_are_one_run_and_a_flapping_ones_are_bounded() {
    let mut r = run(false);
    let n = 3 * super::host::MAX_LOST_RANGES as u64;
    let tx = send(&mut r, n);
    // Host 1 answers the first probe only; host 2 every other probe.
    r.on_ack(&ack(1, 0, tx[0], 1, 1), addr(), tx[0] + MS);
    for (k, seq) in (0..n).step_by(2).enumerate() {
        r.on_ack(&ack(2, seq, tx[seq as usize], k as u32 + 1, k as u32 + 1), addr(), tx[seq as usize] + MS);
    }
    r.finalize_all();
    let silent = r.hosts().iter().find(|h| h.responder_id == 1).unwrap();
    assert_eq!(silent.lost.ranges(), [(1, n)]);
    assert_eq!(silent.lost.complete_until(), u64::MAX);
    let flapping = r.hosts().iter().find(|h| h.responder_id == 2).unwrap();
    assert_eq!(flapping.lost.ranges().len(), super::host::MAX_LOST_RANGES);
    // Full at the first loss it had no room for: every loss before it is in the record.
    let full = flapping.lost.complete_until();
    assert_eq!(full, 2 * super::host::MAX_LOST_RANGES as u64 + 1);
    assert!(flapping.lost.ranges().iter().all(|&(a, b)| b == a + 1 && a % 2 == 1 && b <= full));
    assert!(flapping.lost.capacity_bytes() <= 16 * super::host::MAX_LOST_RANGES * 2);
}

#[test]
fn an_open_intervals_samples_are_bounded_and_its_figures_kept() {
    // 10 000 acks in one interval: the samples move into a histogram, the row's median within
    // the histogram's precision and its maximum exact.
    let mut r = run(false);
    let n = 10_000u64;
    let tx: Vec<u64> = (0..n).map(|i| r.record_send(T0 + i * 50_000)).map(|i| T0 + i * 50_000).collect();
    for (i, &t) in tx.iter().enumerate() {
        let rtt = 100_000 + (i as u64 % 1000) * 100;
        r.on_ack(&ack(1, i as u64, t, i as u32 + 1, i as u32 + 1), addr(), t + rtt);
    }
    let bytes = r.hosts()[0].footprint_bytes();
    assert!(bytes <= 48 * 1024, "{bytes} bytes with one open interval of {n} acks");
    r.finalize_all();
    let rows = r.drain_interval_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].received, n);
    assert_eq!(rows[0].rtt_max_us, Some(199.9));
    let p50 = rows[0].rtt_p50_us.unwrap();
    assert!((p50 - 149.9).abs() <= 149.9 / 128.0, "{p50}");
    match &rows[0].rtt {
        IntervalRtt::Histogram(h) => assert_eq!(h.len(), n),
        IntervalRtt::Samples(s) => panic!("{} samples kept", s.len()),
    }
}

#[test]
fn a_step_is_a_move_of_a_millisecond_or_more() {
    assert_eq!(step_between(0, 0), 0);
    // NTP's slew: at most 0.5 ms in a second.
    assert_eq!(step_between(1_000, 500_000), 0);
    assert_eq!(step_between(0, -999_999), 0);
    let s30 = 30_000 * MS as i64;
    assert_eq!(step_between(0, -s30), -s30);
    assert_eq!(step_between(2 * MS as i64, 3 * MS as i64 + 1), MS as i64 + 1);
    assert_eq!(step_between(i64::MIN, i64::MAX), i64::MAX);
}

/// 300 probes 10 ms apart, each acked 200 µs later by the wall clock that the kernel stamps,
/// which steps by `step_ns` between the sends of probes 149 and 150's acks, 100 µs after probe
/// 150 left. Returns the run, closed.
fn stepped(step_ns: i64, shifted: bool) -> Run {
    let mut r = run(false);
    let at = 150 * 10 * MS + 100_000;
    // The wall clock (the kernel stamps arrivals with it), and what the engine tells the run.
    let wall = |mono: u64| (T0 + mono).saturating_add_signed(if mono >= at { step_ns } else { 0 });
    let shift = |mono: u64| if shifted && mono >= at { step_ns } else { 0 };
    for i in 0..300u64 {
        let mono = i * 10 * MS;
        let tx = wall(mono);
        let seq = r.record_send_now(tx, shift(mono));
        let rx_mono = mono + 200_000;
        let a = Ack { dwell_ns: 0, ..ack(1, seq, tx, seq as u32 + 1, seq as u32 + 1) };
        r.on_ack_shifted(&a, addr(), wall(rx_mono), shift(rx_mono));
    }
    r.finalize_all();
    r
}

#[test]
fn a_wall_clock_step_changes_no_rtt() {
    for step in [-30_000 * MS as i64, 30_000 * MS as i64, -5 * MS as i64] {
        let r = stepped(step, true);
        let f = r.summary(&r.hosts()[0]);
        assert_eq!((f.received, f.late, f.lost), (300, 0, 0), "step {step}");
        let rtt = f.rtt.unwrap();
        assert!(rtt.min_ns >= 199_000 && rtt.max_ns <= 201_000, "step {step}: {rtt:?}");
        assert_eq!(r.clock_steps, ClockSteps { corrected: 1, excluded: 0, largest_ns: step }, "step {step}");
        assert_eq!(f.outages, 0);
    }
    // A responder first heard after a 30 s step back: its first ack 1.5 s into the run, not 0.
    let mut r = run(false);
    let step = -30_000 * MS as i64;
    for i in 0..200u64 {
        let mono = i * 10 * MS;
        let shift = if mono >= 1000 * MS { step } else { 0 };
        let tx = (T0 + mono).saturating_add_signed(shift);
        let seq = r.record_send_now(tx, shift);
        if i >= 150 {
            let a = Ack { dwell_ns: 0, ..ack(1, seq, tx, seq as u32 - 149, seq as u32 - 149) };
            r.on_ack_shifted(&a, addr(), tx + 200_000, shift);
        }
    }
    r.finalize_all();
    let h = &r.hosts()[0];
    assert_eq!(h.first_ack_ns, Some(1500 * MS + 200_000));
}

#[test]
fn probes_close_by_their_age_on_a_clock_that_does_not_step() {
    // Probe 0 leaves; its ack is still queued when the wall clock steps 30 s forward (or back)
    // and the receiver closes old probes: it is 5 ms old, not 30 s (or -30 s), and stays open.
    for step in [30_000 * MS as i64, -30_000 * MS as i64] {
        let mut r = run(false);
        let retain = 1100 * MS;
        let tx = T0;
        let seq = r.record_send_now(tx, 0);
        let now = (T0 + 5 * MS).saturating_add_signed(step);
        r.finalize_older_than_shifted(now, step, retain);
        assert_eq!(r.finalized(), 0, "step {step}");
        assert_eq!(r.oldest_open_tx_ns(step), Some(tx.saturating_add_signed(step)), "step {step}");
        let a = Ack { dwell_ns: 0, ..ack(1, seq, tx, 1, 1) };
        r.on_ack_shifted(&a, addr(), now, step);
        // ... and closes once the retention has passed on that clock, not before.
        r.finalize_older_than_shifted(now + retain - 5 * MS, step, retain);
        assert_eq!(r.finalized(), 0, "step {step}");
        r.finalize_older_than_shifted(now + retain, step, retain);
        assert_eq!(r.finalized(), 1, "step {step}");
        r.finalize_all();
        let f = r.summary(&r.hosts()[0]);
        assert_eq!((f.received, f.late), (1, 0), "step {step}");
    }
}

#[test]
fn without_the_shift_a_backward_step_is_no_rtt_of_zero() {
    // What the run sees when nothing tells it of the step: the ack across it reads back before
    // its probe left. It is left out, not an RTT of 0 µs on time.
    let r = stepped(-30_000 * MS as i64, false);
    let f = r.summary(&r.hosts()[0]);
    assert_eq!(r.clock_steps.excluded, 1);
    assert_eq!(f.received, 299);
    assert!(f.rtt.unwrap().min_ns >= 199_000, "{:?}", f.rtt);
}

#[test]
fn a_kernel_stamp_off_the_process_clock_gives_way_to_the_reading() {
    let now = T0;
    // Queued 50 µs ago: the kernel's stamp.
    assert_eq!(arrival_ns(now - 50_000, now, 2000 * MS), now - 50_000);
    // Within the slack of a stamp taken on another CPU a hair later.
    assert_eq!(arrival_ns(now + 500_000, now, 2000 * MS), now + 500_000);
    // 30 s in the future (this process's clock set back, or stepped back since it arrived).
    assert_eq!(arrival_ns(now + 30_000 * MS, now, 2000 * MS), now);
    // Older than the timeout and a second (set forward).
    assert_eq!(arrival_ns(now - 30_000 * MS, now, 2000 * MS), now);
}

/// What a `--groups` run keeps per host and group (the figure docs/src/groups.md gives).
#[test]
fn a_group_tally_is_48_bytes() {
    assert_eq!(std::mem::size_of::<super::GroupTally>(), 48);
}

/// `--groups` of 4: host 1 never gets group 2's probes (forward), host 2 gets every probe but
/// its acks for group 3 are lost (return). Each group's tally says which, from the counters.
#[test]
fn group_losses_split_by_direction() {
    let mut r = Run::new(RunConfig { groups: 4, ..run(false).cfg });
    let tx = send(&mut r, 16);
    let (mut rcvd1, mut rcvd2, mut acks1, mut acks2) = (0u32, 0u32, 0u32, 0u32);
    for (seq, &t) in tx.iter().enumerate() {
        let (seq, g) = (seq as u64, seq % 4);
        if g != 2 {
            rcvd1 += 1;
            acks1 += 1;
            r.on_ack(&ack(1, seq, t, rcvd1, acks1), addr(), t + MS);
        }
        rcvd2 += 1;
        acks2 += 1;
        if g != 3 {
            r.on_ack(&ack(2, seq, t, rcvd2, acks2), "127.0.0.2:5000".parse().unwrap(), t + MS);
        }
    }
    r.finalize_all();
    let tally = |id: u64| r.hosts().iter().find(|h| h.responder_id == id).unwrap().groups.clone();
    let (h1, h2) = (tally(1), tally(2));
    assert_eq!((h1[2].answered, h1[2].lost(), h1[2].forward, h1[2].ret), (0, 4, 4, 0));
    assert_eq!((h1[0].answered, h1[0].lost()), (4, 0));
    // Host 2's last probe (group 3) has no later answer: its direction stays unknown.
    assert_eq!((h2[3].answered, h2[3].lost(), h2[3].forward, h2[3].ret), (0, 4, 0, 3));
    assert!(h2[..3].iter().all(|t| t.answered == 4 && t.lost() == 0));
}

/// Forward loss after a responder's latest drop report asks for a padded probe (whose ack
/// reports again), once per growth and at most once in 32 probes; at the end what no report
/// covered is `unreported`, and probe copies since the report are not probes received.
#[test]
fn forward_loss_after_the_latest_drop_report_asks_for_a_report_once() {
    let mut r = run(false);
    let mut received = 0;
    let mut asked = vec![];
    for i in 0..100u64 {
        let t = T0 + i * 10 * MS;
        assert_eq!(r.record_send(t), i);
        // Probes 10-12, 30 and 70 never reach it; its host dropped 10-12, and says so at 20.
        if (10..13).contains(&i) || i == 30 || i == 70 {
            continue;
        }
        received += 1;
        let mut a = ack(1, i, t, received, received);
        if i == 0 || i == 20 {
            a.ext = Some(AckExt { host_drops: if i == 20 { 3 } else { 0 }, ..AckExt::default() });
        }
        r.on_ack(&a, addr(), t + MS);
        if r.take_name_wanted() {
            asked.push(i);
        }
        // Probe 50 came twice (a copy on the network): its second ack is not a probe received.
        if i == 50 {
            received += 1;
            r.on_ack(&ack(1, i, t, received, received), addr(), t + 2 * MS);
            assert!(!r.take_name_wanted());
        }
        r.finalize_older_than(t + MS, 1100 * MS);
    }
    r.finalize_all();
    // The new id; the loss at 10-12; the loss at 30 only once 32 probes passed since that ask
    // (no report answered it here), the one at 70 likewise.
    assert_eq!(asked, [0, 13, 45, 77]);
    let f = r.summary(&r.hosts()[0]);
    assert_eq!(
        (f.loss.forward, f.loss.host_drops, f.loss.unreported, f.loss.network_forward()),
        (5, Some(3), 2, Some(0))
    );
}
