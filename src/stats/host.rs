//! Accounting for one responder, as one probe run sees it: RTT histograms, jitter, reordering,
//! duplicates and the responder's own counters. No I/O, no clocks: every time is passed in.

use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::wire::{unwrap_counter, Ack, Arrival};

/// Per-interval accumulator. It lives only while its interval is open (its probes are still
/// inside the ack timeout); closing it reduces the samples to three numbers. Its RTTs are kept
/// one by one up to [`MAX_INTERVAL_SAMPLES`] (4 bytes each), then in a histogram sized to the
/// timeout (10 KiB at 1 s, the cost of 2 560 samples): an open interval of one responder holds
/// at most ~10 KiB whatever the probe rate (at 10 000 probes/s it held 40-64 KiB before).
#[derive(Debug, Default, Clone)]
pub(crate) struct IntervalAcc {
    pub received: u32,
    samples: Vec<u32>,
    /// Every sample once they outnumber [`MAX_INTERVAL_SAMPLES`]; `samples` is then empty.
    hist: Option<Box<Histogram<u32>>>,
    max: u32,
}

/// RTT samples an open interval keeps one by one before it keeps them in a histogram.
pub(crate) const MAX_INTERVAL_SAMPLES: usize = 2_048;

/// The RTTs of one closed interval, for its histogram in `rtt.hlog`.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalRtt {
    /// Every sample in ns, in arrival order.
    Samples(Vec<u32>),
    /// More than [`MAX_INTERVAL_SAMPLES`]: their histogram, with the precision and lowest
    /// value of the per-responder ones.
    Histogram(Box<Histogram<u32>>),
}

impl Default for IntervalRtt {
    fn default() -> Self {
        IntervalRtt::Samples(Vec::new())
    }
}

impl IntervalAcc {
    /// Takes in one on-time RTT; `high_ns` is the top of the run's RTT range (its timeout).
    fn push(&mut self, rtt_ns: u32, high_ns: u64) {
        self.received += 1;
        self.max = self.max.max(rtt_ns);
        if let Some(h) = &mut self.hist {
            record(h, u64::from(rtt_ns));
            return;
        }
        if self.samples.len() < MAX_INTERVAL_SAMPLES {
            self.samples.push(rtt_ns);
            return;
        }
        let mut h = Box::new(rtt_histogram(high_ns));
        for &v in self.samples.iter().chain([&rtt_ns]) {
            record(&mut h, u64::from(v));
        }
        self.samples = Vec::new();
        self.hist = Some(h);
    }

    /// Adds another accumulator of the same interval (a restarted responder's new id).
    fn absorb(&mut self, other: IntervalAcc, high_ns: u64) {
        let received = self.received + other.received;
        match other.hist {
            Some(mut h) => {
                // Theirs is a histogram already: mine go into it.
                for &v in &self.samples {
                    record(&mut h, u64::from(v));
                }
                if let Some(mine) = self.hist.take() {
                    h.add(&*mine).expect("histograms of one run have one range");
                }
                self.samples = Vec::new();
                self.hist = Some(h);
            }
            None => other.samples.iter().for_each(|&v| self.push(v, high_ns)),
        }
        self.received = received;
        self.max = self.max.max(other.max);
    }

    /// The interval's RTTs, for its histogram line.
    pub(crate) fn rtt(&self) -> IntervalRtt {
        match &self.hist {
            Some(h) => IntervalRtt::Histogram(h.clone()),
            None => IntervalRtt::Samples(self.samples.clone()),
        }
    }

    /// (received, median RTT, maximum RTT) in ns. Median by nearest rank: the smallest sample with
    /// at least half the samples at or below it (from the histogram, within 1/128, past
    /// [`MAX_INTERVAL_SAMPLES`]); the maximum is exact.
    pub(crate) fn summarize(mut self) -> (u32, Option<u32>, Option<u32>) {
        if let Some(h) = &self.hist {
            let p50 = (h.value_at_quantile(0.5).min(u64::from(self.max))) as u32;
            return (self.received, Some(p50), Some(self.max));
        }
        self.samples.sort_unstable();
        let rank = self.samples.len().div_ceil(2);
        let p50 = rank.checked_sub(1).map(|r| self.samples[r]);
        (self.received, p50, self.samples.last().copied())
    }

    #[cfg(test)]
    fn footprint_bytes(&self) -> usize {
        self.samples.capacity() * 4 + self.hist.as_ref().map_or(0, |h| h.distinct_values() * 4)
    }
}

/// The sequence numbers acked by one responder among the newest [`SeqBits::SPAN`], 1 bit each:
/// tells a copy of an ack from a first one even after its probe was closed (2 KiB per responder).
#[derive(Debug, Clone)]
pub struct SeqBits {
    words: Vec<u64>,
    /// Lowest sequence number covered.
    base: u64,
}

impl SeqBits {
    pub(crate) const SPAN: u64 = 16_384;

    pub(crate) fn new() -> Self {
        SeqBits { words: vec![0; (Self::SPAN / 64) as usize], base: 0 }
    }

    /// Marks `seq`; `false` when it was marked already. Numbers older than the span count as new.
    pub(crate) fn insert(&mut self, seq: u64) -> bool {
        if seq < self.base {
            return true;
        }
        if seq >= self.base + Self::SPAN {
            // Slide forward, clearing the numbers that leave the span (all of them on a big jump).
            let new_base = seq + 1 - Self::SPAN;
            let leaving = (new_base - self.base).min(Self::SPAN);
            for s in self.base..self.base + leaving {
                let i = (s % Self::SPAN) as usize;
                self.words[i / 64] &= !(1 << (i % 64));
            }
            self.base = new_base;
        }
        let i = (seq % Self::SPAN) as usize;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }
}

