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
//! - `--mesh`: a peer known from its multicast acks that a window probed by unicast and that
//!   answered none of them gets its unicast series then, charged every one of those probes as
//!   `unknown` loss (it has nothing to join for unicast); a peer's unicast series is probed only
//!   in the windows whose unicast sample holds it, and stays as long as its multicast series.
//!
//! With `--groups` (a target probing several groups in turn), each multicast series also has:
//! - `groups_reached`: the groups it answered at least once in the last window (any of their
//!   probes acked on time), out of the target's groups;
//! - `groups_missed`: summed over windows, the groups probed in a window that it answered on
//!   none of their probes. In its first window only the groups probed after its first answer
//!   count (a join is not loss, as for `probes`); a window it answers nothing misses every group
//!   the window probed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use hdrhistogram::{Counter, Histogram};

pub(crate) use crate::findings::Path;
use crate::findings::{Diagnosis, Verdict};
use crate::querier::{Querier, QuerierObservation};
use crate::run::Outcome;
use crate::stats::{Figures, HostStats, Run};

/// RTT bucket bounds, in seconds: 1-2-5 steps from 10 µs (a LAN's floor) to 1 s (the default
/// timeout; slower acks are late and counted apart).
pub(crate) const RTT_BUCKETS_S: [f64; 16] =
    [10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1, 0.2, 0.5, 1.0];
/// Send-lateness bucket bounds, in seconds: from 1 µs (a kept schedule) to 100 ms (a stalled one).
pub(crate) const LATENESS_BUCKETS_S: [f64; 16] =
    [1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1];

/// Counts per bucket (not cumulative), with one more for values above the last bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Buckets {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}

impl Buckets {
    /// Adds every value of an HdrHistogram recorded in nanoseconds.
    pub(crate) fn add_hdr<T: Counter>(&mut self, h: &Histogram<T>, bounds: &[f64]) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        for v in h.iter_recorded() {
            // A recorded value stands for a range of up to 1/128 of it (2 significant digits, see
            // stats' RTT_SIGFIG): it is bucketed by the range's low end, so a value exactly on a
            // bound lands in that bound's bucket, and so may one up to 0.8 % above it.
            let value = v.value_iterated_to();
            let n = v.count_at_value().as_u64();
            let low_s = h.lowest_equivalent(value) as f64 / 1e9;
            let i = bounds.iter().position(|&b| low_s <= b).unwrap_or(bounds.len());
            self.counts[i] += n;
            self.count += n;
            self.sum_s += h.median_equivalent(value) as f64 / 1e9 * n as f64;
        }
    }

    /// (upper bound, count in bucket) pairs, the last bound infinite.
    pub(crate) fn pairs(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        let upper = bounds.iter().copied().chain([f64::INFINITY]);
        upper.zip(self.counts.iter().copied().chain(std::iter::repeat(0))).collect()
    }
}

/// Identity of one series: a responder is its name and address, so a restart (new id) keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SeriesKey {
    pub target: String,
    pub responder: String,
    pub address: IpAddr,
    pub path: Path,
}

/// Loss directions, in the order of [`Series::lost`].
pub(crate) const DIRECTIONS: [&str; 3] = ["forward", "return", "unknown"];

/// Cumulative figures of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Series {
    pub probes: u64,
    pub acks: u64,
    /// forward, return, unknown.
    pub lost: [u64; 3],
    /// Of the forward losses, those the responder's own host dropped (as its acks reported).
    pub host_drops: u64,
    /// Of the forward losses, those after the responder's latest drop report in its window:
    /// its host's or the network's, not told.
    pub forward_untold: u64,
    pub late: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub limited: u64,
    pub outages: u64,
    pub restarts: u64,
    pub rtt: Buckets,
    pub net_rtt: Buckets,
    pub last_ack_unix_s: f64,
    /// With `--groups`, multicast only: groups answered in the last window.
    pub groups_reached: u64,
    /// With `--groups`, multicast only: (group, window) pairs probed and not answered.
    pub groups_missed: u64,
    /// With `--groups` and `--group-series`: which groups it answered in the last window, a bit
    /// per group (512 B at 4096 groups).
    pub reached_bits: Vec<u64>,
    responder_ids: Vec<u64>,
    /// The last window brought no ack.
    silent: bool,
    /// An outage was still open when the last window ended (and was counted): the unanswered
    /// probes that follow continue it, whether the next window is silent or answers late.
    outage_open: bool,
    /// Otherwise, the unanswered probes at the end of the last window (fewer than an outage):
    /// with those at the start of the next, they may make one.
    trailing: u64,
}

impl Series {
    /// The last window brought no ack.
    pub(crate) fn is_silent(&self) -> bool {
        self.silent
    }
}

/// One expected host's figures from the last window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostState {
    pub host: IpAddr,
    pub verdict: Verdict,
    pub multicast_up: bool,
    pub unicast_up: bool,
}

