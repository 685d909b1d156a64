//! The watch's engine: datagrams in (group, port, source, payload, arrival time), figures out, per
//! (group, port, source address). Pure: no clock (arrival times and "now" are inputs), no I/O;
//! live sockets and captures feed it the same way. Bounded: per stream a fixed set of counters,
//! the arrivals of the last millisecond, one record per TS PID and a timeline that halves its
//! resolution instead of growing; at most `max_streams` streams.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::burst::Burst;
use super::mdi::Mdi;
use super::rtp::{self, Jitter};
use super::seq::{Arrival, SeqCounts, SeqTracker};
use super::ts::{self, TsAnalyzer};
use super::{Format, FormatChoice};

const MS: u64 = 1_000_000;

/// What the engine needs to know besides the packets.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub format: FormatChoice,
    /// RTP timestamp clock for payload types without a static one (default 90 kHz, video's).
    pub rtp_clock: Option<u32>,
    /// An inter-arrival time longer than this is a gap; silence longer than this, stopped.
    pub gap_ns: u64,
    /// Width of a timeline interval (and of MDI's measurement interval).
    pub interval_ns: u64,
    /// Streams beyond this are counted, not followed.
    pub max_streams: usize,
    /// MPEG-TS media rate in bytes/s for MDI, when known; else each interval's predecessor's.
    pub media_rate: Option<f64>,
    /// Keep every closed interval: each stream's timeline and the rows [`Engine::take_closed`]
    /// hands out. Off (`serve`, which runs without end and exports only the last interval),
    /// each stream keeps its last closed interval only.
    pub keep_intervals: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            format: FormatChoice::Auto,
            rtp_clock: None,
            gap_ns: 200 * MS,
            interval_ns: 1000 * MS,
            max_streams: 1024,
            media_rate: None,
            keep_intervals: true,
        }
    }
}

/// One stream: a group and port, and the address sending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub group: IpAddr,
    pub port: u16,
    pub source: IpAddr,
}

/// One interval of one stream: a row of intervals.csv and a point of the timelines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntervalRow {
    pub group: String,
    pub port: u16,
    pub source: String,
    /// Start of the interval, seconds since the watch started.
    pub t_s: f64,
    pub width_s: f64,
    pub packets: u64,
    pub bytes: u64,
    pub mbps: f64,
    pub peak_1ms_pps: f64,
    pub peak_1ms_mbps: f64,
    /// Datagrams lost (by sequence numbers, or inferred for TS over UDP); empty for raw.
    pub lost: Option<u64>,
    pub cc_errors: Option<u64>,
    pub ts_lost: Option<u64>,
    /// Longest time between two packets that ended in this interval, or the silence up to its
    /// end when none arrived.
    pub max_gap_ms: Option<f64>,
    pub df_ms: Option<f64>,
    pub mlr: Option<f64>,
}

impl IntervalRow {
    /// Two consecutive points as one (the timeline halves its resolution this way).
    fn absorb(&mut self, b: &IntervalRow) {
        let w = self.width_s + b.width_s;
        self.packets += b.packets;
        self.bytes += b.bytes;
        self.mbps = (self.mbps * self.width_s + b.mbps * b.width_s) / w;
        self.width_s = w;
        self.peak_1ms_pps = self.peak_1ms_pps.max(b.peak_1ms_pps);
        self.peak_1ms_mbps = self.peak_1ms_mbps.max(b.peak_1ms_mbps);
        let sum = |a: Option<u64>, b: Option<u64>| {
            if a.is_none() && b.is_none() {
                None
            } else {
                Some(a.unwrap_or(0) + b.unwrap_or(0))
            }
        };
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        self.lost = sum(self.lost, b.lost);
        self.cc_errors = sum(self.cc_errors, b.cc_errors);
        self.ts_lost = sum(self.ts_lost, b.ts_lost);
        self.max_gap_ms = max(self.max_gap_ms, b.max_gap_ms);
        self.df_ms = max(self.df_ms, b.df_ms);
        self.mlr = max(self.mlr, b.mlr);
    }
}

/// At most this many points per stream's timeline; then two become one.
pub const TIMELINE_POINTS: usize = 1800;

