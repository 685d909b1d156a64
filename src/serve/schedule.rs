//! The schedule of a `serve --mesh` window (pure): which peers it probes by unicast beside the
//! group, and at what rate, so that a host's packets stay within a budget however many peers
//! appear.
//!
//! Per probe round (one multicast probe, and one unicast probe to each of the `s` peers in the
//! window's sample), a host of a mesh with `p` peers handles:
//! - multicast: 1 probe sent, `p` acks received, `p` probes received from its peers and `p` acks
//!   sent: `3p + 1` (`3N - 2` for N hosts);
//! - unicast: `s` probes sent and `s` acks received, and, since every peer samples as many peers
//!   in turn, on average `s` unicast probes received and `s` acks sent: `4s`.
//!
//! So a round costs `3p + 1 + 4s` packets, and the rate is the configured one unless that would
//! exceed the budget: `min(configured, budget / (3p + 1 + 4s))`. The unicast sample rotates over
//! the peers in address order, window after window, so every peer gets its turn: with `p` peers
//! and at most `s` a window, each is probed by unicast for a whole window every `ceil(p / s)`
//! windows.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// The packets a second (sent and received) a mesh host's default schedule keeps within: under
/// 1 000 with a tenth to spare for windows that end early and the padded info probes.
pub(crate) const MESH_PACKET_BUDGET: f64 = 900.0;
/// At most this many peers are probed by unicast in one window (each is a socket, two windows
/// at a time); more peers take turns.
pub(crate) const MESH_UNICAST_PER_WINDOW: usize = 16;

/// Packets a second one host of a mesh handles at `rate` probe rounds a second, with `peers`
/// peers and `unicast` of them probed by unicast in each window (see the module doc).
pub(crate) fn packets_per_s(rate: f64, peers: usize, unicast: usize) -> f64 {
    rate * (3 * peers + 1 + 4 * unicast) as f64
}

/// The probe interval of a window: `configured`, or longer if the mesh's packets at that rate
/// would exceed `budget` packets a second (`None`: the user chose the rate, and it is kept).
pub(crate) fn interval(configured: Duration, budget: Option<f64>, peers: usize, unicast: usize) -> Duration {
    let Some(budget) = budget.filter(|b| *b > 0.0) else { return configured };
    let rate = 1.0 / configured.as_secs_f64();
    let round = (3 * peers + 1 + 4 * unicast) as f64;
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
    /// to 200 hosts at 1 probe/s and under the budget, and lowers the rate beyond.
    #[test]
    fn the_default_schedule_keeps_a_host_under_1_kpps_at_any_size() {
        let b = Some(MESH_PACKET_BUDGET);
        for n in [2usize, 8, 32, 128, 200, 300, 1000, 5000] {
            let p = n - 1;
            let s = p.min(MESH_UNICAST_PER_WINDOW);
            let i = interval(SECOND, b, p, s);
            let pps = packets_per_s(1.0 / i.as_secs_f64(), p, s);
            assert!(pps <= MESH_PACKET_BUDGET + 1e-9, "N = {n}: {pps} packets/s at {i:?}");
            if n <= 200 {
                assert_eq!(i, SECOND, "N = {n}: 1 probe/s is within the budget");
            } else {
                assert!(i > SECOND, "N = {n}: lowered");
                // Not lowered more than needed: one µs less would exceed it.
                assert!(packets_per_s(1.0 / (i - Duration::from_micros(1)).as_secs_f64(), p, s) > MESH_PACKET_BUDGET);
            }
        }
        // 200 hosts: 3 x 199 + 1 + 4 x 16 = 662 packets/s.
        assert_eq!(packets_per_s(1.0, 199, 16), 662.0);
        // 300 hosts: 3 x 299 + 1 + 64 = 962 packets a round, 0.936 rounds/s.
        assert_eq!(interval(SECOND, b, 299, 16), Duration::from_micros(1_068_889));
    }

    /// A rate the user chose is kept, however many peers; a rate below the budget too.
    #[test]
    fn a_chosen_rate_is_kept() {
        let fast = Duration::from_millis(20);
        assert_eq!(interval(fast, None, 199, 16), fast);
        // 50 x 22 = 1 100 > 900: lowered to 900 / 22 = 40.9/s.
        assert_eq!(interval(fast, Some(MESH_PACKET_BUDGET), 3, 3), Duration::from_micros(24_445));
        assert_eq!(interval(fast, Some(10_000.0), 3, 3), fast, "50 x 22 = 1 100 < 10 000");
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
