//! Per-run accounting on the prober side: which probes were sent, which acks came back, and what
//! that means per responder. No I/O and no clocks: the engines pass every timestamp in, so tests
//! can replay exact sequences.
//!
//! Denominators (the README repeats them):
//! - `sent` for every responder is every probe of the run, from the first to the last, in every
//!   output (summary, intervals, outages, probes). A responder that joined late is charged with
//!   the probes it missed; `first_ack_ms` shows when it appeared. A restarted responder (a new
//!   responder id with the same name and address, answering only after the old id stopped) is
//!   the same responder: one row, charged with the probes it missed while away.
//! - An ack is *on time* when its RTT is at most the timeout. Only on-time acks count as received
//!   and enter the RTT figures. A late ack is counted in `late` and its probe stays lost.
//! - `limited` = probes the responder received but chose not to answer (its rate limit), from its
//!   own counters; they are neither loss nor part of an outage.
//!   `lost = sent − received − limited = loss.forward + loss.ret + late + loss.unknown`, always:
//!   what the counters cannot attribute is unknown (see [`HostStats::attribute`]).

mod host;

/// Each group's latest join and leave delay, as responders' acks tell them (kept per host and
/// group: [`HostStats::observe_join_leave`]).
pub use crate::wire::{DelayClock, DelayFigure, GroupDelays};
pub(crate) use host::rtt_histogram;
pub(crate) use host::{Attribution, GroupAnswer, HostStats, IntervalAcc, Join, ResponderView, Restart, SeqBits};
pub use host::{GroupTally, IntervalRtt};

use serde::Serialize;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::wire::{Ack, AckExt, Arrival};

/// The limited counter of an ack, unwrapped.
fn ack_limited(ack: &Ack) -> u64 {
    ResponderView::of(ack).limited
}

/// Two responder ids that may be one responder across a restart: the same name (not empty) and
/// the same address (port aside: a restarted responder may answer from a new port).
fn same_responder(a: &HostStats, b: &HostStats) -> bool {
    a.addr.ip() == b.addr.ip() && names_agree(&a.name, &b.name)
}

/// Two names of one responder: equal, or one cut short by a small probe (the other is the whole
/// name, from a padded probe). Empty names never agree.
fn names_agree(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

/// Responder ids one run tracks (their ids, a restart's new id included). Each costs ~26.6 KiB
/// at the default 1 s timeout (results/many-responders.md; at most 32 KiB up to a 60 s timeout,
/// pinned by a unit test), plus what its losses and open intervals hold: at most 64 KiB of lost
/// runs ([`host::MAX_LOST_RANGES`]) and ~10 KiB per open interval. 1 024 of them take ~27 MiB
/// when they answer as real responders do, and at most ~120 MiB at 1 s intervals and timeout:
/// within 256 MiB with room for the rest of the prober. Without `--key` any host that sees the
/// probes can answer with made-up ids: ids beyond this are counted ([`Untracked`]), not tracked,
/// and named in the findings. A LAN with more responders than this needs a keyed run or several.
pub const MAX_RESPONDERS: usize = 1_024;

/// Ids beyond [`MAX_RESPONDERS`] counted one by one, to say how many there were (8 bytes
/// each, ~1 MiB in all); past it the count says "at least".
pub(crate) const MAX_UNTRACKED_IDS_COUNTED: usize = 65_536;

/// Acks of responder ids beyond [`MAX_RESPONDERS`]: counted, not tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Untracked {
    /// Acks they sent (each a first of its id or not).
    pub acks: u64,
    /// Distinct ids among them, counted up to [`MAX_UNTRACKED_IDS_COUNTED`].
    pub ids: u64,
    /// There were more ids than that: `ids` is a lower bound.
    pub ids_at_least: bool,
    /// The addresses they came from, the first few (at most 4).
    pub from: Vec<IpAddr>,
}

/// A wall-clock step smaller than this between a probe's send and its ack is not taken for one:
/// At most one probe in this many is padded because a responder's acks showed forward loss it
/// has not yet reported as its host's or not (see `HostStats::drops_wanted`): at most 1/32 more
/// bytes, and a report within 32 probes of a stall.
const DROPS_ASK_EVERY: u64 = 32;

/// NTP slews the clock by at most 500 ppm (0.5 ms in a second, longer than any timeout takes
/// to matter), while a step moves it at once, by a second or more as a rule.
pub(crate) const STEP_MIN_NS: i64 = 1_000_000;

/// How far the wall clock stepped between a probe's send and its ack, from how far it had moved
/// against the monotonic clock at each (`shift` = (CLOCK_REALTIME − CLOCK_MONOTONIC) now, less
/// the same at the run's start): 0 below [`STEP_MIN_NS`]. Subtracted from `rx − tx`, it gives the
/// RTT on a clock that does not step.
pub(crate) fn step_between(tx_shift_ns: i64, rx_shift_ns: i64) -> i64 {
    let d = rx_shift_ns.saturating_sub(tx_shift_ns);
    if d.unsigned_abs() >= STEP_MIN_NS.unsigned_abs() {
        d
    } else {
        0
    }
}

/// The arrival time to measure an ack by: the kernel's stamp (`kernel_ns`, CLOCK_REALTIME when
/// the datagram was queued), unless it cannot be on the clock this process reads (`now_ns`,
/// read as the datagram is handled): later than now, or older than `max_age_ns`. Then the clocks
/// disagree (the wall clock stepped between the arrival and its reading, or the process runs on
/// a shifted clock of its own, as under libfaketime, which the kernel's stamps ignore), and the
/// reading's time is the one on the probes' clock.
pub(crate) fn arrival_ns(kernel_ns: u64, now_ns: u64, max_age_ns: u64) -> u64 {
    const SLACK_NS: u64 = 1_000_000;
    if kernel_ns > now_ns.saturating_add(SLACK_NS) || now_ns.saturating_sub(kernel_ns) > max_age_ns {
        now_ns
    } else {
        kernel_ns
    }
}

