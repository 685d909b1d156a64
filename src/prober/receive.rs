//! The ack receiver: what each datagram or ICMP error does to the runs ([`handle`]), when old
//! probes are closed and when the run is complete ([`EndOfRun`]), and the loop that ties them to
//! an [`AckSource`] and a [`Clock`]. The real source is [`ProbeSockets`]; unit tests drive the
//! same loop with synthetic datagrams and a fake clock (as trippy-core's `Network` trait does).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{ProbeConfig, RowSink, Runs, Shared};
use crate::net::{self, Event, ProbeSockets};
use crate::run::KeySign;
use crate::stats::Run;
use crate::wire::{self, Message, NoticeReason};

/// Probes are kept open this much past the timeout, so acks already queued in the socket are
/// judged by their kernel timestamps rather than by when the thread read them.
pub(super) const RETAIN_MARGIN: Duration = Duration::from_millis(200);

/// Under a stream of datagrams, old probes are closed at most this often: the loop is awake
/// anyway, and closing them (and handing out rows) per datagram would be work for nothing.
pub(super) const FINALIZE_EVERY: Duration = Duration::from_millis(20);

/// When no datagram wakes the loop, it wakes to close a probe this long after its retention ran
/// out. At a steady rate the probe sent one retention later is answered within this, and its
/// ack's wake-up closes the old probe too: one wake-up per probe instead of two. Closing later
/// changes no figure (arrivals are judged by kernel timestamps); rows and progress lag by it.
pub(super) const FINALIZE_SLACK: Duration = Duration::from_millis(50);

/// The sockets are drained once nothing came for this long (the 20 ms read tick used to be the
/// measure). Past the timeout the run ends then: acks already queued are read at once; a flood
/// never leaves this much silence and ends the run at the retention margin instead.
pub(super) const DRAIN_WAIT: Duration = Duration::from_millis(5);

/// While acks come closer together than this, the receiver naps between reads (see [`Coalesce`]).
pub(super) const NAP_MAX: Duration = Duration::from_millis(10);
/// The first nap of a stream, and the shortest: 1 ms of acks at 100 000/s fit any socket buffer.
pub(super) const NAP_MIN: Duration = Duration::from_millis(1);
/// A nap after which fewer datagrams than this were queued is doubled (up to [`NAP_MAX`]); one
/// after which more than [`NAP_SHRINK_ABOVE`] were is halved, so the queue stays far below what
/// the socket's buffer holds; both are lowered for a smaller buffer (see [`Coalesce::new`]).
const NAP_GROW_BELOW: usize = 32;
const NAP_SHRINK_ABOVE: usize = 128;
/// Sockets that hold fewer datagrams than this (a small `--rcvbuf`) are read as they come, never
/// after a nap.
const NAP_ROOM_MIN: usize = 64;

/// Where the receiver's datagrams and ICMP errors come from.
pub(super) trait AckSource {
    /// The next event; [`Event::Idle`] once `wait` ran out in silence (the loop's next
    /// deadline), at once if `wait` is zero and nothing is queued. A datagram's bytes go to `buf`.
    fn next(&mut self, buf: &mut [u8], cmsg: &mut [u8], wait: Duration) -> io::Result<Event>;
    /// Sleeps `d`, reading nothing (datagrams queue meanwhile).
    fn nap(&mut self, d: Duration);
    /// About how many datagrams the fullest socket can queue before the kernel drops.
    fn room(&self) -> usize;
}

