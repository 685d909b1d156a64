//! The cumulative state of `mcprobe serve`: each finished probe window is folded into counters and
//! histogram buckets per series, keyed by (target, responder name, address, path), which the
//! exporter renders. Pure: no clock (callers pass the wall time in seconds) and no I/O.
//!
//! Denominators for a run without end (the README repeats them):
//! - `probes` of a series (`mcprobe_responder_probes_total`) counts the probes sent on its path
//!   from the first probe it answered on: its first window is charged only from its first on-time
//!   ack (a join is not loss), every later window in full, whether it answered or not.
//! - `probes = acks + limited + late + lost(forward + return + unknown)`, per series.
//! - A window in which a known series answers nothing charges it every probe of the window as
//!   `unknown` loss; a series silent for longer than `forget` leaves the state (and the
//!   exposition); if it comes back, it starts again as new.
//! - A restarted responder (new id, same name and address) keeps its series; restarts are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hdrhistogram::{Counter, Histogram};

use crate::diagnosis::{Diagnosis, Verdict};
use crate::prober::Outcome;
use crate::stats::{Figures, HostStats, Run};

/// RTT bucket bounds, in seconds: 1-2-5 steps from 10 µs (a LAN's floor) to 1 s (the default
/// timeout; slower acks are late and counted apart).
pub const RTT_BUCKETS_S: [f64; 16] =
    [10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1, 0.2, 0.5, 1.0];
/// Send-lateness bucket bounds, in seconds: from 1 µs (a kept schedule) to 100 ms (a stalled one).
pub const LATENESS_BUCKETS_S: [f64; 16] =
    [1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1];

/// Which way the probes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    Multicast,
    /// The unicast probes to an expected host (`--hosts`).
    Unicast,
}

impl Path {
    pub fn label(self) -> &'static str {
        match self {
            Path::Multicast => "multicast",
            Path::Unicast => "unicast",
        }
    }
}

/// Counts per bucket (not cumulative), with one more for values above the last bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}

impl Buckets {
    /// Adds every value of an HdrHistogram recorded in nanoseconds.
    pub fn add_hdr<T: Counter>(&mut self, h: &Histogram<T>, bounds: &[f64]) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        for v in h.iter_recorded() {
            let (ns, n) = (h.highest_equivalent(v.value_iterated_to()), v.count_at_value().as_u64());
            let s = ns as f64 / 1e9;
            let i = bounds.iter().position(|&b| s <= b).unwrap_or(bounds.len());
            self.counts[i] += n;
            self.count += n;
            self.sum_s += s * n as f64;
        }
    }

    /// (upper bound, count in bucket) pairs, the last bound infinite.
    pub fn pairs(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        let upper = bounds.iter().copied().chain([f64::INFINITY]);
        upper.zip(self.counts.iter().copied().chain(std::iter::repeat(0))).collect()
    }
}

/// Identity of one series: a responder is its name and address, so a restart (new id) keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub target: String,
    pub responder: String,
    pub address: IpAddr,
    pub path: Path,
}

/// Loss directions, in the order of [`Series::lost`].
pub const DIRECTIONS: [&str; 3] = ["forward", "return", "unknown"];

/// Cumulative figures of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub probes: u64,
    pub acks: u64,
    /// forward, return, unknown.
    pub lost: [u64; 3],
    pub late: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub limited: u64,
    pub outages: u64,
    pub restarts: u64,
    pub rtt: Buckets,
    pub net_rtt: Buckets,
    pub last_ack_unix_s: f64,
    responder_ids: Vec<u64>,
    /// The last window brought no ack.
    silent: bool,
}

/// One expected host's figures from the last window.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    pub host: IpAddr,
    pub verdict: Verdict,
    pub multicast_up: bool,
    pub unicast_up: bool,
}

/// Per-target figures that belong to no responder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub windows: u64,
    pub multicast_sent: u64,
    pub unicast_sent: u64,
    pub local_drops: u64,
    pub send_errors: u64,
    pub lateness: Buckets,
    /// Multicast responders that answered in the last window.
    pub responders: u64,
    /// New series not created because the target had `max_series` already.
    pub refused: u64,
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Series (responder × path) per target.
    pub max_series: usize,
    /// A series silent this long leaves.
    pub forget_s: f64,
}