/// Acks measured across a step of the wall clock (see [`step_between`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockSteps {
    /// Acks whose RTT was measured across a step, and corrected for it.
    pub corrected: u64,
    /// Acks that still came back before their probe left (a step between the ack's arrival and
    /// its reading): no RTT, their probes unanswered.
    pub excluded: u64,
    /// The largest step seen, in ns (its sign: forward or back).
    pub largest_ns: i64,
}

/// A probe whose ack window is still open.
#[derive(Debug)]
struct Outstanding {
    seq: u64,
    tx_ns: u64,
    /// How far the wall clock had moved against the monotonic one when it left (see
    /// [`step_between`]).
    shift_ns: i64,
    /// The `intervals.csv` interval the probe belongs to, by its scheduled time.
    interval: usize,
    /// Every on-time ack so far.
    acks: Vec<OnTime>,
}

#[derive(Debug, Clone, Copy)]
struct OnTime {
    host: u32,
    rtt_ns: u64,
    /// The id that answered and its limited counter (for outages).
    id: u64,
    limited: u64,
    /// Its `received` counter, when its counters are believed (per-group loss direction).
    received: Option<u64>,
}

/// What became of an ack handed to [`Run::on_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    OnTime,
    Late,
    Duplicate,
    /// Our session id, but a sequence number never sent or a timestamp we did not write.
    Bogus,
    /// Back before its probe left, even on a clock that does not step: no RTT (see
    /// [`ClockSteps::excluded`]).
    BeforeItsProbe,
    /// A responder id beyond [`MAX_RESPONDERS`]: counted, not tracked.
    Untracked,
    /// Another run's session id.
    Foreign,
}

/// One row of `intervals.csv`: one responder in one interval. An interval is complete about one
/// timeout after it ends; a responder has rows in every interval completed after it was first heard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntervalRow {
    pub interval_start_s: f64,
    pub responder: String,
    pub responder_id: String,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    /// The interval's on-time RTTs, for the interval histogram log (`rtt.hlog`); not a CSV
    /// column.
    #[serde(skip)]
    pub rtt: IntervalRtt,
}

/// One row of `probes.csv`: one probe and one responder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawRow {
    pub seq: u64,
    pub responder_id: String,
    pub responder: String,
    pub tx_unix_ns: u64,
    /// `ok` or `lost` (no on-time ack).
    pub status: &'static str,
    pub rtt_us: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub session: u64,
    /// Acks with a longer RTT are late.
    pub timeout_ns: u64,
    /// Width of one `intervals.csv` row.
    pub interval_ns: u64,
    /// Emit [`IntervalRow`]s as intervals close.
    pub intervals: bool,
    /// Plain replies (`--plain`) carry no counters: loss cannot be split by direction.
    pub plain: bool,
    /// Consecutive unanswered probes that make an outage (after a responder's first answer).
    pub outage_min: u64,
    /// Keep every probe's send time and emit [`RawRow`]s.
    pub raw: bool,
    /// Groups the probes went to in turn (probe `k` to group `k % groups`): with more than one,
    /// each host also keeps a [`GroupTally`] per group.
    pub groups: u32,
}

/// The accounting of one probe run.
#[derive(Debug)]
pub struct Run {
    cfg: RunConfig,
    start_ns: Option<u64>,
    sent: u64,
    window: VecDeque<Outstanding>,
    /// Probes `0..finalized` are closed: their acks are in, or late.
    finalized: u64,
    hosts: Vec<HostStats>,
    /// Responder id → (host index, segment index).
    by_id: HashMap<u64, (u32, u32)>,
    /// Hosts held pending (possible restarts).
    pending: usize,
    /// A new responder id answered, or one's acks showed forward loss after its latest drop
    /// report: the prober should send its next probe large enough for the ack extension and a
    /// whole name (see [`Run::take_name_wanted`]).
    name_wanted: bool,
    /// Probes sent when a responder's untold forward loss last asked for a padded probe.
    drops_asked_at: Option<u64>,
    /// Scheduled time of the first probe, ns since the run's start (0 with `record_send`).
    first_due_ns: Option<u64>,
    sent_per_interval: Vec<u64>,
    pub foreign_acks: u64,
    pub bogus_acks: u64,
    /// Intervals `0..intervals_closed` are complete and reported.
    intervals_closed: usize,
    interval_rows: Vec<IntervalRow>,
    /// Reused by `finalize_front`, so closing a probe allocates nothing.
    scratch: Vec<Option<OnTime>>,
    /// Send times of every probe, kept only for raw rows.
    tx_log: Vec<u64>,
    raw_rows: Vec<RawRow>,
    untracked: Untracked,
    untracked_ids: HashSet<u64>,
    pub clock_steps: ClockSteps,
    /// (Responder, group) tallies held, at most [`MAX_GROUP_TALLIES`].
    group_tallies: usize,
}

/// The most (responder, group) tallies a run holds (48 bytes each: 48 MiB): every responder of a
/// 1000-group run up to [`MAX_RESPONDERS`], 256 of a 4096-group one. Responders beyond it are
/// counted as usual, not per group.
pub const MAX_GROUP_TALLIES: usize = 1 << 20;

