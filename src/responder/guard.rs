//! What keeps a long-running responder safe: an allow list, a per-source rate limit, and a
//! session table of bounded size. Pure logic with timestamps passed in, so it is tested directly.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Sources tracked by the rate limiter, and sessions tracked at once: a flood of forged sources
/// or session ids cannot grow memory without bound.
pub const MAX_TRACKED: usize = 4096;
/// Sessions idle this long are forgotten: a prober that comes back is a new session.
pub const SESSION_IDLE_NS: u64 = 300 * 1_000_000_000;

/// Source networks allowed to probe; empty means everyone.
#[derive(Debug, Clone, Default)]
pub struct AllowList(pub Vec<IpNet>);

impl AllowList {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ns: u64,
}

/// A token bucket per source address: `rate` probes per second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `None` when `rate` is 0: no limit.
    pub fn new(rate: u32) -> Option<Self> {
        // A tenth of a second's worth of probes may come at once, and never fewer than 100.
        (rate > 0).then(|| RateLimiter {
            rate: rate as f64,
            burst: (rate as f64 / 10.0).max(100.0),
            buckets: HashMap::new(),
        })
    }

    /// Whether a probe from `src` at `now_ns` may be answered.
    pub fn allow(&mut self, src: IpAddr, now_ns: u64) -> bool {
        if !self.buckets.contains_key(&src) && self.buckets.len() >= MAX_TRACKED {
            self.make_room(now_ns);
        }
        let burst = self.burst;
        let b = self.buckets.entry(src).or_insert(Bucket { tokens: burst, last_ns: now_ns });
        let elapsed = now_ns.saturating_sub(b.last_ns) as f64 / 1e9;
        b.tokens = (b.tokens + elapsed * self.rate).min(burst);
        b.last_ns = now_ns;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
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

    pub fn tracked(&self) -> usize {
        self.buckets.len()
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
}

/// Sessions by id, at most [`MAX_TRACKED`].
#[derive(Debug, Default)]
pub struct SessionTable {
    map: HashMap<u64, SessionState>,
}

impl SessionTable {
    /// The session's state, and whether it is new (first probe, or forgotten since).
    pub fn get(&mut self, session: u64, now_ns: u64) -> (&mut SessionState, bool) {
        let new = !self.map.contains_key(&session);
        if new && self.map.len() >= MAX_TRACKED {
            self.make_room(now_ns);
        }
        let state = self.map.entry(session).or_default();
        state.last_seen_ns = now_ns;
        (state, new)
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

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn allow_list_matches_networks() {
        let list = AllowList(vec!["10.1.0.0/16".parse().unwrap(), "192.0.2.7/32".parse().unwrap()]);
        assert!(list.allows("10.1.200.3".parse().unwrap()));
        assert!(list.allows("192.0.2.7".parse().unwrap()));
        assert!(!list.allows("192.0.2.8".parse().unwrap()));
        assert!(AllowList::default().allows("203.0.113.1".parse().unwrap()));
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
            sessions.get(i * 7919, i);
        }
        assert!(rl.tracked() <= MAX_TRACKED);
        assert!(sessions.len() <= MAX_TRACKED);
        // An established session survives a flood of fresh fake ids, even though they are newer.
        let t = SESSION_IDLE_NS * 2;
        for k in 0..2 {
            let (s, _) = sessions.get(42, t + k);
            s.received += 1;
        }
        for i in 0..10_000u64 {
            sessions.get(1_000_000 + i, t + 10 + i).0.received += 1;
        }
        let (s, new) = sessions.get(42, t + 20_000);
        assert!(!new && s.received == 2, "the live session was evicted");
    }
}
