//! The prober engine: a paced sender thread and an ack receiver thread over one UDP socket, both
//! feeding one [`Run`] (the accounting in [`crate::stats`]).
//!
//! Pacing: probe `k` is due at `start + k × interval`, a fixed schedule (a late probe does not
//! push the later ones back). The sender sleeps until shortly before each deadline, with the
//! thread's timer slack lowered, then spins the rest: a plain sleep overshoots by tens of µs.
//! How late each probe actually left is recorded, so the summary can show the schedule was kept.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::auth::Key;
use crate::net::{self, Iface};
use crate::stats::{IntervalRow, RawRow, Run, RunConfig};
use crate::wire::{self, Message, Probe};

/// The sender sleeps until this long before a deadline, then spins.
const SPIN_BEFORE: Duration = Duration::from_micros(80);
/// Longest sleep between two looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// The last stretch before a deadline is spun without yielding.
const PURE_SPIN: Duration = Duration::from_micros(10);
/// Probes are kept open this much past the timeout, so acks already queued in the socket are
/// judged by their kernel timestamps rather than by when the thread read them.
const RETAIN_MARGIN: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The run's session id: in every probe, and the run id of every report file. Random, so
    /// runs (and probers) never mistake each other's acks.
    pub session: u64,
    pub group: IpAddr,
    pub port: u16,
    pub iface: Option<Iface>,
    pub ttl: u32,
    pub size: usize,
    pub interval: Duration,
    pub schedule: Schedule,
    /// Probes to send; the run also ends on `stop`.
    pub count: u64,
    /// Acks slower than this are late; also how long to wait for acks after the last probe.
    pub timeout: Duration,
    pub report_interval: Duration,
    pub raw: bool,
    /// Keep per-interval figures (for intervals.csv).
    pub intervals: bool,
    /// Key probes, and accept only acks keyed with it.
    pub key: Option<Key>,
    /// Send this plain message instead of mcprobe probes, and take any datagram that comes back as
    /// an answer to the newest probe, from a host identified by its source address (the course
    /// lab's protocol). Assumes RTTs shorter than the interval.
    pub plain: Option<Vec<u8>>,
    /// Consecutive unanswered probes that make an outage.
    pub outage_min: u64,
    /// Hosts that also get unicast probes, interleaved with the multicast ones, so each has two
    /// paths to compare.
    pub hosts: Vec<IpAddr>,
    pub rcvbuf: usize,
}

/// IP TTL of unicast probes: a common initial value, so `UNICAST_TTL − arrival TTL` is the number
/// of routers on the way.
pub const UNICAST_TTL: u32 = 64;

/// The unicast path to one listed host.
#[derive(Debug)]
pub struct UnicastRun {
    pub host: IpAddr,
    pub run: Run,
}

/// The runs of one probe session: multicast, and unicast per listed host. Unicast run `i` has
/// session id `multicast session + 1 + i`, so an ack's session names its run.
struct Runs {
    multicast: Run,
    unicast: Vec<UnicastRun>,
}

impl Runs {
    fn for_session(&mut self, session: u64) -> &mut Run {
        let i = session.wrapping_sub(self.multicast.config().session).wrapping_sub(1);
        match usize::try_from(i).ok().and_then(|i| self.unicast.get_mut(i)) {
            Some(u) => &mut u.run,
            // Unknown sessions land in the multicast run, which counts them as foreign.
            None => &mut self.multicast,
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Run> {
        std::iter::once(&mut self.multicast).chain(self.unicast.iter_mut().map(|u| &mut u.run))
    }
}

/// When probes leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Exactly one interval apart.
    Fixed,
    /// Exponentially distributed gaps with the interval as their mean (a Poisson process, as OWAMP
    /// sends), so probes cannot phase-lock with periodic events on the network.
    Poisson,
}

/// A snapshot for the live progress display.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub sent: u64,
    pub total: u64,
    pub responders: usize,
    pub acks: u64,
    pub worst_loss_pct: Option<f64>,
    /// True once the last probe left and the engine waits for late acks.
    pub draining: bool,
}