impl Run {
    pub fn new(cfg: RunConfig) -> Self {
        Run {
            cfg,
            start_ns: None,
            sent: 0,
            window: VecDeque::new(),
            finalized: 0,
            hosts: Vec::new(),
            by_id: HashMap::new(),
            first_due_ns: None,
            pending: 0,
            name_wanted: false,
            drops_asked_at: None,
            sent_per_interval: Vec::new(),
            foreign_acks: 0,
            bogus_acks: 0,
            intervals_closed: 0,
            interval_rows: Vec::new(),
            scratch: Vec::new(),
            tx_log: Vec::new(),
            raw_rows: Vec::new(),
            untracked: Untracked::default(),
            untracked_ids: HashSet::new(),
            clock_steps: ClockSteps::default(),
            group_tallies: 0,
        }
    }

    /// The acks of ids beyond [`MAX_RESPONDERS`]; `None` when there was none.
    pub(crate) fn untracked(&self) -> Option<&Untracked> {
        (self.untracked.acks > 0).then_some(&self.untracked)
    }

    /// Counts an ack of an id the run does not track.
    fn count_untracked(&mut self, id: u64, from: IpAddr) {
        let u = &mut self.untracked;
        u.acks += 1;
        if self.untracked_ids.len() < MAX_UNTRACKED_IDS_COUNTED {
            if self.untracked_ids.insert(id) {
                u.ids += 1;
            }
        } else if !self.untracked_ids.contains(&id) {
            u.ids_at_least = true;
        }
        if u.from.len() < 4 && !u.from.contains(&from) {
            u.from.push(from);
        }
    }

