//! Per-run accounting on the prober side: which probes were sent, which acks came back, and what
//! that means per responder. No I/O and no clocks: the engines pass every timestamp in, so tests
//! can replay exact sequences.
//!
//! Denominators (the README repeats them):
//! - `sent` for every responder is every probe of the run, from the first to the last. A responder
//!   that joined late, or restarted (a new responder id is a new row), is charged with the probes it
//!   missed; `first_ack_ms` shows when it appeared.
//! - An ack is *on time* when its RTT is at most the timeout. Only on-time acks count as received
//!   and enter the RTT figures. A late ack is counted in `late` and its probe stays lost.
//! - `limited` = probes the responder received but chose not to answer (its rate limit), from its
//!   own count; they are not loss. `lost = sent − received − limited`
//!   = `forward_lost + return_lost + late + unknown_lost`, where from the responder's counters in
//!   its newest ack (for probe `s`): forward = `(s + 1) − responder received`; return =
//!   `responder acks sent − acks that reached us`; unknown = probes after `s`, for which nothing
//!   tells whether the probe or its ack was lost.

mod host;

pub use host::{HostStats, IntervalAcc, Outage, ResponderView, SeqBits, MAX_OUTAGES};

use serde::Serialize;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::wire::{Ack, Arrival};

/// A probe whose ack window is still open.
#[derive(Debug)]
struct Outstanding {
    seq: u64,
    tx_ns: u64,
    /// (host index, RTT) of every on-time ack so far.
    acks: Vec<(u32, u64)>,
}

