//! The prober engine: a paced sender thread and an ack receiver thread, both feeding one [`Run`]
//! per path (the accounting in [`crate::stats`]). Multicast probes leave by one socket; each
//! `--hosts` host gets its own non-blocking socket for its unicast probes, so a host that is down
//! can never hold up the others (see [`crate::net::ProbeSockets`]). The receiver's logic lives in
//! [`receive`], behind a small trait, so it is tested without sockets.
//!
//! Pacing: probe `k` is due at `start + k × interval`, a fixed schedule (a late probe does not
//! push the later ones back). Under the normal scheduler ([`Pacing::Lean`], the default there) the
//! sender sleeps on an
//! absolute-deadline timer (timer slack lowered to 1 ns) until each deadline itself and sends when
//! it wakes, as cyclictest measures wake-ups: a probe leaves as late as this machine wakes a
//! thread (tens of µs), at the CPU cost of any sleeper (a gap shorter than a wake-up, above
//! ~50 000/s, is waited out awake). That lateness never reaches the RTT: each
//! probe carries the time it actually left. [`Pacing::Precise`] (the default under `--realtime`)
//! wakes shortly before each deadline
//! and spins the rest, so probes leave within a µs of their deadline at the cost of a busy CPU; how
//! shortly before adapts to the overshoots it sees ([`WakeMargin`]).
//! How late each probe actually left is recorded, so the summary can show the schedule was kept.

mod ack_tap;
mod receive;

use crate::run::{AckSightings, AckWatch};

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::auth::{Binding, BoundKey, Key};
use crate::net::{self, Iface, ProbeSockets};
use crate::stats::{IntervalRow, RawRow, Run, RunConfig};
use crate::wire::{self, Probe};

use crate::run::{KeyEvidence, Outcome, Progress, Settings, UnicastRun};
use receive::{Clock, SystemClock};

/// The most the sender wakes before a deadline to wait the rest out awake (the old fixed margin;
/// the adaptive one, [`WakeMargin`], stays at or below it).
const SPIN_BEFORE: Duration = Duration::from_micros(80);
/// The least it wakes before a deadline: below this the wake-up itself (a few µs of kernel
/// path) would make the probe late.
const MIN_MARGIN: Duration = Duration::from_micros(5);
/// The shortest sleep worth taking: a shorter one saves less CPU than its wake-up costs on a small
/// VM, and a sleeping thread on a busy machine can wait milliseconds to run again (measured at
/// 10 000/s: results/limits-2026-12-02.md); below it the sender stays awake (yielding) instead.
const MIN_SLEEP: Duration = Duration::from_micros(100);

/// Probes are sent in batches when they fall due (see `send_loop`) only at intervals shorter
/// than this (rates above 50 000/s): where one `sendto` per probe, 3-5 µs of system call on a
/// small VM, plus the run's accounting, is most of an interval.
const BATCH_BELOW_INTERVAL: Duration = Duration::from_micros(20);
/// [`Pacing::Lean`]: a deadline closer than this is spun, not slept: a sleep's own system call
/// and wake-up take longer.
const LEAN_SPIN: Duration = Duration::from_micros(2);
/// [`Pacing::Lean`]: the shortest wait slept; a shorter one is waited out yielding the CPU. A
/// thread rarely wakes sooner than this after its timer (cyclictest's minimum on a 2-vCPU VM:
/// 18-22 µs), and a sleep per probe at intervals this short capped the sender at ~76 000/s where
/// staying awake reached 91 000/s (results/limits-pace-2026-12-02.md).
const LEAN_MIN_SLEEP: Duration = Duration::from_micros(20);
/// Longest sleep between two looks at the stop flag: the one every stop-only wait uses
/// ([`net::STOP_TICK`]). At a serve --mesh host's 0.2 probes/s a 50 ms slice woke the sender 20
/// times a second for nothing, a tenth of a point of a core on a 2-vCPU VM (results/serve-mesh-cost/).
const STOP_CHECK: Duration = net::STOP_TICK;
/// The last stretch before a deadline is spun without yielding.
const PURE_SPIN: Duration = Duration::from_micros(10);

/// How the sender waits for each probe's deadline (`probe --pacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// [`Pacing::Lean`] under the normal scheduler, [`Pacing::Precise`] under SCHED_FIFO
    /// (`--realtime`). Measured (results/limits-pace-2026-12-02.md): under the former spinning
    /// cost 25-58 % more CPU per probe for p99 lateness no better than lean's (a spinning thread
    /// is preempted as a CPU hog); under the latter it keeps its CPU, and its p99 was 0.2-0.6×
    /// cyclictest's where lean's was 1.5-2×.
    #[default]
    Auto,
    /// Sleep until the deadline on an absolute timer and send on waking: lateness is the
    /// machine's wake-up latency (what cyclictest measures), CPU that of a sleeper.
    Lean,
    /// Wake shortly before the deadline and spin the rest: sub-µs median lateness, at the cost of
    /// a CPU kept busy (at 10 000/s and above, half a core or more).
    Precise,
}