    pub(crate) fn config(&self) -> &RunConfig {
        &self.cfg
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn hosts(&self) -> &[HostStats] {
        &self.hosts
    }

    pub(crate) fn start_ns(&self) -> Option<u64> {
        self.start_ns
    }

    /// Records that probe number `sent()` is about to leave at `tx_ns`; returns its sequence number.
    /// Called before the send, so an ack can never arrive for a probe the run does not know. The
    /// probe's interval is taken from its send time; see [`Run::record_send_at`].
    pub fn record_send(&mut self, tx_ns: u64) -> u64 {
        self.record_send_now(tx_ns, 0)
    }

    /// As [`Run::record_send`], with how far the wall clock had moved against the monotonic one
    /// (see [`step_between`]): the probe's interval is taken from its send time less that.
    pub(crate) fn record_send_now(&mut self, tx_ns: u64, shift_ns: i64) -> u64 {
        let due = tx_ns.saturating_add_signed(-shift_ns).saturating_sub(*self.start_ns.get_or_insert(tx_ns));
        self.record_send_shifted(tx_ns, due, shift_ns)
    }

    /// As [`Run::record_send`], for a probe scheduled `due_ns` after the run's start: it belongs
    /// to interval `floor(due / width)`, so interval edges follow the schedule exactly, not the
    /// send jitter (at a fixed 100/s, 1 s intervals hold exactly 100 probes; with Poisson gaps,
    /// each probe falls where its scheduled time does).
    #[cfg(test)]
    pub(crate) fn record_send_at(&mut self, tx_ns: u64, due_ns: u64) -> u64 {
        self.record_send_shifted(tx_ns, due_ns, 0)
    }

    /// As [`Run::record_send_at`], with how far the wall clock had moved against the monotonic
    /// one when the probe left (see [`step_between`]).
    pub(crate) fn record_send_shifted(&mut self, tx_ns: u64, due_ns: u64, shift_ns: i64) -> u64 {
        let seq = self.sent;
        self.start_ns.get_or_insert(tx_ns);
        let first_due = *self.first_due_ns.get_or_insert(due_ns);
        let interval = (due_ns.saturating_sub(first_due) / self.cfg.interval_ns.max(1)) as usize;
        if self.sent_per_interval.len() <= interval {
            self.sent_per_interval.resize(interval + 1, 0);
        }
        self.sent_per_interval[interval] += 1;
        self.window.push_back(Outstanding { seq, tx_ns, shift_ns, interval, acks: Vec::new() });
        if self.cfg.raw {
            self.tx_log.push(tx_ns);
        }
        self.sent += 1;
        seq
    }

    /// Accounts for one decoded ack that arrived at `rx_ns` from `from`.
    pub fn on_ack(&mut self, ack: &Ack, from: SocketAddr, rx_ns: u64) -> AckOutcome {
        self.on_ack_shifted(ack, from, rx_ns, 0)
    }

    /// As [`Run::on_ack`], with how far the wall clock had moved against the monotonic one when
    /// the ack was read (see [`step_between`]): an RTT across a step is measured without it.
    pub(crate) fn on_ack_shifted(&mut self, ack: &Ack, from: SocketAddr, rx_ns: u64, shift_ns: i64) -> AckOutcome {
        if ack.session != self.cfg.session {
            self.foreign_acks += 1;
            return AckOutcome::Foreign;
        }
        if ack.seq >= self.sent {
            self.bogus_acks += 1;
            return AckOutcome::Bogus;
        }
        // Inside the window we trust our own record of the send time, not the echo.
        let in_window = ack.seq >= self.finalized;
        let (tx_ns, step) = if in_window {
            let probe = &self.window[(ack.seq - self.finalized) as usize];
            if probe.tx_ns != ack.tx_ns {
                self.bogus_acks += 1;
                return AckOutcome::Bogus;
            }
            (probe.tx_ns, step_between(probe.shift_ns, shift_ns))
        } else {
            (ack.tx_ns, 0)
        };
        // Both times on the send's side of a step: the wall clock's move is taken out.
        let rx_ns = rx_ns.saturating_add_signed(-step);
        if step != 0 {
            let c = &mut self.clock_steps;
            c.corrected += 1;
            if step.unsigned_abs() > c.largest_ns.unsigned_abs() {
                c.largest_ns = step;
            }
        }
        if in_window && rx_ns < tx_ns {
            // Not an RTT of 0: the ack says nothing of the network.
            self.clock_steps.excluded += 1;
            return AckOutcome::BeforeItsProbe;
        }
        let Some((idx, seg)) = self.host_of(ack, from) else {
            self.count_untracked(ack.responder, from.ip());
            return AckOutcome::Untracked;
        };
        let start = self.start_ns.unwrap_or(tx_ns);
        let host = &mut self.hosts[idx as usize];
        if let Some(at) = &mut host.pending {
            *at = (*at).min(ack.seq);
        }
        let consistent = host.observe(seg, ack, from, !self.cfg.plain);
        // Loss the responder has not yet said was its host's: ask it with the next probe, at
        // most once in DROPS_ASK_EVERY probes (a responder that never gets the padded probe, in
        // one group of several, must not have most probes padded).
        let may_ask = self.drops_asked_at.is_none_or(|at| self.sent >= at + DROPS_ASK_EVERY);
        if consistent && may_ask && host.drops_wanted(seg, ack.seq) {
            self.name_wanted = true;
            self.drops_asked_at = Some(self.sent);
        }
        let rtt_ns = rx_ns.saturating_sub(tx_ns);
        if let (None, Some(AckExt { join_delay_ns: Some(delay), member_ns: Some(member), .. })) = (host.join, ack.ext) {
            // The network's part of the RTT, at most the timeout: a late or stalled ack must not
            // make an old member look like one that joined during the run.
            let net_ns = rtt_ns.saturating_sub(ack.dwell_ns as u64).min(self.cfg.timeout_ns);
            host.join = Some(Join::from_ext(delay, member, tx_ns.saturating_sub(start), net_ns));
        }
        if let Some(AckExt { join_leave: Some(jl), .. }) = ack.ext {
            let groups = self.cfg.groups.max(1) as usize;
            host.observe_join_leave((ack.seq % groups as u64) as usize, groups, jl);
        }
        // A second copy of an ack is a duplicate, whether the first came on time or late.
        if !host.acked.insert(ack.seq) {
            host.record_duplicate();
            return AckOutcome::Duplicate;
        }
        if !in_window || rtt_ns > self.cfg.timeout_ns {
            host.record_late(seg);
            return AckOutcome::Late;
        }
        // At very high rates the window can hold more probes than `acked` spans: only then can
        // a copy get past it, and only then is the probe's own list worth a scan.
        let beyond_span = self.window.len() as u64 > SeqBits::SPAN;
        let probe = &mut self.window[(ack.seq - self.finalized) as usize];
        if beyond_span && probe.acks.iter().any(|a| a.host == idx) {
            host.record_duplicate();
            return AckOutcome::Duplicate;
        }
        // An inconsistent ack still answers its probe; only its counters are not believed.
        let limited = match (consistent, host.segments[seg].newest) {
            (true, _) => ack_limited(ack),
            (false, Some(v)) => v.limited,
            (false, None) => 0,
        };
        let received = (consistent && !self.cfg.plain).then(|| ResponderView::of(ack).received);
        probe.acks.push(OnTime { host: idx, rtt_ns, id: ack.responder, limited, received });
        let interval = self.cfg.intervals.then_some(probe.interval);
        // Since the run's start on a clock that does not step: the arrival less the wall
        // clock's whole move since then.
        let since_start = rx_ns.saturating_add_signed(step).saturating_add_signed(-shift_ns).saturating_sub(start);
        host.record_on_time(seg, ack.seq, rtt_ns, ack.dwell_ns as u64, since_start, interval);
        AckOutcome::OnTime
    }

    /// Whether a new responder id answered since the last call: the prober then pads its next
    /// probe when `--size` is too small for a whole name, so that the name arrives before the
    /// id's first probe closes and a restart can be recognized (see `host_of`). Also when a
    /// responder's acks showed forward loss it has not yet said was its host's
    /// (`HostStats::drops_wanted`): the padded probe's ack tells it.
    pub(crate) fn take_name_wanted(&mut self) -> bool {
        std::mem::take(&mut self.name_wanted)
    }

    /// The (host, segment) of an ack's responder id, creating it on its first ack. A new id whose
    /// name and address an earlier responder has may be that responder restarted: it is held
    /// pending until its first acked probe closes, when we know whether the other still answers.
    /// So is a new id without a name (yet) at the address of a named one: its name may arrive
    /// before then (see [`Run::take_name_wanted`]).
    ///
    /// `None` for a new id beyond [`MAX_RESPONDERS`]: it is not tracked.
    fn host_of(&mut self, ack: &Ack, from: SocketAddr) -> Option<(u32, usize)> {
        if let Some(&(h, s)) = self.by_id.get(&ack.responder) {
            return Some((h, s as usize));
        }
        if self.by_id.len() >= MAX_RESPONDERS {
            return None;
        }
        let mut host = HostStats::new(ack, from, self.cfg.timeout_ns);
        // Its name may be cut short, or missing, in the acks to small probes: ask for it whole.
        self.name_wanted |= !self.cfg.plain;
        let unnamed = host.name.is_empty();
        let maybe_restart = |h: &HostStats| {
            same_responder(h, &host) || (unnamed && !h.name.is_empty() && h.addr.ip() == host.addr.ip())
        };
        if !self.cfg.plain && self.hosts.iter().any(maybe_restart) {
            host.pending = Some(ack.seq);
            self.pending += 1;
        }
        let i = self.hosts.len() as u32;
        self.hosts.push(host);
        self.by_id.insert(ack.responder, (i, 0));
        Some((i, 0))
    }

    /// Settles pending ids whose first acked probe is closing (`upto` = that probe's number, or
    /// `u64::MAX` at the end): a restart when an earlier responder with its name and address
    /// acked nothing from that probe on, else a responder of its own.
    fn resolve_pending(&mut self, upto: u64) {
        if self.pending == 0 {
            return;
        }
        while let Some(b) = self.hosts.iter().position(|h| h.pending.is_some_and(|at| at <= upto)) {
            let first = self.hosts[b].segments[0].first_seq;
            let target = (0..self.hosts.len())
                .filter(|&a| {
                    a != b && self.hosts[a].pending.is_none() && same_responder(&self.hosts[a], &self.hosts[b])
                })
                .filter(|&a| self.hosts[a].last_acked_seq() < first)
                .max_by_key(|&a| self.hosts[a].last_acked_seq());
            self.pending -= 1;
            let Some(a) = target else {
                self.hosts[b].pending = None;
                continue;
            };
            let new = self.hosts.remove(b);
            let a = if a > b { a - 1 } else { a };
            let seg = self.hosts[a].segments.len() as u32;
            let moved = b as u32;
            let remap = |h: u32| {
                if h == moved {
                    a as u32
                } else if h > moved {
                    h - 1
                } else {
                    h
                }
            };
            for v in self.by_id.values_mut() {
                *v = if v.0 == moved { (a as u32, seg) } else { (remap(v.0), v.1) };
            }
            for probe in &mut self.window {
                for ack in &mut probe.acks {
                    ack.host = remap(ack.host);
                }
            }
            self.hosts[a].absorb(new);
        }
    }

    /// Closes every probe sent more than `retain_ns` before `now_ns`. The engines retain probes a
    /// little longer than the timeout so that acks still queued in the socket are judged by their
    /// timestamps, not by when they were read.
    pub fn finalize_older_than(&mut self, now_ns: u64, retain_ns: u64) {
        self.finalize_older_than_shifted(now_ns, 0, retain_ns);
    }

    /// As [`Run::finalize_older_than`], with how far the wall clock had moved against the
    /// monotonic one at `now_ns` (see [`step_between`]): a probe's age is taken on a clock that
    /// does not step. Otherwise a step forward would close at once every probe whose ack is still
    /// queued (counted late), and a step back would keep probes open for as long as it stepped.
    pub(crate) fn finalize_older_than_shifted(&mut self, now_ns: u64, shift_ns: i64, retain_ns: u64) {
        while let Some(front) = self.window.front() {
            let tx_now = front.tx_ns.saturating_add_signed(step_between(front.shift_ns, shift_ns));
            if now_ns.saturating_sub(tx_now) <= retain_ns {
                break;
            }
            self.finalize_front();
        }
        self.close_intervals();
    }

    /// Closes every probe: the run is over.
    pub(crate) fn finalize_all(&mut self) {
        while !self.window.is_empty() {
            self.finalize_front();
        }
        self.resolve_pending(u64::MAX);
        let sent = self.sent;
        for host in &mut self.hosts {
            let tail = if self.cfg.plain { 0 } else { host.attribute(sent).limited_tail };
            host.end_outages(tail, self.cfg.outage_min);
        }
        self.close_intervals();
        if self.cfg.intervals {
            self.backfill_interval_rows();
        }
        if self.cfg.raw {
            self.backfill_raw_rows();
        }
    }

    fn finalize_front(&mut self) {
        if let Some(front) = self.window.front() {
            self.resolve_pending(front.seq);
        }
        let Some(probe) = self.window.pop_front() else { return };
        // The answer of each host to this probe, if it gave one: one pass over the acks, one over
        // the hosts, whatever their numbers.
        let mut answers = std::mem::take(&mut self.scratch);
        answers.clear();
        answers.resize(self.hosts.len(), None);
        for a in &probe.acks {
            self.hosts[a.host as usize].received_finalized += 1;
            answers[a.host as usize] = Some(*a);
        }
        for (host, answer) in self.hosts.iter_mut().zip(&answers) {
            if host.pending.is_some() {
                continue;
            }
            // Outages are timed on a clock that does not step: the send time less the wall
            // clock's move since the run started.
            let tx_ns = probe.tx_ns.saturating_add_signed(-probe.shift_ns);
            host.on_finalized(probe.seq, tx_ns, answer.map(|a| (a.id, a.limited)), self.cfg.outage_min);
            // Per-group tallies within a budget, so that responders answering with made-up ids
            // cannot make a --groups run hold groups × MAX_RESPONDERS of them.
            let groups = self.cfg.groups as usize;
            let tracked = !host.groups.is_empty() || self.group_tallies + groups <= MAX_GROUP_TALLIES;
            if groups > 1 && tracked {
                let had = !host.groups.is_empty();
                let answer = answer.map(|a| GroupAnswer {
                    rtt_ns: a.rtt_ns,
                    id: a.id,
                    received: a.received,
                    limited: a.limited,
                });
                host.tally_group(probe.seq, (probe.seq % groups as u64) as usize, groups, answer);
                if !had && !host.groups.is_empty() {
                    self.group_tallies += groups;
                }
            }
            if self.cfg.raw {
                host.first_row_seq.get_or_insert(probe.seq);
                self.raw_rows.push(raw_row(probe.seq, host, probe.tx_ns, answer.map(|a| a.rtt_ns)));
            }
        }
        self.finalized = probe.seq + 1;
        self.scratch = answers;
    }

    fn close_intervals(&mut self) {
        if !self.cfg.intervals {
            return;
        }
        // An interval is complete once its last probe is finalized, i.e. the next unfinalized
        // probe belongs to a later interval (or there is none).
        let open_from = self.window.front().map_or(usize::MAX, |p| p.interval);
        let upto = open_from.min(self.sent_per_interval.len());
        for i in self.intervals_closed..upto {
            let first = self.interval_rows.len();
            for h in self.hosts.iter_mut().filter(|h| h.pending.is_none()) {
                let acc = h.take_interval(i);
                self.interval_rows.push(interval_row(i, self.sent_per_interval[i], self.cfg.interval_ns, h, acc));
            }
            self.interval_rows[first..]
                .sort_by(|a, b| (&a.responder, &a.responder_id).cmp(&(&b.responder, &b.responder_id)));
        }
        self.intervals_closed = self.intervals_closed.max(upto);
    }

    /// Rows for intervals that closed before a responder was first heard: nothing received.
    fn backfill_interval_rows(&mut self) {
        for h in &mut self.hosts {
            let upto = h.first_interval_row.unwrap_or(self.intervals_closed);
            for i in 0..upto {
                let row = interval_row(i, self.sent_per_interval[i], self.cfg.interval_ns, h, IntervalAcc::default());
                self.interval_rows.push(row);
            }
            h.first_interval_row = Some(0);
        }
    }

    /// Takes the interval rows completed so far (only with `intervals`).
    pub(crate) fn drain_interval_rows(&mut self) -> Vec<IntervalRow> {
        std::mem::take(&mut self.interval_rows)
    }

    /// Rows for probes that were finalized before a responder first answered: all lost.
    fn backfill_raw_rows(&mut self) {
        for host in &mut self.hosts {
            let upto = host.first_row_seq.unwrap_or(self.finalized);
            for seq in 0..upto {
                self.raw_rows.push(raw_row(seq, host, self.tx_log[seq as usize], None));
            }
            host.first_row_seq = Some(0);
        }
    }

    /// The newest probe sent, as (seq, tx_ns): what a plain reply is taken to answer.
    pub(crate) fn newest_probe(&self) -> Option<(u64, u64)> {
        self.window.back().map(|p| (p.seq, p.tx_ns))
    }

    /// When the oldest probe still open was sent (ns, CLOCK_REALTIME as it reads now, `shift_ns`
    /// being its move against the monotonic clock): the next one
    /// [`finalize_older_than_shifted`](Self::finalize_older_than_shifted) closes, so the receiver
    /// knows when to wake for it.
    pub(crate) fn oldest_open_tx_ns(&self, shift_ns: i64) -> Option<u64> {
        self.window.front().map(|p| p.tx_ns.saturating_add_signed(step_between(p.shift_ns, shift_ns)))
    }

    /// Takes the raw rows produced so far (only with `raw`).
    pub(crate) fn drain_raw_rows(&mut self) -> Vec<RawRow> {
        std::mem::take(&mut self.raw_rows)
    }

    /// Probes closed so far.
    pub fn finalized(&self) -> u64 {
        self.finalized
    }

    /// The worst loss, in percent, among responders over the probes closed so far.
    pub(crate) fn worst_loss_pct(&self) -> Option<f64> {
        if self.finalized == 0 {
            return None;
        }
        self.hosts
            .iter()
            .map(|h| 100.0 * (self.finalized - h.received_finalized.min(self.finalized)) as f64 / self.finalized as f64)
            .max_by(f64::total_cmp)
    }

    /// Per-interval probe counts.
    #[cfg(test)]
    pub(crate) fn sent_per_interval(&self) -> &[u64] {
        &self.sent_per_interval
    }

    /// Names that responders at different addresses share, with those addresses: they cannot be
    /// told apart by name (and a restart cannot be recognised across addresses).
    pub(crate) fn name_clashes(&self) -> Vec<(String, Vec<IpAddr>)> {
        let mut by_name: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for h in self.hosts.iter().filter(|h| !h.name.is_empty()) {
            by_name.entry(&h.name).or_default().insert(h.addr.ip());
        }
        by_name
            .into_iter()
            .filter(|(_, addrs)| addrs.len() > 1)
            .map(|(name, addrs)| (name.to_owned(), addrs.into_iter().collect()))
            .collect()
    }

    /// Every restart seen, per responder: (its index in [`Run::hosts`], the restart).
    pub(crate) fn restarts(&self) -> impl Iterator<Item = (usize, &Restart)> {
        self.hosts.iter().enumerate().flat_map(|(i, h)| h.restarts.iter().map(move |r| (i, r)))
    }

    /// Final figures for one responder. Call after [`Run::finalize_all`].
    pub(crate) fn summary(&self, host: &HostStats) -> Figures {
        Figures::new(host, self.sent, self.cfg.plain)
    }
}

fn interval_row(i: usize, sent: u64, width_ns: u64, h: &HostStats, acc: IntervalAcc) -> IntervalRow {
    let rtt = acc.rtt();
    let (received, p50, max) = acc.summarize();
    let width_s = width_ns as f64 / 1e9;
    IntervalRow {
        interval_start_s: (i as f64 * width_s * 1000.0).round() / 1000.0,
        responder: h.name.clone(),
        responder_id: format_id(h.responder_id),
        sent,
        received: received as u64,
        lost: sent.saturating_sub(received as u64),
        rtt_p50_us: p50.map(|v| ns_to_us(v as u64)),
        rtt_max_us: max.map(|v| ns_to_us(v as u64)),
        rtt,
    }
}

fn raw_row(seq: u64, host: &HostStats, tx_ns: u64, rtt: Option<u64>) -> RawRow {
    RawRow {
        seq,
        responder_id: format_id(host.responder_id),
        responder: host.name.clone(),
        tx_unix_ns: tx_ns,
        status: if rtt.is_some() { "ok" } else { "lost" },
        rtt_us: rtt.map(ns_to_us),
    }
}

/// Responder ids print as 16 hex digits: short enough to read, stable across reports.
pub(crate) fn format_id(id: u64) -> String {
    format!("{id:016x}")
}

pub(crate) fn ns_to_us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

/// The final figures of one responder on one path: plain numbers, no formatting. The findings
/// layer gives them an identity (path, address, verdict) and the outputs render them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub sent: u64,
    pub received: u64,
    /// `sent − received − limited` = `loss.forward + loss.ret + late + loss.unknown`, always.
    pub lost: u64,
    /// Loss counted from this responder's first on-time ack on: a join's first lost probes are
    /// tolerated, any loss after them is not. `sent_after_first` is its denominator.
    pub lost_after_first: u64,
    pub sent_after_first: u64,
    /// How `lost` divides by direction (`late` aside).
    pub loss: LossSplit,
    /// Probes the responder rate-limited (from its counters, plus `limited_tail`): not loss.
    pub limited: u64,
    /// Of `limited`: probes after the newest ack taken as rate-limited, because the responder
    /// rate-limits and was seen to limit runs at least that long entirely.
    pub limited_tail: u64,
    /// Of `unknown_lost`: probes unanswered between the ids of a restart that the new id did not
    /// receive (the responder was away).
    pub restart_gap_lost: u64,
    /// Restarts of this responder (new ids with the same name and address).
    pub restarts: u64,
    /// Acks whose counters contradict earlier ones of the same id (flagged, counters unused).
    pub inconsistent_acks: u64,
    /// On-time acks that claimed a dwell longer than their RTT: kept out of the net RTT.
    pub dwell_over_rtt: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    /// RTT figures of the on-time acks; `None` when there was none.
    pub rtt: Option<RttFigures>,
    /// When the first on-time ack arrived, after the first probe left.
    pub first_ack_ns: Option<u64>,
    /// The responder's join delay (RFC 2432), when it joined while this run was probing.
    pub join_delay_ns: Option<u64>,
    /// What its host's tap counted of this prober's probes reaching its interface but not its
    /// socket (all paths together: the count is per prober address), as (first, largest) value
    /// reported: the difference is what happened during this run.
    pub filtered_at_host: Option<(u64, u64)>,
    /// The group its responder said it serves (acks to unicast probes; see `wire::AckExt`).
    pub served_group: Option<IpAddr>,
    /// The multicast probes from this prober's address its responder said reached its socket,
    /// (first, largest) value reported: the difference is what came during this run.
    pub multicast_heard: Option<(u64, u64)>,
    /// Arrival TTL of the newest ack (0 when unknown).
    pub ttl: u8,
    pub arrival: Arrival,
    /// Outages: stretches of at least `outage_min` consecutive unanswered probes after the first
    /// answer, and the longest one's length.
    pub outages: u64,
    pub longest_outage_probes: u64,
    /// First and last probe acked on time.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// With `--groups`: (groups never answered on, groups probed).
    pub groups_missing: Option<(u64, u64)>,
}