/// Everything a finished run hands to the reports.
pub struct Outcome {
    /// The multicast path.
    pub run: Run,
    /// The unicast path to each listed host (`hosts`).
    pub unicast: Vec<UnicastRun>,
    /// Multicast TTL the probes left with.
    pub ttl: u32,
    /// How late each probe left versus its schedule, in ns.
    pub lateness: Histogram<u64>,
    /// The run was stopped (Ctrl-C) before its last probe.
    pub interrupted: bool,
    pub elapsed: Duration,
    /// Datagrams on the prober's port that were not acks (garbage, stray probes).
    pub invalid: u64,
    /// With a key: acks without a valid tag, dropped.
    pub forged: u64,
    /// Acks the kernel dropped because the socket buffer was full (SO_RXQ_OVFL): this host's
    /// fault, not the network's; already counted as loss above, reported apart so it can be told.
    pub local_drops: u64,
    pub send_errors: u64,
}

/// Receives the rows of closed probes (only with `raw`) and of closed intervals (only with
/// `intervals`), in batches, on the receiver thread.
pub type RowSink = Box<dyn FnMut(&[RawRow], &[IntervalRow]) -> Result<()> + Send>;

struct Shared {
    runs: Mutex<Runs>,
    sending_done: AtomicBool,
    /// Set by the sender to the instant of its last probe.
    last_tx: Mutex<Option<Instant>>,
}