/// What became of an ack handed to [`Run::on_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    OnTime,
    Late,
    Duplicate,
    /// Our session id, but a sequence number never sent or a timestamp we did not write.
    Bogus,
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
    /// The interval's on-time RTTs in ns, for the interval histogram log (`rtt.hlog`); not a
    /// CSV column.
    #[serde(skip)]
    pub rtt_ns: Vec<u32>,
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
    by_id: HashMap<u64, u32>,
    sent_per_interval: Vec<u64>,
    pub foreign_acks: u64,
    pub bogus_acks: u64,
    /// Intervals `0..intervals_closed` are complete and reported.
    intervals_closed: usize,
    interval_rows: Vec<IntervalRow>,
    /// Reused by `finalize_front`, so closing a probe allocates nothing.
    scratch: Vec<Option<u64>>,
    /// Send times of every probe, kept only for raw rows.
    tx_log: Vec<u64>,
    raw_rows: Vec<RawRow>,
}

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
            sent_per_interval: Vec::new(),
            foreign_acks: 0,
            bogus_acks: 0,
            intervals_closed: 0,
            interval_rows: Vec::new(),
            scratch: Vec::new(),
            tx_log: Vec::new(),
            raw_rows: Vec::new(),
        }
    }

    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn hosts(&self) -> &[HostStats] {
        &self.hosts
    }

    pub fn start_ns(&self) -> Option<u64> {
        self.start_ns
    }

    fn interval_of(&self, tx_ns: u64) -> usize {
        let start = self.start_ns.unwrap_or(tx_ns);
        (tx_ns.saturating_sub(start) / self.cfg.interval_ns.max(1)) as usize
    }

    /// Records that probe number `sent()` is about to leave at `tx_ns`; returns its sequence number.
    /// Called before the send, so an ack can never arrive for a probe the run does not know.
    pub fn record_send(&mut self, tx_ns: u64) -> u64 {
        let seq = self.sent;
        self.start_ns.get_or_insert(tx_ns);
        let interval = self.interval_of(tx_ns);
        if self.sent_per_interval.len() <= interval {
            self.sent_per_interval.resize(interval + 1, 0);
        }
        self.sent_per_interval[interval] += 1;
        self.window.push_back(Outstanding { seq, tx_ns, acks: Vec::new() });
        if self.cfg.raw {
            self.tx_log.push(tx_ns);
        }
        self.sent += 1;
        seq
    }

    /// Accounts for one decoded ack that arrived at `rx_ns` from `from`.
    pub fn on_ack(&mut self, ack: &Ack, from: SocketAddr, rx_ns: u64) -> AckOutcome {
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
        let tx_ns = if in_window {
            let probe = &self.window[(ack.seq - self.finalized) as usize];
            if probe.tx_ns != ack.tx_ns {
                self.bogus_acks += 1;
                return AckOutcome::Bogus;
            }
            probe.tx_ns
        } else {
            ack.tx_ns
        };
        let idx = match self.by_id.get(&ack.responder) {
            Some(&i) => i,
            None => {
                let i = self.hosts.len() as u32;
                self.hosts.push(HostStats::new(ack, from));
                self.by_id.insert(ack.responder, i);
                i
            }
        };
        let start = self.start_ns.unwrap_or(tx_ns);
        let interval = self.interval_of(tx_ns);
        let host = &mut self.hosts[idx as usize];
        host.observe(ack, from);
        let rtt_ns = rx_ns.saturating_sub(tx_ns);
        if host.ack_numbers.insert(crate::wire::unwrap_counter(ack.ack_seq, ack.seq)) {
            host.acks_distinct += 1;
        }
        // A second copy of an ack is a duplicate, whether the first came on time or late.
        if !host.acked.insert(ack.seq) {
            host.record_duplicate();
            return AckOutcome::Duplicate;
        }
        if !in_window || rtt_ns > self.cfg.timeout_ns {
            host.record_late();
            return AckOutcome::Late;
        }
        let probe = &mut self.window[(ack.seq - self.finalized) as usize];
        // At very high rates the window can hold more probes than `acked` spans: check here too.
        if probe.acks.iter().any(|&(h, _)| h == idx) {
            host.record_duplicate();
            return AckOutcome::Duplicate;
        }
        probe.acks.push((idx, rtt_ns));
        let interval = self.cfg.intervals.then_some(interval);
        host.record_on_time(ack.seq, rtt_ns, ack.dwell_ns as u64, rx_ns.saturating_sub(start), interval);
        AckOutcome::OnTime
    }

    /// Closes every probe sent more than `retain_ns` before `now_ns`. The engines retain probes a
    /// little longer than the timeout so that acks still queued in the socket are judged by their
    /// timestamps, not by when they were read.
    pub fn finalize_older_than(&mut self, now_ns: u64, retain_ns: u64) {
        while let Some(front) = self.window.front() {
            if now_ns.saturating_sub(front.tx_ns) <= retain_ns {
                break;
            }
            self.finalize_front();
        }
        self.close_intervals();
    }

    /// Closes every probe: the run is over.
    pub fn finalize_all(&mut self) {
        while !self.window.is_empty() {
            self.finalize_front();
        }
        for host in &mut self.hosts {
            host.end_outages(self.cfg.outage_min);
        }
        self.close_intervals();
        if self.cfg.raw {
            self.backfill_raw_rows();
        }
    }

    fn finalize_front(&mut self) {
        let Some(probe) = self.window.pop_front() else { return };
        // The RTT each host answered this probe with, if it did: one pass over the acks, one
        // over the hosts, whatever their numbers.
        let mut rtts = std::mem::take(&mut self.scratch);
        rtts.clear();
        rtts.resize(self.hosts.len(), None);
        for &(h, rtt) in &probe.acks {
            self.hosts[h as usize].received_finalized += 1;
            rtts[h as usize] = Some(rtt);
        }
        for (host, &rtt) in self.hosts.iter_mut().zip(&rtts) {
            host.on_finalized(probe.seq, probe.tx_ns, rtt.is_some(), self.cfg.outage_min);
            if self.cfg.raw {
                host.first_row_seq.get_or_insert(probe.seq);
                self.raw_rows.push(raw_row(probe.seq, host, probe.tx_ns, rtt));
            }
        }
        self.finalized = probe.seq + 1;
        self.scratch = rtts;
    }

    fn close_intervals(&mut self) {
        if !self.cfg.intervals {
            return;
        }
        // An interval is complete once its last probe is finalized, i.e. the next unfinalized
        // probe belongs to a later interval (or there is none).
        let open_from = match self.window.front() {
            Some(p) => self.interval_of(p.tx_ns),
            None => usize::MAX,
        };
        let upto = open_from.min(self.sent_per_interval.len());
        let width_s = self.cfg.interval_ns as f64 / 1e9;
        for i in self.intervals_closed..upto {
            let sent = self.sent_per_interval[i];
            let first = self.interval_rows.len();
            for h in &mut self.hosts {
                let acc = h.take_interval(i);
                let rtt_ns = acc.samples().to_vec();
                let (received, p50, max) = acc.summarize();
                self.interval_rows.push(IntervalRow {
                    interval_start_s: (i as f64 * width_s * 1000.0).round() / 1000.0,
                    responder: h.name.clone(),
                    responder_id: format_id(h.responder_id),
                    sent,
                    received: received as u64,
                    lost: sent.saturating_sub(received as u64),
                    rtt_p50_us: p50.map(|v| ns_to_us(v as u64)),
                    rtt_max_us: max.map(|v| ns_to_us(v as u64)),
                    rtt_ns,
                });
            }
            self.interval_rows[first..]
                .sort_by(|a, b| (&a.responder, &a.responder_id).cmp(&(&b.responder, &b.responder_id)));
        }
        self.intervals_closed = self.intervals_closed.max(upto);
    }

    /// Takes the interval rows completed so far (only with `intervals`).
    pub fn drain_interval_rows(&mut self) -> Vec<IntervalRow> {
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
    pub fn newest_probe(&self) -> Option<(u64, u64)> {
        self.window.back().map(|p| (p.seq, p.tx_ns))
    }

    /// Takes the raw rows produced so far (only with `raw`).
    pub fn drain_raw_rows(&mut self) -> Vec<RawRow> {
        std::mem::take(&mut self.raw_rows)
    }

    /// Probes closed so far.
    pub fn finalized(&self) -> u64 {
        self.finalized
    }

    /// The worst loss, in percent, among responders over the probes closed so far.
    pub fn worst_loss_pct(&self) -> Option<f64> {
        if self.finalized == 0 {
            return None;
        }
        self.hosts
            .iter()
            .map(|h| 100.0 * (self.finalized - h.received_finalized.min(self.finalized)) as f64 / self.finalized as f64)
            .max_by(f64::total_cmp)
    }

    /// Per-interval probe counts.
    pub fn sent_per_interval(&self) -> &[u64] {
        &self.sent_per_interval
    }

    /// Final figures for one responder. Call after [`Run::finalize_all`].
    pub fn summary(&self, host: &HostStats) -> Figures {
        Figures::new(host, self.sent, self.cfg.plain)
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
pub fn format_id(id: u64) -> String {
    format!("{id:016x}")
}

pub fn ns_to_us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

/// The final figures of one responder on one path: plain numbers, no formatting. The findings
/// layer gives them an identity (path, address, verdict) and the outputs render them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub sent: u64,
    pub received: u64,
    /// `sent − received − limited` = `forward_lost + return_lost + late + unknown_lost`.
    pub lost: u64,
    /// Loss counted from this responder's first on-time ack on: a join's first lost probes are
    /// tolerated, any loss after them is not. `sent_after_first` is its denominator.
    pub lost_after_first: u64,
    pub sent_after_first: u64,
    pub forward_lost: u64,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub limited: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    /// RTT figures of the on-time acks; `None` when there was none.
    pub rtt: Option<RttFigures>,
    /// When the first on-time ack arrived, after the first probe left.
    pub first_ack_ns: Option<u64>,
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
    /// The RTT less the responder's dwell (time between its receive and send timestamps).
    pub net_p50_ns: u64,
    pub net_mean_ns: f64,
    /// RFC 3550 interarrival jitter over the on-time acks, in arrival order.
    pub jitter_ns: f64,
}

impl Figures {
    fn new(h: &HostStats, sent: u64, plain: bool) -> Self {
        let unanswered = sent.saturating_sub(h.received);
        // Probes the responder chose not to answer (rate limit) are not network loss.
        let limited = h.view.map_or(0, |v| v.limited).min(unanswered);
        let lost = unanswered - limited;
        let (forward, ret, unknown) = if plain { (0, 0, lost - h.late.min(lost)) } else { split_loss(h, sent, lost) };
        let rtt = (!h.rtt.is_empty()).then(|| RttFigures {
            min_ns: h.rtt.min(),
            mean_ns: h.rtt.mean(),
            p50_ns: h.rtt.value_at_quantile(0.50),
            p90_ns: h.rtt.value_at_quantile(0.90),
            p99_ns: h.rtt.value_at_quantile(0.99),
            p999_ns: h.rtt.value_at_quantile(0.999),
            max_ns: h.rtt.max(),
            stddev_ns: h.rtt.stdev(),
            net_p50_ns: h.net_rtt.value_at_quantile(0.5),
            net_mean_ns: h.net_rtt.mean(),
            jitter_ns: h.jitter_ns(),
        });
        let before_first = h.min_seq.unwrap_or(0).min(sent);
        Figures {
            sent,
            received: h.received,
            lost,
            lost_after_first: lost.saturating_sub(before_first),
            sent_after_first: sent - before_first,
            forward_lost: forward,
            return_lost: ret,
            unknown_lost: unknown,
            limited,
            duplicates: h.duplicates,
            reordered: h.reordered,
            late: h.late,
            rtt,
            first_ack_ns: h.first_ack_ns,
            ttl: h.ttl,
            arrival: h.arrival,
            outages: h.outages.len() as u64 + h.outages_dropped,
            longest_outage_probes: h.outages.iter().map(|o| o.probes_lost).max().unwrap_or(0),
            first_seq: h.min_seq,
            last_seq: h.max_seq,
        }
    }

    /// The figures of a path that never answered: every probe lost, for unknown reasons.
    pub fn silent(sent: u64) -> Self {
        Figures {
            sent,
            lost: sent,
            unknown_lost: sent,
            lost_after_first: sent,
            sent_after_first: sent,
            ..Figures::default()
        }
    }

    /// Loss in percent of the probes sent (0 when none were sent).
    pub fn loss_pct(&self) -> f64 {
        pct(self.lost, self.sent)
    }

    /// Loss in percent counted from the first on-time ack on.
    pub fn loss_after_first_pct(&self) -> f64 {
        pct(self.lost_after_first, self.sent_after_first)
    }
}

/// Splits `lost` into (forward, return, unknown) from the responder's newest counters; `late`
/// acks make up the rest.
fn split_loss(h: &HostStats, sent: u64, lost: u64) -> (u64, u64, u64) {
    let Some(v) = h.view else { return (0, 0, lost) };
    let upto = (v.seq + 1).min(sent);
    // A probe duplicated on the way (netem duplicate, a host joined twice) is counted twice by the
    // responder and answered twice, under a new ack number; a duplicated ack repeats its number.
    // Acks with numbers beyond one per probe therefore answered probe copies: take those copies
    // out of the responder's count, or duplication would hide forward loss.
    let copies = h.acks_distinct.saturating_sub(h.acks_unique);
    let forward = upto.saturating_sub(v.received.saturating_sub(copies));
    // Acks the responder sent up to its newest one, minus the distinct ones that reached us.
    let ret = v.acks_sent.saturating_sub(h.acks_distinct);
    let unknown = sent - upto;
    // The parts come from two sides' counters; keep them consistent with the total even if a
    // responder's counts are odd (a duplicated ack rather than probe, a counter that restarted).
    let mut parts = [forward, ret, unknown];
    let mut budget = lost.saturating_sub(h.late);
    for p in &mut parts {
        *p = (*p).min(budget);
        budget -= *p;
    }
    (parts[0], parts[1], parts[2])
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
