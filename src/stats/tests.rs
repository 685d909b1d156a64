//! Constructed sequences with exact expected figures.

use super::*;
use crate::wire::{Ack, Arrival};

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
    // Every RTT is exactly 2 ms: the histogram keeps 3 significant digits.
    let rtt = s.rtt.unwrap();
    assert!(rtt.p50_ns.abs_diff(2_000_000) <= 2_000, "{rtt:?}");
    assert_eq!(rtt.stddev_ns, 0.0);
    assert_eq!(rtt.jitter_ns, 0.0);
    assert!(rtt.net_p50_ns.abs_diff(1_990_000) <= 20_000);
    assert_eq!(s.first_ack_ns, Some(2 * MS));
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
    assert_eq!((s.forward_lost, s.return_lost, s.unknown_lost, s.late), (10, 5, 10, 0));
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
    assert_eq!(s.lost, s.forward_lost + s.return_lost + s.unknown_lost + s.late);
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
    assert_eq!(late.forward_lost, 5);
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

#[test]
fn rate_limited_probes_are_not_loss() {
    let mut r = run(false);
    let tx = send(&mut r, 100);
    // The responder receives every probe but, over its limit, leaves every fifth unanswered; one
    // answered ack is also lost on the way back.
    let (mut received, mut acks, mut limited) = (0u32, 0u32, 0u32);
    for (i, &t) in tx.iter().enumerate() {
        received += 1;
        if i % 5 == 4 {
            limited += 1;
            continue;
        }
        acks += 1;
        let mut a = ack(1, i as u64, t, received, acks);
        a.limited = limited;
        if i != 50 {
            r.on_ack(&a, addr(), t + MS);
        }
    }
    r.finalize_all();
    let s = r.summary(&r.hosts()[0]);
    // Probe 99 was limited after the last ack (probe 98): nothing says so, so it is unknown loss.
    assert_eq!((s.received, s.limited, s.lost), (79, 19, 2));
    assert_eq!((s.forward_lost, s.return_lost, s.unknown_lost), (0, 1, 1));
    assert_eq!(s.sent, s.received + s.limited + s.lost);
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
    assert_eq!((s.forward_lost, s.return_lost, s.unknown_lost), (5, 0, 0));
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
    assert_eq!((s.forward_lost, s.return_lost, s.unknown_lost), (0, 1, 0));
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
            proptest::prop_assert_eq!(s.lost, s.forward_lost + s.return_lost + s.late + s.unknown_lost, "{:?}", s);
            proptest::prop_assert_eq!(s.sent, s.received + s.lost + s.limited);
        }
    }
}