impl AckSource for ProbeSockets {
    fn next(&mut self, buf: &mut [u8], cmsg: &mut [u8], wait: Duration) -> io::Result<Event> {
        ProbeSockets::next(self, buf, cmsg, wait)
    }
    fn nap(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
    fn room(&self) -> usize {
        ProbeSockets::room(self)
    }
}

/// When the receiver reads (pure: handed the times). Waking for every ack costs a wake-up each
/// (tens of µs of CPU on a small VM: at 1 000 acks/s the receiver's largest cost, issue 25), yet
/// nothing needs an ack read at once: its arrival time is the kernel's stamp, and probes are
/// closed by deadlines. So an ack that comes within [`NAP_MAX`] of the one before starts a
/// stream: the receiver naps, reads everything queued meanwhile without waiting, and naps again
/// as long as a nap found anything; a nap that found nothing ends the stream and the receiver
/// waits for the next ack again. Sparse acks (10 probes/s to one responder) wake it once each,
/// as before; a nap never runs past the loop's next deadline. Not with `--plain` (a reply is
/// matched to the newest probe when it is read), with sockets too small to queue a nap's acks,
/// nor once an ack's kernel stamp was off this process's clock (then acks are measured by when
/// they are read, and a nap would lengthen their RTT).
#[derive(Debug, Clone)]
pub(super) struct Coalesce {
    /// Whether naps are taken at all.
    on: bool,
    /// Reading without waiting what queued during a nap.
    draining: bool,
    /// The next nap.
    nap: Duration,
    /// Datagrams read since the last nap.
    got: usize,
    /// When the last datagram was read.
    last: Option<Duration>,
    /// A nap is doubled below this many datagrams queued, halved above `shrink_above`.
    grow_below: usize,
    shrink_above: usize,
}

impl Coalesce {
    /// `room`: the datagrams the sockets can queue ([`AckSource::room`]); `on`: naps allowed.
    pub(super) fn new(on: bool, room: usize) -> Self {
        Coalesce {
            on: on && room >= NAP_ROOM_MIN,
            draining: false,
            nap: NAP_MIN,
            got: 0,
            last: None,
            grow_below: NAP_GROW_BELOW.min(room / 16),
            shrink_above: NAP_SHRINK_ABOVE.min(room / 4),
        }
    }

    /// Reading what queued during a nap: the next read must not wait.
    pub(super) fn draining(&self) -> bool {
        self.draining
    }

    /// A datagram was read at `now`: `Some(nap)` to nap that long (then drain), else read on.
    pub(super) fn datagram(&mut self, now: Duration) -> Option<Duration> {
        let dense = self.last.is_some_and(|l| now.saturating_sub(l) < NAP_MAX);
        self.last = Some(now);
        if self.draining {
            self.got += 1;
            return None;
        }
        if !dense || !self.on {
            return None;
        }
        (self.draining, self.got) = (true, 0);
        Some(self.nap)
    }

    /// A drain found nothing more queued: `Some(nap)` to nap again (the nap found datagrams), or
    /// `None`: the stream is over, wait for the next datagram.
    pub(super) fn drained(&mut self) -> Option<Duration> {
        let got = std::mem::take(&mut self.got);
        if got == 0 {
            (self.draining, self.nap) = (false, NAP_MIN);
            return None;
        }
        if got < self.grow_below {
            self.nap = (self.nap * 2).min(NAP_MAX);
        } else if got > self.shrink_above {
            self.nap = (self.nap / 2).max(NAP_MIN);
        }
        Some(self.nap)
    }

    /// A deadline came before the next nap: wait for datagrams again (a new stream starts with
    /// the shortest nap).
    pub(super) fn stop(&mut self) {
        (self.draining, self.got, self.nap) = (false, 0, NAP_MIN);
    }