/// How a path's lost probes divide by where they were lost: the one loss breakdown every row
/// type reads (the table, `summary.csv`, the JSON, mesh, max-rate, serve's series, report.html);
/// the CSV rows spell it out as flat columns because CSV has no nesting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossSplit {
    /// Probes that never reached the responder (its counters say it did not receive them).
    pub forward: u64,
    /// Of `forward`: probes the responder's own host dropped, its socket buffer full
    /// (SO_RXQ_OVFL, which its acks report); the rest of the forward loss is the network's.
    /// `None` when the responder did not report (older than the report, or no ack carried it).
    /// Its drops of other traffic on the same socket cannot be told apart, so the count is
    /// capped at `forward`.
    pub host_drops: Option<u64>,
    /// Of `forward`, when `host_drops` is told: probes lost after the responder's latest report
    /// of its drops (only some acks carry it), which its host or the network lost: it has not
    /// said. Neither part claims them: never blame the network for what may be the host.
    pub unreported: u64,
    /// Probes the responder received whose acks never came back.
    pub ret: u64,
    /// Lost probes no counter attributes: after the newest ack, between a restart's ids
    /// (`Figures::restart_gap_lost`), and whatever inconsistent counters leave over.
    pub unknown: u64,
}

impl LossSplit {
    /// The forward loss that was the network's, when the responder said what its host dropped:
    /// neither its drops nor the loss after its latest report.
    pub fn network_forward(&self) -> Option<u64> {
        self.host_drops.map(|h| self.forward.saturating_sub(h).saturating_sub(self.unreported))
    }