/// A stream's course for the report, of bounded length.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub points: Vec<IntervalRow>,
    per_point: usize,
    pending: Option<(IntervalRow, usize)>,
}

impl Timeline {
    fn push(&mut self, row: IntervalRow) {
        self.per_point = self.per_point.max(1);
        let (mut p, n) = match self.pending.take() {
            None => (row, 1),
            Some((mut p, n)) => {
                p.absorb(&row);
                (p, n + 1)
            }
        };
        if n < self.per_point {
            self.pending = Some((p, n));
            return;
        }
        self.points.push(std::mem::take(&mut p));
        if self.points.len() >= TIMELINE_POINTS {
            let old = std::mem::take(&mut self.points);
            for pair in old.chunks(2) {
                let mut a = pair[0].clone();
                if let Some(b) = pair.get(1) {
                    a.absorb(b);
                }
                self.points.push(a);
            }
            self.per_point *= 2;
        }
    }

    /// The points, the one still gathering included.
    pub fn all(&self) -> Vec<IntervalRow> {
        self.points.iter().cloned().chain(self.pending.as_ref().map(|p| p.0.clone())).collect()
    }
}

#[derive(Debug, Clone, Default)]
struct IntervalAcc {
    packets: u64,
    bytes: u64,
    peak_pkts: u64,
    peak_bytes: u64,
    lost_at_start: u64,
    cc_at_start: u64,
    ts_lost_at_start: u64,
    max_iat_ns: Option<u64>,
}

#[derive(Debug, Clone)]
struct RtpState {
    ssrc: u32,
    pt: u8,
    jitter: Jitter,
}

#[derive(Debug, Clone)]
struct Stream {
    key: StreamKey,
    format: Format,
    src_port: u16,
    first_ns: u64,
    last_ns: u64,
    first_bytes: u64,
    packets: u64,
    bytes: u64,
    burst: Burst,
    peak_pkts: u64,
    peak_bytes: u64,
    max_iat_ns: u64,
    prev_iat_ns: Option<u64>,
    iat_jitter_ns: f64,
    time_gaps: u64,
    seq: Option<SeqTracker>,
    /// Counts of the sequence spaces before an SSRC change.
    seq_before: SeqCounts,
    rtp: Option<RtpState>,
    source_changes: u64,
    ts: Option<TsAnalyzer>,
    mdi: Option<Mdi>,
    df_max_s: Option<f64>,
    mlr_max: Option<f64>,
    malformed: u64,
    iv: IntervalAcc,
    timeline: Timeline,
    /// The last closed interval.
    last_row: Option<IntervalRow>,
}

fn add(a: SeqCounts, b: SeqCounts) -> SeqCounts {
    SeqCounts {
        received: a.received + b.received,
        expected: a.expected + b.expected,
        lost: a.lost + b.lost,
        duplicates: a.duplicates + b.duplicates,
        reordered: a.reordered + b.reordered,
        gaps: a.gaps + b.gaps,
        largest_gap: a.largest_gap.max(b.largest_gap),
        resyncs: a.resyncs + b.resyncs,
    }
}

fn detect(choice: FormatChoice, payload: &[u8]) -> Format {
    let rtp_ts = || rtp::parse(payload).filter(|h| ts::looks_like_ts(&payload[h.payload_offset..h.payload_end]));
    match choice {
        FormatChoice::Seq(f) => Format::Seq(f),
        FormatChoice::Raw => Format::Raw,
        FormatChoice::Rtp | FormatChoice::Ts if rtp_ts().is_some() => Format::RtpTs,
        FormatChoice::Rtp => Format::Rtp,
        FormatChoice::Ts => Format::Ts,
        FormatChoice::Auto if rtp_ts().is_some() => Format::RtpTs,
        FormatChoice::Auto if rtp::parse(payload).is_some() => Format::Rtp,
        FormatChoice::Auto if ts::looks_like_ts(payload) => Format::Ts,
        FormatChoice::Auto => Format::Raw,
    }
}

