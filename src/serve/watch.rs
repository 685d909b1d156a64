//! `serve`'s `[[watch]]` entries: the stream watch's engine ([`crate::stream::engine`]) run
//! without end, its figures kept for the exporter. Pure: arrival times and "now" are inputs (the
//! loop in [`super::watch_loop`] reads the sockets and the clock).
//!
//! Bounded by construction: the groups come from the configuration; each group follows at most
//! `max_sources` sources and each entry at most `--max-series` streams (group, port, source);
//! the datagrams of any further source are counted per group under `source="other"` (packets and
//! bytes only: their numbering is not followed). A stream silent for longer than `--forget`
//! leaves the engine and the metrics (its slot is free for another source); its group's silence
//! stays. The engine keeps no timeline here ([`EngineConfig::keep_intervals`] off): a stream
//! holds its counters and its last closed second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::net::Iface;
use crate::stream::engine::{Engine, EngineConfig, StreamKey};

/// One validated `[[watch]]` entry.
#[derive(Debug, Clone)]
pub(crate) struct WatchTarget {
    /// The `target` label of its series.
    pub name: String,
    pub iface: Option<Iface>,
    /// Every (group, port) it joins, without repeats.
    pub groups: Vec<(IpAddr, u16)>,
    /// Source-specific joins (SSM): only this sender.
    pub source: Option<IpAddr>,
    /// Format, RTP clock, TS rate; one-second intervals; no timeline.
    pub engine: EngineConfig,
    pub rcvbuf: usize,
    /// Sources followed per group.
    pub max_sources: usize,
}

/// A series' source: a sender's address, or every sender beyond the caps together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Addr(IpAddr),
    Other,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Addr(a) => write!(f, "{a}"),
            Source::Other => f.write_str("other"),
        }
    }
}

/// One stream's figures for the exposition; `None` where its format has no such figure (or,
/// for the per-second gauges, before its first second closed).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamFigures {
    pub packets: u64,
    pub bytes: u64,
    pub lost: Option<u64>,
    pub duplicates: Option<u64>,
    pub reordered: Option<u64>,
    pub ts_lost: Option<u64>,
    pub cc_errors: Option<u64>,
    pub source_changes: Option<u64>,
    /// The most bytes within 1 ms in the last closed second, per second.
    pub peak_1ms_bytes_per_s: Option<f64>,
    /// The longest time between two datagrams in the last closed second (or its silence).
    pub max_gap_s: Option<f64>,
    pub rtp_jitter_s: Option<f64>,
    /// RFC 4445 delay factor of the last closed second.
    pub df_s: Option<f64>,
}

/// One configured group's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GroupFigures {
    /// Since any datagram reached it, or since the watch started.
    pub silence_s: f64,
    /// The kernel's drops on its socket (buffer full), once it reported any count.
    pub local_drops: Option<u64>,
}

/// What one entry exports, as of its last tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EntrySnapshot {
    /// By group, port, source (`other` last).
    pub streams: Vec<((IpAddr, u16, Source), StreamFigures)>,
    /// Every configured group, by group and port.
    pub groups: Vec<((IpAddr, u16), GroupFigures)>,
}

/// What changed in an entry, for the log (one line each, never per datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A source's first datagram to a group: a stream followed from now on.
    Appeared(StreamKey),
    /// Silent longer than `--forget`: its series left.
    Forgotten(StreamKey),
    /// The first datagram of the group summed into `source="other"`: this source is beyond
    /// `max_sources` or `--max-series` (said once per group).
    Capped(StreamKey),
}

#[derive(Debug, Default)]
struct Group {
    /// Something was summed into `other` already (said once).
    capped: bool,
    /// The sources followed (in the engine), at most `max_sources`.
    sources: Vec<IpAddr>,
    other_packets: u64,
    other_bytes: u64,
    last_ns: Option<u64>,
    local_drops: Option<u64>,
}

/// One entry's engine and the caps around it.
#[derive(Debug)]
pub(crate) struct Watcher {
    engine: Engine,
    groups: HashMap<(IpAddr, u16), Group>,
    max_sources: usize,
    /// `--max-series`: streams followed in the whole entry.
    max_streams: usize,
    followed: usize,
    t0: u64,
    /// Since the last tick.
    events: Vec<Event>,
}

impl Watcher {
    pub(crate) fn new(t: &WatchTarget, max_series: usize, t0_ns: u64) -> Self {
        let max_streams = max_series.min(t.groups.len().saturating_mul(t.max_sources)).max(1);
        let cfg = EngineConfig { max_streams, keep_intervals: false, ..t.engine.clone() };
        let mut engine = Engine::new(cfg, t0_ns);
        for &(g, p) in &t.groups {
            engine.watch(g, p);
        }
        Watcher {
            engine,
            groups: t.groups.iter().map(|&k| (k, Group::default())).collect(),
            max_sources: t.max_sources,
            max_streams,
            followed: 0,
            t0: t0_ns,
            events: Vec::new(),
        }
    }

