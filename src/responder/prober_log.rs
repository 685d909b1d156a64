//! Which "session … from …" lines a responder prints. A prober is its source address and the
//! high 32 bits of its session ids: `serve` keeps those for its whole life while each of its
//! windows is a session of its own (from a new port), so a responder beside it prints one line,
//! not one per window (8 640 a day). A `probe` run draws a whole new session id, so each run is
//! a new prober, as before. New probers' lines are throttled ([`NEW_PROBER_LINES`] per
//! [`PERIOD_NS`]); the next line shown says how many were not, so a flood of forged sessions
//! neither fills the log nor hides that new probers came. Pure: the caller passes the time.

use std::collections::HashSet;
use std::net::IpAddr;

/// Probers remembered; when full, the memory starts over (a prober seen again is printed once
/// more), so a flood of forged identities costs a bounded set.
pub(crate) const KNOWN_PROBERS: usize = 1024;
/// Lines about new probers per period.
pub(crate) const NEW_PROBER_LINES: u32 = 10;
pub(crate) const PERIOD_NS: u64 = 10_000_000_000;

/// What to print for a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionLine {
    /// The first session of a prober: print its line, and say how many new probers' sessions
    /// went unshown before it.
    Show { unshown: u64 },
    /// Another session of a prober already shown.
    Known,
    /// A new prober over the period's budget: counted for the next line shown.
    Throttled,
}

#[derive(Debug, Default)]
pub(crate) struct ProberLog {
    known: HashSet<(IpAddr, u32)>,
    period_start_ns: u64,
    shown: u32,
    unshown: u64,
}

impl ProberLog {
    pub(crate) fn on_session(&mut self, session: u64, from: IpAddr, now_ns: u64) -> SessionLine {
        let prober = (from, (session >> 32) as u32);
        if self.known.contains(&prober) {
            return SessionLine::Known;
        }
        if now_ns.saturating_sub(self.period_start_ns) >= PERIOD_NS {
            (self.period_start_ns, self.shown) = (now_ns, 0);
        }
        if self.shown >= NEW_PROBER_LINES {
            self.unshown += 1;
            return SessionLine::Throttled;
        }
        if self.known.len() >= KNOWN_PROBERS {
            self.known.clear();
        }
        self.known.insert(prober);
        self.shown += 1;
        SessionLine::Show { unshown: std::mem::take(&mut self.unshown) }
    }

    /// New probers' sessions throttled since the last line shown: what the closing line tells,
    /// when no later line did.
    pub(crate) fn unshown(&self) -> u64 {
        self.unshown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_prober_is_shown_once_and_a_flood_is_throttled_but_counted() {
        let mut log = ProberLog::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // serve: one identity (high bits), a new session per window, from new ports.
        assert_eq!(log.on_session(0xabcd_0000_0000_0001, a, 0), SessionLine::Show { unshown: 0 });
        for w in 2..8640 {
            assert_eq!(log.on_session(0xabcd_0000_0000_0000 | w, a, w * 10 * S), SessionLine::Known);
        }
        // The same identity from another address is another prober.
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(log.on_session(0xabcd_0000_0000_0001, b, 100_000 * S), SessionLine::Show { unshown: 0 });
        // A flood of new sessions: 10 lines in 10 s, then counted, and the count is told by
        // the next line shown.
        let t = 200_000 * S;
        let lines = (0..10_000u64).filter(|&i| log.on_session(i << 32, a, t + i * 1000) != SessionLine::Throttled);
        assert_eq!(lines.count(), 10);
        assert_eq!(log.on_session(0xffff_ffff << 32, a, t + 11 * S), SessionLine::Show { unshown: 9_990 });
        assert!(log.known.len() <= KNOWN_PROBERS);
    }
}
