//! What keeps a long-running responder safe: an allow list, a per-source rate limit, a budget
//! for all sources together, a session table of bounded size, and for keyed probes a freshness
//! window and a replay window per session. Pure logic with timestamps passed in, so it is tested
//! directly.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Sources tracked by the rate limiter, and sessions tracked at once: a flood of forged sources
/// or session ids cannot grow memory without bound.
pub(crate) const MAX_TRACKED: usize = 4096;
/// Sessions idle this long are forgotten: a prober that comes back is a new session.
pub(crate) const SESSION_IDLE_NS: u64 = 300 * 1_000_000_000;

/// Source networks allowed to probe; empty means everyone.
#[derive(Debug, Clone, Default)]
pub struct AllowList(pub Vec<IpNet>);

impl AllowList {
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ns: u64,
}

impl Bucket {
    /// Refills for the time since the last call, then takes one token if there is one.
    fn take(&mut self, now_ns: u64, rate: f64, burst: f64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last_ns = now_ns;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A tenth of a second's worth of probes may come at once, and never fewer than 100.
fn burst_of(rate: u32) -> f64 {
    (rate as f64 / 10.0).max(100.0)
}

/// A token bucket per source address: `rate` probes per second, bursts of `burst`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `None` when `rate` is 0: no limit.
    pub(crate) fn new(rate: u32) -> Option<Self> {
        (rate > 0).then(|| Self::with_burst(rate as f64, burst_of(rate)))
    }

    /// `rate` per second (more than 0) in bursts of `burst` (at least 1).
    pub(crate) fn with_burst(rate: f64, burst: f64) -> Self {
        RateLimiter { rate, burst, buckets: HashMap::new() }
    }

    /// Whether a probe from `src` at `now_ns` may be answered.
    pub(crate) fn allow(&mut self, src: IpAddr, now_ns: u64) -> bool {
        if !self.buckets.contains_key(&src) && self.buckets.len() >= MAX_TRACKED {
            self.make_room(now_ns);
        }
        let burst = self.burst;
        let b = self.buckets.entry(src).or_insert(Bucket { tokens: burst, last_ns: now_ns });
        b.take(now_ns, self.rate, burst)
    }

    /// Forgets sources whose buckets have refilled (forgetting them changes nothing); if that is
    /// not enough, the least recently seen half. Halving keeps the cost per new source amortized
    /// O(log n) even under a flood of forged sources.
    fn make_room(&mut self, now_ns: u64) {
        let refill_ns = (self.burst / self.rate * 1e9) as u64;
        self.buckets.retain(|_, b| now_ns.saturating_sub(b.last_ns) < refill_ns);
        if self.buckets.len() >= MAX_TRACKED {
            keep_newer_half(&mut self.buckets, |b| b.last_ns);
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// One token bucket for the whole responder: acks per second across all sources, so a flood from
/// many (forged) source addresses cannot multiply the per-source limit.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    burst: f64,
    bucket: Option<Bucket>,
}

impl Budget {
    /// `None` when `rate` is 0: no budget.
    pub fn new(rate: u32) -> Option<Self> {
        (rate > 0).then(|| Budget { rate: rate as f64, burst: burst_of(rate), bucket: None })
    }

    /// Whether one more ack may be sent at `now_ns`.
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let burst = self.burst;
        self.bucket.get_or_insert(Bucket { tokens: burst, last_ns: now_ns }).take(now_ns, self.rate, burst)
    }
}

/// Keyed probes whose send time (the prober's CLOCK_REALTIME) is further than this from the
/// responder's receive time are refused: a captured probe can only be replayed this long.
/// Default of `respond --max-clock-skew`: NTP keeps LAN hosts within milliseconds, so 5 s leaves
/// room for a clock that is slightly off without making captures useful for long.
pub const DEFAULT_MAX_CLOCK_SKEW_NS: u64 = 5 * SEC_NS;
/// Upper bound of `--max-clock-skew`: the replay window of a session must outlive every probe of
/// it that is still fresh, and idle sessions are forgotten after `SESSION_IDLE_NS` (5 minutes).
pub(crate) const MAX_CLOCK_SKEW_NS: u64 = 60 * SEC_NS;
const SEC_NS: u64 = 1_000_000_000;

/// How far the probe's send time is behind the responder's receive time, in ns: positive for a
/// probe sent in the past (the normal case: the one-way delay, plus any clock offset), negative
/// for one stamped in the responder's future.
pub(crate) fn skew_ns(tx_ns: u64, rx_ns: u64) -> i64 {
    (rx_ns as i128 - tx_ns as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Whether a probe sent at `tx_ns` and received at `rx_ns` is within `window_ns` either way.
pub fn is_fresh(tx_ns: u64, rx_ns: u64, window_ns: u64) -> bool {
    skew_ns(tx_ns, rx_ns).unsigned_abs() <= window_ns
}

/// What a session's replay window says about a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not seen before: answer it.
    New,
    /// Seen before: a replay, or a duplicate the network made.
    Duplicate,
    /// More than [`SeqWindow::SPAN`] behind the newest: cannot be told from a replay.
    TooOld,
}

/// The sequence numbers of one session seen lately, as a bitmap over the newest
/// [`SPAN`](Self::SPAN) numbers (what IPsec and WireGuard keep for the same purpose). Fixed
/// size, no allocation: 144 bytes per session.
#[derive(Debug, Clone, Default)]
pub struct SeqWindow {
    words: [u64; (Self::SPAN / 64) as usize],
    newest: Option<u64>,
}

impl SeqWindow {
    /// 1024 numbers: 5 ms of reordering at 200 000 probes/s; a LAN reorders far less.
    pub(crate) const SPAN: u64 = 1024;

    fn bit(seq: u64) -> (usize, u64) {
        let i = (seq % Self::SPAN) as usize;
        (i / 64, 1 << (i % 64))
    }

    /// Checks `seq` and marks it seen.
    pub fn check(&mut self, seq: u64) -> SeqCheck {
        match self.newest {
            Some(newest) if seq <= newest => {
                if newest - seq >= Self::SPAN {
                    return SeqCheck::TooOld;
                }
                let (w, b) = Self::bit(seq);
                if self.words[w] & b != 0 {
                    return SeqCheck::Duplicate;
                }
                self.words[w] |= b;
            }
            _ => {
                // Slide forward: the numbers between the old newest and `seq` have not been seen,
                // and their bits held numbers that leave the window.
                let from = self.newest.map_or(seq, |n| n + 1);
                if seq - from >= Self::SPAN {
                    self.words = [0; (Self::SPAN / 64) as usize];
                } else {
                    for s in from..seq {
                        let (w, b) = Self::bit(s);
                        self.words[w] &= !b;
                    }
                }
                let (w, b) = Self::bit(seq);
                self.words[w] |= b;
                self.newest = Some(seq);
            }
        }
        SeqCheck::New
    }
}

/// Decides when a notice about a source is worth a line: once per source (again after
/// [`REPEAT_NS`](Self::REPEAT_NS)), and never more than one line per
/// [`GAP_NS`](Self::GAP_NS) in all, so a flood from many sources cannot flood the log. A source
/// held back by the gap is told about at its next datagram after it.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    told: HashMap<IpAddr, u64>,
    last_ns: Option<u64>,
}

impl Notices {
    pub(crate) const GAP_NS: u64 = SEC_NS;
    pub(crate) const REPEAT_NS: u64 = 600 * SEC_NS;

    /// Whether to tell about `src` now; if so, it is recorded as told.
    pub(crate) fn due(&mut self, src: IpAddr, now_ns: u64) -> bool {
        if self.last_ns.is_some_and(|t| now_ns.saturating_sub(t) < Self::GAP_NS) {
            return false;
        }
        if self.told.get(&src).is_some_and(|&t| now_ns.saturating_sub(t) < Self::REPEAT_NS) {
            return false;
        }
        if self.told.len() >= MAX_TRACKED {
            self.told.retain(|_, t| now_ns.saturating_sub(*t) < Self::REPEAT_NS);
            if self.told.len() >= MAX_TRACKED {
                self.told.clear();
            }
        }
        self.told.insert(src, now_ns);
        self.last_ns = Some(now_ns);
        true
    }
}

/// Keeps the entries whose `rank` is above the median.
fn keep_newer_half<K, V>(map: &mut HashMap<K, V>, rank: impl Fn(&V) -> u64) {
    let mut ranks: Vec<u64> = map.values().map(&rank).collect();
    let mid = ranks.len() / 2;
    let (_, &mut cutoff, _) = ranks.select_nth_unstable(mid);
    map.retain(|_, v| rank(v) > cutoff);
}

/// A responder's view of one probing session.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    pub received: u64,
    pub acks_sent: u64,
    pub limited: u64,
    pub last_seen_ns: u64,
    /// The address whose probe started the session: a keyed session answers only it.
    pub source: Option<SocketAddr>,
    /// Sequence numbers seen lately (used for keyed sessions).
    pub seqs: SeqWindow,
    /// Drops: see [`SessionState::note_arrival`].
    pub host_drops: u64,
    /// The newest sequence number received, and the socket's drop count when it arrived.
    last: Option<(u64, u64)>,
    /// From the join to this session's first probe, when it came by multicast.
    pub join_delay_ns: Option<u64>,
}

impl SessionState {
    /// Notes probe `seq`, which arrived when the socket had dropped `socket_drops` datagrams in
    /// all. The socket is shared by every session (other probers, `--hosts` unicast sessions,
    /// a mesh's peers), so its count alone says nothing of this session: a gap of `g` probes in
    /// this session's numbers, while the socket dropped `d` datagrams, puts `min(g, d)` down to
    /// this host. Exact when one session loses to the socket; when several do at once, or the
    /// network loses some of the gap while the socket drops another session's probes, it errs
    /// toward the host, never beyond the gap.
    pub(crate) fn note_arrival(&mut self, seq: u64, socket_drops: u64) {
        match self.last {
            Some((last, at)) if seq > last => {
                let gap = seq - last - 1;
                self.host_drops += gap.min(socket_drops.saturating_sub(at));
                self.last = Some((seq, socket_drops));
            }
            Some(_) => {} // reordered or repeated: the gap it fills was counted already
            None => self.last = Some((seq, socket_drops)),
        }
    }
}

/// Sessions by id, at most [`MAX_TRACKED`].
#[derive(Debug, Default)]
pub struct SessionTable {
    map: HashMap<u64, SessionState>,
}

impl SessionTable {
    /// The session's state, and whether it is new (first probe, or forgotten since). A new
    /// session is bound to `from`.
    pub fn get(&mut self, session: u64, from: SocketAddr, now_ns: u64) -> (&mut SessionState, bool) {
        let new = !self.map.contains_key(&session);
        if new && self.map.len() >= MAX_TRACKED {
            self.make_room(now_ns);
        }
        let state =
            self.map.entry(session).or_insert_with(|| SessionState { source: Some(from), ..Default::default() });
        state.last_seen_ns = now_ns;
        (state, new)
    }