    /// No more naps: acks are measured by when they are read (see `RecvTotals::read_time_arrivals`),
    /// so a nap would add to their RTT.
    pub(super) fn off(&mut self) {
        self.stop();
        self.on = false;
    }
}

/// The two clocks the engine reads: a monotonic one for its own deadlines, and the wall clock
/// that kernel receive timestamps and probe transmit stamps use.
pub(super) trait Clock: Sync {
    /// Time since the clock's origin.
    fn mono(&self) -> Duration;
    /// ns since the epoch (CLOCK_REALTIME), and how far the wall clock has moved against the
    /// monotonic one since the run began (see `stats::step_between`), from one reading (see
    /// `net::wall_now`).
    fn wall_now(&self) -> (u64, i64);
}

pub(super) struct SystemClock(Instant);

impl SystemClock {
    pub(super) fn new() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn mono(&self) -> Duration {
        self.0.elapsed()
    }
    fn wall_now(&self) -> (u64, i64) {
        net::wall_now()
    }
}

/// What the receiver counted besides the acks it accounted for.
#[derive(Debug, Default)]
pub(super) struct RecvTotals {
    pub(super) invalid: u64,
    pub(super) forged: u64,
    /// Kernel drops (SO_RXQ_OVFL) per socket, as last reported: each socket counts its own.
    drops: Vec<u64>,
    /// Acks of this run that reached a socket, per source address (as the ack tap counts them),
    /// for at most [`crate::stats::MAX_RESPONDERS`] addresses.
    pub(super) at_socket: HashMap<IpAddr, u64>,
    /// When the receiver stopped (CLOCK_REALTIME), and whether its last read found the sockets
    /// drained.
    pub(super) ended_ns: u64,
    pub(super) drained: bool,
    /// Acks measured by when they were read, their kernel stamp being off this process's clock
    /// (see [`arrival`]).
    pub(super) read_time_arrivals: u64,
}

impl RecvTotals {
    pub(super) fn local_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// An ack's arrival on the probes' clock: the kernel's stamp, unless this process's wall clock
/// (`now_ns`) disagrees with it (see `stats::arrival_ns`); an ack queued longer than the
/// timeout and a second is late whichever is taken.
fn arrival(cfg: &ProbeConfig, totals: &mut RecvTotals, kernel_ns: u64, now_ns: u64) -> u64 {
    let max_age = cfg.timeout.saturating_add(Duration::from_secs(1)).as_nanos() as u64;
    let at = crate::stats::arrival_ns(kernel_ns, now_ns, max_age);
    totals.read_time_arrivals += u64::from(at != kernel_ns);
    at
}

/// A step of the wall clock that acks still queued may have been stamped before: the shift
/// before it, and when (monotonic, ns) the last reading before it was taken. Kept until the
/// sockets are drained (see [`receive_loop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecentStep {
    pub(super) old_shift_ns: i64,
    pub(super) since_ns: u64,
}

/// An ack's kernel stamp `kernel_ns` on the wall clock as it reads now (`now_ns`, shift
/// `shift_ns`, at `mono_ns` on the monotonic clock). The kernel stamps on the wall clock of the
/// arrival: when the clock stepped since the last reading (`step`) and the ack queued across it
/// (a nap, a batch), the stamp may be on the clock from before the step, and measured with the
/// shift read now it would be off by the whole step (an RTT below 0, counted as loss, or a
/// step's worth too long). The arrival on the monotonic clock decides: after the step only if
/// it is after the last reading before it, before it only if not after now. A step shorter
/// than the time since that reading can fit both: then the stamp is taken as after it (off by
/// at most that step, a few ms of a nap at most).
pub(super) fn stamp_now(kernel_ns: u64, (now_ns, shift_ns): (u64, i64), mono_ns: u64, step: Option<RecentStep>) -> u64 {
    const SLACK_NS: i128 = 1_000_000;
    let Some(RecentStep { old_shift_ns, since_ns }) = step else { return kernel_ns };
    let moved = i128::from(shift_ns) - i128::from(old_shift_ns);
    // The arrival on the monotonic clock, if stamped after the step, and if before it.
    let after = i128::from(mono_ns) - (i128::from(now_ns) - i128::from(kernel_ns));
    let before = after + moved;
    let after_fits = after + SLACK_NS >= i128::from(since_ns) && after <= i128::from(mono_ns) + SLACK_NS;
    let before_fits = before <= i128::from(mono_ns) + SLACK_NS;
    if before_fits && !after_fits {
        (i128::from(kernel_ns) + moved).clamp(0, i128::from(u64::MAX)) as u64
    } else {
        kernel_ns
    }
}

/// Accounts for one event, handled at `now_ns` (CLOCK_REALTIME, `shift_ns` being its move against
/// the monotonic clock, see [`Clock::wall_now`]). `buf` holds a datagram's bytes.
pub(super) fn handle(
    cfg: &ProbeConfig,
    runs: &mut Runs,
    totals: &mut RecvTotals,
    buf: &[u8],
    event: Event,
    (now_ns, shift_ns): (u64, i64),
) {
    match event {
        Event::Datagram { sock, rx } => {
            if let Some(d) = rx.local_drops {
                if totals.drops.len() <= sock {
                    totals.drops.resize(sock + 1, 0);
                }
                totals.drops[sock] = d as u64;
            }
            let datagram = &buf[..rx.len.min(buf.len())];
            if cfg.ack_filter().matches(datagram) {
                // Bounded like the responders tracked: a forger may use many source addresses.
                let known = totals.at_socket.contains_key(&rx.from.ip());
                if known || totals.at_socket.len() < crate::stats::MAX_RESPONDERS {
                    *totals.at_socket.entry(rx.from.ip()).or_default() += 1;
                }
            }
            if cfg.plain.is_some() {
                if let Some(ack) = plain_ack(&runs.multicast, rx.from) {
                    runs.multicast.on_ack_shifted(&ack, rx.from, arrival(cfg, totals, rx.rx_ns, now_ns), shift_ns);
                }
                return;
            }
            match wire::decode(datagram) {
                Ok(Message::Ack(ack)) if cfg.key.as_ref().is_some_and(|k| !k.verify(datagram)) => {
                    totals.forged += 1;
                    // No tag at all, to one of this run's probes: a responder without a key.
                    if !wire::is_keyed(datagram) {
                        if let Some(keys) = runs.keys_for(ack.session, ack.seq) {
                            keys.record(rx.from.ip(), KeySign::UnkeyedAck);
                        }
                    }
                }
                Ok(Message::Ack(ack)) => {
                    // The kernel stamped the arrival on the wall clock: measured against the send
                    // as if it had not stepped in between (see `stats::step_between`).
                    runs.for_session(ack.session).on_ack_shifted(
                        &ack,
                        rx.from,
                        arrival(cfg, totals, rx.rx_ns, now_ns),
                        shift_ns,
                    );
                }
                Ok(Message::Notice(n)) => match (runs.keys_for(n.session, n.seq), n.reason) {
                    (Some(keys), NoticeReason::KeyNeeded) => keys.record(rx.from.ip(), KeySign::KeyNeeded),
                    (Some(keys), NoticeReason::KeyMismatch) => keys.record(rx.from.ip(), KeySign::OtherKey),
                    // A reason a later version added: nothing this build can say about it.
                    (Some(_), NoticeReason::Other(_)) => {}
                    (None, _) => totals.invalid += 1,
                },
                _ => totals.invalid += 1,
            }
        }
        Event::Icmp { host, error } => {
            if let Some(u) = runs.unicast.get_mut(host) {
                u.icmp.record(error.kind, error.reporter);
            }
        }
        Event::Idle => {}
    }
}

/// A plain reply, as the ack of the newest probe from a responder named by its address.
fn plain_ack(run: &Run, from: SocketAddr) -> Option<wire::Ack> {
    let (seq, tx_ns) = run.newest_probe()?;
    Some(wire::Ack {
        session: run.config().session,
        seq,
        tx_ns,
        responder: net::source_key(&from),
        name: from.to_string(),
        ..wire::Ack::default()
    })
}

/// What the receiver does after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// Close probes older than the retention and hand out rows.
    pub(super) finalize: bool,
    /// The run is over: close every probe and stop.
    pub(super) complete: bool,
}