impl SeqBits {
    /// Whether `seq` is marked (numbers older than the span are not).
    pub(crate) fn contains(&self, seq: u64) -> bool {
        if seq < self.base || seq >= self.base + Self::SPAN {
            return false;
        }
        let i = (seq % Self::SPAN) as usize;
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Marks every number `other` holds (those older than this span are new anyway).
    pub(crate) fn absorb(&mut self, other: &SeqBits) {
        for seq in other.base..other.base + Self::SPAN {
            let i = (seq % Self::SPAN) as usize;
            if other.words[i / 64] & (1 << (i % 64)) != 0 {
                self.insert(seq);
            }
        }
    }
}

impl Default for SeqBits {
    fn default() -> Self {
        Self::new()
    }
}

/// What one ack says about its responder's side of the session: its counters, unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderView {
    /// Sequence number of the probe it acks.
    pub seq: u64,
    /// Probes of this session the responder had received when it sent the ack, that probe
    /// included.
    pub received: u64,
    /// Acks it had sent, this one included (`ack_seq + 1`).
    pub acks_sent: u64,
    /// Probes it had not answered because of its rate limit.
    pub limited: u64,
}

impl ResponderView {
    pub(crate) fn of(ack: &Ack) -> Self {
        let bound = ack.seq + 1;
        ResponderView {
            seq: ack.seq,
            received: unwrap_counter(ack.received, bound),
            acks_sent: unwrap_counter(ack.ack_seq, bound.saturating_sub(1)) + 1,
            limited: unwrap_counter(ack.limited, bound),
        }
    }

    /// Whether the counters can be true on their own: every ack sent and every probe limited
    /// was a probe received.
    fn plausible(&self) -> bool {
        self.acks_sent.checked_add(self.limited).is_some_and(|n| n <= self.received)
    }

    /// Whether two acks of one responder id can both be true. Its counters only grow, and from
    /// one ack to a later one (by ack number) `received` grows by at least the acks sent and the
    /// probes limited in between. Two acks with one ack number are copies: they must agree.
    fn agrees_with(&self, other: &ResponderView) -> bool {
        let (lo, hi) = if self.acks_sent <= other.acks_sent { (self, other) } else { (other, self) };
        if lo.acks_sent == hi.acks_sent {
            return lo == hi;
        }
        hi.limited >= lo.limited
            && hi.received >= lo.received
            && hi.received - lo.received >= (hi.acks_sent - lo.acks_sent) + (hi.limited - lo.limited)
    }
}

/// One responder id (one start of a responder process) within a logical responder, with the
/// counters its acks carried. A restart adds a segment; its counters start again from zero.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    /// The consistent acks with the lowest and the highest ack number: the loss split is read
    /// between them.
    pub first: Option<ResponderView>,
    pub newest: Option<ResponderView>,
    /// Lowest and highest probe this id acked (on time or late).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Which of the id's own ack numbers reached us, and how many distinct ones: a copy of an ack
    /// repeats its number, an ack of a duplicated probe has a new one.
    ack_numbers: SeqBits,
    pub acks_distinct: u64,
    /// First acks of a probe (on time or late) from this id.
    pub acks_unique: u64,
    /// The previous consistent ack in ack-number order, to find runs of limited probes.
    prev: Option<ResponderView>,
    /// The longest run of consecutive probes this id was seen to rate-limit, all of them, between
    /// two consecutive acks.
    pub longest_limited_run: u64,
    /// The most datagrams its socket had dropped (SO_RXQ_OVFL) since the session's first probe
    /// reached it, as its acks' extensions said; `None` when no ack carried the extension (a
    /// responder older than it, or probes too small to carry it).
    pub host_drops: Option<u64>,
    /// The counters of the newest ack that reported `host_drops`: the report covers the probes
    /// up to its `seq`. Only padded probes ask for the report (`prober::ProbeSizes`), so the
    /// newest ack can be later than it, and the forward loss between them is not yet told.
    pub drops_view: Option<ResponderView>,
    /// Its acks of probe copies up to that report (see `copies`): copies received since are
    /// not probes received, as in `HostStats::attribute`.
    copies_at_report: u64,
    /// The untold forward loss when the prober last asked for a new report (see
    /// `HostStats::drops_wanted`).
    untold_asked: u64,
}

impl Segment {
    fn new(id: u64, seq: u64) -> Self {
        Segment {
            id,
            first: None,
            newest: None,
            first_seq: seq,
            last_seq: seq,
            ack_numbers: SeqBits::new(),
            acks_distinct: 0,
            acks_unique: 0,
            prev: None,
            longest_limited_run: 0,
            host_drops: None,
            drops_view: None,
            copies_at_report: 0,
            untold_asked: 0,
        }
    }

    /// Takes in one ack's counters; `false` when they contradict what this id said before (the
    /// ack is then flagged, and its counters are not used).
    fn observe(&mut self, v: ResponderView) -> bool {
        self.first_seq = self.first_seq.min(v.seq);
        self.last_seq = self.last_seq.max(v.seq);
        // In order (the usual case) only the newest ack needs comparing (agreeing with it implies
        // agreeing with the first); an older-numbered one must fit between the first and the newest.
        let in_order = self.newest.is_none_or(|n| v.acks_sent >= n.acks_sent);
        let ok = v.plausible()
            && self.newest.is_none_or(|n| n.agrees_with(&v))
            && (in_order || self.first.is_none_or(|f| f.agrees_with(&v)));
        if !ok {
            return false;
        }
        // An inconsistent ack's number is as doubtful as its counters: only consistent ones count.
        if self.ack_numbers.insert(v.acks_sent - 1) {
            self.acks_distinct += 1;
        }
        if self.first.is_none_or(|f| v.acks_sent < f.acks_sent) {
            self.first = Some(v);
        }
        if self.newest.is_none_or(|n| v.acks_sent > n.acks_sent) {
            self.newest = Some(v);
        }
        if let Some(p) = self.prev.filter(|p| v.acks_sent == p.acks_sent + 1 && v.seq > p.seq) {
            let gap = v.seq - p.seq - 1;
            if gap > 0 && v.limited - p.limited == gap && v.received - p.received == gap + 1 {
                self.longest_limited_run = self.longest_limited_run.max(gap);
            }
        }
        if self.prev.is_none_or(|p| v.acks_sent > p.acks_sent) {
            self.prev = Some(v);
        }
        true
    }