/// Per-target figures that belong to no responder.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Target {
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
    /// Windows that overran: the one before was still waiting for its late acks when this one
    /// was due (so it started late), or its sender could not send every probe in time.
    pub overruns: u64,
    pub hosts: Vec<HostState>,
    /// What the querier watch on the target's interface heard, as of the last window.
    pub querier: QuerierState,
    /// With `--groups`: the groups it probes in turn (probe k to group k mod N); empty for a
    /// target of one group. Shared, so a snapshot does not copy it.
    pub groups: Arc<Vec<IpAddr>>,
    /// With `--mesh`: this host's own responder and its expected peers.
    pub mesh: Option<Arc<MeshSelf>>,
}

/// A mesh target's own side: the name this host answers with (the `source` of its matrix row),
/// its responder's id (its acks are not a peer's: they are left out of every series), and the
/// peers `--hosts` expects (this host's own addresses taken out).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MeshSelf {
    pub source: String,
    pub own_id: Option<u64>,
    pub expected: Vec<IpAddr>,
}

impl Target {
    /// Whether it probes several groups (`--groups`): then it has the group figures.
    pub(crate) fn has_groups(&self) -> bool {
        self.groups.len() > 1
    }
}

/// A target's querier watch, as the metrics show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum QuerierState {
    /// No watch: loopback (no query ever crosses it), or no CAP_NET_RAW.
    #[default]
    NotWatched,
    Watched {
        /// Every querier heard since `serve` started (at most `querier::MAX_QUERIERS`).
        queriers: Vec<Querier>,
        /// No query for longer than the wait (`--querier-wait`, else the querier's interval +
        /// 10 s): snooping switches are about to age the group out.
        silent: bool,
        /// Queries from new addresses refused while the log was full of live queriers.
        refused: u64,
    },
}

impl QuerierState {
    pub(crate) fn of(o: &QuerierObservation) -> Self {
        QuerierState::Watched {
            queriers: o.log.queriers.clone(),
            silent: o.silence().is_some(),
            refused: o.log.refused,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Series (responder × path) per target.
    pub max_series: usize,
    /// A series silent this long leaves.
    pub forget_s: f64,
    /// `--group-series`: keep which groups each responder reached, for a series per group.
    pub group_series: bool,
}

/// What changed for a responder, for the log (one line each, never per packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Appeared,
    Restarted,
    Silent,
    Returned,
    Forgotten,
    /// Not tracked: the target is at its cap.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub key: SeriesKey,
    pub change: Change,
}

/// Everything `serve` knows; cheap enough to clone for a scrape snapshot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    pub limits: Limits,
    pub series: BTreeMap<SeriesKey, Series>,
    pub targets: BTreeMap<String, Target>,
}

/// One finished window: the engine's outcome, its diagnosis (with `--hosts`), the probe interval
/// and the wall time at which it was folded.
pub(crate) struct Window<'a> {
    pub outcome: &'a Outcome,
    pub diagnosis: Option<&'a Diagnosis>,
    pub interval_s: f64,
    pub now_unix_s: f64,
    /// Consecutive unanswered probes that make an outage (`--outage-min`).
    pub outage_min: u64,
}

impl State {
    pub(crate) fn new(limits: Limits, targets: impl IntoIterator<Item = String>) -> Self {
        let targets = targets.into_iter().map(|t| (t, Target::default())).collect();
        State { limits, series: BTreeMap::new(), targets }
    }

    /// Folds one finished window of `target` into the state; returns what changed.
    /// Sets the groups `target` probes in turn (`--groups`); one group or none: no group figures.
    pub(crate) fn set_groups(&mut self, target: &str, groups: &[IpAddr]) {
        let t = self.targets.entry(target.to_string()).or_default();
        t.groups = Arc::new(if groups.len() > 1 { groups.to_vec() } else { Vec::new() });
    }

    /// Makes `target` a mesh target answering as `source`, expecting `expected` as peers.
    pub(crate) fn set_mesh(&mut self, target: &str, source: &str, expected: &[IpAddr]) {
        let t = self.targets.entry(target.to_string()).or_default();
        t.mesh = Some(Arc::new(MeshSelf { source: source.to_string(), own_id: None, expected: expected.to_vec() }));
    }

    /// The id of the mesh target's own responder: its acks are left out from then on.
    pub(crate) fn set_own_id(&mut self, target: &str, id: u64) {
        let t = self.targets.entry(target.to_string()).or_default();
        let mut m = t.mesh.as_deref().cloned().unwrap_or_default();
        m.own_id = Some(id);
        t.mesh = Some(Arc::new(m));
    }

    /// The id of the mesh target's own responder, once it listens.
    pub(crate) fn own_id(&self, target: &str) -> Option<u64> {
        self.targets.get(target).and_then(|t| t.mesh.as_ref()).and_then(|m| m.own_id)
    }