    /// One datagram to `group:port` from `from`, arrived at `t_ns`.
    pub(crate) fn packet(&mut self, group: IpAddr, port: u16, from: SocketAddr, payload: &[u8], t_ns: u64) {
        let Some(g) = self.groups.get_mut(&(group, port)) else { return };
        g.last_ns = Some(g.last_ns.map_or(t_ns, |l| l.max(t_ns)));
        let source = from.ip();
        if !g.sources.contains(&source) {
            let key = StreamKey { group, port, source };
            if g.sources.len() >= self.max_sources || self.followed >= self.max_streams {
                g.other_packets += 1;
                g.other_bytes += payload.len() as u64;
                if !g.capped {
                    g.capped = true;
                    self.events.push(Event::Capped(key));
                }
                return;
            }
            g.sources.push(source);
            self.followed += 1;
            self.events.push(Event::Appeared(key));
        }
        self.engine.packet(group, port, source, from.port(), payload, t_ns);
    }

    /// The kernel's drop count of the socket of `group:port` (cumulative).
    pub(crate) fn set_local_drops(&mut self, group: IpAddr, port: u16, n: u64) {
        if let Some(g) = self.groups.get_mut(&(group, port)) {
            g.local_drops = Some(n);
        }
        self.engine.set_local_drops(group, port, n);
    }

    /// Closes the seconds up to `now_ns` and forgets the streams silent longer than
    /// `forget_ns`; returns what changed since the last tick.
    pub(crate) fn tick(&mut self, now_ns: u64, forget_ns: u64) -> Vec<Event> {
        self.engine.advance(now_ns);
        let gone = self.engine.forget_silent(now_ns, forget_ns);
        for k in &gone {
            if let Some(g) = self.groups.get_mut(&(k.group, k.port)) {
                g.sources.retain(|s| *s != k.source);
            }
        }
        self.followed -= gone.len();
        self.events.extend(gone.into_iter().map(Event::Forgotten));
        std::mem::take(&mut self.events)
    }

