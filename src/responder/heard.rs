//! Multicast probes that reached the responder's socket, per source address (all sessions), so
//! that an ack to a prober's unicast probe can say whether that prober's multicast gets here at
//! all. A prober whose multicast acks never come cannot tell otherwise whether its probes were
//! lost on the way here or the acks on the way back (its own stateful firewall, most often).
//! Pure: the caller hands in the clock.
//!
//! Bounded like [`super::arrivals`]: at most [`MAX_SOURCES`] addresses, each forgotten after
//! [`FORGET`] without a probe; a source beyond them is not counted (its count is not known).

use std::collections::HashMap;
use std::net::IpAddr;

use super::arrivals::{FORGET, MAX_SOURCES};

#[derive(Debug, Default)]
pub(crate) struct Heard {
    /// Per source: multicast probes, and when the last one came (ns).
    by_source: HashMap<IpAddr, (u64, u64)>,
}

impl Heard {
    /// A multicast probe from `from` reached the socket.
    pub(crate) fn multicast(&mut self, from: IpAddr, now_ns: u64) {
        if !self.by_source.contains_key(&from) && self.by_source.len() >= MAX_SOURCES {
            self.by_source.retain(|_, (_, last)| now_ns.saturating_sub(*last) < FORGET);
            if self.by_source.len() >= MAX_SOURCES {
                return;
            }
        }
        let e = self.by_source.entry(from).or_insert((0, now_ns));
        e.0 += 1;
        e.1 = now_ns;
    }

    /// Multicast probes from `from` so far: 0 when none came, `None` when it could not be
    /// counted (too many sources at once).
    pub(crate) fn of(&self, from: IpAddr) -> Option<u64> {
        match self.by_source.get(&from) {
            Some((n, _)) => Some(*n),
            None if self.by_source.len() < MAX_SOURCES => Some(0),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source_and_stays_bounded() {
        let mut h = Heard::default();
        let a: IpAddr = "10.77.0.1".parse().unwrap();
        assert_eq!(h.of(a), Some(0));
        h.multicast(a, 1);
        h.multicast(a, 2);
        assert_eq!(h.of(a), Some(2));
        for i in 0..MAX_SOURCES as u32 {
            h.multicast(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 3);
        }
        // Full of recent sources: a new one is not counted, and says so.
        let late: IpAddr = "10.99.0.1".parse().unwrap();
        h.multicast(late, 4);
        assert_eq!(h.of(late), None);
        assert_eq!(h.by_source.len(), MAX_SOURCES);
        // Once the others are forgotten, it is.
        h.multicast(late, 4 + FORGET);
        assert_eq!(h.of(late), Some(1));
    }
}