    /// What its host dropped, 0 when it did not say.
    pub fn host_drops_or_zero(&self) -> u64 {
        self.host_drops.unwrap_or(0).min(self.forward)
    }

    /// The split with `n` fewer forward losses (a join's first probes are not loss), the host's
    /// drops and the unreported capped to what is left.
    pub fn less_forward(&self, n: u64) -> Self {
        LossSplit::capped(self.forward.saturating_sub(n), self.host_drops, self.unreported, self.ret, self.unknown)
    }

    /// A split of `forward` whose parts never exceed it: the unreported first (it is counted,
    /// not estimated), then the host's drops.
    pub fn capped(forward: u64, host_drops: Option<u64>, unreported: u64, ret: u64, unknown: u64) -> Self {
        let unreported = if host_drops.is_some() { unreported.min(forward) } else { 0 };
        let host_drops = host_drops.map(|d| d.min(forward - unreported));
        LossSplit { forward, host_drops, unreported, ret, unknown }
    }
}

/// RTT statistics in nanoseconds (means and deviations unrounded).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttFigures {
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub stddev_ns: f64,
    /// The RTT less the responder's dwell (time between its receive and send timestamps), over
    /// the acks whose dwell was not longer than their RTT; `None` when there was none.
    pub net_p50_ns: Option<u64>,
    pub net_mean_ns: Option<f64>,
    /// RFC 3550 interarrival jitter over the on-time acks, in arrival order.
    pub jitter_ns: f64,
}