    /// Takes in the host drops an ack's extension reports (they only grow within a session),
    /// with the counters of that ack and the copies received up to it.
    fn observe_drops(&mut self, drops: u32, view: ResponderView, copies: u64) {
        self.host_drops = self.host_drops.max(Some(u64::from(drops)));
        if self.drops_view.is_none_or(|v| view.acks_sent > v.acks_sent) {
            self.drops_view = Some(view);
            self.copies_at_report = copies;
            self.untold_asked = 0;
        }
    }

    /// Forward losses this id's acks show after its newest drop report (see `drops_view`):
    /// probes it did not receive, which its host or the network lost, it has not yet said.
    /// `None` when it never reported. Copies of probes it received since are not probes
    /// received (as in `HostStats::attribute`); a copy whose ack was lost is not seen, and
    /// makes this one lower. `unsettled`: 1 while the newest ack, the first of its probe, is
    /// not yet counted as such (`acks_unique`), else 0.
    pub(crate) fn untold_forward(&self, unsettled: u64) -> Option<u64> {
        let (v, n) = (self.drops_view?, self.newest?);
        let probes = n.seq.saturating_sub(v.seq);
        let copies = self.copies().saturating_sub(unsettled).saturating_sub(self.copies_at_report);
        Some(probes.saturating_sub(n.received.saturating_sub(v.received).saturating_sub(copies)))
    }

    /// Acks of probe copies: ack numbers beyond one per probe answered.
    fn copies(&self) -> u64 {
        self.acks_distinct.saturating_sub(self.acks_unique)
    }
}

/// One restart of a logical responder: its old id stopped answering, a new id with the same
/// name and address took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub old_id: u64,
    pub new_id: u64,
    /// The last probe the old id acked and the first the new id acked (on time or late).
    pub old_last_seq: u64,
    pub new_first_seq: u64,
}

impl Restart {
    /// Probes between the two ids' acks: answered by neither.
    pub(crate) fn gap_probes(&self) -> u64 {
        self.new_first_seq.saturating_sub(self.old_last_seq + 1)
    }
}

/// How a responder's unanswered probes divide, from its counters (see `Figures`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attribution {
    pub forward: u64,
    pub ret: u64,
    /// Probes no counter covers: after the newest ack, and between a restart's two ids.
    pub uncovered: u64,
    /// Of `uncovered`, those between a restart's ids.
    pub away: u64,
    /// Limited, by the responder's counters.
    pub limited: u64,
    /// Datagrams the responder's host dropped (its socket buffer full), summed over the ids
    /// that reported them; `None` when none did.
    pub host_drops: Option<u64>,
    /// Of `forward`, when some id reported its drops: the losses after each id's newest
    /// report (all of an id's that never reported), which its host or the network lost.
    pub unreported: u64,
    /// Probes after the newest ack taken as rate-limited (see `HostStats::attribute`).
    pub limited_tail: u64,
}

/// Everything the prober knows about one logical responder: one responder id, or several when
/// it restarted (same name and address, the new id answering only after the old one stopped).
#[derive(Debug)]
pub struct HostStats {
    /// The id it first answered with: the key of its rows in every file.
    pub responder_id: u64,
    /// Its ids in order of appearance, with their counters.
    pub segments: Vec<Segment>,
    pub restarts: Vec<Restart>,
    pub name: String,
    pub addr: SocketAddr,
    pub ttl: u8,
    pub arrival: Arrival,
    /// Unique acks that arrived within the timeout.
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    /// Acks whose counters contradict an earlier ack of the same id (a counter that went
    /// backwards, two acks with one number that differ): counted, their counters not used.
    pub inconsistent_acks: u64,
    /// On-time acks claiming a dwell longer than their RTT: kept out of the net RTT.
    pub dwell_over_rtt: u64,
    /// On-time acks of probes that have been finalized: gives loss so far during the run.
    pub received_finalized: u64,
    pub first_ack_ns: Option<u64>,
    /// Its join delay, from the first ack whose extension told it.
    pub join: Option<Join>,
    /// The probes its host's tap saw reach its interface but not its socket, from this prober's
    /// address (a cumulative count, all sessions): (first, largest) value its acks' extensions
    /// reported. `None` when no ack carried it (no tap, or a responder older than the field).
    pub filtered: Option<(u64, u64)>,
    /// The group its responder said it serves, in its latest ack to a unicast probe that told.
    pub served_group: Option<IpAddr>,
    /// The multicast probes from this prober's address its responder said reached its socket
    /// (a cumulative count, all sessions): (first, largest) value its acks reported.
    pub heard: Option<(u64, u64)>,
    /// A ramping responder's memberships record (`respond --ramp`, for `max-groups`): the
    /// first its acks told in this run, and the newest (each count the largest told).
    pub memberships: Option<(crate::wire::Memberships, crate::wire::Memberships)>,
    pub rtt: Histogram<u32>,
    pub net_rtt: Histogram<u32>,
    /// The fastest and slowest on-time RTT, exact: the histogram keeps 2 significant digits.
    pub rtt_min_ns: Option<u64>,
    pub rtt_max_ns: Option<u64>,
    jitter_ns: f64,
    last_rtt_ns: Option<u64>,
    /// Highest and lowest sequence numbers acked on time.
    pub max_seq: Option<u64>,
    pub min_seq: Option<u64>,
    /// Which recent probes this responder acked (on time or late).
    pub acked: SeqBits,
    /// Accumulators of the open intervals; the front one is interval `first_open`.
    open_intervals: VecDeque<IntervalAcc>,
    first_open: usize,
    /// First interval this host had a row in: earlier rows are filled in at the end.
    pub first_interval_row: Option<usize>,
    /// First probe whose finalization saw this host: raw rows before it are filled in at the end.
    pub first_row_seq: Option<u64>,
    /// A new id that may be a restart of another responder: not accounted probe by probe until
    /// probe `resolve_at` (its first ack) closes and shows whether the other one still answers.
    pub(super) pending: Option<u64>,
    /// A run of unanswered probes since the last answered one: (first seq, its send time, count).
    open_gap: Option<(u64, u64, u64)>,
    /// The id and limited counter of the last answered probe, in probe order.
    last_answer: Option<(u64, u64)>,
    answered_once: bool,
    pub outages: Vec<Outage>,
    /// Outages beyond [`MAX_OUTAGES`], counted but not kept.
    pub outages_dropped: u64,
    /// The probes it left unanswered after its first answer, as ranges: which probes several
    /// responders lost together (findings::shared).
    pub lost: LostRanges,
    /// With `--groups`: its answers per group, indexed as the run's groups (empty otherwise).
    pub groups: Vec<GroupTally>,
    /// With a responder's `--churn`: each group's latest join and leave delay, indexed as the
    /// run's groups (empty until an ack carries one).
    pub join_leave: Vec<crate::wire::GroupDelays>,
    group_gap: GroupGap,
    group_last: Option<GroupAnswer>,
}