impl Pacing {
    /// The pacing a sender uses; `realtime`: it runs under SCHED_FIFO.
    pub(crate) fn resolve(self, realtime: bool) -> Pacing {
        match self {
            Pacing::Auto if realtime => Pacing::Precise,
            Pacing::Auto => Pacing::Lean,
            p => p,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The run's session id: in every probe, and the run id of every report file. Random, so
    /// runs (and probers) never mistake each other's acks.
    pub session: u64,
    /// The group, or the first of `groups`.
    pub group: IpAddr,
    /// Every group probed, `group` first: probe `k` goes to `groups[k % len]`. One group
    /// without `--groups`.
    pub groups: Vec<IpAddr>,
    pub port: u16,
    pub iface: Option<Iface>,
    pub ttl: u32,
    pub size: usize,
    pub interval: Duration,
    pub schedule: Schedule,
    pub pacing: Pacing,
    /// A sender that fell behind (a stall of the machine) by more than this many probes leaves
    /// the rest of its backlog out of the schedule (every later probe moves later by as much, the
    /// run lasts longer) instead of sending it at once, on a fixed schedule (see `send_loop`).
    /// `None` (`probe`): the whole backlog at once, so that few probes are late; `max-rate` asks
    /// 4, since its trials must never offer the path more than the rate they name.
    pub backlog_max: Option<u32>,
    /// Probes to send; the run also ends on `stop`.
    pub count: u64,
    /// With `--duration`: sending stops at this time after the first probe, whether or not all
    /// `count` probes left (a sender that cannot keep the rate sends fewer, and the run says so).
    pub deadline: Option<Duration>,
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
    /// `--ack-port`: the multicast socket's port; host `i`'s unicast socket takes the port
    /// `1 + i` after it. `None`: ephemeral ports.
    pub ack_port: Option<u16>,
    /// Tap the ack ports to see acks that reach this host but not its sockets
    /// ([`Outcome::ack_watch`]).
    pub tap_acks: bool,
}

impl ProbeConfig {
    /// A configuration with the CLI's defaults: 10 probes a second for 10 s, 128 bytes, TTL 1, a
    /// fixed schedule, 1 s timeout and report interval, no key, no hosts, no files, a random
    /// session. Set the public fields to change any of it.
    pub fn new(group: IpAddr, port: u16) -> Self {
        ProbeConfig {
            session: rand::random(),
            group,
            groups: vec![group],
            port,
            iface: None,
            ttl: 1,
            size: 128,
            interval: Duration::from_millis(100),
            schedule: Schedule::Fixed,
            pacing: Pacing::Auto,
            backlog_max: None,
            count: 100,
            deadline: None,
            timeout: Duration::from_secs(1),
            report_interval: Duration::from_secs(1),
            raw: false,
            intervals: false,
            key: None,
            plain: None,
            outage_min: 3,
            hosts: Vec::new(),
            rcvbuf: net::DEFAULT_RCVBUF,
            ack_port: None,
            tap_acks: true,
        }
    }
}

impl ProbeConfig {
    /// The port of host `i`'s unicast socket: the `1 + i`-th after `--ack-port` (checked to fit
    /// by [`crate::config::ack_port`]), or ephemeral.
    pub(crate) fn unicast_port(&self, i: usize) -> Option<u16> {
        self.ack_port.and_then(|p| u16::try_from(usize::from(p) + 1 + i).ok())
    }

    /// Which datagrams are this run's acks, for the ack tap and the receiver alike.
    pub(crate) fn ack_filter(&self) -> ack_tap::AckFilter {
        ack_tap::AckFilter { session: self.session, unicast: self.hosts.len() as u64, plain: self.plain.is_some() }
    }
}

/// The runs of one probe session: multicast, and unicast per listed host. Unicast run `i` has
/// session id `multicast session + 1 + i`, so an ack's session names its run.
struct Runs {
    multicast: Run,
    /// Key evidence of the multicast path.
    keys: KeyEvidence,
    unicast: Vec<UnicastRun>,
}

impl Runs {
    /// The key evidence of the path whose session is `session`, if it sent probe `seq`: evidence
    /// about anything else is not this run's.
    fn keys_for(&mut self, session: u64, seq: u64) -> Option<&mut KeyEvidence> {
        if session == self.multicast.config().session {
            return (seq < self.multicast.sent()).then_some(&mut self.keys);
        }
        let i = session.wrapping_sub(self.multicast.config().session).wrapping_sub(1);
        let u = usize::try_from(i).ok().and_then(|i| self.unicast.get_mut(i))?;
        (seq < u.run.sent()).then_some(&mut u.keys)
    }

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    #[default]
    /// Exactly one interval apart.
    Fixed,
    /// Exponentially distributed gaps with the interval as their mean (a Poisson process, as OWAMP
    /// sends), so probes cannot phase-lock with periodic events on the network.
    Poisson,
}

/// Receives the rows of closed probes (only with `raw`) and of closed intervals (only with
/// `intervals`), in batches, on the receiver thread.
pub(crate) type RowSink = Box<dyn FnMut(&[RawRow], &[IntervalRow]) -> Result<()> + Send>;

/// What the two threads share.
struct Shared {
    runs: Mutex<Runs>,
    sending_done: AtomicBool,
    /// Set by the sender to the (monotonic) instant of its last probe; `Some` once sending is done.
    last_tx: Mutex<Option<Duration>>,
}

impl Shared {
    fn new(cfg: &ProbeConfig, session: u64, local: &[IpAddr]) -> Self {
        let run_cfg = RunConfig {
            session,
            timeout_ns: cfg.timeout.as_nanos() as u64,
            interval_ns: cfg.report_interval.as_nanos() as u64,
            raw: cfg.raw,
            intervals: cfg.intervals,
            plain: cfg.plain.is_some(),
            // With --groups, an outage is that many rounds of every group unanswered: a group
            // the host never joined is a missing group (findings::groups), not an outage.
            outage_min: cfg.outage_min.saturating_mul(cfg.groups.len().max(1) as u64),
            groups: cfg.groups.len().max(1) as u32,
        };
        Shared {
            runs: Mutex::new(Runs::new(run_cfg, &cfg.hosts, local)),
            sending_done: AtomicBool::new(false),
            last_tx: Mutex::new(None),
        }
    }
}

/// Runs one probe session to its end (or until `stop`), calling `on_progress` about 5 times a
/// second from the calling thread. Without one (`serve`, `--quiet`), the calling thread just
/// waits for the end: its 5 wake-ups a second cost a probe at 10/s 46 µs of CPU for nothing.
pub fn run(
    cfg: &ProbeConfig,
    stop: &AtomicBool,
    row_sink: Option<RowSink>,
    on_progress: Option<&mut dyn FnMut(&Progress)>,
) -> Result<Outcome> {
    let sock = net::prober_socket(cfg.group, cfg.iface.as_ref(), cfg.ttl, cfg.rcvbuf, cfg.ack_port)?;
    let unicast_socks = (cfg.hosts.iter().enumerate())
        .map(|(i, &h)| net::unicast_socket(h, cfg.rcvbuf, cfg.unicast_port(i), cfg.ack_port))
        .collect::<Result<Vec<_>>>()?;
    let local = if cfg.hosts.is_empty() { Vec::new() } else { net::local_addrs()? };
    let session = cfg.session;
    let shared = Arc::new(Shared::new(cfg, session, &local));
    let send_socks = (std::iter::once(&sock).chain(&unicast_socks))
        .map(|s| s.try_clone().context("cannot clone the prober's sockets"))
        .collect::<Result<Vec<_>>>()?;
    // Started before the first probe, so it sees every ack.
    let ports: Vec<u16> = send_socks.iter().filter_map(|s| s.local_addr().ok()).map(|a| a.port()).collect();
    let tap = cfg.tap_acks.then(|| ack_tap::AckTap::start(cfg.group.is_ipv6(), &ports, cfg.ack_filter()));
    let mut sockets = ProbeSockets::new(sock, unicast_socks);
    if cfg.plain.is_none() {
        // An ack is never longer than an information probe and its tag: slots of 2 KiB (a
        // longer datagram is no ack, and is read cut, as it would be counted invalid anyway).
        sockets.read_in_batches(2048);
    }
    let clock = SystemClock::new();
    let started = Instant::now();
    let (sender, receiver) = thread::scope(|s| -> Result<_> {
        // Named, so a per-thread CPU account (scripts/threadcpu.py, top -H) tells them apart.
        let sender = thread::Builder::new()
            .name("probe-send".into())
            .spawn_scoped(s, || send_loop(cfg, &send_socks, session, &shared, &clock, stop))
            .context("cannot start the sender thread")?;
        let receiver = thread::Builder::new()
            .name("probe-receive".into())
            .spawn_scoped(s, || receive::receive_loop(cfg, &mut sockets, &clock, &shared, row_sink));
        let Ok(receiver) = receiver else {
            // The sender is running: stopped, or the scope would wait out its whole run.
            stop.store(true, Ordering::Relaxed);
            return Err(anyhow::anyhow!("cannot start the receiver thread"));
        };
        if let Some(on_progress) = on_progress {
            while !receiver.is_finished() {
                thread::sleep(Duration::from_millis(200));
                on_progress(&progress(cfg, &shared, started));
            }
        }
        Ok((sender.join(), receiver.join()))
    })?;
    let (lateness, send_errors, send_span) = sender.map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    let totals = receiver.map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let cutoff = totals.ended_ns.saturating_sub(ack_tap::MARGIN.as_nanos() as u64);
    let ack_watch = tap.map(|t| match t {
        Ok(t) => AckWatch::Watched(AckSightings {
            ports,
            chosen: cfg.ack_port.is_some(),
            ..t.finish(cutoff, &totals.at_socket, totals.drained)
        }),
        Err(why) => AckWatch::NotWatched(why),
    });
    let shared = Arc::into_inner(shared).expect("threads are joined");
    let runs = shared.runs.into_inner().unwrap_or_else(|e| e.into_inner());
    let run = runs.multicast;
    let mut unicast = runs.unicast;
    if !unicast.is_empty() {
        let table = net::route::neighbours();
        for u in &mut unicast {
            u.neighbour = table.get(&u.host).copied();
        }
    }
    Ok(Outcome {
        settings: settings(cfg),
        keys: runs.keys,
        interrupted: stop.load(Ordering::Relaxed) && run.sent() < cfg.count,
        run,
        unicast,
        ttl: cfg.ttl,
        lateness,
        send_span,
        elapsed: started.elapsed(),
        invalid: totals.invalid,
        forged: totals.forged,
        local_drops: totals.local_drops(),
        send_errors,
        local_addrs: local,
        ack_watch,
    })
}

/// What the reports say was asked of a run.
pub(crate) fn settings(cfg: &ProbeConfig) -> Settings {
    Settings {
        session: cfg.session,
        group: cfg.group,
        groups: cfg.groups.clone(),
        port: cfg.port,
        interface: cfg.iface.as_ref().map(|i| i.name.clone()),
        source: cfg.iface.as_ref().and_then(|i| i.source_for(cfg.group)),
        ttl: cfg.ttl,
        size: cfg.plain.as_ref().map_or(cfg.size, Vec::len),
        interval: cfg.interval,
        count: cfg.count,
        timeout: cfg.timeout,
        report_interval: cfg.report_interval,
        keyed: cfg.key.is_some(),
        plain: cfg.plain.is_some(),
        hosts: cfg.hosts.clone(),
    }
}

impl Runs {
    /// The runs of session `run_cfg.session`; per-probe rows and intervals describe the multicast
    /// path only.
    fn new(run_cfg: RunConfig, hosts: &[IpAddr], local: &[IpAddr]) -> Self {
        let unicast = (hosts.iter().enumerate())
            .map(|(i, &host)| {
                let session = run_cfg.session.wrapping_add(1 + i as u64);
                // Per-probe rows and intervals.csv describe the multicast path only; the unicast
                // runs keep their interval rows until the end, for the interval histogram log.
                let run = Run::new(RunConfig { session, raw: false, ..run_cfg });
                UnicastRun { is_self: host.is_loopback() || local.contains(&host), ..UnicastRun::new(host, run) }
            })
            .collect();
        Runs { multicast: Run::new(run_cfg), keys: KeyEvidence::default(), unicast }
    }
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

/// How long before a deadline the sender wakes from its sleep, adapted to the wake-up overshoot
/// it sees: a decaying peak of the recent overshoots (a higher one is taken at once, and the peak
/// falls by 1/[`WakeMargin::DECAY`] of its distance to each lower one, so one overshoot stays in
/// the margin for a few dozen wake-ups), plus a quarter of it and 2 µs of guard, clamped to
/// [`MIN_MARGIN`]..=[`SPIN_BEFORE`]. On a quiet machine a sleep with 1 ns timer slack overshoots
/// by 20–35 µs, so the sender spends about that, not a fixed 80 µs, awake before each probe; on
/// a busy one (cyclictest's median wake-up 70–90 µs at load 4–10) the margin sits at its 80 µs
/// clamp. Where the sleep would be shorter than [`MIN_SLEEP`] the sender does not sleep at all
/// (as before). Pure: tested below.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeMargin {
    /// The decaying peak of the overshoots, in ns.
    peak_ns: f64,
}

impl WakeMargin {
    /// How slowly the peak falls back (in wake-ups, roughly).
    const DECAY: f64 = 32.0;

    /// Starts at the old fixed margin: the first wake-ups are cautious.
    pub(crate) fn new() -> Self {
        WakeMargin { peak_ns: SPIN_BEFORE.as_nanos() as f64 }
    }

    /// Takes one observed overshoot: how long after the asked wake-up point the sleep returned.
    pub(crate) fn observe(&mut self, overshoot: Duration) {
        let o = overshoot.as_nanos() as f64;
        if o >= self.peak_ns {
            self.peak_ns = o;
        } else {
            self.peak_ns -= (self.peak_ns - o) / Self::DECAY;
        }
    }

    /// How long before the deadline to wake.
    pub(crate) fn margin(&self) -> Duration {
        let ns = self.peak_ns * 1.25 + 2_000.0;
        Duration::from_nanos(ns as u64).clamp(MIN_MARGIN, SPIN_BEFORE)
    }
}

/// Sleeps until `margin.margin()` before `deadline` on an absolute-deadline timer
/// (`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`, the thread's timer slack lowered to 1 ns by
/// the caller), feeds the wake-up's overshoot back into `margin`, then waits the rest awake.
///
/// After a sleep, that wait is a pure spin: a thread that just woke keeps its CPU for far longer
/// than the margin, while a `sched_yield` on a busy machine hands it to the next runnable process
/// for a whole time slice (milliseconds: measured, results/limits-2026-12-02.md). Where the
/// interval is shorter than the margin the sender never sleeps; then it yields on each turn (on a
/// small machine the responder and the ack receiver need that CPU) and spins only the last few
/// µs, as before; so it does where the sleep would be shorter than [`MIN_SLEEP`].
fn wait_until(deadline: Instant, stop: &AtomicBool, margin: &mut WakeMargin, min_sleep: Duration) {
    let mut slept = false;
    // Long waits are slept in slices, so a Ctrl-C is acted on within one slice, not one interval.
    loop {
        let now = Instant::now();
        let wake = deadline.checked_sub(margin.margin()).unwrap_or(deadline);
        if wake <= now + min_sleep || stop.load(Ordering::Relaxed) {
            break;
        }
        let last_slice = wake - now <= STOP_CHECK;
        sleep_until(if last_slice { wake } else { now + STOP_CHECK });
        if last_slice {
            margin.observe(Instant::now().saturating_duration_since(wake));
            slept = true;
            break;
        }
    }
    if stop.load(Ordering::Relaxed) {
        return;
    }
    while !slept && Instant::now() + PURE_SPIN < deadline {
        thread::yield_now();
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// [`Pacing::Lean`]: sleeps until `deadline` itself on an absolute-deadline timer (in slices of
/// [`STOP_CHECK`], for the stop flag) and returns on waking; a deadline already past is not
/// waited for (a sender that fell behind catches up without sleeping), one closer than
/// [`LEAN_MIN_SLEEP`] is waited out awake (so at ~50 000/s and above the sender is busy).
fn sleep_to(deadline: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        match lean_step(now, deadline) {
            LeanStep::Go => return,
            LeanStep::Spin => {
                while Instant::now() < deadline {
                    std::hint::spin_loop();
                }
                return;
            }
            LeanStep::Yield => thread::yield_now(),
            LeanStep::Sleep(until) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                sleep_until(until);
            }
        }
    }
}

/// One step of [`sleep_to`] (pure): what to do at `now` for a probe due at `deadline`.
#[derive(Debug, PartialEq, Eq)]
enum LeanStep {
    /// Due: send.
    Go,
    /// Due within [`LEAN_SPIN`]: wait it out awake.
    Spin,
    /// Due within [`LEAN_MIN_SLEEP`]: give the CPU to any other runnable thread, then look again.
    Yield,
    /// Sleep until this instant (the deadline, or a [`STOP_CHECK`] slice towards it).
    Sleep(Instant),
}

fn lean_step(now: Instant, deadline: Instant) -> LeanStep {
    if now >= deadline {
        LeanStep::Go
    } else if deadline - now <= LEAN_SPIN {
        LeanStep::Spin
    } else if deadline - now < LEAN_MIN_SLEEP {
        LeanStep::Yield
    } else {
        LeanStep::Sleep(deadline.min(now + STOP_CHECK))
    }
}

/// Sleeps until `at` on CLOCK_MONOTONIC (the clock `Instant` reads on Linux) with an absolute
/// deadline, so the time between reading the clock and arming the timer is not added to the
/// sleep. A signal's EINTR just restarts it.
fn sleep_until(at: Instant) {
    use nix::time::{clock_gettime, clock_nanosleep, ClockId, ClockNanosleepFlags};
    let Ok(now_ts) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        thread::sleep(at.saturating_duration_since(Instant::now()));
        return;
    };
    let ahead = at.saturating_duration_since(Instant::now());
    let target = Duration::new(now_ts.tv_sec() as u64, now_ts.tv_nsec() as u32) + ahead;
    let ts = nix::sys::time::TimeSpec::from_duration(target);
    while let Err(nix::errno::Errno::EINTR) =
        clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &ts)
    {}
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

/// Sends the probes on schedule: `socks[0]` to the group, `socks[1 + i]` to host `i`.
fn send_loop(
    cfg: &ProbeConfig,
    socks: &[UdpSocket],
    session: u64,
    shared: &Shared,
    clock: &impl Clock,
    stop: &AtomicBool,
) -> Result<(Histogram<u64>, u64, Duration)> {
    net::lower_timer_slack();
    // Each path's keyed probes are bound to where they go and to the address their socket is
    // bound to (`net::prober_socket`, `net::unicast_socket`): one key per path, made once.
    let bound_key = |dst: SocketAddr, sock: &UdpSocket| -> Result<Option<BoundKey>> {
        let src = sock.local_addr().context("the prober's socket has no address")?.ip();
        Ok(cfg.key.as_ref().map(|k| k.bound_key(&Binding { dst, src })))
    };
    // One destination (and, keyed, one bound key) per group: probe `seq` goes to group
    // `seq % groups` (the accounting in `crate::stats` splits the figures the same way).
    let dests: Vec<SocketAddr> = cfg.groups.iter().map(|&g| SocketAddr::new(g, cfg.port)).collect();
    let mc_keys = dests.iter().map(|&d| bound_key(d, &socks[0])).collect::<Result<Vec<_>>>()?;
    let host_keys = (cfg.hosts.iter().zip(&socks[1..]))
        .map(|(&host, sock)| bound_key(SocketAddr::new(host, cfg.port), sock))
        .collect::<Result<Vec<_>>>()?;
    let mut lateness = lateness_histogram();
    let sizes = ProbeSizes::new(cfg);
    let mut buf = Vec::with_capacity(cfg.size.max(wire::INFO_PROBE_LEN + wire::TAG_LEN));
    let mut send_errors = 0u64;
    let start = Instant::now();
    // Where the schedule starts: `start`, moved later when a backlog is left out (`backlog_max`).
    let mut origin = start;
    let mut last_left = None;
    let mut margin = WakeMargin::new();
    // Under SCHED_FIFO (`probe --realtime`) every sleep is taken, however short: a woken realtime
    // thread runs within tens of µs, and one that never sleeps runs into the kernel's realtime
    // throttling (at most 95 % of each second), a stall of tens of ms (measured at 10 000/s).
    let realtime = net::is_realtime();
    let min_sleep = if realtime { Duration::ZERO } else { MIN_SLEEP };
    let pacing = cfg.pacing.resolve(realtime);
    // At rates above what one send per loop reaches on a small machine, probes already due
    // when one leaves go with it, in one `sendmmsg` and under one lock, their transmit time read
    // once: the later ones wait a few µs more in the call, not a loop each. Only there: at lower
    // rates a sender that fell behind (a stall) catches up one probe at a time as before, since
    // a batch leaves as one burst, which a policer along the path may cut (a `limit ... burst
    // 20` in tests/it/lab_rate_mesh.rs did). Multicast only, after the first probe (whose
    // failure ends the run), not with `--plain` (a reply answers the newest probe); each probe
    // its own packet (no UDP GSO: a segmented batch crosses a software bridge as one packet).
    let batching = cfg.hosts.is_empty() && cfg.plain.is_none() && cfg.interval < BATCH_BELOW_INTERVAL;
    let mut batch = net::batch::SendBatch::unsegmented(buf.capacity());
    let mut due: Vec<Duration> = Vec::with_capacity(net::batch::BATCH);
    let gap = || match cfg.schedule {
        Schedule::Fixed => cfg.interval,
        Schedule::Poisson => cfg.interval.mul_f64(exponential_sample()),
    };
    let result = (|| {
        // Probe `k` is due `offset` after the start. Deadlines are offsets from the start, never
        // from the previous send: lateness does not accumulate.
        let (mut k, mut offset) = (0u64, Duration::ZERO);
        // Past --duration: whatever is left of `count` is not sent (a sender that fell behind
        // does not stretch the run).
        let past_duration = |offset: Duration| cfg.deadline.is_some_and(|d| offset >= d || start.elapsed() >= d);
        while k < cfg.count {
            // The probe's time on the schedule, by which its lateness is counted.
            let deadline = origin + offset;
            if past_duration(offset) {
                break;
            }
            // With `backlog_max` (max-rate), a sender that fell behind (a stall of the machine)
            // by more than that many probes moves the rest of the schedule later instead of
            // sending the backlog at once: a burst at whatever speed the kernel takes probes is
            // what a policer along the path (a switch's, or `limit rate ... burst 20` in
            // tests/it/lab_rate_mesh.rs) cuts, and max-rate would blame the path for the
            // sender's stall. (Held to a catch-up rate instead, a sender never caught up at
            // 4 000/s under load: each short sleep overshoots.)
            if let (Some(b), Schedule::Fixed) = (cfg.backlog_max, cfg.schedule) {
                origin += slip(Instant::now(), deadline, cfg.interval, b);
            }
            let wake = deadline.max(origin + offset);
            match pacing {
                Pacing::Precise => wait_until(wake, stop, &mut margin, min_sleep),
                Pacing::Lean | Pacing::Auto => sleep_to(wake, stop),
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let left = Instant::now();
            last_left = Some(left);
            due.clear();
            loop {
                due.push(offset);
                k += 1;
                offset += gap();
                let more = batching && k > 1 && k < cfg.count && due.len() < net::batch::BATCH;
                if !more || origin + offset > left || past_duration(offset) {
                    break;
                }
            }
            if due.len() > 1 {
                send_errors +=
                    send_due(cfg, shared, &due, (session, &dests, &mc_keys, &sizes), &mut buf, &mut batch, &socks[0]);
                for &o in &due {
                    lateness.saturating_record(left.saturating_duration_since(origin + o).as_nanos() as u64);
                }
                continue;
            }
            // The transmit time is read with the run's lock held, so waiting for the lock (the
            // receiver holds it while it accounts an ack) never counts as network time.
            let (seq, tx_ns, name_wanted) = {
                let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
                let (tx_ns, shift) = net::wall_now();
                let name_wanted = runs.multicast.take_name_wanted();
                (runs.multicast.record_send_shifted(tx_ns, due[0].as_nanos() as u64, shift), tx_ns, name_wanted)
            };
            let (size, asks_ext) = sizes.of(seq, name_wanted);
            let probe = Probe { session, seq, tx_ns, asks_ext };
            let g = (seq % dests.len() as u64) as usize;
            let dest = dests[g];
            encode_probe(cfg, probe, size, mc_keys[g].as_ref(), &mut buf);
            if let Err(e) = socks[0].send_to(&buf, dest) {
                // The first probe failing means the path is unusable (no route, bad interface);
                // later transient failures (a full send queue) are counted and reported.
                if seq == 0 {
                    return Err(anyhow::anyhow!("cannot send to {dest}: {e}"));
                }
                send_errors += 1;
            }
            lateness.saturating_record(left.saturating_duration_since(deadline).as_nanos() as u64);
            for (i, (&host, sock)) in cfg.hosts.iter().zip(&socks[1..]).enumerate() {
                let session = session.wrapping_add(1 + i as u64);
                // The probe is recorded only once the kernel took it, and under the lock, so an
                // ack can never arrive for a probe the run does not know yet.
                let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
                let u = &mut runs.unicast[i];
                let (tx_ns, shift) = net::wall_now();
                let seq = u.run.sent();
                let (size, asks_ext) = sizes.of(seq, u.run.take_name_wanted());
                encode_probe(cfg, Probe { session, seq, tx_ns, asks_ext }, size, host_keys[i].as_ref(), &mut buf);
                if send_unicast(sock, &buf, SocketAddr::new(host, cfg.port)) {
                    u.run.record_send_now(tx_ns, shift);
                } else {
                    u.not_sent += 1;
                }
            }
        }
        Ok(())
    })();
    *shared.last_tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(clock.mono());
    shared.sending_done.store(true, Ordering::Release);
    let span = last_left.map_or(Duration::ZERO, |l| l.saturating_duration_since(start));
    result.map(|()| (lateness, send_errors, span))
}

/// How much later the schedule must start (pure) so that a sender at `now`, behind the probe due
/// at `deadline`, has at most `backlog` probes (one per `interval`) left to catch up: zero while
/// it is less behind than that.
fn slip(now: Instant, deadline: Instant, interval: Duration, backlog: u32) -> Duration {
    now.saturating_duration_since(deadline).saturating_sub(interval * backlog)
}

/// The multicast probes due at `due` (offsets from the start), sent together: recorded under
/// one lock with one transmit time, then one `sendmmsg`. Returns the probes the kernel refused.
fn send_due(
    cfg: &ProbeConfig,
    shared: &Shared,
    due: &[Duration],
    (session, dests, keys, sizes): (u64, &[SocketAddr], &[Option<BoundKey>], &ProbeSizes),
    buf: &mut Vec<u8>,
    batch: &mut net::batch::SendBatch,
    sock: &UdpSocket,
) -> u64 {
    let mut alone = 0;
    {
        let mut runs = shared.runs.lock().unwrap_or_else(|e| e.into_inner());
        let (tx_ns, shift) = net::wall_now();
        for &o in due {
            let name_wanted = runs.multicast.take_name_wanted();
            let seq = runs.multicast.record_send_shifted(tx_ns, o.as_nanos() as u64, shift);
            let (size, asks_ext) = sizes.of(seq, name_wanted);
            let g = (seq % dests.len() as u64) as usize;
            encode_probe(cfg, Probe { session, seq, tx_ns, asks_ext }, size, keys[g].as_ref(), buf);
            // The batch holds `BATCH` probes of the largest size: a refusal cannot happen, and
            // would only cost a send of its own.
            if !batch.push(buf, dests[g]) {
                alone += u64::from(sock.send_to(buf, dests[g]).is_err());
            }
        }
    }
    alone + batch.flush(sock).1 as u64
}

/// One unicast probe on its host's non-blocking socket; false when the kernel refused it (a
/// full queue behind an unresolved neighbour, or no route). With `IP_RECVERR` on, a send also
/// reports a queued ICMP error once, about an earlier probe: then it is tried once more.
fn send_unicast(sock: &UdpSocket, buf: &[u8], dest: SocketAddr) -> bool {
    for _ in 0..2 {
        match sock.send_to(buf, dest) {
            Ok(_) => return true,
            Err(e) if net::icmp::is_reported_icmp(&e) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// Probes at the start and at the end of a session, and one a second, that are padded so that
/// every ack can carry all it has (see [`ProbeSizes`]). Three at each end: one lost probe does
/// not hide a name.
const INFO_PROBES_AT_ENDS: u64 = 3;

/// The size of each probe of a session (the tag included when keyed), worked out once per run:
/// `--size`, except that when that is too small for an ack with its extension and a name, the
/// first and last [`INFO_PROBES_AT_ENDS`] probes, one probe a second, the probe after a new
/// responder id first answered, and the probe after an ack showed forward loss its responder
/// has not yet reported as its host's or not (`stats::HostStats::drops_wanted`) are padded to
/// [`wire::INFO_PROBE_LEN`]. So a prober at `--size 64` still learns each responder's name,
/// join delay and host drops, and no ack is ever larger than its probe. The few larger probes cost nothing a LAN can measure: 150 bytes take
/// 1.2 µs at 1 Gb/s.
///
/// Only a probe of at least that size asks for the ack extension. A smaller probe's ack keeps
/// all its room for the name, as before the extension: a name cut shorter in some acks than in
/// others would not be recognized as the same responder after a restart. The drop count is
/// cumulative, so a padded probe after each loss brings it up to date.
struct ProbeSizes {
    size: usize,
    /// The padded size, when `--size` is smaller.
    padded: Option<usize>,
    /// One padded probe in this many: one a second.
    every: u64,
    count: u64,
}

impl ProbeSizes {
    fn new(cfg: &ProbeConfig) -> Self {
        let every = (1e9 / cfg.interval.as_nanos().max(1) as f64).round().max(1.0) as u64;
        ProbeSizes { size: cfg.size, padded: padded_size(cfg), every, count: cfg.count }
    }

    /// Probe `seq`'s size, and whether it asks for the extension. `name_wanted`: a new responder
    /// id answered since the last probe (see `stats::Run::take_name_wanted`).
    fn of(&self, seq: u64, name_wanted: bool) -> (usize, bool) {
        let Some(padded) = self.padded else { return (self.size, true) };
        let at_ends = seq < INFO_PROBES_AT_ENDS || seq.saturating_add(INFO_PROBES_AT_ENDS) >= self.count;
        if name_wanted || at_ends || seq % self.every == 0 {
            (padded, true)
        } else {
            (self.size, false)
        }
    }
}

/// The size of the padded probes of [`ProbeSizes`], when `--size` is smaller than that.
pub(crate) fn padded_size(cfg: &ProbeConfig) -> Option<usize> {
    let tag = if cfg.key.is_some() { wire::TAG_LEN } else { 0 };
    let info = wire::INFO_PROBE_LEN + tag;
    (cfg.size < info && cfg.plain.is_none()).then_some(info)
}

/// The datagram for one probe of `size` bytes (the tag included): the plain message, or the
/// probe, keyed with its path's key when there is a key.
fn encode_probe(cfg: &ProbeConfig, probe: Probe, size: usize, key: Option<&BoundKey>, buf: &mut Vec<u8>) {
    buf.clear();
    match (&cfg.plain, key) {
        (Some(message), _) => buf.extend_from_slice(message),
        (None, Some(key)) => {
            probe.encode_into(size - wire::TAG_LEN, buf);
            key.seal(buf);
        }
        (None, None) => probe.encode_into(size, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_beyond_its_bound_moves_the_schedule_later() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let interval = us(500);
        // On time, or behind by up to 4 probes: the schedule stays.
        assert_eq!(slip(t0, t0 + us(100), interval, 4), Duration::ZERO);
        assert_eq!(slip(t0 + us(60), t0, interval, 4), Duration::ZERO);
        assert_eq!(slip(t0 + us(2000), t0, interval, 4), Duration::ZERO);
        // A 20 ms stall: 40 probes behind; all but 4 are left out, by moving the rest 18 ms.
        assert_eq!(slip(t0 + us(20_000), t0, interval, 4), us(18_000));
        assert_eq!(slip(t0 + us(20_000), t0, interval, 0), us(20_000));
    }

    #[test]
    fn wake_margin_follows_the_overshoot_and_stays_clamped() {
        let us = Duration::from_micros;
        let mut m = WakeMargin::new();
        assert_eq!(m.margin(), SPIN_BEFORE, "starts cautious");
        // A quiet machine: 10 µs overshoots bring the margin down to 10 × 1.25 + 2 = 14.5 µs.
        for _ in 0..1000 {
            m.observe(us(10));
        }
        assert!((us(14)..=us(15)).contains(&m.margin()), "{:?}", m.margin());
        // One large overshoot takes the margin up at once (to the clamp), ...
        m.observe(us(4000));
        assert_eq!(m.margin(), SPIN_BEFORE);
        // ... and it decays back over a few hundred quiet wake-ups, not at the first one.
        m.observe(us(10));
        assert_eq!(m.margin(), SPIN_BEFORE);
        for _ in 0..400 {
            m.observe(us(10));
        }
        assert!(m.margin() < us(20), "{:?}", m.margin());
        // Never below the floor, even if the timer fires on the dot.
        for _ in 0..1000 {
            m.observe(Duration::ZERO);
        }
        assert_eq!(m.margin(), MIN_MARGIN);
    }

    #[test]
    fn wait_until_is_never_early() {
        let stop = AtomicBool::new(false);
        let mut m = WakeMargin::new();
        for _ in 0..20 {
            let deadline = Instant::now() + Duration::from_millis(2);
            wait_until(deadline, &stop, &mut m, MIN_SLEEP);
            assert!(Instant::now() >= deadline);
        }
        assert!(m.margin() <= SPIN_BEFORE && m.margin() >= MIN_MARGIN);
    }

    #[test]
    fn lean_pacing_sleeps_to_the_deadline_itself_and_never_past_a_stop_slice() {
        let us = Duration::from_micros;
        let now = Instant::now();
        // Due or overdue: send at once (a sender behind schedule catches up without sleeping).
        assert_eq!(lean_step(now, now), LeanStep::Go);
        assert_eq!(lean_step(now + us(500), now), LeanStep::Go);
        // Closer than a sleep's own cost: spun.
        assert_eq!(lean_step(now, now + us(1)), LeanStep::Spin);
        assert_eq!(lean_step(now, now + LEAN_SPIN), LeanStep::Spin);
        // Shorter than a wake-up takes: waited out awake, yielding.
        assert_eq!(lean_step(now, now + us(3)), LeanStep::Yield);
        assert_eq!(lean_step(now, now + us(19)), LeanStep::Yield);
        // Otherwise a sleep to the deadline itself: no early wake-up, no margin, no spin.
        assert_eq!(lean_step(now, now + LEAN_MIN_SLEEP), LeanStep::Sleep(now + LEAN_MIN_SLEEP));
        assert_eq!(lean_step(now, now + us(100)), LeanStep::Sleep(now + us(100)));
        // A long wait is slept in slices, so a Ctrl-C is seen within one.
        assert_eq!(lean_step(now, now + Duration::from_secs(10)), LeanStep::Sleep(now + STOP_CHECK));
    }

    #[test]
    fn auto_pacing_spins_only_under_sched_fifo() {
        assert_eq!(Pacing::Auto.resolve(false), Pacing::Lean);
        assert_eq!(Pacing::Auto.resolve(true), Pacing::Precise);
        for p in [Pacing::Lean, Pacing::Precise] {
            assert_eq!(p.resolve(false), p, "asked for: kept");
            assert_eq!(p.resolve(true), p, "asked for: kept");
        }
    }

    #[test]
    fn lean_pacing_is_never_early_and_stops_within_a_slice() {
        let stop = AtomicBool::new(false);
        for gap in [0, 1, 3, 50, 2_000] {
            let deadline = Instant::now() + Duration::from_micros(gap);
            sleep_to(deadline, &stop);
            assert!(Instant::now() >= deadline, "woke early for a {gap} µs wait");
        }
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        sleep_to(t + Duration::from_secs(30), &stop);
        assert!(t.elapsed() < Duration::from_secs(5), "a stop is seen within a slice");
    }

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
    fn small_probes_are_padded_at_both_ends_and_once_a_second_and_only_those_ask() {
        let group = "239.255.42.42".parse().unwrap();
        let cfg =
            ProbeConfig { size: 100, count: 2500, interval: Duration::from_millis(1), ..ProbeConfig::new(group, 1) };
        let sizes = ProbeSizes::new(&cfg);
        let padded: Vec<u64> = (0..cfg.count).filter(|&s| sizes.of(s, false).0 > cfg.size).collect();
        assert_eq!(padded, [0, 1, 2, 1000, 2000, 2497, 2498, 2499]);
        for s in 0..cfg.count {
            let (size, asks_ext) = sizes.of(s, false);
            assert_eq!(asks_ext, padded.contains(&s), "probe {s}");
            assert!(size == cfg.size || size == wire::INFO_PROBE_LEN);
        }
        // After a new responder id: the next probe is padded, whatever its number.
        assert_eq!(sizes.of(500, true), (wire::INFO_PROBE_LEN, true));
        // Keyed: the tag is on top. Large enough already: nothing changes, and every probe asks.
        let keyed = ProbeConfig { key: Some(crate::auth::Key::from_secret(b"k").unwrap()), ..cfg.clone() };
        assert_eq!(ProbeSizes::new(&keyed).of(0, false).0, wire::INFO_PROBE_LEN + wire::TAG_LEN);
        let large = ProbeSizes::new(&ProbeConfig { size: 1000, ..cfg });
        assert!((0..large.count).all(|s| large.of(s, true) == (1000, true) && large.of(s, false) == (1000, true)));
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