/// What changed for a responder, for the log (one line each, never per packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Appeared,
    Restarted,
    Silent,
    Returned,
    Forgotten,
    /// Not tracked: the target is at its cap.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: SeriesKey,
    pub change: Change,
}

/// Everything `serve` knows; cheap enough to clone for a scrape snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub limits: Limits,
    pub series: BTreeMap<SeriesKey, Series>,
    pub targets: BTreeMap<String, Target>,
}

/// One finished window: the engine's outcome, its diagnosis (with `--hosts`), the probe interval
/// and the wall time at which it was folded.
pub struct Window<'a> {
    pub outcome: &'a Outcome,
    pub diagnosis: Option<&'a Diagnosis>,
    pub interval_s: f64,
    pub now_unix_s: f64,
}

impl State {
    pub fn new(limits: Limits, targets: impl IntoIterator<Item = String>) -> Self {
        let targets = targets.into_iter().map(|t| (t, Target::default())).collect();
        State { limits, series: BTreeMap::new(), targets }
    }

    /// Folds one finished window of `target` into the state; returns what changed.
    pub fn fold(&mut self, target: &str, w: &Window) -> Vec<Event> {
        let o = w.outcome;
        let mut events = Vec::new();
        let t = self.targets.entry(target.to_string()).or_default();
        t.windows += 1;
        t.multicast_sent += o.run.sent();
        t.unicast_sent += o.unicast.iter().map(|u| u.run.sent()).sum::<u64>();
        t.local_drops += o.local_drops;
        t.send_errors += o.send_errors;
        t.lateness.add_hdr(&o.lateness, &LATENESS_BUCKETS_S);
        t.hosts = w.diagnosis.map_or_else(Vec::new, |d| {
            let hosts = d.hosts.iter();
            hosts
                .map(|h| HostState {
                    host: h.host,
                    verdict: h.verdict,
                    multicast_up: h.multicast_received > 0,
                    unicast_up: h.unicast_received > 0,
                })
                .collect()
        });
        let mut heard = BTreeSet::new();
        let runs = std::iter::once((Path::Multicast, &o.run)).chain(o.unicast.iter().map(|u| (Path::Unicast, &u.run)));
        for (path, run) in runs {
            // A responder restarted within the window has two entries (two ids): one series.
            let mut groups: BTreeMap<(String, IpAddr), Vec<&HostStats>> = BTreeMap::new();
            for h in run.hosts().iter().filter(|h| h.received > 0) {
                groups.entry((h.name.clone(), h.addr.ip())).or_default().push(h);
            }
            for ((responder, address), hosts) in groups {
                let key = SeriesKey { target: target.to_string(), responder, address, path };
                if let Some(change) = self.fold_series(&key, run, &hosts, w) {
                    events.push(Event { key: key.clone(), change });
                }
                heard.insert(key);
            }
        }
        // Known series that answered nothing in this window.
        let mut forgotten = Vec::new();
        for (key, s) in self.series.range_mut(range_of(target)) {
            if heard.contains(key) {
                continue;
            }
            if w.now_unix_s - s.last_ack_unix_s > self.limits.forget_s {
                forgotten.push(key.clone());
                continue;
            }
            let sent = match key.path {
                Path::Multicast => o.run.sent(),
                Path::Unicast => o.unicast.iter().filter(|u| u.host == key.address).map(|u| u.run.sent()).sum(),
            };
            s.probes += sent;
            s.lost[2] += sent;
            if !s.silent && sent > 0 {
                s.silent = true;
                s.outages += 1;
                events.push(Event { key: key.clone(), change: Change::Silent });
            }
        }
        for key in forgotten {
            self.series.remove(&key);
            events.push(Event { key, change: Change::Forgotten });
        }
        let t = self.targets.get_mut(target).expect("inserted above");
        t.responders = heard.iter().filter(|k| k.path == Path::Multicast).count() as u64;
        events
    }

