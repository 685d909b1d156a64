//! Probes that reached this host's interface but never the responder's socket, per source
//! address: the packet tap's count ([`super::probe_tap`]) against the socket's. Pure: the tap's
//! sightings and the socket's datagrams are handed in, with the clock.
//!
//! Both counts are cumulative per source, and compared only when the socket was just drained
//! (see [`Arrivals::reconcile`]): a probe the tap settled before then, unless something dropped
//! it, was already read from the socket. The difference only grows, so the count kept is the
//! largest seen; a moment when the socket is ahead of the tap (its copy not settled yet)
//! counts nothing. The socket's own full-buffer drops (SO_RXQ_OVFL) are taken off.
//!
//! What can be reported, and to whom: a probe that never reaches the socket gets no ack. The
//! count travels in the acks this host does send to the same address: the prober's unicast
//! probes when only its multicast ones are dropped (a firewall that opens the port to the
//! host's own address only), or the reverse. When every probe is dropped, nothing goes back:
//! the responder's log line and `mcprobe doctor` on this host are what say it.
//!
//! Bounded: at most [`MAX_SOURCES`] addresses (forged sources cannot grow it further; the
//! others are counted together), each forgotten after [`FORGET`] without a sighting.

use std::collections::HashMap;
use std::net::IpAddr;

/// Sources tracked at once.
pub(crate) const MAX_SOURCES: usize = 1024;
/// A source without any sighting for this long is forgotten (ns).
pub(crate) const FORGET: u64 = 600_000_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    at_iface: u64,
    at_socket: u64,
    /// Of those at the interface, never at the socket: the largest difference seen.
    filtered: u64,
    last_ns: u64,
}

/// A source's probes dropped inside this host that a reconcile newly found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filtered {
    pub from: IpAddr,
    /// Found by this reconcile.
    pub new: u64,
    /// Since the source was first seen.
    pub total: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    by_source: HashMap<IpAddr, Counts>,
    /// Sightings of sources beyond [`MAX_SOURCES`], not tracked.
    pub untracked: u64,
    /// The socket's full-buffer drops not yet taken off a source's count.
    buffer_drops: u64,
    /// The socket's current run of probes from one source: (source, probes, last seen).
    run: Option<(IpAddr, u64, u64)>,
}

impl Arrivals {
    fn counts(&mut self, from: IpAddr, now_ns: u64) -> Option<&mut Counts> {
        if !self.by_source.contains_key(&from) && self.by_source.len() >= MAX_SOURCES {
            self.untracked += 1;
            return None;
        }
        let c = self.by_source.entry(from).or_default();
        c.last_ns = now_ns;
        Some(c)
    }

    /// The tap saw `n` probes from `from` (settled: the socket had its chance at them).
    pub(crate) fn at_iface(&mut self, from: IpAddr, n: u64, now_ns: u64) {
        if let Some(c) = self.counts(from, now_ns) {
            c.at_iface += n;
        }
    }

    /// The socket got a probe from `from`. Counted in a run per source, folded in when the
    /// source changes or at the next reconcile: one map lookup per run, not per probe.
    pub(crate) fn at_socket(&mut self, from: IpAddr, now_ns: u64) {
        match &mut self.run {
            Some((a, n, t)) if *a == from => {
                *n += 1;
                *t = now_ns;
            }
            _ => {
                self.flush();
                self.run = Some((from, 1, now_ns));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((from, n, t)) = self.run.take() {
            if let Some(c) = self.counts(from, t) {
                c.at_socket += n;
            }
        }
    }

    /// The socket's full buffer dropped `n` more datagrams (SO_RXQ_OVFL grew by `n`): those
    /// reached the host and were not filtered.
    pub(crate) fn buffer_dropped(&mut self, n: u64) {
        self.buffer_drops += n;
    }

    /// Compares the counts; call it only right after the socket was found drained. Returns the
    /// sources with newly found drops; forgets the sources idle since `now_ns - FORGET`.
    pub(crate) fn reconcile(&mut self, now_ns: u64) -> Vec<Filtered> {
        self.flush();
        let mut out = Vec::new();
        for (&from, c) in &mut self.by_source {
            let mut missing = c.at_iface.saturating_sub(c.at_socket);
            // Buffer drops are the socket's, not a filter's: taken off whoever is missing some.
            let excused = self.buffer_drops.min(missing.saturating_sub(c.filtered));
            self.buffer_drops -= excused;
            c.at_socket += excused;
            missing -= excused;
            if missing > c.filtered {
                out.push(Filtered { from, new: missing - c.filtered, total: missing });
                c.filtered = missing;
            }
        }
        self.by_source.retain(|_, c| now_ns.saturating_sub(c.last_ns) < FORGET);
        out.sort_by_key(|f| f.from);
        out
    }

    /// What the acks to `to` carry: its probes filtered so far (as of the last reconcile).
    pub(crate) fn filtered(&self, to: IpAddr) -> u64 {
        self.by_source.get(&to).map_or(0, |c| c.filtered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn probes_at_the_interface_and_not_the_socket_are_found_once() {
        let (p, q) = (ip("10.77.0.1"), ip("10.77.0.9"));
        let mut a = Arrivals::default();
        // p: 10 at the interface, 6 at the socket; q: all 3 through.
        for _ in 0..10 {
            a.at_iface(p, 1, 1);
        }
        for _ in 0..6 {
            a.at_socket(p, 1);
        }
        for _ in 0..3 {
            a.at_iface(q, 1, 1);
            a.at_socket(q, 1);
        }
        assert_eq!(a.reconcile(2), [Filtered { from: p, new: 4, total: 4 }]);
        assert_eq!((a.filtered(p), a.filtered(q), a.filtered(ip("10.0.0.1"))), (4, 0, 0));
        // Nothing new: nothing reported again. The socket ahead of the tap: no negative count.
        assert!(a.reconcile(3).is_empty());
        a.at_socket(p, 4);
        a.at_socket(p, 4);
        assert!(a.reconcile(5).is_empty());
        assert_eq!(a.filtered(p), 4);
        // The tap catches up with those two, then sees 10 more the socket never gets.
        for _ in 0..12 {
            a.at_iface(p, 1, 6);
        }
        assert_eq!(a.reconcile(7), [Filtered { from: p, new: 10, total: 14 }]);
    }

    #[test]
    fn the_sockets_own_buffer_drops_are_not_filtered() {
        let p = ip("10.77.0.1");
        let mut a = Arrivals::default();
        for _ in 0..10 {
            a.at_iface(p, 1, 1);
        }
        for _ in 0..7 {
            a.at_socket(p, 1);
        }
        a.buffer_dropped(2);
        assert_eq!(a.reconcile(2), [Filtered { from: p, new: 1, total: 1 }]);
    }

    #[test]
    fn sources_are_bounded_and_forgotten() {
        let mut a = Arrivals::default();
        for i in 0..MAX_SOURCES as u32 + 5 {
            a.at_iface(IpAddr::V4(i.into()), 1, 1);
        }
        assert_eq!((a.by_source.len(), a.untracked), (MAX_SOURCES, 5));
        a.reconcile(FORGET + 1);
        assert!(a.by_source.is_empty());
    }
}