impl Stream {
    fn new(key: StreamKey, format: Format, cfg: &EngineConfig, iv_start: u64) -> Stream {
        let seq = match format {
            Format::Rtp | Format::RtpTs => Some(SeqTracker::new(16)),
            Format::Seq(f) => Some(SeqTracker::new(f.bytes as u32 * 8)),
            Format::Ts | Format::Raw => None,
        };
        let has_ts = matches!(format, Format::Ts | Format::RtpTs);
        Stream {
            key,
            format,
            src_port: 0,
            first_ns: 0,
            last_ns: 0,
            first_bytes: 0,
            packets: 0,
            bytes: 0,
            burst: Burst::new(MS),
            peak_pkts: 0,
            peak_bytes: 0,
            max_iat_ns: 0,
            prev_iat_ns: None,
            iat_jitter_ns: 0.0,
            time_gaps: 0,
            seq,
            seq_before: SeqCounts::default(),
            rtp: None,
            source_changes: 0,
            ts: has_ts.then(TsAnalyzer::default),
            mdi: has_ts.then(|| Mdi::new(cfg.media_rate, iv_start)),
            df_max_s: None,
            mlr_max: None,
            malformed: 0,
            iv: IntervalAcc::default(),
            timeline: Timeline::default(),
            last_row: None,
        }
    }

    fn seq_counts(&self) -> Option<SeqCounts> {
        self.seq.as_ref().map(|s| add(self.seq_before, s.counts()))
    }

    /// Datagrams lost so far, by whichever numbering the format has.
    fn lost(&self) -> Option<u64> {
        match (&self.seq, &self.ts) {
            (Some(_), _) => self.seq_counts().map(|c| c.lost),
            (None, Some(t)) => Some(t.counts().lost_datagrams),
            (None, None) => None,
        }
    }

    fn packet(&mut self, src_port: u16, payload: &[u8], t: u64, cfg: &EngineConfig) {
        let len = payload.len() as u64;
        if self.packets == 0 {
            self.first_ns = t;
            self.first_bytes = len;
            self.src_port = src_port;
        } else {
            let iat = t.saturating_sub(self.last_ns);
            self.max_iat_ns = self.max_iat_ns.max(iat);
            self.iv.max_iat_ns = Some(self.iv.max_iat_ns.unwrap_or(0).max(iat));
            if iat > cfg.gap_ns {
                self.time_gaps += 1;
            }
            // RFC 3550's smoothing applied to the change of inter-arrival time: 0 for a
            // perfectly paced stream, whatever its rate; no sender timestamps needed.
            if let Some(prev) = self.prev_iat_ns {
                let d = (iat as f64 - prev as f64).abs();
                self.iat_jitter_ns += (d - self.iat_jitter_ns) / 16.0;
            }
            self.prev_iat_ns = Some(iat);
            if src_port != self.src_port && !matches!(self.format, Format::Rtp | Format::RtpTs) {
                self.source_changes += 1;
                self.src_port = src_port;
            }
        }
        self.last_ns = self.last_ns.max(t);
        self.packets += 1;
        self.bytes += len;
        self.iv.packets += 1;
        self.iv.bytes += len;
        let (wp, wb) = self.burst.packet(t, len as u32);
        self.peak_pkts = self.peak_pkts.max(wp);
        self.peak_bytes = self.peak_bytes.max(wb);
        self.iv.peak_pkts = self.iv.peak_pkts.max(wp);
        self.iv.peak_bytes = self.iv.peak_bytes.max(wb);

        let ts_payload = match self.format {
            Format::Rtp | Format::RtpTs => match self.rtp_packet(payload, t, cfg) {
                Some(Some((a, b))) if self.format == Format::RtpTs => Some(&payload[a..b]),
                Some(_) => None,
                None => {
                    self.malformed += 1;
                    None
                }
            },
            Format::Seq(f) => {
                match (f.read(payload), self.seq.as_mut()) {
                    (Some(n), Some(s)) => {
                        s.arrive(n);
                    }
                    _ => self.malformed += 1,
                }
                None
            }
            Format::Ts => Some(payload),
            Format::Raw => None,
        };
        if let (Some(b), Some(a), Some(m)) = (ts_payload, self.ts.as_mut(), self.mdi.as_mut()) {
            let r = a.datagram(b);
            m.packet(t, r.packets * ts::PACKET as u64);
            m.lost(r.lost);
        }
    }