    fn fold_series(&mut self, key: &SeriesKey, run: &Run, hosts: &[&HostStats], w: &Window) -> Option<Change> {
        let mut change = None;
        if !self.series.contains_key(key) {
            if self.series.range(range_of(&key.target)).count() >= self.limits.max_series {
                self.targets.get_mut(&key.target).expect("target exists").refused += 1;
                return Some(Change::Refused);
            }
            self.series.insert(key.clone(), Series::default());
            change = Some(Change::Appeared);
        }
        let s = self.series.get_mut(key).expect("inserted above");
        let fresh = change.is_some();
        let figures: Vec<Figures> = hosts.iter().map(|h| run.summary(h)).collect();
        let ids: Vec<u64> = hosts.iter().map(|h| h.responder_id).collect();
        if !fresh && ids.iter().any(|id| !s.responder_ids.contains(id)) {
            s.restarts += 1;
            change = Some(Change::Restarted);
        } else if s.silent {
            change = Some(Change::Returned);
        }
        s.responder_ids = ids;
        s.silent = false;
        match figures.as_slice() {
            [f] => add_figures(s, f, fresh),
            _ => {
                // Several ids in one window: the split by direction is per id and would overlap,
                // so the combined loss is counted as unknown.
                let first = figures.iter().filter_map(|f| f.first_seq).min().unwrap_or(0);
                let charged = if fresh { run.sent().saturating_sub(first) } else { run.sent() };
                let acks: u64 = figures.iter().map(|f| f.received).sum();
                let limited: u64 = figures.iter().map(|f| f.limited).sum();
                let late: u64 = figures.iter().map(|f| f.late).sum();
                s.probes += charged;
                s.acks += acks;
                s.limited += limited;
                s.late += late;
                s.lost[2] += charged.saturating_sub(acks + limited + late);
                for f in &figures {
                    s.duplicates += f.duplicates;
                    s.reordered += f.reordered;
                    s.outages += f.outages;
                }
            }
        }
        for h in hosts {
            s.rtt.add_hdr(&h.rtt, &RTT_BUCKETS_S);
            s.net_rtt.add_hdr(&h.net_rtt, &RTT_BUCKETS_S);
        }
        let last_seq = hosts.iter().filter_map(|h| h.max_seq).max().unwrap_or(0);
        let start_s = run.start_ns().map_or(w.now_unix_s, |ns| ns as f64 / 1e9);
        s.last_ack_unix_s = s.last_ack_unix_s.max(start_s + last_seq as f64 * w.interval_s);
        change
    }

    /// The series of one target.
    pub fn series_of<'a>(&'a self, target: &str) -> impl Iterator<Item = (&'a SeriesKey, &'a Series)> {
        self.series.range(range_of(target))
    }
}

/// One responder's figures of a window. In its first window, the probes before its first ack
/// are not charged (a join is not loss); they come off the forward, then unknown, then return
/// counts, which the responder's counters spread them over.
fn add_figures(s: &mut Series, f: &Figures, fresh: bool) {
    let mut lost = [f.forward_lost, f.return_lost, f.unknown_lost];
    let charged = if fresh {
        let mut excess = f.lost - f.lost_after_first;
        for i in [0, 2, 1] {
            let take = lost[i].min(excess);
            lost[i] -= take;
            excess -= take;
        }
        f.sent_after_first
    } else {
        f.sent
    };
    s.probes += charged;
    s.acks += f.received;
    for (acc, l) in s.lost.iter_mut().zip(lost) {
        *acc += l;
    }
    s.late += f.late;
    s.duplicates += f.duplicates;
    s.reordered += f.reordered;
    s.limited += f.limited;
    s.outages += f.outages;
}

/// The key range holding every series of `target`.
fn range_of(target: &str) -> std::ops::Range<SeriesKey> {
    let lo = SeriesKey {
        target: target.to_string(),
        responder: String::new(),
        address: IpAddr::from([0u8; 4]),
        path: Path::Multicast,
    };
    // The smallest key of the next target name: the target followed by NUL.
    let hi = SeriesKey { target: format!("{target}\u{0}"), ..lo.clone() };
    lo..hi
}