    #[cfg(test)]
    /// The address a known session is bound to.
    pub(crate) fn source_of(&self, session: u64) -> Option<SocketAddr> {
        self.map.get(&session).and_then(|s| s.source)
    }

    /// Forgets idle sessions; when still full, the half that matters least: sessions with a
    /// single probe (what a flood of fake ids looks like) before established ones, and among
    /// those the least recently seen.
    fn make_room(&mut self, now_ns: u64) {
        self.map.retain(|_, s| now_ns.saturating_sub(s.last_seen_ns) < SESSION_IDLE_NS);
        if self.map.len() >= MAX_TRACKED {
            keep_newer_half(&mut self.map, |s| ((s.received >= 2) as u64) << 63 | s.last_seen_ns >> 1);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn allow_list_matches_networks() {
        let list = AllowList(vec!["10.1.0.0/16".parse().unwrap(), "172.16.0.7/32".parse().unwrap()]);
        assert!(list.allows("10.1.200.3".parse().unwrap()));
        assert!(list.allows("172.16.0.7".parse().unwrap()));
        assert!(!list.allows("172.16.0.8".parse().unwrap()));
        assert!(AllowList::default().allows("172.31.0.1".parse().unwrap()));
    }

    #[test]
    fn rate_limit_allows_burst_then_rate() {
        let mut rl = RateLimiter::new(1000).unwrap(); // burst 100
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = 5 * SEC;
        let first: usize = (0..150).filter(|_| rl.allow(src, t0)).count();
        assert_eq!(first, 100, "the burst");
        // One second later: 1000 new tokens, capped at the burst of 100.
        let later: usize = (0..150).filter(|_| rl.allow(src, t0 + SEC)).count();
        assert_eq!(later, 100);
        // Spread evenly at exactly the rate, every probe passes.
        let t1 = t0 + 10 * SEC;
        assert!((0..5000u64).all(|i| rl.allow(src, t1 + i * SEC / 1000)));
        // Another source has its own bucket.
        assert!(rl.allow("10.0.0.2".parse().unwrap(), t0 + SEC));
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn floods_of_sources_and_sessions_stay_bounded() {
        let mut rl = RateLimiter::new(10).unwrap();
        let mut sessions = SessionTable::default();
        for i in 0..100_000u64 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            rl.allow(ip, i);
            sessions.get(i * 7919, from(1), i);
        }
        assert!(rl.tracked() <= MAX_TRACKED);
        assert!(sessions.len() <= MAX_TRACKED);
        // An established session survives a flood of fresh fake ids, even though they are newer.
        let t = SESSION_IDLE_NS * 2;
        for k in 0..2 {
            let (s, _) = sessions.get(42, from(1), t + k);
            s.received += 1;
        }
        for i in 0..10_000u64 {
            sessions.get(1_000_000 + i, from(1), t + 10 + i).0.received += 1;
        }
        let (s, new) = sessions.get(42, from(1), t + 20_000);
        assert!(!new && s.received == 2, "the live session was evicted");
    }

    fn from(host: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], 40_000))
    }

