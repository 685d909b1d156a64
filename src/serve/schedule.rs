//! The schedule of a `serve --mesh` window (pure): which peers it probes by unicast beside the
//! group, and at what rate, so that what a host spends stays within a budget however many peers
//! appear.
//!
//! Per probe round (one multicast probe, and one unicast probe to each of the `s` peers in the
//! window's sample), a host of a mesh with `p` peers handles:
//! - multicast: 1 probe sent, `p` acks received, `p` probes received from its peers and `p` acks
//!   sent: `3p + 1` packets (`3N - 2` for N hosts);
//! - unicast: `s` probes sent and `s` acks received, and, since every peer samples as many peers
//!   in turn, on average `s` unicast probes received and `s` acks sent: `4s` packets.
//!
//! What costs a host CPU is mostly the probes it answers, `p + s` a round: each comes alone (its
//! peers probe at their own times) and wakes the responder, which cost 70-100 µs of CPU a probe
//! on a 2-vCPU VM, against a few µs for each ack of the bursts its own probes bring back
//! (measured with `examples/mesh_sim.rs`, results/serve-mesh-cost/). So the budget is in probes
//! answered a second: the rate is the configured one unless that would exceed it,
//! `min(configured, budget / (p + s))`; packets then stay under `4 x budget` a second (a round's
//! `3p + 1 + 4s` packets are at most 4 per probe answered). The unicast sample rotates over the
//! peers in address order, window after window, so every peer gets its turn: with `p` peers and
//! at most `s` a window, each is probed by unicast for a whole window every `ceil(p / s)` windows.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// The probes a second (its peers' multicast and unicast probes) a mesh host's default schedule
/// keeps it answering: 1 probe/s up to 30 hosts, 0.2/s at 200 (a 10 s window holds 2 probes),
/// under 180 packets a second. A window holds at least one probe, so past 435 hosts a 10 s window
/// answers more (a longer `--window` keeps the budget). 45 probes answered a second cost a host
/// about 0.8 % of a core on this project's 2-vCPU VM (results/serve-mesh-cost/).
pub(crate) const MESH_ANSWER_BUDGET: f64 = 45.0;
/// At most this many peers are probed by unicast in one window (each is a socket, two windows
/// at a time); more peers take turns.
pub(crate) const MESH_UNICAST_PER_WINDOW: usize = 16;

/// Packets a second one host of a mesh handles at `rate` probe rounds a second, with `peers`
/// peers and `unicast` of them probed by unicast in each window (see the module doc).
pub(crate) fn packets_per_s(rate: f64, peers: usize, unicast: usize) -> f64 {
    rate * (3 * peers + 1 + 4 * unicast) as f64
}

/// Probes a second one host of a mesh answers at `rate`: each peer's multicast probes and, on
/// average, as many unicast probes as the host sends (see the module doc).
pub(crate) fn answered_per_s(rate: f64, peers: usize, unicast: usize) -> f64 {
    rate * (peers + unicast) as f64
}

/// The probe interval of a window: `configured`, or longer if the host would answer more than
/// `budget` probes a second at that rate (`None`: the user chose the rate, and it is kept).
pub(crate) fn interval(configured: Duration, budget: Option<f64>, peers: usize, unicast: usize) -> Duration {
    let Some(budget) = budget.filter(|b| *b > 0.0) else { return configured };
    let rate = 1.0 / configured.as_secs_f64();
    let round = (peers + unicast) as f64;
    if rate * round <= budget {
        return configured;
    }
    // Rounded up to the µs: the rate never ends above the budget.
    let micros = (round / budget * 1e6).ceil() as u64;
    Duration::from_micros(micros).max(configured)
}

/// The probes of a window of length `window` at `interval` (at least one): rounded down, so a
/// lowered rate never sends past the window's end.
pub(crate) fn count(window: Duration, interval: Duration) -> u64 {
    (window.as_nanos() / interval.as_nanos()).max(1) as u64
}