/// When old probes are closed and when the run ends (pure: it is handed the times).
#[derive(Debug, Clone)]
pub(super) struct EndOfRun {
    timeout: Duration,
    last_finalize: Duration,
    /// When the last datagram (or ICMP error) came: the sockets are drained after
    /// [`DRAIN_WAIT`] of silence.
    last_datagram: Option<Duration>,
}

impl EndOfRun {
    pub(super) fn new(timeout: Duration, now: Duration) -> Self {
        EndOfRun { timeout, last_finalize: now, last_datagram: None }
    }

    /// When the sockets will have been silent for [`DRAIN_WAIT`], if nothing more comes.
    fn drained_at(&self) -> Duration {
        self.last_datagram.map_or(Duration::ZERO, |d| d + DRAIN_WAIT)
    }

    /// How long a probe stays open for its acks, past its send time.
    pub(super) fn retain(&self) -> Duration {
        self.timeout + RETAIN_MARGIN
    }

    /// After an event at `now` (`idle`: a wait ran out in silence), with `last_tx` the instant of
    /// the last probe once sending is done.
    pub(super) fn step(&mut self, now: Duration, idle: bool, last_tx: Option<Duration>) -> Step {
        if !idle {
            self.last_datagram = Some(now);
        }
        let drained = idle && now >= self.drained_at();
        // Close old probes when the sockets are drained (the wait for a deadline ran out), or
        // every FINALIZE_EVERY under a steady stream.
        if !idle && now.saturating_sub(self.last_finalize) < FINALIZE_EVERY {
            return Step { finalize: false, complete: false };
        }
        self.last_finalize = now;
        // The run is complete once the grace period is over and the sockets are drained, or, if
        // datagrams keep coming (a flood, a stray sender), once the grace period plus the
        // retention margin is over: anything later could not be on time anyway.
        let complete = last_tx
            .map(|t| now.saturating_sub(t))
            .is_some_and(|e| e >= self.timeout && (drained || e >= self.timeout + RETAIN_MARGIN));
        Step { finalize: true, complete }
    }