/// The newer of two memberships records of one responder: counts only grow, so each the
/// largest (acks may arrive reordered).
fn newest_memberships(a: crate::wire::Memberships, b: crate::wire::Memberships) -> crate::wire::Memberships {
    crate::wire::Memberships {
        joined: a.joined.max(b.joined),
        refused: a.refused.max(b.refused),
        refusal: a.refusal.or(b.refusal),
        canary: a.canary.max(b.canary),
        flood_at: match (a.flood_at, b.flood_at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
    }
}

/// One host's answers to the probes of one group of a `--groups` run, counted like its loss:
/// from its first answer (on any group) on. 48 bytes a group and host (a unit test holds it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTally {
    /// Probes of the group closed since the host's first answer.
    pub probes: u32,
    /// Of them, answered on time.
    pub answered: u32,
    pub rtt_min_ns: u32,
    pub rtt_max_ns: u32,
    pub rtt_sum_ns: u64,
    /// The first probe of the group it answered (`None`: never reached).
    pub first_seq: Option<u64>,
    /// Of the lost probes, those that never reached the responder, and those whose acks were
    /// lost; the rest of `lost()` is unknown (see [`HostStats::tally_group`]).
    pub forward: u32,
    pub ret: u32,
}

/// An answer, as the per-group tally needs it: its RTT, and the counters of the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupAnswer {
    pub rtt_ns: u64,
    pub id: u64,
    /// The responder's `received` counter (unwrapped), `None` when its counters were not
    /// believed (or a plain reply has none).
    pub received: Option<u64>,
    pub limited: u64,
}

/// The unanswered probes since a host's last answer, for the direction of the groups' losses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupGap {
    pub seqs: Vec<u64>,
    /// Longer than [`MAX_GROUP_GAP`]: its losses stay unknown.
    pub overflow: bool,
}

/// A gap longer than this (a host silent for more than 4096 probes) is an outage, not a missing
/// group: its probes' direction is left unknown, and its memory bounded.
pub(crate) const MAX_GROUP_GAP: usize = 4096;

impl GroupTally {
    pub fn reached(&self) -> bool {
        self.answered > 0
    }

    pub fn lost(&self) -> u32 {
        self.probes - self.answered
    }

    pub fn rtt_mean_ns(&self) -> Option<u64> {
        (self.answered > 0).then(|| self.rtt_sum_ns / u64::from(self.answered))
    }
}

/// A responder's join delay (RFC 2432: from joining the group to the first multicast packet),
/// as its ack extension reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub delay_ns: u64,
    /// It joined after this run's first probe left: the delay is the network's (a snooping
    /// switch or a router adding the port). Otherwise it was waiting for a prober, and the
    /// "delay" is only that wait.
    pub during_run: bool,
}

impl Join {
    /// From an ack's extension: `member_ns` (join to this probe's arrival) against
    /// `since_start_ns` (this run's first probe to this probe's sending) and `rtt_ns`, the ack's
    /// RTT less the responder's dwell, at most the timeout. On
    /// the prober's clock the join was at about `tx + rtt/2 − member_ns`, so it came after the
    /// first probe when `member_ns ≤ since_start_ns + rtt/2`; the whole RTT is allowed, which
    /// errs by at most half a LAN RTT. Durations only: the two hosts' clocks need not agree.
    pub(crate) fn from_ext(delay_ns: u64, member_ns: u64, since_start_ns: u64, rtt_ns: u64) -> Self {
        Join { delay_ns, during_run: member_ns <= since_start_ns.saturating_add(rtt_ns) }
    }
}

/// Runs of lost probes remembered per responder (16 bytes each, 64 KiB in all): a responder
/// silent for good is one run, however long; one that loses every other probe at 10 000/s
/// fills them in 0.8 s, and its record then ends there (see [`LostRanges::complete_until`]).
pub(crate) const MAX_LOST_RANGES: usize = 4_096;