    /// The figures as of `now_ns` (after [`Self::tick`]).
    pub(crate) fn snapshot(&self, now_ns: u64) -> EntrySnapshot {
        let mut streams: Vec<((IpAddr, u16, Source), StreamFigures)> = (self.engine.streams_at(now_ns).into_iter())
            .map(|(k, s, last)| {
                let f = StreamFigures {
                    packets: s.packets,
                    bytes: s.bytes,
                    lost: s.lost,
                    duplicates: s.duplicates,
                    reordered: s.reordered,
                    ts_lost: s.ts_lost,
                    cc_errors: s.cc_errors,
                    source_changes: Some(s.source_changes),
                    // Whole bytes in a millisecond, so a whole number per second.
                    peak_1ms_bytes_per_s: last.map(|r| (r.peak_1ms_mbps * 125_000.0).round()),
                    max_gap_s: last.and_then(|r| r.max_gap_ms).map(|ms| ms / 1e3),
                    rtp_jitter_s: s.rtp_jitter_ms.map(|ms| ms / 1e3),
                    df_s: last.and_then(|r| r.df_ms).map(|ms| ms / 1e3),
                };
                ((k.group, k.port, Source::Addr(k.source)), f)
            })
            .collect();
        let mut groups = Vec::with_capacity(self.groups.len());
        for (&(g, p), v) in &self.groups {
            if v.other_packets > 0 {
                let f = StreamFigures { packets: v.other_packets, bytes: v.other_bytes, ..StreamFigures::default() };
                streams.push(((g, p, Source::Other), f));
            }
            let since = v.last_ns.unwrap_or(self.t0);
            let silence_s = now_ns.saturating_sub(since) as f64 / 1e9;
            groups.push(((g, p), GroupFigures { silence_s, local_drops: v.local_drops }));
        }
        streams.sort_by_key(|a| a.0);
        groups.sort_by_key(|a| a.0);
        EntrySnapshot { streams, groups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{FormatChoice, SeqField};

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn target(groups: &[&str], max_sources: usize) -> WatchTarget {
        let seq = SeqField::parse("u32be@0").unwrap();
        WatchTarget {
            name: "md".into(),
            iface: None,
            groups: groups.iter().map(|g| (g.parse().unwrap(), 5000)).collect(),
            source: None,
            engine: EngineConfig { format: FormatChoice::Seq(seq), ..EngineConfig::default() },
            rcvbuf: 1 << 20,
            max_sources,
        }
    }

    fn from(a: &str) -> SocketAddr {
        SocketAddr::new(a.parse().unwrap(), 4000)
    }

    fn g(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn counts_exactly_caps_sources_and_forgets_the_silent() {
        let t = target(&["239.1.1.1", "239.1.1.2"], 2);
        let t0 = 1000 * S;
        let mut w = Watcher::new(&t, 3, t0);
        // Source a: 0..100 with 10..13 missing, 50 twice; b and c: 5 each; d: a third source
        // of the group, beyond max_sources 2, counted as "other".
        let mut t_ns = t0;
        for n in (0u32..100).filter(|n| !(10..13).contains(n)).chain([50]) {
            t_ns += MS;
            w.packet(g("239.1.1.1"), 5000, from("10.0.0.1"), &n.to_be_bytes(), t_ns);
        }
        for n in 0u32..5 {
            w.packet(g("239.1.1.1"), 5000, from("10.0.0.2"), &n.to_be_bytes(), t_ns);
            w.packet(g("239.1.1.1"), 5000, from("10.0.0.3"), &[0; 10], t_ns);
            // The second group's first source is the entry's third stream (max_series 3); its
            // second is beyond max_series.
            w.packet(g("239.1.1.2"), 5000, from("10.0.0.4"), &n.to_be_bytes(), t_ns);
            w.packet(g("239.1.1.2"), 5000, from("10.0.0.5"), &n.to_be_bytes(), t_ns);
        }
        // Not configured: ignored.
        w.packet(g("239.9.9.9"), 5000, from("10.0.0.1"), &[0; 4], t_ns);
        w.set_local_drops(g("239.1.1.2"), 5000, 7);
        let key = |g_: &str, s_: &str| StreamKey { group: g(g_), port: 5000, source: g(s_) };
        assert_eq!(
            w.tick(t0 + S, 600 * S),
            [
                Event::Appeared(key("239.1.1.1", "10.0.0.1")),
                Event::Appeared(key("239.1.1.1", "10.0.0.2")),
                Event::Capped(key("239.1.1.1", "10.0.0.3")),
                Event::Appeared(key("239.1.1.2", "10.0.0.4")),
                Event::Capped(key("239.1.1.2", "10.0.0.5")),
            ]
        );
        let snap = w.snapshot(t0 + S);
        let keys: Vec<(IpAddr, u16, Source)> = snap.streams.iter().map(|s| s.0).collect();
        let a = |s: &str| Source::Addr(g(s));
        assert_eq!(
            keys,
            [
                (g("239.1.1.1"), 5000, a("10.0.0.1")),
                (g("239.1.1.1"), 5000, a("10.0.0.2")),
                (g("239.1.1.1"), 5000, Source::Other),
                (g("239.1.1.2"), 5000, a("10.0.0.4")),
                (g("239.1.1.2"), 5000, Source::Other),
            ]
        );
        let s = &snap.streams[0].1;
        assert_eq!((s.packets, s.bytes, s.lost, s.duplicates, s.reordered), (98, 392, Some(3), Some(1), Some(0)));
        assert_eq!((s.ts_lost, s.cc_errors, s.rtp_jitter_s, s.df_s), (None, None, None, None));
        // The first second's busiest millisecond: one datagram of 4 bytes, 4000 bytes/s; its
        // longest gap 1 ms.
        assert_eq!(s.peak_1ms_bytes_per_s, Some(4_000.0));
        assert_eq!(s.max_gap_s, Some(0.001));
        let other = &snap.streams[2].1;
        assert_eq!((other.packets, other.bytes, other.lost, other.source_changes), (5, 50, None, None));
        assert_eq!(snap.streams[4].1.packets, 5);
        let silence: Vec<f64> = snap.groups.iter().map(|x| x.1.silence_s).collect();
        assert!((silence[0] - 0.902).abs() < 1e-9 && (silence[1] - 0.902).abs() < 1e-9, "{silence:?}");
        assert_eq!(snap.groups[1].1.local_drops, Some(7));

        // b and c stop; a goes on: after --forget (5 s), b leaves and frees its slot for c, whose
        // datagrams were "other" so far.
        let mut events = Vec::new();
        for k in 1..=6u64 {
            w.packet(g("239.1.1.1"), 5000, from("10.0.0.1"), &(100 + k as u32).to_be_bytes(), t0 + k * S + S / 2);
            events.extend(w.tick(t0 + k * S + S / 2, 5 * S));
        }
        assert_eq!(
            events,
            [Event::Forgotten(key("239.1.1.1", "10.0.0.2")), Event::Forgotten(key("239.1.1.2", "10.0.0.4"))]
        );
        let snap = w.snapshot(t0 + 6 * S + S / 2);
        let keys: Vec<Source> = snap.streams.iter().filter(|s| s.0 .0 == g("239.1.1.1")).map(|s| s.0 .2).collect();
        assert_eq!(keys, [a("10.0.0.1"), Source::Other]);
        assert_eq!(snap.streams.iter().filter(|s| s.0 .0 == g("239.1.1.2")).count(), 1, "only other stays");
        w.packet(g("239.1.1.1"), 5000, from("10.0.0.3"), &0u32.to_be_bytes(), t0 + 7 * S);
        w.tick(t0 + 7 * S, 5 * S);
        let keys: Vec<Source> = w.snapshot(t0 + 7 * S).streams.iter().map(|s| s.0 .2).collect();
        assert!(keys.contains(&a("10.0.0.3")), "{keys:?}");
    }

    #[test]
    fn a_group_that_never_heard_anything_is_silent_since_the_start() {
        let t = target(&["239.1.1.1"], 4);
        let mut w = Watcher::new(&t, 1000, 5 * S);
        w.tick(8 * S, 600 * S);
        let snap = w.snapshot(8 * S);
        assert!(snap.streams.is_empty());
        assert_eq!(snap.groups, [((g("239.1.1.1"), 5000), GroupFigures { silence_s: 3.0, local_drops: None })]);
    }
}