    /// How long the next read may wait after an event at `now`: until the next deadline the loop
    /// has, not a fixed tick. `close_due`: when the oldest open probe's retention runs out.
    ///
    /// - The run's end: one timeout after the last probe, or once the sockets have been silent
    ///   for [`DRAIN_WAIT`] if datagrams still came.
    /// - While the sender is still at work (`last_tx` unknown): a look at least once per timeout.
    ///   Learning of the last probe within a timeout of it is soon enough to end the run exactly
    ///   one timeout after it (a read then waits for that deadline).
    /// - The oldest open probe, [`FINALIZE_SLACK`] after its retention, and not sooner than
    ///   [`FINALIZE_EVERY`] after the last close.
    pub(super) fn wait(&self, now: Duration, last_tx: Option<Duration>, close_due: Option<Duration>) -> Duration {
        let end = match last_tx {
            Some(t) => (t + self.timeout).max(self.drained_at()),
            None => now + self.timeout.max(FINALIZE_EVERY),
        };
        let close = close_due.map(|d| (d + FINALIZE_SLACK).max(self.last_finalize + FINALIZE_EVERY));
        close.map_or(end, |c| c.min(end)).saturating_sub(now)
    }
}

/// Receives until the run is complete; rows of closed probes go to `row_sink`.
pub(super) fn receive_loop(
    cfg: &ProbeConfig,
    source: &mut impl AckSource,
    clock: &impl Clock,
    shared: &Shared,
    mut row_sink: Option<RowSink>,
) -> Result<RecvTotals> {
    let mut buf = vec![0u8; wire::MAX_PROBE_SIZE + 1];
    let mut cmsg = net::cmsg_buffer();
    let mut end = EndOfRun::new(cfg.timeout, clock.mono());
    let retain_ns = end.retain().as_nanos() as u64;
    let mut totals = RecvTotals::default();
    // The first read only looks: the deadlines are worked out after it.
    let mut wait = Duration::ZERO;
    // When the next deadline falls, on the monotonic clock, and whether to nap before reading.
    let mut deadline = clock.mono();
    let mut coalesce = Coalesce::new(cfg.plain.is_none(), source.room());
    let mut nap = None;
    // The last reading of the wall clock's shift, when, and a step since that acks still queued
    // may predate (see `stamp_now`).
    let (mut last_shift, mut last_mono) = (clock.wall_now().1, clock.mono());
    let mut recent_step = None;
    loop {
        if let Some(d) = nap.take() {
            source.nap(d);
        }
        let draining = coalesce.draining();
        let read = if draining { Duration::ZERO } else { wait };
        let mut event = source.next(&mut buf, &mut cmsg, read).context("receiving acks failed")?;
        if draining && matches!(event, Event::Idle) {
            // Everything queued during the nap is read: nap again while the stream goes on,
            // unless the next deadline comes first (then it is an idle wake-up like any).
            let left = deadline.saturating_sub(clock.mono());
            match coalesce.drained() {
                Some(d) if !left.is_zero() => {
                    nap = Some(d.min(left));
                    continue;
                }
                _ => coalesce.stop(),
            }
        }
        let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        // The clocks are read once per event (a few µs apart at most from their use below): at
        // 100 000 acks/s and more, each reading is a measurable share of the receiver's time.
        let (now, shift) = clock.wall_now();
        let mono = clock.mono();
        if shift.abs_diff(last_shift) >= crate::stats::STEP_MIN_NS.unsigned_abs() {
            recent_step = Some(RecentStep { old_shift_ns: last_shift, since_ns: last_mono.as_nanos() as u64 });
        }
        (last_shift, last_mono) = (shift, mono);
        if let Event::Datagram { rx, .. } = &mut event {
            rx.rx_ns = stamp_now(rx.rx_ns, (now, shift), mono.as_nanos() as u64, recent_step);
        }
        let read_time = totals.read_time_arrivals;
        handle(cfg, &mut runs, &mut totals, &buf, event, (now, shift));
        if totals.read_time_arrivals != read_time {
            coalesce.off();
        }
        let last_tx = *shared.last_tx.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(event, Event::Datagram { .. }) {
            nap = coalesce.datagram(mono);
        } else if matches!(event, Event::Idle) {
            // The sockets are drained: what comes next was stamped after any step so far.
            recent_step = None;
        }
        let step = end.step(mono, matches!(event, Event::Idle), last_tx);
        if step.finalize {
            runs.all().for_each(|r| r.finalize_older_than_shifted(now, shift, retain_ns));
        }
        if step.complete {
            runs.all().for_each(Run::finalize_all);
        }
        // The oldest open probe's close, on the monotonic clock (probes are stamped on the wall
        // clock).
        let oldest = runs.all().filter_map(|r| r.oldest_open_tx_ns(shift)).min();
        let close_due = oldest.map(|tx| mono + Duration::from_nanos((tx + retain_ns).saturating_sub(now)));
        wait = end.wait(mono, last_tx, close_due);
        deadline = mono + wait;
        // A nap ends by the deadline at the latest; with the deadline now, no nap.
        if let Some(d) = nap {
            nap = Some(d.min(wait)).filter(|d| !d.is_zero());
            if nap.is_none() {
                coalesce.stop();
            }
        }
        if !step.finalize {
            continue;
        }
        let (raw, intervals) = (runs.multicast.drain_raw_rows(), runs.multicast.drain_interval_rows());
        // Rows are written without holding the lock, so file I/O never delays the sender.
        drop(runs);
        if let Some(sink) = row_sink.as_mut() {
            sink(&raw, &intervals)?;
        }
        if step.complete {
            (totals.ended_ns, totals.drained) = (now, matches!(event, Event::Idle));
            return Ok(totals);
        }
    }
}

#[cfg(test)]
mod tests;