    #[test]
    fn sessions_are_bound_to_the_address_that_started_them() {
        let mut sessions = SessionTable::default();
        assert_eq!(sessions.source_of(9), None);
        sessions.get(9, from(1), 0);
        // A later probe from elsewhere does not rebind it.
        sessions.get(9, from(2), 1);
        assert_eq!(sessions.source_of(9), Some(from(1)));
    }

    #[test]
    fn freshness_is_a_window_either_way() {
        let w = DEFAULT_MAX_CLOCK_SKEW_NS;
        let rx = 1_800_000_000 * SEC;
        assert!(is_fresh(rx - 100_000, rx, w), "a normal one-way delay");
        assert!(is_fresh(rx - w, rx, w) && is_fresh(rx + w, rx, w), "the edges are in");
        assert!(!is_fresh(rx - w - 1, rx, w), "a probe from the past");
        assert!(!is_fresh(rx + w + 1, rx, w), "a probe from the future (the prober's clock is ahead)");
        assert_eq!(skew_ns(rx - 3 * SEC, rx), 3 * SEC as i64);
        assert_eq!(skew_ns(rx + 3 * SEC, rx), -3 * SEC as i64);
        // Absurd stamps do not overflow.
        assert!(!is_fresh(0, u64::MAX, w) && !is_fresh(u64::MAX, 0, w));
        assert_eq!(skew_ns(0, u64::MAX), i64::MAX);
    }