/// The peers a window probes by unicast: at most `max`, the next ones in address order after
/// `after` (the last peer of the previous window's sample), wrapping round, so every peer gets
/// its turn. Fewer peers than `max`: all of them, every window.
pub(crate) fn unicast_sample(peers: &BTreeSet<IpAddr>, after: Option<IpAddr>, max: usize) -> Vec<IpAddr> {
    if peers.len() <= max {
        return peers.iter().copied().collect();
    }
    use std::ops::Bound::{Excluded, Unbounded};
    // After `after`, then from the start up to it; without one, from the start.
    let later = peers.range((after.map_or(Unbounded, Excluded), Unbounded));
    let earlier = peers.iter().take_while(|&&p| after.is_some_and(|a| p <= a));
    later.chain(earlier).copied().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// The default schedule (1 probe/s, at most 16 unicast peers a window) keeps every mesh up
    /// to 30 hosts at 1 probe/s, lowers the rate beyond so that a host answers at most the budget,
    /// and so keeps it under 1 kpps (180 packets/s) up to 435 hosts at 10 s windows.
    #[test]
    fn the_default_schedule_bounds_the_probes_a_host_answers_at_any_size() {
        let b = Some(MESH_ANSWER_BUDGET);
        let window = Duration::from_secs(10);
        for n in [2usize, 8, 30, 31, 32, 128, 200, 300, 1000, 5000] {
            let p = n - 1;
            let s = p.min(MESH_UNICAST_PER_WINDOW);
            let i = interval(SECOND, b, p, s);
            let rate = 1.0 / i.as_secs_f64();
            assert!(answered_per_s(rate, p, s) <= MESH_ANSWER_BUDGET + 1e-9, "N = {n}: at {i:?}");
            assert!(packets_per_s(rate, p, s) <= 4.0 * MESH_ANSWER_BUDGET, "N = {n}: at {i:?}");
            if n <= 30 {
                assert_eq!(i, SECOND, "N = {n}: 1 probe/s is within the budget");
            } else {
                assert!(i > SECOND, "N = {n}: lowered");
                // Not lowered more than needed: one µs less would exceed it.
                let faster = 1.0 / (i - Duration::from_micros(1)).as_secs_f64();
                assert!(answered_per_s(faster, p, s) > MESH_ANSWER_BUDGET, "N = {n}");
            }
            // A window's probes are whole: never more a second than the interval allows, but at
            // least one a window: past 435 hosts a 10 s window's one probe answers more than the
            // budget (a longer --window keeps it).
            let per_s = count(window, i) as f64 / window.as_secs_f64();
            if n <= 435 {
                assert!(per_s <= rate + 1e-9, "N = {n}: {per_s}/s at {i:?}");
            } else {
                assert_eq!(count(window, i), 1, "N = {n}");
            }
        }
        // 200 hosts: 199 + 16 = 215 probes answered a round, 45 / 215 = 0.209 rounds/s, which a
        // 10 s window holds twice: 0.2 probes/s, 43 answered and 132 packets a second.
        assert_eq!(interval(SECOND, b, 199, 16), Duration::from_micros(4_777_778));
        assert_eq!(count(window, Duration::from_micros(4_777_778)), 2);
        assert_eq!(packets_per_s(0.2, 199, 16), 132.4);
        // 32 hosts: 31 + 16 = 47 a round: 0.957 rounds/s, 9 probes in a 10 s window.
        assert_eq!(count(window, interval(SECOND, b, 31, 16)), 9);
    }

    /// A rate the user chose is kept, however many peers; a rate below the budget too.
    #[test]
    fn a_chosen_rate_is_kept() {
        let fast = Duration::from_millis(20);
        assert_eq!(interval(fast, None, 199, 16), fast);
        // 50 x 6 = 300 > 45: lowered to 45 / 6 = 7.5/s.
        assert_eq!(interval(fast, Some(MESH_ANSWER_BUDGET), 3, 3), Duration::from_micros(133_334));
        assert_eq!(interval(fast, Some(1_000.0), 3, 3), fast, "50 x 6 = 300 < 1 000");
        assert_eq!(interval(fast, Some(MESH_ANSWER_BUDGET), 0, 0), fast, "no peer: nothing to answer");
        assert_eq!(count(Duration::from_secs(10), SECOND), 10);
        assert_eq!(count(Duration::from_secs(10), Duration::from_micros(1_068_889)), 9);
        assert_eq!(count(Duration::from_secs(1), Duration::from_secs(5)), 1);
    }

    /// Rotating samples cover every peer, in turns of `max`, wrapping round; a peer that left
    /// does not stop the rotation; few peers are all probed every window.
    #[test]
    fn the_unicast_sample_rotates_over_every_peer() {
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        let peers: BTreeSet<IpAddr> = (1..=5).map(ip).collect();
        assert_eq!(unicast_sample(&peers, None, 2), [ip(1), ip(2)]);
        assert_eq!(unicast_sample(&peers, Some(ip(2)), 2), [ip(3), ip(4)]);
        assert_eq!(unicast_sample(&peers, Some(ip(4)), 2), [ip(5), ip(1)]);
        assert_eq!(unicast_sample(&peers, Some(ip(1)), 2), [ip(2), ip(3)]);
        // The last peer sampled has gone: the rotation goes on after its address.
        let fewer: BTreeSet<IpAddr> = [1, 2, 4, 5].into_iter().map(ip).collect();
        assert_eq!(unicast_sample(&fewer, Some(ip(3)), 2), [ip(4), ip(5)]);
        assert_eq!(unicast_sample(&peers, Some(ip(3)), 5), (1..=5).map(ip).collect::<Vec<_>>());
        assert!(unicast_sample(&BTreeSet::new(), None, 16).is_empty());
        // Every peer within ceil(p / max) windows.
        let many: BTreeSet<IpAddr> = (1..=199).map(ip).collect();
        let (mut seen, mut after) = (BTreeSet::new(), None);
        for _ in 0..199usize.div_ceil(MESH_UNICAST_PER_WINDOW) {
            let s = unicast_sample(&many, after, MESH_UNICAST_PER_WINDOW);
            assert_eq!(s.len(), MESH_UNICAST_PER_WINDOW);
            after = s.last().copied();
            seen.extend(s);
        }
        assert_eq!(seen, many);
    }
}