/// Runs one probe session to its end (or until `stop`), calling `on_progress` about 5 times a
/// second from the calling thread.
pub fn run(
    cfg: &ProbeConfig,
    stop: &AtomicBool,
    row_sink: Option<RowSink>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Outcome> {
    let sock = net::prober_socket(cfg.group, cfg.iface.as_ref(), cfg.ttl, cfg.rcvbuf)?;
    let session = cfg.session;
    let run_cfg = RunConfig {
        session,
        timeout_ns: cfg.timeout.as_nanos() as u64,
        interval_ns: cfg.report_interval.as_nanos() as u64,
        raw: cfg.raw,
        intervals: cfg.intervals,
        plain: cfg.plain.is_some(),
        outage_min: cfg.outage_min,
    };
    // Per-probe rows and intervals describe the multicast path only.
    let unicast = (cfg.hosts.iter().enumerate())
        .map(|(i, &host)| {
            let session = session.wrapping_add(1 + i as u64);
            UnicastRun { host, run: Run::new(RunConfig { session, raw: false, intervals: false, ..run_cfg }) }
        })
        .collect();
    let shared = Arc::new(Shared {
        runs: Mutex::new(Runs { multicast: Run::new(run_cfg), unicast }),
        sending_done: AtomicBool::new(false),
        last_tx: Mutex::new(None),
    });
    let started = Instant::now();
    let (sender, receiver) = thread::scope(|s| -> Result<_> {
        let send_sock = sock.try_clone().context("cannot clone the prober socket")?;
        let sender = s.spawn(|| send_loop(cfg, send_sock, session, &shared, stop));
        let receiver = s.spawn(|| recv_loop(cfg, &sock, &shared, row_sink));
        while !receiver.is_finished() {
            thread::sleep(Duration::from_millis(200));
            let p = progress(cfg, &shared, started);
            on_progress(&p);
        }
        Ok((sender.join(), receiver.join()))
    })?;
    let (lateness, send_errors) = sender.map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    let totals = receiver.map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let shared = Arc::into_inner(shared).expect("threads are joined");
    let runs = shared.runs.into_inner().unwrap_or_else(|e| e.into_inner());
    let run = runs.multicast;
    Ok(Outcome {
        interrupted: run.sent() < cfg.count,
        run,
        unicast: runs.unicast,
        ttl: cfg.ttl,
        lateness,
        elapsed: started.elapsed(),
        invalid: totals.invalid,
        forged: totals.forged,
        local_drops: totals.local_drops,
        send_errors,
    })
}

fn progress(cfg: &ProbeConfig, shared: &Shared, started: Instant) -> Progress {
    let runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
    let run = &runs.multicast;
    Progress {
        elapsed: started.elapsed(),
        sent: run.sent(),
        total: cfg.count,
        responders: run.hosts().len(),
        acks: run.hosts().iter().map(|h| h.received).sum(),
        worst_loss_pct: run.worst_loss_pct(),
        draining: shared.sending_done.load(Ordering::Relaxed),
    }
}

/// Sleeps until `deadline`: a coarse sleep, then a wait that yields the CPU to any other runnable
/// thread on each turn (at high rates the sender never sleeps, and on a small machine the
/// responder and the ack receiver need that CPU), then a pure spin for the last few µs, where
/// giving the CPU away could cost a whole time slice.
fn wait_until(deadline: Instant, stop: &AtomicBool) {
    // Long waits are slept in slices, so a Ctrl-C is acted on within one slice, not one interval.
    loop {
        let now = Instant::now();
        if deadline <= now + SPIN_BEFORE || stop.load(Ordering::Relaxed) {
            break;
        }
        thread::sleep((deadline - now - SPIN_BEFORE).min(STOP_CHECK));
    }
    if stop.load(Ordering::Relaxed) {
        return;
    }
    while Instant::now() + PURE_SPIN < deadline {
        thread::yield_now();
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Send lateness, 1 ns to 1 h at 3 significant digits (one per run: ~260 KiB). Fixed bounds, so
/// `saturating_record` can only clamp beyond an hour.
fn lateness_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600 * 1_000_000_000, 3).expect("static bounds are valid")
}

/// A sample of the exponential distribution with mean 1 (inverse transform sampling).
fn exponential_sample() -> f64 {
    // 1 - U lies in (0, 1], so the logarithm is finite.
    let u: f64 = rand::random();
    -(1.0 - u).ln()
}

fn send_loop(
    cfg: &ProbeConfig,
    sock: UdpSocket,
    session: u64,
    shared: &Shared,
    stop: &AtomicBool,
) -> Result<(Histogram<u64>, u64)> {
    net::lower_timer_slack();
    let dest = SocketAddr::new(cfg.group, cfg.port);
    let mut lateness = lateness_histogram();
    let mut buf = Vec::with_capacity(cfg.size);
    let mut send_errors = 0u64;
    let start = Instant::now();
    let mut offset = Duration::ZERO;
    let result = (|| {
        for k in 0..cfg.count {
            // Deadlines are offsets from the start, never from the previous send: lateness does not
            // accumulate.
            if k > 0 {
                offset += match cfg.schedule {
                    Schedule::Fixed => cfg.interval,
                    Schedule::Poisson => cfg.interval.mul_f64(exponential_sample()),
                };
            }
            let deadline = start + offset;
            wait_until(deadline, stop);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let left = Instant::now();
            // The transmit time is read with the run's lock held, so waiting for the lock (the
            // receiver holds it while it accounts an ack) never counts as network time.
            let (seq, tx_ns) = {
                let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
                let tx_ns = net::now_ns();
                (runs.multicast.record_send_at(tx_ns, offset.as_nanos() as u64), tx_ns)
            };
            encode_probe(cfg, Probe { session, seq, tx_ns }, &mut buf);
            if let Err(e) = sock.send_to(&buf, dest) {
                // The first probe failing means the path is unusable (no route, bad interface);
                // later transient failures (a full send queue) are counted and reported.
                if seq == 0 {
                    return Err(anyhow::anyhow!("cannot send to {dest}: {e}"));
                }
                send_errors += 1;
            }
            lateness.saturating_record(left.saturating_duration_since(deadline).as_nanos() as u64);
            for (i, &host) in cfg.hosts.iter().enumerate() {
                let session = session.wrapping_add(1 + i as u64);
                let (seq, tx_ns) = {
                    let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
                    let tx_ns = net::now_ns();
                    (runs.unicast[i].run.record_send(tx_ns), tx_ns)
                };
                encode_probe(cfg, Probe { session, seq, tx_ns }, &mut buf);
                if sock.send_to(&buf, SocketAddr::new(host, cfg.port)).is_err() {
                    send_errors += 1;
                }
            }
        }
        Ok(())
    })();
    *shared.last_tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    shared.sending_done.store(true, Ordering::Release);
    result.map(|()| (lateness, send_errors))
}

/// The datagram for one probe: the plain message, or the probe, keyed when there is a key.
fn encode_probe(cfg: &ProbeConfig, probe: Probe, buf: &mut Vec<u8>) {
    buf.clear();
    match (&cfg.plain, &cfg.key) {
        (Some(message), _) => buf.extend_from_slice(message),
        (None, Some(key)) => {
            probe.encode_into(cfg.size - wire::TAG_LEN, buf);
            key.seal(buf);
        }
        (None, None) => probe.encode_into(cfg.size, buf),
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

/// What the receiver counted besides the acks it accounted for.
#[derive(Debug, Default)]
struct RecvTotals {
    invalid: u64,
    forged: u64,
    local_drops: u64,
}

fn recv_loop(
    cfg: &ProbeConfig,
    sock: &UdpSocket,
    shared: &Shared,
    mut row_sink: Option<RowSink>,
) -> Result<RecvTotals> {
    let mut buf = vec![0u8; wire::MAX_PROBE_SIZE + 1];
    let mut cmsg = net::cmsg_buffer();
    let retain_ns = (cfg.timeout + RETAIN_MARGIN).as_nanos() as u64;
    let mut totals = RecvTotals::default();
    let mut last_finalize = Instant::now();
    loop {
        let got = net::recv(sock, &mut buf, &mut cmsg).context("receiving acks failed")?;
        let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = got {
            if let Some(d) = rx.local_drops {
                totals.local_drops = d as u64;
            }
            let datagram = &buf[..rx.len.min(buf.len())];
            if cfg.plain.is_some() {
                if let Some(ack) = plain_ack(&runs.multicast, rx.from) {
                    runs.multicast.on_ack(&ack, rx.from, rx.rx_ns);
                }
            } else {
                match wire::decode(datagram) {
                    Ok(Message::Ack(_)) if cfg.key.as_ref().is_some_and(|k| !k.verify(datagram)) => totals.forged += 1,
                    Ok(Message::Ack(ack)) => {
                        runs.for_session(ack.session).on_ack(&ack, rx.from, rx.rx_ns);
                    }
                    _ => totals.invalid += 1,
                }
            }
        }
        // The socket is drained (the read timed out) or a while has passed: close old probes.
        if got.is_none() || last_finalize.elapsed() >= net::READ_TICK {
            last_finalize = Instant::now();
            let now = net::now_ns();
            runs.all().for_each(|r| r.finalize_older_than(now, retain_ns));
            // The run is complete once the grace period is over and the socket is drained, or, if
            // datagrams keep coming (a flood, a stray sender), once the grace period plus the
            // retention margin is over: anything later could not be on time anyway.
            let since_last = shared.last_tx.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed());
            let complete = shared.sending_done.load(Ordering::Acquire)
                && since_last.is_some_and(|e| e >= cfg.timeout && (got.is_none() || e >= cfg.timeout + RETAIN_MARGIN));
            if complete {
                runs.all().for_each(Run::finalize_all);
            }
            let (raw, intervals) = (runs.multicast.drain_raw_rows(), runs.multicast.drain_interval_rows());
            // Rows are written without holding the lock, so file I/O never delays the sender.
            drop(runs);
            if let Some(sink) = row_sink.as_mut() {
                sink(&raw, &intervals)?;
            }
            if complete {
                return Ok(totals);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_keeps_large_values() {
        // Regression: an auto-resizing histogram with saturating_record clamped everything above
        // 2 ns, so a sender 5 ms behind schedule reported ~0.
        let mut h = lateness_histogram();
        for ns in [0u64, 300, 5_000_000, 170_000_000] {
            h.saturating_record(ns);
        }
        assert!(h.value_at_quantile(0.75) >= 4_990_000, "{}", h.value_at_quantile(0.75));
        assert!(h.max() >= 169_000_000);
    }

    #[test]
    fn poisson_gaps_have_the_interval_as_mean() {
        // 200 k samples: the standard error of the mean is 0.0022, so 2 % is a 9-sigma bound.
        let n = 200_000;
        let samples: Vec<f64> = (0..n).map(|_| exponential_sample()).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        assert!(samples.iter().all(|s| s.is_finite() && *s >= 0.0));
        // An exponential distribution has P(X > 1) = 1/e.
        let above = samples.iter().filter(|&&s| s > 1.0).count() as f64 / n as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "P(X > 1) = {above}");
    }
}