    #[test]
    fn the_replay_window_answers_each_number_once() {
        let mut w = SeqWindow::default();
        assert_eq!(w.check(10), SeqCheck::New);
        assert_eq!(w.check(10), SeqCheck::Duplicate);
        // Out of order within the window: new once, then a duplicate.
        assert_eq!(w.check(12), SeqCheck::New);
        assert_eq!(w.check(11), SeqCheck::New);
        assert_eq!(w.check(11), SeqCheck::Duplicate);
        assert_eq!(w.check(0), SeqCheck::New, "earlier numbers in the window never seen are new");
        // Slide by one span: 12 leaves the window, and its bit does not make 12 + SPAN a duplicate.
        let far = 12 + SeqWindow::SPAN;
        assert_eq!(w.check(far), SeqCheck::New);
        assert_eq!(w.check(12), SeqCheck::TooOld);
        assert_eq!(w.check(far - SeqWindow::SPAN + 1), SeqCheck::New);
        assert_eq!(w.check(far), SeqCheck::Duplicate);
        // A big jump clears everything; the extremes do not overflow.
        assert_eq!(w.check(u64::MAX), SeqCheck::New);
        assert_eq!(w.check(u64::MAX), SeqCheck::Duplicate);
        assert_eq!(w.check(u64::MAX - 1), SeqCheck::New);
        assert_eq!(w.check(far), SeqCheck::TooOld);
    }

    #[test]
    fn the_window_matches_a_set_of_seen_numbers() {
        // Against the obvious model over a pseudo-random walk with reordering and duplicates.
        let mut w = SeqWindow::default();
        let mut seen = std::collections::HashSet::new();
        let mut newest = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = (step + x % 3000).saturating_sub(1500);
            let expected = if newest.saturating_sub(seq) >= SeqWindow::SPAN && !seen.is_empty() {
                SeqCheck::TooOld
            } else if seen.contains(&seq) {
                SeqCheck::Duplicate
            } else {
                SeqCheck::New
            };
            assert_eq!(w.check(seq), expected, "step {step}, seq {seq}, newest {newest}");
            if expected == SeqCheck::New {
                seen.insert(seq);
                newest = newest.max(seq);
            }
        }
    }

    #[test]
    fn the_budget_is_shared_by_every_source() {
        let mut b = Budget::new(1000).unwrap(); // burst 100
        let t0 = 7 * SEC;
        assert_eq!((0..1000).filter(|_| b.allow(t0)).count(), 100, "the burst, whoever asks");
        // Over one second at a million requests per second, about the rate gets through.
        let passed = (1..=1_000_000u64).filter(|i| b.allow(t0 + i * 1000)).count();
        assert!((999..=1001).contains(&passed), "{passed}");
        assert!(Budget::new(0).is_none());
    }

    #[test]
    fn notices_are_once_per_source_and_spaced() {
        let mut n = Notices::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(n.due(a, SEC));
        assert!(!n.due(a, SEC + 1), "told already");
        assert!(!n.due(b, SEC + 1), "too soon after another line");
        assert!(n.due(b, 2 * SEC + 1), "told once the gap is over");
        assert!(!n.due(a, 100 * SEC));
        assert!(n.due(a, SEC + Notices::REPEAT_NS), "reminded after a long while");
        // A flood of sources gets at most one line per gap, and memory stays bounded.
        let lines = (0..100_000u64)
            .filter(|&i| n.due(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i as u32)), 10_000 * SEC + i * 1000))
            .count();
        assert_eq!(lines, 1);
        assert!(n.told.len() <= MAX_TRACKED);
    }
}
