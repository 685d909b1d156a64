//! Where the acks disappear: a packet tap ([`crate::net::tap`]) on the prober's ack ports counts
//! the acks of this run that reach an interface of this host, per source address, and the
//! receiver counts those that reach its sockets with the same test ([`AckFilter`]). Acks at the
//! interface but never at the socket were dropped inside this host: its firewall (a stateful
//! one drops them, since conntrack cannot tie an ack from a responder's address to a probe sent
//! to a group), another filter, or the socket's full buffer (counted apart, `SO_RXQ_OVFL`).
//!
//! The two counts are compared only for acks the tap saw before the receiver's last drained
//! read, less a margin: an ack arriving after the receiver stopped reading is in neither. The
//! tap stamps each ack when it reads it, which is never before it arrived, so an ack it counts
//! reached the socket before the cutoff too, unless something dropped it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::run::AckSightings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::net::now_ns;
use crate::net::tap::{self, Peek, Tap, TapSpec};

/// Sightings older than this are folded into the counts while the tap runs; newer ones wait for
/// the cutoff. Far longer than the cutoff's margin, so no folded one can be past it.
const SETTLE: Duration = Duration::from_millis(500);
/// The cutoff's margin before the receiver's last drained read: two of its read ticks.
pub(super) const MARGIN: Duration = Duration::from_millis(40);
/// Most sightings kept unsettled; more (a flood) are dropped, so the tap counts less: never a
/// false drop.
const MAX_RECENT: usize = 1 << 18;

/// Which datagrams are acks of this run: the same test at the tap and at the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckFilter {
    /// The multicast session; unicast sessions follow it.
    pub session: u64,
    pub unicast: u64,
    /// `--plain`: every datagram is an answer.
    pub plain: bool,
}

impl AckFilter {
    pub(crate) fn matches(&self, payload: &[u8]) -> bool {
        self.plain
            || matches!(tap::peek(payload), Some(Peek::Ack { session }) if session.wrapping_sub(self.session) <= self.unicast)
    }
}

#[derive(Default)]
struct Counts {
    settled: HashMap<IpAddr, u64>,
    recent: VecDeque<(u64, IpAddr)>,
}

impl Counts {
    fn fold_before(&mut self, ns: u64) {
        while self.recent.front().is_some_and(|(t, _)| *t < ns) {
            let (_, a) = self.recent.pop_front().expect("checked");
            *self.settled.entry(a).or_default() += 1;
        }
    }
}

/// A running tap on the ack ports; [`AckTap::finish`] stops it.
pub(crate) struct AckTap {
    counts: Arc<Mutex<Counts>>,
    stop: Arc<AtomicBool>,
    /// Rung with `stop`: the idle tap waits for frames without a stop tick.
    bell: Option<tap::Bell>,
    thread: Option<JoinHandle<u64>>,
}

impl AckTap {
    /// Starts tapping the acks to `ports` that `filter` takes, on every interface (an ack may
    /// come in by any of them).
    pub(crate) fn start(v6: bool, ports: &[u16], filter: AckFilter) -> Result<AckTap, String> {
        let spec = TapSpec { v6, ifindex: 0, ports: tap::ranges(ports.iter().copied()) };
        let mut tap = Tap::open(&spec, "the acks").map_err(|u| u.0)?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        // Without a bell (no eventfd), the tap looks at `stop` every tap::TICK instead.
        let bell = tap.bell().ok();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ack-tap".into())
            .spawn(move || {
                let mut batch: Vec<IpAddr> = Vec::new();
                loop {
                    // Read after the stop too: everything queued by then is counted.
                    let last = s.load(Ordering::Acquire);
                    let got = tap.drain(|frame, _| match tap::parse(frame) {
                        Some(u) if filter.matches(u.payload) => batch.push(u.src),
                        _ => {}
                    });
                    // Stamped when read: never before the ack arrived (see the module comment).
                    let now = now_ns();
                    let mut counts = c.lock().unwrap_or_else(|e| e.into_inner());
                    let room = MAX_RECENT.saturating_sub(counts.recent.len());
                    counts.recent.extend(batch.drain(..).take(room).map(|a| (now, a)));
                    counts.fold_before(now.saturating_sub(SETTLE.as_nanos() as u64));
                    drop(counts);
                    if last {
                        break;
                    }
                    // A failed read sleeps as a busy one: poll would return at once again.
                    tap.pause(got.unwrap_or(1));
                }
                tap.drops()
            })
            .map_err(|e| format!("not watching the acks at the interface: cannot start a thread: {e}"))?;
        Ok(AckTap { counts, stop, bell, thread: Some(thread) })
    }

    /// Stops the tap and compares: acks it saw before `cutoff_ns` (CLOCK_REALTIME) against
    /// `at_socket`, the acks the sockets got per source. `drained`: the receiver's last read
    /// found its sockets empty.
    pub(crate) fn finish(mut self, cutoff_ns: u64, at_socket: &HashMap<IpAddr, u64>, drained: bool) -> AckSightings {
        self.stop.store(true, Ordering::Release);
        self.bell.iter().for_each(tap::Bell::ring);
        let tap_drops = self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.fold_before(cutoff_ns);
        let mut by_source: Vec<(IpAddr, u64, u64)> = (counts.settled.keys().chain(at_socket.keys()))
            .map(|&a| (a, counts.settled.get(&a).copied().unwrap_or(0), at_socket.get(&a).copied().unwrap_or(0)))
            .collect();
        by_source.sort_unstable();
        by_source.dedup();
        AckSightings { by_source, tap_drops, settled: drained, ..AckSightings::default() }
    }
}

impl Drop for AckTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.bell.iter().for_each(tap::Bell::ring);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ack, Probe};

    #[test]
    fn the_filter_takes_the_runs_acks_only() {
        let f = AckFilter { session: u64::MAX - 1, unicast: 2, plain: false };
        let ack = |session| Ack { session, ..Ack::default() }.encode_within(64).unwrap();
        // The multicast session and the unicast ones after it, across the wrap.
        for s in [u64::MAX - 1, u64::MAX, 0] {
            assert!(f.matches(&ack(s)), "session {s}");
        }
        assert!(!f.matches(&ack(1)) && !f.matches(&ack(u64::MAX - 2)));
        let probe = Probe { session: u64::MAX - 1, seq: 0, tx_ns: 0, asks_ext: false }.encode(64);
        assert!(!f.matches(&probe));
        assert!(!f.matches(b"ack"));
        assert!(AckFilter { plain: true, ..f }.matches(b"ack"));
    }

    #[test]
    fn only_sightings_before_the_cutoff_count() {
        let mut c = Counts::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        c.recent.extend([(10, a), (20, b), (30, a), (40, a)]);
        c.fold_before(31);
        assert_eq!((c.settled[&a], c.settled[&b], c.recent.len()), (2, 1, 1));
        let s = AckSightings { by_source: vec![(a, 5, 2), (b, 1, 1)], settled: true, ..AckSightings::default() };
        assert_eq!(s.missing().collect::<Vec<_>>(), [(a, 3)]);
    }
}