impl Figures {
    fn new(h: &HostStats, sent: u64, plain: bool) -> Self {
        let unanswered = sent.saturating_sub(h.received);
        let attr = if plain { Attribution::default() } else { h.attribute(sent) };
        // Probes the responder chose not to answer (rate limit) are not network loss. A probe
        // with a late ack was answered, so the responder's claims cannot cover it.
        let limited = (attr.limited + attr.limited_tail).min(unanswered.saturating_sub(h.late));
        let limited_tail = attr.limited_tail.min(limited);
        let lost = unanswered - limited;
        // Attribute in order of certainty; what is left over is unknown, so the parts always add
        // up to `lost`, whatever the counters say.
        let mut budget = lost - h.late.min(lost);
        let uncovered = attr.uncovered.saturating_sub(limited_tail).min(budget);
        budget -= uncovered;
        let forward = attr.forward.min(budget);
        budget -= forward;
        let ret = attr.ret.min(budget);
        budget -= ret;
        let unknown = uncovered + budget;
        let rtt = (!h.rtt.is_empty()).then(|| {
            // Exact, not read back from the histogram's buckets; the percentiles (within 1/128 of
            // the truth) are kept inside them, so no p99 ever reads above the max.
            let min_ns = h.rtt_min_ns.unwrap_or_else(|| h.rtt.min());
            let max_ns = h.rtt_max_ns.unwrap_or_else(|| h.rtt.max()).max(min_ns);
            let q = |p: f64| h.rtt.value_at_quantile(p).clamp(min_ns, max_ns);
            RttFigures {
                min_ns,
                mean_ns: h.rtt.mean(),
                p50_ns: q(0.50),
                p90_ns: q(0.90),
                p99_ns: q(0.99),
                p999_ns: q(0.999),
                max_ns,
                stddev_ns: h.rtt.stdev(),
                net_p50_ns: (!h.net_rtt.is_empty()).then(|| h.net_rtt.value_at_quantile(0.5)),
                net_mean_ns: (!h.net_rtt.is_empty()).then(|| h.net_rtt.mean()),
                jitter_ns: h.jitter_ns(),
            }
        });
        let before_first = h.min_seq.unwrap_or(0).min(sent);
        Figures {
            sent,
            received: h.received,
            lost,
            lost_after_first: lost.saturating_sub(before_first),
            sent_after_first: sent - before_first,
            loss: LossSplit::capped(forward, attr.host_drops, attr.unreported, ret, unknown),
            limited,
            limited_tail,
            restart_gap_lost: attr.away.min(unknown),
            restarts: h.restarts.len() as u64,
            inconsistent_acks: h.inconsistent_acks,
            dwell_over_rtt: h.dwell_over_rtt,
            duplicates: h.duplicates,
            reordered: h.reordered,
            late: h.late,
            rtt,
            first_ack_ns: h.first_ack_ns,
            join_delay_ns: h.join.filter(|j| j.during_run).map(|j| j.delay_ns),
            filtered_at_host: h.filtered,
            served_group: h.served_group,
            multicast_heard: h.heard,
            ttl: h.ttl,
            arrival: h.arrival,
            outages: h.outages.len() as u64 + h.outages_dropped,
            longest_outage_probes: h.outages.iter().map(|o| o.probes_lost).max().unwrap_or(0),
            first_seq: h.min_seq,
            last_seq: h.max_seq,
            groups_missing: (!h.groups.is_empty())
                .then(|| (h.groups.iter().filter(|t| !t.reached()).count() as u64, h.groups.len() as u64)),
        }
    }

    /// The figures of a path that never answered: every probe lost, for unknown reasons.
    pub(crate) fn silent(sent: u64) -> Self {
        Figures {
            sent,
            lost: sent,
            loss: LossSplit { unknown: sent, ..LossSplit::default() },
            lost_after_first: sent,
            sent_after_first: sent,
            ..Figures::default()
        }
    }

    /// Loss in percent of the probes sent (0 when none were sent).
    pub(crate) fn loss_pct(&self) -> f64 {
        pct(self.lost, self.sent)
    }

    /// Loss in percent counted from the first on-time ack on.
    pub(crate) fn loss_after_first_pct(&self) -> f64 {
        pct(self.lost_after_first, self.sent_after_first)
    }
}

/// A percentage, unrounded (0 of nothing is 0).
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests;