/// The probes a responder left unanswered, in order, as runs `start..end`: bounded by
/// [`MAX_LOST_RANGES`], not one entry per probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LostRanges {
    ranges: Vec<(u64, u64)>,
    /// The record stopped at this probe (the ranges were full): it holds every loss before it and
    /// none from it on.
    full_at: Option<u64>,
}

impl LostRanges {
    /// Notes probe `seq` unanswered; probes come in increasing order.
    pub(crate) fn push(&mut self, seq: u64) {
        if self.full_at.is_some() {
            return;
        }
        if let Some((_, end)) = self.ranges.last_mut().filter(|(_, end)| *end == seq) {
            *end += 1;
        } else if self.ranges.len() < MAX_LOST_RANGES {
            self.ranges.push((seq, seq + 1));
        } else {
            self.full_at = Some(seq);
        }
    }

    /// The runs of lost probes, ascending, each `(start, end)` with `end` excluded.
    pub(crate) fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The record is complete for probes before this one (`u64::MAX` when it never filled).
    pub(crate) fn complete_until(&self) -> u64 {
        self.full_at.unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.ranges.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

/// Outages kept per responder; a host that flaps all day still costs bounded memory.
pub(crate) const MAX_OUTAGES: usize = 10_000;

/// A stretch of consecutive probes a responder did not answer, after it had answered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub first_lost_seq: u64,
    pub probes_lost: u64,
    /// Send time of the first unanswered probe.
    pub start_unix_ns: u64,
    /// Send time of the first probe answered again; `None` when the run ended first.
    pub end_unix_ns: Option<u64>,
}

/// What the RTT histograms keep, the per-responder ones here and the interval ones of
/// `rtt.hlog` alike (so that intervals add up to the whole run exactly): 2 significant digits
/// above 2 µs, and 16 ns steps below.
///
/// Two digits: HdrHistogram keeps 256 sub-buckets per power of two (128 in each upper half),
/// so a value is known to 1 part in 128 (0.8 %) or better. A percentile or the maximum is the
/// top of its bucket, the minimum its bottom (the mean takes mid-points): at a 40 µs LAN RTT a
/// bucket is 0.26 µs wide, at 1 ms 4 µs, at 10 ms 66 µs; each well under what the figures are
/// read for (RTTs on one LAN differ by tens of µs from run to run and probe rate to probe rate,
/// and the reports compare hosts and runs, not sub-µs steps). The standard deviation, from
/// mid-points too, is off by up to about a bucket's width (2 µs at 250 µs) where the spread is
/// itself that narrow. Three digits (0.1 %) would cost 8 times the memory: 84 KiB per histogram
/// up to a 1 s timeout, against 10 KiB.
///
/// 16 ns steps below 2 µs (where 1/128 is 16 ns), not 1 ns: no round trip through a kernel
/// takes under 2 µs (a loopback multicast send alone costs ~4 µs), and the four buckets
/// that 1 ns steps need below 4 µs would cost 2 KiB per histogram.
const RTT_SIGFIG: u8 = 2;
const RTT_LOWEST_NS: u64 = 16;

/// An RTT histogram in ns up to `max_ns`, allocated once at its full size: only on-time acks
/// are recorded, so no RTT exceeds the timeout and it never grows (a `Vec` that grows on demand
/// reserves up to twice what it needs). Its counts take `(buckets + 1) × 128 × 4` bytes, bucket
/// 0 covering 0–4 µs and one more per power of two above: 10 KiB up to a 1 s timeout, 512
/// bytes more per doubling of the timeout (13 KiB at 60 s, 16 KiB at 1 h).
pub(crate) fn rtt_histogram(max_ns: u64) -> Histogram<u32> {
    Histogram::new_with_bounds(RTT_LOWEST_NS, max_ns.max(2 * RTT_LOWEST_NS), RTT_SIGFIG)
        .expect("bounds from 16 ns to at least 32 ns are valid")
}

/// Records a value; one beyond the histogram's range (the timeout) cannot come, and would count
/// at its top.
fn record(h: &mut Histogram<u32>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// A responder's name as it may be shown: control characters (which could rewrite the
/// prober's terminal or fake a line of its table) become U+FFFD.
pub(crate) fn printable(name: &str) -> String {
    name.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

impl HostStats {
    /// A responder first heard with `ack`; its RTT histograms cover RTTs up to `timeout_ns`.
    pub(crate) fn new(ack: &Ack, addr: SocketAddr, timeout_ns: u64) -> Self {
        HostStats {
            responder_id: ack.responder,
            segments: vec![Segment::new(ack.responder, ack.seq)],
            restarts: Vec::new(),
            name: printable(&ack.name),
            addr,
            ttl: ack.ttl,
            arrival: ack.arrival,
            received: 0,
            duplicates: 0,
            reordered: 0,
            late: 0,
            inconsistent_acks: 0,
            dwell_over_rtt: 0,
            received_finalized: 0,
            first_ack_ns: None,
            join: None,
            filtered: None,
            served_group: None,
            heard: None,
            memberships: None,
            rtt: rtt_histogram(timeout_ns),
            net_rtt: rtt_histogram(timeout_ns),
            rtt_min_ns: None,
            rtt_max_ns: None,
            jitter_ns: 0.0,
            last_rtt_ns: None,
            max_seq: None,
            min_seq: None,
            acked: SeqBits::new(),
            open_intervals: VecDeque::new(),
            first_open: 0,
            first_interval_row: None,
            first_row_seq: None,
            pending: None,
            open_gap: None,
            last_answer: None,
            answered_once: false,
            outages: Vec::new(),
            outages_dropped: 0,
            groups: Vec::new(),
            join_leave: Vec::new(),
            group_gap: GroupGap::default(),
            group_last: None,
            lost: LostRanges::default(),
        }
    }

    /// All its responder ids, oldest first.
    #[cfg(test)]
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().map(|s| s.id)
    }

    /// The newest probe any of its ids acked (on time or late).
    pub(crate) fn last_acked_seq(&self) -> u64 {
        self.segments.iter().map(|s| s.last_seq).max().unwrap_or(0)
    }

    /// Notes one ack of segment `seg`: its identity fields and, when it carries them
    /// (`counters`), its counters. `false` when they contradict earlier ones (the ack is counted
    /// in `inconsistent_acks`).
    ///
    /// The row's name is the longest one its acks carried (a small probe truncates or drops it),
    /// the newest of equal length.
    pub(crate) fn observe(&mut self, seg: usize, ack: &Ack, addr: SocketAddr, counters: bool) -> bool {
        if !ack.name.is_empty() && ack.name.len() >= self.name.len() {
            self.name = printable(&ack.name);
        }
        self.addr = addr;
        self.ttl = ack.ttl;
        self.arrival = ack.arrival;
        let segment = &mut self.segments[seg];
        if !counters {
            // Plain replies carry no counters: only note which probes the id answered.
            segment.first_seq = segment.first_seq.min(ack.seq);
            segment.last_seq = segment.last_seq.max(ack.seq);
            return true;
        }
        let view = ResponderView::of(ack);
        let ok = segment.observe(view);
        if !ok {
            self.inconsistent_acks += 1;
        } else if let Some(e) = &ack.ext {
            // This ack's own probe is not counted as answered yet: when it is its first ack,
            // it is no copy.
            let first = u64::from(!self.acked.contains(ack.seq));
            let copies = segment.acks_distinct.saturating_sub(segment.acks_unique + first);
            segment.observe_drops(e.host_drops, view, copies);
            if let Some(n) = e.filtered.map(u64::from) {
                self.filtered = Some(self.filtered.map_or((n, n), |(first, last)| (first, last.max(n))));
            }
            self.served_group = e.group.or(self.served_group);
            if let Some(n) = e.heard.map(u64::from) {
                self.heard = Some(self.heard.map_or((n, n), |(first, last)| (first, last.max(n))));
            }
            if let Some(m) = e.memberships {
                self.memberships =
                    Some(self.memberships.map_or((m, m), |(first, n)| (first, newest_memberships(n, m))));
            }
        }
        ok
    }

    /// Records a first, on-time ack of probe `seq` by segment `seg`.
    /// `since_start_ns` is when it arrived, counted from the start of the run; `interval` is the
    /// interval its probe belongs to, when intervals are kept.
    pub(crate) fn record_on_time(
        &mut self,
        seg: usize,
        seq: u64,
        rtt_ns: u64,
        dwell_ns: u64,
        since_start_ns: u64,
        interval: Option<usize>,
    ) {
        self.received += 1;
        self.segments[seg].acks_unique += 1;
        record(&mut self.rtt, rtt_ns);
        self.rtt_min_ns = Some(self.rtt_min_ns.map_or(rtt_ns, |m| m.min(rtt_ns)));
        self.rtt_max_ns = Some(self.rtt_max_ns.map_or(rtt_ns, |m| m.max(rtt_ns)));
        // A dwell longer than the whole RTT cannot be true (the responder's clock stepped, or it
        // stamps wrongly): such samples say nothing of the network, and are counted instead.
        if dwell_ns > rtt_ns {
            self.dwell_over_rtt += 1;
        } else {
            record(&mut self.net_rtt, rtt_ns - dwell_ns);
        }
        // RFC 3550 §6.4.1: J += (|D| - J) / 16, D the change in transit time between consecutive
        // packets in arrival order. With echoed timestamps the transit time is the RTT.
        if let Some(last) = self.last_rtt_ns {
            let d = rtt_ns.abs_diff(last) as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_rtt_ns = Some(rtt_ns);
        self.min_seq = Some(self.min_seq.map_or(seq, |m| m.min(seq)));
        match self.max_seq {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        self.first_ack_ns.get_or_insert(since_start_ns);
        if let Some(i) = interval.filter(|&i| i >= self.first_open) {
            let pos = i - self.first_open;
            if self.open_intervals.len() <= pos {
                self.open_intervals.resize_with(pos + 1, IntervalAcc::default);
            }
            let high = self.rtt.high();
            self.open_intervals[pos].push(rtt_ns.min(u32::MAX as u64) as u32, high);
        }
    }

    /// Records a first ack that came after the timeout: counted, kept out of the RTT figures.
    pub(crate) fn record_late(&mut self, seg: usize) {
        self.late += 1;
        self.segments[seg].acks_unique += 1;
    }

    pub(crate) fn record_duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// Hands over interval `i`, which is complete; intervals are taken in order.
    pub(crate) fn take_interval(&mut self, i: usize) -> IntervalAcc {
        self.first_interval_row.get_or_insert(i);
        if i < self.first_open {
            return IntervalAcc::default();
        }
        // Intervals before `i` that were never taken had no acks.
        while self.first_open < i {
            self.open_intervals.pop_front();
            self.first_open += 1;
        }
        self.first_open = i + 1;
        self.open_intervals.pop_front().unwrap_or_default()
    }

    /// Follows outages as probes close in order. `answer` is the id and limited counter of this
    /// probe's on-time ack, if it had one. A gap between two answered probes loses the probes
    /// the responder's counters say it rate-limited in between; if at least `min_len` remain,
    /// it is an outage. Gaps before the first answer are the join.
    pub(crate) fn on_finalized(&mut self, seq: u64, tx_ns: u64, answer: Option<(u64, u64)>, min_len: u64) {
        if let Some((id, limited)) = answer {
            if let Some(gap) = self.open_gap.take() {
                let limited_in_gap = match self.last_answer {
                    Some((last_id, last)) if last_id == id => limited.saturating_sub(last),
                    // A new id counts from its own start: all its limited probes are in the gap.
                    _ => limited,
                };
                self.close_gap(gap, limited_in_gap, Some(tx_ns), min_len);
            }
            self.last_answer = Some((id, limited));
            self.answered_once = true;
        } else if self.answered_once {
            self.lost.push(seq);
            let gap = self.open_gap.get_or_insert((seq, tx_ns, 0));
            gap.2 += 1;
        }
    }

    /// Counts probe `seq` of group `group` (of `groups`) in the group's tally: answered (with
    /// its RTT and the counters of its ack), or not. Called right after
    /// [`HostStats::on_finalized`], so the first answer counts and the probes before it do not,
    /// as for loss.
    ///
    /// The direction of a group's losses: the unanswered probes since the last answer wait in
    /// [`GroupGap`]; the next answer's counters say how many of them reached the responder (its
    /// `received` counter moved by that many more than one). All of them or none: the gap's
    /// probes are return or forward losses of their groups; some: unknown, as are gaps across a
    /// restart, with rate-limited probes, or longer than [`MAX_GROUP_GAP`].
    pub(crate) fn tally_group(&mut self, seq: u64, group: usize, groups: usize, answer: Option<GroupAnswer>) {
        if !self.answered_once {
            return;
        }
        if self.groups.len() != groups {
            self.groups.resize(groups, GroupTally::default());
        }
        self.groups[group].probes += 1;
        let Some(a) = answer else {
            if self.group_gap.seqs.len() < MAX_GROUP_GAP {
                self.group_gap.seqs.push(seq);
            } else {
                self.group_gap.overflow = true;
            }
            return;
        };
        let t = &mut self.groups[group];
        let rtt = a.rtt_ns.min(u64::from(u32::MAX)) as u32;
        if t.answered == 0 || rtt < t.rtt_min_ns {
            t.rtt_min_ns = rtt;
        }
        t.rtt_max_ns = t.rtt_max_ns.max(rtt);
        t.rtt_sum_ns += u64::from(rtt);
        t.answered += 1;
        t.first_seq.get_or_insert(seq);
        let gap = std::mem::take(&mut self.group_gap);
        let before = self.group_last.replace(a);
        let (Some(b), false) = (before, gap.overflow) else { return };
        let (Some(r0), Some(r1)) = (b.received, a.received) else { return };
        if b.id != a.id || a.limited != b.limited || gap.seqs.is_empty() {
            return;
        }
        // Probes after the last answer, up to and with this one, that reached the responder.
        let reached = r1.saturating_sub(r0);
        let n = gap.seqs.len() as u64;
        let forward = if reached == 1 {
            true
        } else if reached == n + 1 {
            false
        } else {
            return;
        };
        for s in gap.seqs {
            let t = &mut self.groups[(s % groups as u64) as usize];
            if forward {
                t.forward += 1;
            } else {
                t.ret += 1;
            }
        }
        self.group_gap.seqs = Vec::new();
    }

    /// An ack to a probe of group `group` (of `groups`) carried the group's latest join and
    /// leave delay: kept unless an ack already told a later join (acks can overtake each other).
    pub(crate) fn observe_join_leave(&mut self, group: usize, groups: usize, jl: crate::wire::GroupDelays) {
        if self.join_leave.len() != groups {
            self.join_leave.resize(groups, crate::wire::GroupDelays::default());
        }
        let e = &mut self.join_leave[group];
        if jl.joins >= e.joins {
            *e = jl;
        }
    }

    /// Closes an outage still open when the run ends; `limited_tail` of its probes are taken as
    /// rate-limited (see [`HostStats::attribute`]).
    pub(crate) fn end_outages(&mut self, limited_tail: u64, min_len: u64) {
        if let Some(gap) = self.open_gap.take() {
            self.close_gap(gap, limited_tail, None, min_len);
        }
    }

    fn close_gap(&mut self, (first, start, n): (u64, u64, u64), limited: u64, end: Option<u64>, min_len: u64) {
        let lost = n - limited.min(n);
        if lost < min_len.max(1) {
            return;
        }
        if self.outages.len() >= MAX_OUTAGES {
            self.outages_dropped += 1;
            return;
        }
        self.outages.push(Outage { first_lost_seq: first, probes_lost: lost, start_unix_ns: start, end_unix_ns: end });
    }

    pub(crate) fn jitter_ns(&self) -> f64 {
        self.jitter_ns
    }

    /// Splits the unanswered probes among `sent` by what the counters of each id say.
    ///
    /// For the first id, over probes `0..=s` (`s` the probe of its newest consistent ack):
    /// forward = `(s + 1) − (received − copies)`. A later id (after a restart) counts from its own
    /// start, which the prober cannot see: its forward loss is read between its first and newest
    /// consistent acks, and the probes from the previous id's newest ack to the new id's first
    /// that the new id did not receive are `away` (uncovered). For every id, return = acks sent −
    /// distinct acks that reached us. Probes after the newest ack are uncovered too, except that
    /// a tail no longer than a run the responder was seen to rate-limit entirely, from a
    /// responder that rate-limits, is taken as limited (`limited_tail`). The forward loss after
    /// an id's newest drop report is `unreported`: which host dropped it is not known yet.
    pub(crate) fn attribute(&self, sent: u64) -> Attribution {
        let mut a = Attribution::default();
        // Probes 0..covered are accounted for by the ids so far.
        let mut covered = 0u64;
        let mut last: Option<&Segment> = None;
        let mut untold = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            let (Some(first), Some(newest)) = (seg.first, seg.newest) else { continue };
            if newest.seq < covered {
                continue;
            }
            let copies = seg.copies();
            let forward = if i == 0 {
                (newest.seq + 1).saturating_sub(newest.received.saturating_sub(copies))
            } else {
                let between = newest.seq.saturating_sub(first.seq);
                let heard = newest.received.saturating_sub(first.received).saturating_sub(copies);
                between.saturating_sub(heard)
            };
            a.forward += forward;
            // An id that never reported its drops leaves all of its forward loss untold.
            untold += seg.untold_forward(0).unwrap_or(forward).min(forward);
            if i > 0 {
                let away = (first.seq + 1).saturating_sub(covered).saturating_sub(first.received);
                a.away += away;
                a.uncovered += away;
            }
            a.ret += newest.acks_sent.saturating_sub(seg.acks_distinct);
            a.limited += newest.limited;
            if let Some(d) = seg.host_drops {
                a.host_drops = Some(a.host_drops.unwrap_or(0) + d);
            }
            covered = newest.seq + 1;
            last = Some(seg);
        }
        if a.host_drops.is_some() {
            a.unreported = untold;
        }
        let tail = sent.saturating_sub(covered);
        a.uncovered += tail;
        if let Some(seg) = last.filter(|s| s.newest.is_some_and(|n| n.limited > 0)) {
            if tail > 0 && tail <= seg.longest_limited_run {
                a.limited_tail = tail;
            }
        }
        a
    }

    /// Whether id `seg`'s acks (the newest of probe `seq`) show forward loss after its newest drop report that grew since
    /// the prober last asked: it then pads its next probe, which asks for a new report (see
    /// `Run::take_name_wanted`). Once per growth, so a responder that never reports (or whose
    /// reports are lost) costs one padded probe per loss, not one per probe.
    pub(crate) fn drops_wanted(&mut self, seg: usize, seq: u64) -> bool {
        // Called before the ack of `seq` is counted: when it is its probe's first, it is no copy.
        let unsettled = u64::from(!self.acked.contains(seq));
        let s = &mut self.segments[seg];
        match s.untold_forward(unsettled) {
            Some(u) if u > s.untold_asked => {
                s.untold_asked = u;
                true
            }
            _ => false,
        }
    }

    /// Takes in `other`, a new id of this responder after a restart.
    pub(super) fn absorb(&mut self, mut other: HostStats) {
        let old = self.segments.last().expect("a host has an id");
        let seg = other.segments.remove(0);
        self.restarts.push(Restart {
            old_id: old.id,
            new_id: seg.id,
            old_last_seq: self.last_acked_seq(),
            new_first_seq: seg.first_seq,
        });
        self.segments.push(seg);
        if !other.name.is_empty() && other.name.len() >= self.name.len() {
            self.name = other.name;
        }
        (self.addr, self.ttl, self.arrival) = (other.addr, other.ttl, other.arrival);
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.late += other.late;
        self.inconsistent_acks += other.inconsistent_acks;
        self.dwell_over_rtt += other.dwell_over_rtt;
        self.received_finalized += other.received_finalized;
        self.first_ack_ns = match (self.first_ack_ns, other.first_ack_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A join during the run is the one to show: the restart's, when the first start was
        // already a member before the run.
        self.join = match (self.join, other.join) {
            (Some(first), _) if first.during_run => Some(first),
            (first, later) => later.or(first),
        };
        // One run's histograms all have the same range (its timeout).
        self.rtt.add(&other.rtt).expect("histograms of one run have one range");
        self.net_rtt.add(&other.net_rtt).expect("histograms of one run have one range");
        // Jitter goes on from the new id's latest RTT.
        if other.last_rtt_ns.is_some() {
            self.last_rtt_ns = other.last_rtt_ns;
        }
        self.min_seq = [self.min_seq, other.min_seq].into_iter().flatten().min();
        self.max_seq = [self.max_seq, other.max_seq].into_iter().flatten().max();
        self.acked.absorb(&other.acked);
        for (k, acc) in other.open_intervals.into_iter().enumerate() {
            let i = other.first_open + k;
            if i < self.first_open {
                continue;
            }
            let pos = i - self.first_open;
            if self.open_intervals.len() <= pos {
                self.open_intervals.resize_with(pos + 1, IntervalAcc::default);
            }
            let high = self.rtt.high();
            self.open_intervals[pos].absorb(acc, high);
        }
    }
}

#[cfg(test)]
impl HostStats {
    /// The bytes this responder holds: itself and everything it owns on the heap, by each
    /// container's own size (a histogram's counts array, allocated once at its length).
    pub(crate) fn footprint_bytes(&self) -> usize {
        use std::mem::size_of;
        let hist = |h: &Histogram<u32>| h.distinct_values() * size_of::<u32>();
        let bits = |b: &SeqBits| b.words.capacity() * size_of::<u64>();
        size_of::<Self>()
            + hist(&self.rtt)
            + hist(&self.net_rtt)
            + bits(&self.acked)
            + self.segments.capacity() * size_of::<Segment>()
            + self.segments.iter().map(|s| bits(&s.ack_numbers)).sum::<usize>()
            + self.restarts.capacity() * size_of::<Restart>()
            + self.name.capacity()
            + self.open_intervals.capacity() * size_of::<IntervalAcc>()
            + self.open_intervals.iter().map(IntervalAcc::footprint_bytes).sum::<usize>()
            + self.outages.capacity() * size_of::<Outage>()
            + self.lost.capacity_bytes()
    }
}