    /// RTP: sequence, SSRC, jitter. `None`: not RTP; `Some(None)`: a duplicate (its payload is
    /// not analysed again); else where its payload lies.
    fn rtp_packet(&mut self, payload: &[u8], t: u64, cfg: &EngineConfig) -> Option<Option<(usize, usize)>> {
        let h = rtp::parse(payload)?;
        match &mut self.rtp {
            Some(r) if r.ssrc != h.ssrc => {
                // A new sender (or a restarted one): a new numbering and timestamp base.
                self.source_changes += 1;
                if let Some(s) = self.seq.replace(SeqTracker::new(16)) {
                    self.seq_before = add(self.seq_before, s.counts());
                }
                *r = RtpState { ssrc: h.ssrc, pt: h.payload_type, jitter: Jitter::default() };
            }
            Some(_) => {}
            None => self.rtp = Some(RtpState { ssrc: h.ssrc, pt: h.payload_type, jitter: Jitter::default() }),
        }
        let arrival = self.seq.as_mut().map(|s| s.arrive(h.seq as u64));
        if arrival == Some(Arrival::Duplicate) {
            return Some(None);
        }
        let clock = rtp::static_clock(h.payload_type).or(cfg.rtp_clock).unwrap_or(90_000);
        if let Some(r) = &mut self.rtp {
            r.pt = h.payload_type;
            r.jitter.arrive(t, h.timestamp, clock);
        }
        Some(Some((h.payload_offset, h.payload_end)))
    }

    fn clock(&self, cfg: &EngineConfig) -> u32 {
        self.rtp.as_ref().and_then(|r| rtp::static_clock(r.pt)).or(cfg.rtp_clock).unwrap_or(90_000)
    }

    /// Closes the interval [start, end): its row (kept as configured), and the next interval's
    /// baselines.
    fn close(&mut self, start: u64, end: u64, t0: u64, keep: bool, closed: &mut Vec<IntervalRow>) {
        let width = (end - start) as f64 / 1e9;
        let lost = self.lost();
        let tsc = self.ts.as_ref().map(|t| t.counts());
        let mdi = self.mdi.as_mut().map(|m| m.close(end));
        if let Some(m) = mdi {
            if let Some(df) = m.df_s {
                self.df_max_s = Some(self.df_max_s.map_or(df, |d| d.max(df)));
            }
            self.mlr_max = Some(self.mlr_max.map_or(m.mlr, |x| x.max(m.mlr)));
        }
        // An interval without packets: the silence so far is its gap.
        let gap = self.iv.max_iat_ns.or((self.packets > 0 && self.iv.packets == 0).then(|| end - self.last_ns));
        let row = IntervalRow {
            group: self.key.group.to_string(),
            port: self.key.port,
            source: self.key.source.to_string(),
            t_s: (start - t0) as f64 / 1e9,
            width_s: width,
            packets: self.iv.packets,
            bytes: self.iv.bytes,
            mbps: self.iv.bytes as f64 * 8.0 / width / 1e6,
            peak_1ms_pps: self.iv.peak_pkts as f64 * 1000.0,
            peak_1ms_mbps: self.iv.peak_bytes as f64 * 8.0 * 1000.0 / 1e6,
            lost: lost.map(|l| l.saturating_sub(self.iv.lost_at_start)),
            cc_errors: tsc.map(|c| c.cc_errors - self.iv.cc_at_start),
            ts_lost: tsc.map(|c| c.lost - self.iv.ts_lost_at_start),
            max_gap_ms: gap.map(|g| g as f64 / 1e6),
            df_ms: mdi.and_then(|m| m.df_s).map(|d| d * 1e3),
            mlr: mdi.map(|m| m.mlr),
        };
        self.iv = IntervalAcc {
            lost_at_start: lost.unwrap_or(0),
            cc_at_start: tsc.map_or(0, |c| c.cc_errors),
            ts_lost_at_start: tsc.map_or(0, |c| c.lost),
            ..IntervalAcc::default()
        };
        if keep {
            self.timeline.push(row.clone());
            closed.push(row);
        } else {
            self.last_row = Some(row);
        }
    }
}