    /// Sets what the target's querier watch heard; whether that changed anything (only then is
    /// a new snapshot worth publishing). Kept apart from [`State::fold`]: the watch is read on a
    /// clock of its own, so a failed or long window never freezes it.
    pub(crate) fn set_querier(&mut self, target: &str, q: QuerierState) -> bool {
        let t = self.targets.entry(target.to_string()).or_default();
        let changed = t.querier != q;
        t.querier = q;
        changed
    }

    /// Counts an overrun of `target`'s windows; returns how many there were so far.
    pub(crate) fn overrun(&mut self, target: &str) -> u64 {
        let t = self.targets.entry(target.to_string()).or_default();
        t.overruns += 1;
        t.overruns
    }

    pub(crate) fn fold(&mut self, target: &str, w: &Window) -> Vec<Event> {
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
        // A mesh host's own responder answers its probes too: not a peer.
        let own = t.mesh.as_ref().and_then(|m| m.own_id);
        let runs = std::iter::once((Path::Multicast, &o.run)).chain(o.unicast.iter().map(|u| (Path::Unicast, &u.run)));
        for (path, run) in runs {
            // A responder restarted within the window has two entries (two ids): one series.
            let mut groups: BTreeMap<(String, IpAddr), Vec<&HostStats>> = BTreeMap::new();
            for h in run.hosts().iter().filter(|h| h.received > 0 && Some(h.responder_id) != own) {
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
        let mesh = self.targets.get(target).is_some_and(|t| t.mesh.is_some());
        // A mesh peer's multicast series keeps its unicast one: a peer probed by unicast only
        // in some windows (the sample rotates), or never answering unicast, leaves with it.
        let multicast_acks: BTreeMap<IpAddr, f64> = if mesh {
            let range = self.series.range(range_of(target)).filter(|(k, _)| k.path == Path::Multicast);
            range.map(|(k, s)| (k.address, s.last_ack_unix_s)).collect()
        } else {
            BTreeMap::new()
        };
        if mesh {
            events.extend(self.unanswered_unicast(target, o, &heard, &multicast_acks));
        }
        // Known series that answered nothing in this window.
        let groups = self.targets.get(target).map_or(0, |t| t.groups.len());
        let mut forgotten = Vec::new();
        for (key, s) in self.series.range_mut(range_of(target)) {
            if heard.contains(key) {
                continue;
            }
            let twin = (key.path == Path::Unicast).then(|| multicast_acks.get(&key.address)).flatten();
            let last_ack = twin.map_or(s.last_ack_unix_s, |&t| t.max(s.last_ack_unix_s));
            if w.now_unix_s - last_ack > self.limits.forget_s {
                forgotten.push(key.clone());
                continue;
            }
            let sent = match key.path {
                Path::Multicast => o.run.sent(),
                Path::Unicast => o.unicast.iter().filter(|u| u.host == key.address).map(|u| u.run.sent()).sum(),
            };
            s.probes += sent;
            s.lost[2] += sent;
            if key.path == Path::Multicast && groups > 1 {
                // Silent: every group the window probed is missed.
                s.groups_reached = 0;
                s.groups_missed += sent.min(groups as u64);
                s.reached_bits.iter_mut().for_each(|b| *b = 0);
            }
            // One stopped responder is one outage: the one its last window counted (still open
            // when that window ended), or one made here of the probes since its last answer.
            if !s.outage_open && sent > 0 {
                s.trailing += sent;
                if s.trailing >= w.outage_min {
                    s.outages += 1;
                    s.outage_open = true;
                }
            }
            if !s.silent && sent > 0 {
                s.silent = true;
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

    /// A mesh peer known from its multicast acks that this window probed by unicast and that
    /// answered none of them: its unicast series is made (under `max_series`), so the fold
    /// charges it the window's unicast probes as lost. Unicast broken while multicast works is
    /// what the `path` label is there to show; without this, a peer that never answered by
    /// unicast would have no unicast series at all. (Any responder's first window is charged
    /// only from its first ack, since joining a group takes time; a peer already answering the
    /// group has nothing to join for unicast.)
    fn unanswered_unicast(
        &mut self,
        target: &str,
        o: &Outcome,
        heard: &BTreeSet<SeriesKey>,
        multicast_acks: &BTreeMap<IpAddr, f64>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for u in o.unicast.iter().filter(|u| u.run.sent() > 0 && multicast_acks.contains_key(&u.host)) {
            if heard.iter().any(|k| k.path == Path::Unicast && k.address == u.host) {
                continue;
            }
            let range = self.series.range(range_of(target));
            let mut names = range.filter(|(k, _)| k.address == u.host).map(|(k, _)| k.responder.clone());
            let Some(responder) = names.next() else { continue };
            let key = SeriesKey { target: target.to_string(), responder, address: u.host, path: Path::Unicast };
            if self.series.contains_key(&key) {
                continue;
            }
            if self.series.range(range_of(target)).count() >= self.limits.max_series {
                self.targets.get_mut(target).expect("target exists").refused += 1;
                events.push(Event { key, change: Change::Refused });
                continue;
            }
            self.series.insert(key, Series::default());
        }
        events
    }

    fn fold_series(&mut self, key: &SeriesKey, run: &Run, hosts: &[&HostStats], w: &Window) -> Option<Change> {
        let groups = self.targets.get(&key.target).map_or(0, |t| t.groups.len());
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
        // The accounting merges a restart within the window into one entry under the first id
        // and lists it; a restart between windows shows as a first id not seen before.
        let within: u64 = hosts.iter().map(|h| h.restarts.len() as u64).sum();
        let between = !fresh && hosts.iter().any(|h| !s.responder_ids.contains(&h.responder_id));
        let restarts = within + u64::from(between);
        if restarts > 0 {
            s.restarts += restarts;
            change = Some(Change::Restarted);
        } else if s.silent {
            change = Some(Change::Returned);
        }
        s.responder_ids = hosts.iter().map(|h| h.restarts.last().map_or(h.responder_id, |r| r.new_id)).collect();
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
        // The engine counts no outage before a window's first answer (for it, that is a join);
        // across windows, those probes continue the last window's open outage, or with its
        // unanswered tail make a new one.
        if !fresh {
            let leading = figures.iter().filter_map(|f| f.first_seq).min().unwrap_or(0);
            if !s.outage_open && s.trailing + leading >= w.outage_min {
                s.outages += 1;
            }
        }
        s.outage_open = hosts.iter().any(|h| h.outages.iter().any(|o| o.end_unix_ns.is_none()));
        let answered_last = hosts.iter().filter_map(|h| h.max_seq).max();
        s.trailing = match answered_last {
            Some(last) if !s.outage_open => run.sent().saturating_sub(last + 1),
            _ => 0,
        };
        for h in hosts {
            s.rtt.add_hdr(&h.rtt, &RTT_BUCKETS_S);
            s.net_rtt.add_hdr(&h.net_rtt, &RTT_BUCKETS_S);
        }
        if key.path == Path::Multicast && groups > 1 {
            fold_groups(s, hosts, groups, run.sent(), fresh, self.limits.group_series);
        }
        let last_seq = hosts.iter().filter_map(|h| h.max_seq).max().unwrap_or(0);
        let start_s = run.start_ns().map_or(w.now_unix_s, |ns| ns as f64 / 1e9);
        s.last_ack_unix_s = s.last_ack_unix_s.max(start_s + last_seq as f64 * w.interval_s);
        change
    }
}

/// One responder's groups of a window (`--groups`): which it answered, and how many it missed
/// of those the window probed (probe k went to group k mod `groups`, so with `sent` probes group
/// i got some iff i < sent); in its first window, of those probed after its first answer only.
fn fold_groups(s: &mut Series, hosts: &[&HostStats], groups: usize, sent: u64, fresh: bool, bits: bool) {
    let mut reached = vec![false; groups];
    let mut probed_after_first = vec![false; groups];
    for h in hosts {
        for (i, t) in h.groups.iter().take(groups).enumerate() {
            reached[i] |= t.reached();
            probed_after_first[i] |= t.probes > 0;
        }
    }
    let probed = |i: usize| if fresh { probed_after_first[i] } else { (i as u64) < sent };
    s.groups_reached = reached.iter().filter(|&&r| r).count() as u64;
    s.groups_missed += (0..groups).filter(|&i| probed(i) && !reached[i]).count() as u64;
    if bits {
        s.reached_bits = vec![0; groups.div_ceil(64)];
        for i in (0..groups).filter(|&i| reached[i]) {
            s.reached_bits[i / 64] |= 1 << (i % 64);
        }
    }
}

/// One responder's figures of a window. In its first window, the probes before its first ack
/// are not charged (a join is not loss); they come off the forward, then unknown, then return
/// counts, which the responder's counters spread them over.
fn add_figures(s: &mut Series, f: &Figures, fresh: bool) {
    let mut lost = [f.loss.forward, f.loss.ret, f.loss.unknown];
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
    // The split of what is left of the forward loss, as every other output trims it.
    let forward = f.loss.less_forward(f.loss.forward - lost[0]);
    s.host_drops += forward.host_drops.unwrap_or(0);
    s.forward_untold += forward.unreported;
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
pub(crate) fn range_of(target: &str) -> std::ops::Range<SeriesKey> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RunConfig;
    use crate::wire::Ack;
    use std::net::SocketAddr;
    use std::time::Duration;

    const MS: u64 = 1_000_000;
    // Windows start at t0 = 1_000_000 ms = 1000 s (Unix time, in ns).

    /// A finished window of `n` probes, 10 ms apart from `start_ns`; `answers` lists, per
    /// responder (id, name, address), the probes it acked (1 ms RTT, each with its own counters).
    fn window(start_ns: u64, n: u64, answers: &[(u64, &str, &str, Vec<u64>)]) -> Outcome {
        window_of(1, start_ns, n, answers)
    }

    /// [`window`] of a target probing `groups` groups in turn (probe k to group k mod groups).
    fn window_of(groups: u32, start_ns: u64, n: u64, answers: &[(u64, &str, &str, Vec<u64>)]) -> Outcome {
        let cfg = RunConfig {
            session: 7,
            timeout_ns: 1_000 * MS,
            interval_ns: 1_000 * MS,
            intervals: false,
            plain: false,
            outage_min: 3,
            groups,
            raw: false,
        };
        let mut run = Run::new(cfg);
        for k in 0..n {
            run.record_send(start_ns + k * 10 * MS);
        }
        for (id, name, addr, seqs) in answers {
            for (i, &seq) in seqs.iter().enumerate() {
                let tx_ns = start_ns + seq * 10 * MS;
                let ack = Ack {
                    session: 7,
                    seq,
                    tx_ns,
                    responder: *id,
                    received: i as u32 + 1,
                    ack_seq: i as u32,
                    name: name.to_string(),
                    ..Ack::default()
                };
                let from: SocketAddr = addr.parse().unwrap();
                run.on_ack(&ack, from, tx_ns + MS);
            }
        }
        run.finalize_all();
        let mut lateness = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        lateness.record(2_000).unwrap();
        Outcome {
            settings: crate::run::Settings::for_tests(1, 1, n),
            run,
            unicast: Vec::new(),
            ttl: 1,
            lateness,
            send_span: std::time::Duration::from_millis(n.saturating_sub(1) * 10),
            interrupted: false,
            elapsed: std::time::Duration::from_secs(1),
            invalid: 0,
            forged: 0,
            local_drops: 0,
            send_errors: 0,
            local_addrs: Vec::new(),
            keys: Default::default(),
            ack_watch: None,
        }
    }

    fn fold(st: &mut State, o: &Outcome, now: f64) -> Vec<Change> {
        let w = Window { outcome: o, diagnosis: None, interval_s: 0.01, now_unix_s: now, outage_min: 3 };
        st.fold("lan", &w).into_iter().map(|e| e.change).collect()
    }

    fn key(name: &str) -> SeriesKey {
        SeriesKey {
            target: "lan".into(),
            responder: name.into(),
            address: "10.0.0.1".parse().unwrap(),
            path: Path::Multicast,
        }
    }

    fn state(max_series: usize) -> State {
        State::new(Limits { max_series, forget_s: 60.0, group_series: false }, ["lan".to_string()])
    }

    #[test]
    fn a_responder_is_charged_from_its_first_ack_then_every_probe() {
        let mut st = state(10);
        // Joins at probe 4 of 10, then answers all of the next window.
        let all: Vec<u64> = (0..10).collect();
        let o = window(1_000_000 * MS, 10, &[(1, "a", "10.0.0.1:5", (4..10).collect())]);
        assert_eq!(fold(&mut st, &o, 1_001.0), [Change::Appeared]);
        let s = &st.series[&key("a")];
        assert_eq!((s.probes, s.acks, s.lost), (6, 6, [0, 0, 0]));
        let o = window(1_000_000 * MS + 100 * MS, 10, &[(1, "a", "10.0.0.1:5", all)]);
        assert_eq!(fold(&mut st, &o, 1_002.0), []);
        let s = &st.series[&key("a")];
        assert_eq!((s.probes, s.acks), (16, 16));
        assert_eq!(s.rtt.count, 16);
        assert_eq!(s.rtt.counts[RTT_BUCKETS_S.iter().position(|&b| b >= 1e-3).unwrap()], 16, "1 ms RTTs");
        let t = &st.targets["lan"];
        assert_eq!((t.windows, t.multicast_sent, t.responders, t.lateness.count), (2, 20, 1, 2));
    }

    #[test]
    fn a_silent_window_is_unknown_loss_and_an_outage_until_forgotten() {
        let mut st = state(10);
        let t0 = 1_000_000 * MS;
        let o = window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..10).collect())]);
        fold(&mut st, &o, 1_000.1);
        let quiet = window(t0, 10, &[]);
        assert_eq!(fold(&mut st, &quiet, 1_010.0), [Change::Silent]);
        assert_eq!(fold(&mut st, &quiet, 1_020.0), []);
        let s = &st.series[&key("a")];
        assert_eq!((s.probes, s.acks, s.lost, s.outages), (30, 10, [0, 0, 20], 1));
        assert_eq!(st.targets["lan"].responders, 0);
        // Its last ack was at about t0 + 90 ms; `forget` is 60 s.
        assert_eq!(fold(&mut st, &quiet, 1_061.0), [Change::Forgotten]);
        assert!(st.series.is_empty());
    }

    #[test]
    fn a_stopped_responder_is_one_outage_however_many_windows_it_stays_silent() {
        let t0 = 1_000_000 * MS;
        let quiet = window(t0, 10, &[]);
        // Stops after probe 4 of its second window: the engine counts the open outage there,
        // and the silent windows after it continue it.
        let mut st = state(10);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..10).collect())]), 1_000.1);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..5).collect())]), 1_000.2);
        assert_eq!(fold(&mut st, &quiet, 1_000.3), [Change::Silent]);
        fold(&mut st, &quiet, 1_000.4);
        assert_eq!(st.series[&key("a")].outages, 1);
        // Stops with the last probe of a window: the silent window is the outage.
        let mut st = state(10);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..10).collect())]), 1_000.1);
        fold(&mut st, &quiet, 1_000.2);
        fold(&mut st, &quiet, 1_000.3);
        assert_eq!(st.series[&key("a")].outages, 1);
        // Comes back: the probes before its first answer continue the outage.
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (4..10).collect())]), 1_000.4);
        assert_eq!(st.series[&key("a")].outages, 1);
        // Two unanswered probes at the end of one window and two at the start of the next make
        // one outage (--outage-min 3) that neither window holds whole.
        let mut st = state(10);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..8).collect())]), 1_000.1);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (2..10).collect())]), 1_000.2);
        assert_eq!(st.series[&key("a")].outages, 1);
        // One unanswered probe on each side is plain loss.
        let mut st = state(10);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..9).collect())]), 1_000.1);
        fold(&mut st, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (1..10).collect())]), 1_000.2);
        assert_eq!(st.series[&key("a")].outages, 0);
    }

    #[test]
    fn a_restart_keeps_the_series_and_the_cap_refuses_new_ones() {
        let mut st = state(1);
        let t0 = 1_000_000 * MS;
        let o = window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..10).collect()), (2, "b", "10.0.0.1:6", vec![0])]);
        let changes = fold(&mut st, &o, 1_000.1);
        assert!(changes.contains(&Change::Appeared) && changes.contains(&Change::Refused));
        assert_eq!(st.targets["lan"].refused, 1);
        assert_eq!(st.series.len(), 1);
        // "a" restarts mid-window: a new id, same name and address.
        let o = window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..4).collect()), (3, "a", "10.0.0.1:7", (6..10).collect())]);
        assert_eq!(fold(&mut st, &o, 1_000.2), [Change::Restarted]);
        let s = &st.series[&key("a")];
        assert_eq!((s.restarts, s.probes, s.acks, s.lost.iter().sum::<u64>()), (1, 20, 18, 2));
        // The next window, under the new id only: no further restart.
        let o = window(t0, 10, &[(3, "a", "10.0.0.1:7", (0..10).collect())]);
        assert_eq!(fold(&mut st, &o, 1_000.3), []);
        // Under yet another id: a restart between windows.
        let o = window(t0, 10, &[(4, "a", "10.0.0.1:8", (0..10).collect())]);
        assert_eq!(fold(&mut st, &o, 1_000.4), [Change::Restarted]);
        assert_eq!(st.series[&key("a")].restarts, 2);
    }

    #[test]
    fn the_querier_state_says_what_the_watch_heard_and_folds_leave_it_alone() {
        use crate::querier::{Query, QueryVersion};
        const S: u64 = 1_000_000_000;
        let mut st = state(10);
        assert_eq!(st.targets["lan"].querier, QuerierState::NotWatched);
        let mut obs = QuerierObservation { start_unix_ns: 0, end_unix_ns: S, ..Default::default() };
        // Watching from the start, before any query or window.
        assert!(st.set_querier("lan", QuerierState::of(&obs)));
        assert_eq!(st.targets["lan"].querier, QuerierState::Watched { queriers: vec![], silent: false, refused: 0 });
        assert!(!st.set_querier("lan", QuerierState::of(&obs)), "nothing changed");
        let two_s = Some(Duration::from_secs(2));
        let q = Query::general("10.0.0.254", QueryVersion::IgmpV3, two_s, Duration::from_secs(1));
        obs.log.record(&q, 10 * S);
        obs.end_unix_ns = 11 * S;
        assert!(st.set_querier("lan", QuerierState::of(&obs)));
        let o = window(1_000_000 * MS, 10, &[]);
        fold(&mut st, &o, 1_000.0);
        let QuerierState::Watched { queriers, silent, .. } = &st.targets["lan"].querier else { panic!("watched") };
        assert_eq!((queriers.len(), queriers[0].interval, *silent), (1, Duration::from_secs(2), false));
        // 13 s without a query: past the announced 2 s + 10 s.
        obs.end_unix_ns = 23 * S;
        assert!(st.set_querier("lan", QuerierState::of(&obs)));
        assert!(matches!(st.targets["lan"].querier, QuerierState::Watched { silent: true, .. }));
    }

    /// Four groups, 12 probes a window (3 rounds): reached in the last window, and missed
    /// (group, window) pairs summed, per responder; the first window counts only the groups
    /// probed after its first answer; a silent window misses every group.
    #[test]
    fn groups_reached_in_the_last_window_and_missed_pairs_summed() {
        let g = |s: &str| s.parse::<IpAddr>().unwrap();
        let groups = [g("239.1.0.0"), g("239.1.0.1"), g("239.1.0.2"), g("239.1.0.3")];
        let mut st = State::new(Limits { max_series: 10, forget_s: 60.0, group_series: true }, ["lan".to_string()]);
        st.set_groups("lan", &groups);
        let t0 = 1_000_000 * MS;
        let all: Vec<u64> = (0..12).collect();
        let but = |skip: &[u64]| -> Vec<u64> { (0..12).filter(|k| !skip.contains(&(k % 4))).collect() };
        let at = |name: &str, addr: &str| SeriesKey { address: addr.parse().unwrap(), ..key(name) };
        let figures = |st: &State, k: &SeriesKey| {
            let s = &st.series[k];
            (s.groups_reached, s.groups_missed, s.reached_bits.clone())
        };
        let (a, b, c, d) = (at("a", "10.0.0.1"), at("b", "10.0.0.2"), at("c", "10.0.0.3"), at("d", "10.0.0.4"));
        let first = window_of(
            4,
            t0,
            12,
            &[
                (1, "a", "10.0.0.1:5", all.clone()),
                (2, "b", "10.0.0.2:5", but(&[2])),
                // Joins at probe 5 (group 1), and never gets group 0: missed once.
                (3, "c", "10.0.0.3:5", (5..12).filter(|k| k % 4 != 0).collect()),
                // Joins at the last probe (group 3): no other group was probed after it.
                (4, "d", "10.0.0.4:5", vec![11]),
            ],
        );
        fold(&mut st, &first, 1_000.1);
        assert_eq!(figures(&st, &a), (4, 0, vec![0b1111]));
        assert_eq!(figures(&st, &b), (3, 1, vec![0b1011]));
        assert_eq!(figures(&st, &c), (3, 1, vec![0b1110]));
        assert_eq!(figures(&st, &d), (1, 0, vec![0b1000]));
        // Then b misses groups 2 and 3, d answers everything, a and c are silent.
        let second = window_of(4, t0, 12, &[(2, "b", "10.0.0.2:5", but(&[2, 3])), (4, "d", "10.0.0.4:5", all)]);
        fold(&mut st, &second, 1_000.2);
        assert_eq!(figures(&st, &a), (0, 4, vec![0]));
        assert_eq!(figures(&st, &b), (2, 3, vec![0b0011]));
        assert_eq!(figures(&st, &c), (0, 5, vec![0]));
        assert_eq!(figures(&st, &d), (4, 0, vec![0b1111]));
        // A window cut after 2 probes probed groups 0 and 1 only: b misses none of them.
        let cut = window_of(4, t0, 2, &[(2, "b", "10.0.0.2:5", vec![0, 1])]);
        fold(&mut st, &cut, 1_000.3);
        assert_eq!(figures(&st, &b), (2, 3, vec![0b0011]));
        assert_eq!(figures(&st, &a), (0, 6, vec![0]), "silent: the 2 groups probed");
        // Without --groups, none of it.
        let mut one = state(10);
        fold(&mut one, &window(t0, 10, &[(1, "a", "10.0.0.1:5", (0..10).collect())]), 1_000.1);
        assert_eq!(figures(&one, &key("a")), (0, 0, vec![]));
        assert!(!one.targets["lan"].has_groups());
    }

    /// A mesh host's own responder (its id) answers its probes through multicast loop: it is
    /// left out; the peers are series as any responder, and one restarting keeps its series.
    #[test]
    fn a_mesh_host_leaves_its_own_responder_out_and_learns_its_peers() {
        let mut st = state(10);
        st.set_mesh("lan", "me", &["10.0.0.9".parse().unwrap()]);
        st.set_own_id("lan", 42);
        let t0 = 1_000_000 * MS;
        let all: Vec<u64> = (0..10).collect();
        let o = window(
            t0,
            10,
            &[
                (42, "me", "10.0.0.5:5", all.clone()),
                (1, "a", "10.0.0.1:5", all.clone()),
                (2, "b", "10.0.0.2:5", (0..10).filter(|k| k % 5 != 0).collect()),
            ],
        );
        assert_eq!(fold(&mut st, &o, 1_000.1), [Change::Appeared, Change::Appeared]);
        assert_eq!(st.series.len(), 2, "{:?}", st.series.keys());
        assert!(st.series.keys().all(|k| k.responder != "me"));
        assert_eq!(st.targets["lan"].responders, 2);
        let b = SeriesKey { address: "10.0.0.2".parse().unwrap(), ..key("b") };
        // Charged from its first ack (probe 1): 9 probes, probe 5 lost.
        assert_eq!((st.series[&b].probes, st.series[&b].lost.iter().sum::<u64>()), (9, 1));
        let m = st.targets["lan"].mesh.as_ref().unwrap();
        assert_eq!((m.source.as_str(), m.own_id, m.expected.len()), ("me", Some(42), 1));
        // b leaves: silent, then forgotten after --forget (60 s here); a stays.
        let o = window(t0, 10, &[(42, "me", "10.0.0.5:5", all.clone()), (1, "a", "10.0.0.1:5", all)]);
        assert_eq!(fold(&mut st, &o, 1_010.0), [Change::Silent]);
        assert!(st.series[&b].is_silent());
        assert_eq!(fold(&mut st, &o, 1_061.0), [Change::Forgotten]);
        assert_eq!(st.series.len(), 1);
    }

    /// A unicast run of `n` probes to `host`, acked by (id, name) for `seqs`.
    fn unicast_to(host: &str, start_ns: u64, n: u64, answer: Option<(u64, &str, Vec<u64>)>) -> crate::run::UnicastRun {
        let mut o = window(start_ns, n, &[]);
        if let Some((id, name, seqs)) = answer {
            o = window(start_ns, n, &[(id, name, &format!("{host}:5"), seqs)]);
        }
        crate::run::UnicastRun::new(host.parse().unwrap(), o.run)
    }

    /// A mesh peer that answers the group but none of this host's unicast probes gets a unicast
    /// series charged with every one of them, beside its clean multicast one; a peer left out
    /// of a window's unicast sample is not charged, and its unicast series stays while its
    /// multicast one does.
    #[test]
    fn a_mesh_peer_silent_by_unicast_only_is_unicast_loss() {
        let mut st = state(10);
        st.set_mesh("lan", "me", &[]);
        st.set_own_id("lan", 42);
        // Each window starts a second before it is folded.
        let at = |now_s: u64| (now_s - 1) * 1_000 * MS;
        let all: Vec<u64> = (0..10).collect();
        let both = |n: &'static str, a: &'static str, id: u64| (id, n, a, all.clone());
        let peers = [both("a", "10.0.0.1:5", 1), both("b", "10.0.0.2:5", 2)];
        // First window: multicast only (no peer known yet).
        assert_eq!(fold(&mut st, &window(at(1_000), 10, &peers), 1_000.1), [Change::Appeared, Change::Appeared]);
        // Then unicast to both: a answers, b does not.
        let mut o = window(at(1_010), 10, &peers);
        o.unicast = vec![
            unicast_to("10.0.0.1", at(1_010), 10, Some((1, "a", all.clone()))),
            unicast_to("10.0.0.2", at(1_010), 10, None),
        ];
        let changes = fold(&mut st, &o, 1_010.0);
        assert_eq!(changes, [Change::Appeared, Change::Silent], "a's unicast series appears, b's is silent");
        let k = |n: &str, a: &str, path| SeriesKey { address: a.parse().unwrap(), path, ..key(n) };
        let ub = &st.series[&k("b", "10.0.0.2", Path::Unicast)];
        assert_eq!((ub.probes, ub.acks, ub.lost), (10, 0, [0, 0, 10]));
        let mb = &st.series[&k("b", "10.0.0.2", Path::Multicast)];
        assert_eq!((mb.probes, mb.lost), (20, [0, 0, 0]), "multicast clean");
        let ua = &st.series[&k("a", "10.0.0.1", Path::Unicast)];
        assert_eq!((ua.probes, ua.acks), (10, 10));
        // A window whose sample leaves both out: neither unicast series is charged or forgotten,
        // even past --forget (60 s) since their last unicast ack, while multicast answers.
        fold(&mut st, &window(at(1_100), 10, &peers), 1_100.0);
        assert_eq!(st.series[&k("b", "10.0.0.2", Path::Unicast)].probes, 10);
        assert_eq!(st.series[&k("a", "10.0.0.1", Path::Unicast)].probes, 10);
        assert_eq!(st.series.len(), 4);
        // b leaves altogether: both its series go after --forget.
        let only_a = [both("a", "10.0.0.1:5", 1)];
        fold(&mut st, &window(at(1_110), 10, &only_a), 1_110.0);
        assert_eq!(st.series.len(), 4, "b silent, not forgotten yet");
        fold(&mut st, &window(at(1_170), 10, &only_a), 1_170.0);
        assert!(st.series.keys().all(|k| k.responder == "a"), "{:?}", st.series.keys());
        // A host that never answered the group is not made a unicast series.
        let mut o = window(at(1_180), 10, &only_a);
        o.unicast = vec![unicast_to("10.0.0.7", at(1_180), 10, None)];
        fold(&mut st, &o, 1_180.0);
        assert!(st.series.keys().all(|k| k.responder == "a"));
    }
}
