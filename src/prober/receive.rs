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

/// Where the receiver's datagrams and ICMP errors come from.
pub(super) trait AckSource {
    /// The next event; [`Event::Idle`] after [`net::READ_TICK`] of silence. A datagram's bytes
    /// go to `buf`.
    fn next(&mut self, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Event>;
}

impl AckSource for ProbeSockets {
    fn next(&mut self, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Event> {
        ProbeSockets::next(self, buf, cmsg)
    }
}

/// The two clocks the engine reads: a monotonic one for its own deadlines, and the wall clock
/// that kernel receive timestamps and probe transmit stamps use.
pub(super) trait Clock: Sync {
    /// Time since the clock's origin.
    fn mono(&self) -> Duration;
    /// ns since the epoch (CLOCK_REALTIME).
    fn wall_ns(&self) -> u64;
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
    fn wall_ns(&self) -> u64 {
        net::now_ns()
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
}

impl RecvTotals {
    pub(super) fn local_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// An ack's arrival on the probes' clock: the kernel's stamp, unless this process's wall clock
/// (`now_ns`) disagrees with it (see `stats::arrival_ns`); an ack queued longer than the
/// timeout and a second is late whichever is taken.
fn arrival(cfg: &ProbeConfig, kernel_ns: u64, now_ns: u64) -> u64 {
    let max_age = cfg.timeout.saturating_add(Duration::from_secs(1)).as_nanos() as u64;
    crate::stats::arrival_ns(kernel_ns, now_ns, max_age)
}

/// Accounts for one event, handled at `now_ns` (CLOCK_REALTIME). `buf` holds a datagram's bytes.
pub(super) fn handle(
    cfg: &ProbeConfig,
    runs: &mut Runs,
    totals: &mut RecvTotals,
    buf: &[u8],
    event: Event,
    now_ns: u64,
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
                    runs.multicast.on_ack_shifted(&ack, rx.from, arrival(cfg, rx.rx_ns, now_ns), net::wall_shift_ns());
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
                        arrival(cfg, rx.rx_ns, now_ns),
                        net::wall_shift_ns(),
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
}

impl EndOfRun {
    pub(super) fn new(timeout: Duration, now: Duration) -> Self {
        EndOfRun { timeout, last_finalize: now }
    }

    /// How long a probe stays open for its acks, past its send time.
    pub(super) fn retain(&self) -> Duration {
        self.timeout + RETAIN_MARGIN
    }

    /// After an event at `now` (`idle`: the sockets were drained), with `last_tx` the instant of
    /// the last probe once sending is done.
    pub(super) fn step(&mut self, now: Duration, idle: bool, last_tx: Option<Duration>) -> Step {
        // Close old probes when the sockets are drained, or every tick under a steady stream.
        if !idle && now.saturating_sub(self.last_finalize) < net::READ_TICK {
            return Step { finalize: false, complete: false };
        }
        self.last_finalize = now;
        // The run is complete once the grace period is over and the sockets are drained, or, if
        // datagrams keep coming (a flood, a stray sender), once the grace period plus the
        // retention margin is over: anything later could not be on time anyway.
        let complete = last_tx
            .map(|t| now.saturating_sub(t))
            .is_some_and(|e| e >= self.timeout && (idle || e >= self.timeout + RETAIN_MARGIN));
        Step { finalize: true, complete }
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
    loop {
        let event = source.next(&mut buf, &mut cmsg).context("receiving acks failed")?;
        let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        handle(cfg, &mut runs, &mut totals, &buf, event, clock.wall_ns());
        let last_tx = *shared.last_tx.lock().unwrap_or_else(|e| e.into_inner());
        let step = end.step(clock.mono(), matches!(event, Event::Idle), last_tx);
        if !step.finalize {
            continue;
        }
        let now = clock.wall_ns();
        runs.all().for_each(|r| r.finalize_older_than(now, retain_ns));
        if step.complete {
            runs.all().for_each(Run::finalize_all);
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