/// One stream's figures at the end (or at a moment) of the watch: a row of streams.csv, an
/// element of the JSON. Empty (None) where the format has no such figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamSummary {
    pub group: String,
    pub port: u16,
    /// Empty for a watched group that received nothing.
    pub source: Option<String>,
    pub format: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    /// Seconds since the watch started.
    pub first_s: Option<f64>,
    pub last_s: Option<f64>,
    /// Time since the last packet (or since the start, for nothing received).
    pub silence_s: f64,
    /// Silent longer than the gap threshold.
    pub stopped: bool,
    /// Mean rates between the first and the last packet (UDP payload bits).
    pub pps: Option<f64>,
    pub mbps: Option<f64>,
    /// The most packets (bits) within any 1 ms, per second.
    pub peak_1ms_pps: Option<f64>,
    pub peak_1ms_mbps: Option<f64>,
    /// Longest inter-arrival time.
    pub max_gap_ms: Option<f64>,
    /// Inter-arrival times longer than the gap threshold.
    pub time_gaps: u64,
    /// RFC 3550's filter over the change of inter-arrival time.
    pub iat_jitter_ms: Option<f64>,
    pub lost: Option<u64>,
    pub expected: Option<u64>,
    pub loss_pct: Option<f64>,
    pub duplicates: Option<u64>,
    pub reordered: Option<u64>,
    pub seq_gaps: Option<u64>,
    pub largest_gap: Option<u64>,
    pub resyncs: Option<u64>,
    pub rtp_jitter_ms: Option<f64>,
    pub ssrc: Option<String>,
    pub payload_type: Option<u8>,
    /// New SSRCs (RTP) or source ports (others) after the first.
    pub source_changes: u64,
    pub ts_packets: Option<u64>,
    pub cc_errors: Option<u64>,
    pub ts_lost: Option<u64>,
    pub ts_duplicates: Option<u64>,
    pub pids: Option<usize>,
    pub pcr_pids: Option<String>,
    pub df_max_ms: Option<f64>,
    pub mlr_max: Option<f64>,
    /// Datagrams that did not parse as the format (too short for the sequence field, not RTP).
    pub malformed: u64,
    /// Datagrams this host's kernel dropped (socket buffer full): not network loss.
    pub local_drops: Option<u64>,
}

impl StreamSummary {
    /// `group:port from source`, for lines and failures.
    pub fn label(&self) -> String {
        let g = if self.group.contains(':') { format!("[{}]", self.group) } else { self.group.clone() };
        match &self.source {
            Some(s) => format!("{g}:{} from {s}", self.port),
            None => format!("{g}:{}", self.port),
        }
    }
}

/// The engine: every stream of a watch.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    t0: u64,
    iv_start: u64,
    streams: Vec<Stream>,
    index: HashMap<StreamKey, usize>,
    watched: Vec<(IpAddr, u16)>,
    local_drops: HashMap<(IpAddr, u16), u64>,
    /// Datagrams of streams beyond `max_streams`.
    pub untracked: u64,
    closed: Vec<IntervalRow>,
}

impl Engine {
    /// A watch that starts at `t0_ns`: intervals are counted from there.
    pub fn new(cfg: EngineConfig, t0_ns: u64) -> Engine {
        Engine {
            cfg,
            t0: t0_ns,
            iv_start: t0_ns,
            streams: Vec::new(),
            index: HashMap::new(),
            watched: Vec::new(),
            local_drops: HashMap::new(),
            untracked: 0,
            closed: Vec::new(),
        }
    }

    /// A watched group: listed even if nothing arrives.
    pub fn watch(&mut self, group: IpAddr, port: u16) {
        if !self.watched.contains(&(group, port)) {
            self.watched.push((group, port));
        }
    }

    /// The kernel's drop count of the socket of `group:port` (cumulative).
    pub fn set_local_drops(&mut self, group: IpAddr, port: u16, n: u64) {
        self.local_drops.insert((group, port), n);
    }

