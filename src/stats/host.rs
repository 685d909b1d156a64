//! Accounting for one responder, as one probe run sees it: RTT histograms, jitter, reordering,
//! duplicates and the responder's own counters. No I/O, no clocks: every time is passed in.

use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::wire::{unwrap_counter, Ack, Arrival};

/// Per-interval accumulator. It lives only while its interval is open (its probes are still
/// inside the ack timeout); closing it reduces the samples to three numbers.
#[derive(Debug, Default, Clone)]
pub struct IntervalAcc {
    pub received: u32,
    samples: Vec<u32>,
}

impl IntervalAcc {
    /// The RTTs (ns) of the interval's on-time acks, in arrival order.
    pub fn samples(&self) -> &[u32] {
        &self.samples
    }

    /// (received, median RTT, maximum RTT) in ns. Median by nearest rank: the smallest sample with
    /// at least half the samples at or below it.
    pub fn summarize(mut self) -> (u32, Option<u32>, Option<u32>) {
        self.samples.sort_unstable();
        let rank = self.samples.len().div_ceil(2);
        let p50 = rank.checked_sub(1).map(|r| self.samples[r]);
        (self.received, p50, self.samples.last().copied())
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
    pub const SPAN: u64 = 16_384;

    pub fn new() -> Self {
        SeqBits { words: vec![0; (Self::SPAN / 64) as usize], base: 0 }
    }

    /// Marks `seq`; `false` when it was marked already. Numbers older than the span count as new.
    pub fn insert(&mut self, seq: u64) -> bool {
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

impl Default for SeqBits {
    fn default() -> Self {
        Self::new()
    }
}

/// What one responder's latest ack says about its side of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderView {
    /// Sequence number of the newest probe it acked.
    pub seq: u64,
    /// Probes of this session it had received when it sent that ack.
    pub received: u64,
    /// Acks it had sent, that one included.
    pub acks_sent: u64,
    /// Probes it had not answered because of its rate limit.
    pub limited: u64,
}

/// Everything the prober knows about one responder (one responder id).
#[derive(Debug)]
pub struct HostStats {
    pub responder_id: u64,
    pub name: String,
    pub addr: SocketAddr,
    pub ttl: u8,
    pub arrival: Arrival,
    /// Unique acks that arrived within the timeout.
    pub received: u64,
    /// Unique acks, on time or late: the prober's side of the return-loss count.
    pub acks_unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    /// On-time acks of probes that have been finalized: gives loss so far during the run.
    pub received_finalized: u64,
    pub first_ack_ns: Option<u64>,
    pub rtt: Histogram<u32>,
    pub net_rtt: Histogram<u32>,
    jitter_ns: f64,
    last_rtt_ns: Option<u64>,
    /// Highest and lowest sequence numbers acked on time: where a restart's gap begins and ends.
    pub max_seq: Option<u64>,
    pub min_seq: Option<u64>,
    pub view: Option<ResponderView>,
    /// Which recent probes this responder acked (on time or late).
    pub acked: SeqBits,
    /// Which of the responder's own ack numbers reached us, and how many distinct ones: a copy of
    /// an ack repeats its number, an ack of a duplicated probe has a new one.
    pub ack_numbers: SeqBits,
    pub acks_distinct: u64,
    /// Accumulators of the open intervals; the front one is interval `first_open`.
    open_intervals: VecDeque<IntervalAcc>,
    first_open: usize,
    /// First probe whose finalization saw this host: raw rows before it are filled in at the end.
    pub first_row_seq: Option<u64>,
    /// A run of unanswered probes since the last answered one: (first seq, its send time, count).
    open_gap: Option<(u64, u64, u64)>,
    answered_once: bool,
    pub outages: Vec<Outage>,
    /// Outages beyond [`MAX_OUTAGES`], counted but not kept.
    pub outages_dropped: u64,
}

/// Outages kept per responder; a host that flaps all day still costs bounded memory.
pub const MAX_OUTAGES: usize = 10_000;

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

/// RTT histogram: nanoseconds, 3 significant digits, growing on demand so a LAN host costs a few
/// tens of KiB (a fixed 1 ns–60 s range would cost ~150 KiB per host).
fn rtt_histogram(sigfig: u8) -> Histogram<u32> {
    let mut h = Histogram::new_with_bounds(1, 1_000_000, sigfig).expect("static bounds are valid");
    h.auto(true);
    h
}

/// Records a value, growing the histogram as needed (`saturating_record` would clamp instead).
fn record(h: &mut Histogram<u32>, ns: u64) {
    if h.record(ns.max(1)).is_err() {
        h.saturating_record(ns.max(1));
    }
}

/// A responder's name as it may be shown: control characters (which could rewrite the
/// prober's terminal or fake a line of its table) become U+FFFD.
pub fn printable(name: &str) -> String {
    name.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

impl HostStats {
    pub fn new(ack: &Ack, addr: SocketAddr) -> Self {
        HostStats {
            responder_id: ack.responder,
            name: printable(&ack.name),
            addr,
            ttl: ack.ttl,
            arrival: ack.arrival,
            received: 0,
            acks_unique: 0,
            duplicates: 0,
            reordered: 0,
            late: 0,
            received_finalized: 0,
            first_ack_ns: None,
            rtt: rtt_histogram(3),
            // The dwell-corrected RTT needs less precision: it is a correction, not the headline.
            net_rtt: rtt_histogram(2),
            jitter_ns: 0.0,
            last_rtt_ns: None,
            max_seq: None,
            min_seq: None,
            view: None,
            acked: SeqBits::new(),
            ack_numbers: SeqBits::new(),
            acks_distinct: 0,
            open_intervals: VecDeque::new(),
            first_open: 0,
            first_row_seq: None,
            open_gap: None,
            answered_once: false,
            outages: Vec::new(),
            outages_dropped: 0,
        }
    }

    /// Notes the identity fields every ack carries (the name may be missing from small acks).
    pub fn observe(&mut self, ack: &Ack, addr: SocketAddr) {
        if !ack.name.is_empty() && ack.name.len() >= self.name.len() {
            self.name = printable(&ack.name);
        }
        self.addr = addr;
        self.ttl = ack.ttl;
        self.arrival = ack.arrival;
        let seq = ack.seq;
        let bound = seq + 1;
        let view = ResponderView {
            seq,
            received: unwrap_counter(ack.received, bound),
            acks_sent: unwrap_counter(ack.ack_seq, bound.saturating_sub(1)) + 1,
            limited: unwrap_counter(ack.limited, bound),
        };
        if self.view.is_none_or(|v| v.seq <= seq) {
            self.view = Some(view);
        }
    }

    /// Records a first, on-time ack of probe `seq`.
    /// `since_start_ns` is when it arrived, counted from the start of the run; `interval` is the
    /// interval its probe was sent in, when intervals are kept.
    pub fn record_on_time(
        &mut self,
        seq: u64,
        rtt_ns: u64,
        dwell_ns: u64,
        since_start_ns: u64,
        interval: Option<usize>,
    ) {
        self.received += 1;
        self.acks_unique += 1;
        record(&mut self.rtt, rtt_ns);
        record(&mut self.net_rtt, rtt_ns.saturating_sub(dwell_ns));
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
            let acc = &mut self.open_intervals[pos];
            acc.received += 1;
            acc.samples.push(rtt_ns.min(u32::MAX as u64) as u32);
        }
    }

    /// Records an ack that came after the timeout: counted, kept out of the RTT figures.
    pub fn record_late(&mut self) {
        self.late += 1;
        self.acks_unique += 1;
    }

    pub fn record_duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// Hands over interval `i`, which is complete; intervals are taken in order.
    pub fn take_interval(&mut self, i: usize) -> IntervalAcc {
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

    /// Follows outages as probes close in order: `answered` says whether this one got an on-time
    /// ack. Gaps of at least `min_len` probes after a first answer are outages; shorter ones are
    /// plain loss, and those before the first answer are the join.
    pub fn on_finalized(&mut self, seq: u64, tx_ns: u64, answered: bool, min_len: u64) {
        if answered {
            if let Some(gap) = self.open_gap.take() {
                self.close_gap(gap, Some(tx_ns), min_len);
            }
            self.answered_once = true;
        } else if self.answered_once {
            let gap = self.open_gap.get_or_insert((seq, tx_ns, 0));
            gap.2 += 1;
        }
    }

    /// Closes an outage still open when the run ends.
    pub fn end_outages(&mut self, min_len: u64) {
        if let Some(gap) = self.open_gap.take() {
            self.close_gap(gap, None, min_len);
        }
    }

    fn close_gap(&mut self, (first, start, lost): (u64, u64, u64), end: Option<u64>, min_len: u64) {
        if lost < min_len.max(1) {
            return;
        }
        if self.outages.len() >= MAX_OUTAGES {
            self.outages_dropped += 1;
            return;
        }
        self.outages.push(Outage { first_lost_seq: first, probes_lost: lost, start_unix_ns: start, end_unix_ns: end });
    }

    pub fn jitter_ns(&self) -> f64 {
        self.jitter_ns
    }
}