    /// Closes every interval that ends at or before `now_ns`.
    pub fn advance(&mut self, now_ns: u64) {
        let w = self.cfg.interval_ns;
        // A capture whose clock jumps by days: one interval for the jump, not millions of rows.
        if now_ns.saturating_sub(self.iv_start) / w > 100_000 {
            let skip_to = now_ns - (now_ns - self.iv_start) % w - w;
            for s in &mut self.streams {
                s.close(self.iv_start, skip_to, self.t0, self.cfg.keep_intervals, &mut self.closed);
            }
            self.iv_start = skip_to;
        }
        while self.iv_start + w <= now_ns {
            let end = self.iv_start + w;
            for s in &mut self.streams {
                s.close(self.iv_start, end, self.t0, self.cfg.keep_intervals, &mut self.closed);
            }
            self.iv_start = end;
        }
    }

    /// Ends the watch at `end_ns`: closes the intervals up to it, the last one partial.
    pub fn finish(&mut self, end_ns: u64) {
        self.advance(end_ns);
        if end_ns > self.iv_start {
            for s in &mut self.streams {
                s.close(self.iv_start, end_ns, self.t0, self.cfg.keep_intervals, &mut self.closed);
            }
            self.iv_start = end_ns;
        }
    }

    /// One datagram: `payload` from `source:src_port` to `group:port`, arrived at `t_ns`.
    pub fn packet(&mut self, group: IpAddr, port: u16, source: IpAddr, src_port: u16, payload: &[u8], t_ns: u64) {
        self.advance(t_ns);
        let key = StreamKey { group, port, source };
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None if self.streams.len() >= self.cfg.max_streams => {
                self.untracked += 1;
                return;
            }
            None => {
                let s = Stream::new(key, detect(self.cfg.format, payload), &self.cfg, self.iv_start);
                self.streams.push(s);
                self.index.insert(key, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        let cfg = &self.cfg;
        self.streams[i].packet(src_port, payload, t_ns, cfg);
    }

    /// Interval rows closed since the last call.
    pub fn take_closed(&mut self) -> Vec<IntervalRow> {
        std::mem::take(&mut self.closed)
    }

    /// When the watch started (ns, the clock of the arrival times).
    pub fn started_ns(&self) -> u64 {
        self.t0
    }

    /// Each stream's timeline (for the report), in the order of [`Self::summaries`].
    pub fn timelines(&self) -> Vec<(String, Vec<IntervalRow>)> {
        let mut v: Vec<&Stream> = self.streams.iter().collect();
        v.sort_by_key(|s| s.key);
        v.into_iter().map(|s| (label(&s.key), s.timeline.all())).collect()
    }

    /// Forgets every stream silent for longer than `after_ns` at `now_ns` (its figures go; if
    /// it comes back, it starts again as new); returns their keys. A watched group stays
    /// watched.
    pub fn forget_silent(&mut self, now_ns: u64, after_ns: u64) -> Vec<StreamKey> {
        let silent = |s: &Stream| now_ns.saturating_sub(s.last_ns) > after_ns;
        let gone: Vec<StreamKey> = self.streams.iter().filter(|s| silent(s)).map(|s| s.key).collect();
        if !gone.is_empty() {
            self.streams.retain(|s| !silent(s));
            self.index = self.streams.iter().enumerate().map(|(i, s)| (s.key, i)).collect();
        }
        gone
    }

    /// Every followed stream's figures at `now_ns` with its key and its last closed interval
    /// (with `keep_intervals` off), in no particular order.
    pub fn streams_at(&self, now_ns: u64) -> Vec<(StreamKey, StreamSummary, Option<&IntervalRow>)> {
        self.streams.iter().map(|s| (s.key, self.summary(s, now_ns), s.last_row.as_ref())).collect()
    }

    /// Every stream's figures at `now_ns`, and a row for each watched group nothing came to;
    /// sorted by group, port, source.
    pub fn summaries(&self, now_ns: u64) -> Vec<StreamSummary> {
        let mut out: Vec<(StreamKey, StreamSummary)> =
            self.streams.iter().map(|s| (s.key, self.summary(s, now_ns))).collect();
        for &(group, port) in &self.watched {
            if !self.streams.iter().any(|s| s.key.group == group && s.key.port == port) {
                let silence = now_ns.saturating_sub(self.t0) as f64 / 1e9;
                let row = StreamSummary {
                    group: group.to_string(),
                    port,
                    silence_s: silence,
                    stopped: true,
                    local_drops: self.local_drops.get(&(group, port)).copied(),
                    ..StreamSummary::default()
                };
                // Sorts before the group's streams (no source yet).
                out.push((StreamKey { group, port, source: group }, row));
            }
        }
        out.sort_by(|a, b| (a.0.group, a.0.port, &a.1.source).cmp(&(b.0.group, b.0.port, &b.1.source)));
        out.into_iter().map(|(_, s)| s).collect()
    }

    fn summary(&self, s: &Stream, now_ns: u64) -> StreamSummary {
        let rel = |t: u64| t.saturating_sub(self.t0) as f64 / 1e9;
        let span = s.last_ns.saturating_sub(s.first_ns) as f64 / 1e9;
        let (pps, mbps) = if s.packets > 1 && span > 0.0 {
            (Some((s.packets - 1) as f64 / span), Some((s.bytes - s.first_bytes) as f64 * 8.0 / span / 1e6))
        } else {
            (None, None)
        };
        let silence = now_ns.saturating_sub(s.last_ns) as f64 / 1e9;
        let seq = s.seq_counts();
        let tsc = s.ts.as_ref().map(|t| t.counts());
        let lost = s.lost();
        let loss_pct = match (seq, tsc) {
            (Some(c), _) if c.expected > 0 => Some(100.0 * c.lost as f64 / c.expected as f64),
            (None, Some(t)) if s.packets + t.lost_datagrams > 0 => {
                Some(100.0 * t.lost_datagrams as f64 / (s.packets + t.lost_datagrams) as f64)
            }
            _ => None,
        };
        let clock = s.clock(&self.cfg);
        StreamSummary {
            group: s.key.group.to_string(),
            port: s.key.port,
            source: Some(s.key.source.to_string()),
            format: Some(s.format.to_string()),
            packets: s.packets,
            bytes: s.bytes,
            first_s: Some(rel(s.first_ns)),
            last_s: Some(rel(s.last_ns)),
            silence_s: silence,
            stopped: now_ns.saturating_sub(s.last_ns) > self.cfg.gap_ns,
            pps,
            mbps,
            peak_1ms_pps: Some(s.peak_pkts as f64 * 1000.0),
            peak_1ms_mbps: Some(s.peak_bytes as f64 * 8.0 * 1000.0 / 1e6),
            max_gap_ms: (s.packets > 1).then(|| s.max_iat_ns as f64 / 1e6),
            time_gaps: s.time_gaps,
            iat_jitter_ms: (s.packets > 2).then(|| s.iat_jitter_ns / 1e6),
            lost,
            expected: seq.map(|c| c.expected),
            loss_pct,
            duplicates: seq.map(|c| c.duplicates),
            reordered: seq.map(|c| c.reordered),
            seq_gaps: seq.map(|c| c.gaps),
            largest_gap: seq.map(|c| c.largest_gap),
            resyncs: seq.map(|c| c.resyncs),
            rtp_jitter_ms: s.rtp.as_ref().map(|r| r.jitter.seconds(clock) * 1e3),
            ssrc: s.rtp.as_ref().map(|r| format!("{:08x}", r.ssrc)),
            payload_type: s.rtp.as_ref().map(|r| r.pt),
            source_changes: s.source_changes,
            ts_packets: tsc.map(|c| c.packets),
            cc_errors: tsc.map(|c| c.cc_errors),
            ts_lost: tsc.map(|c| c.lost),
            ts_duplicates: tsc.map(|c| c.duplicates),
            pids: s.ts.as_ref().map(|t| t.pids()),
            pcr_pids: s.ts.as_ref().map(|t| t.pcr_pids().iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")),
            df_max_ms: s.df_max_s.map(|d| d * 1e3),
            mlr_max: s.mlr_max,
            malformed: s.malformed,
            local_drops: self.local_drops.get(&(s.key.group, s.key.port)).copied(),
        }
    }
}

fn label(k: &StreamKey) -> String {
    let g = if k.group.is_ipv6() { format!("[{}]", k.group) } else { k.group.to_string() };
    format!("{g}:{} from {}", k.port, k.source)
}

#[cfg(test)]
mod tests;
