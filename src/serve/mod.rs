//! `mcprobe serve`: probes without end and serves the figures to Prometheus.
//!
//! Each target runs back-to-back windows of the ordinary probe engine ([`prober::run`] with
//! `count` probes): window k+1 starts when k's schedule ends, so probing is continuous while k
//! waits (up to `timeout`) for its late acks. Each window is its own session and socket. At most
//! two windows of a target exist at once (see [`bounds`]): when k+1 is due, k's sending is cut
//! if it is still going (its sender fell behind), and k-1 must be over; if it is not, k+1 starts
//! late. Either is an overrun, counted and logged. A finished window is folded into the
//! cumulative [`state::State`] (pure), and a copy is published for the HTTP side, which never
//! touches the probe or ack path. Memory is bounded by construction: a window's engine state is
//! dropped once folded, and the state holds at most `--max-series` series per target, each of
//! fixed size. Each target also has a querier watch for its whole life (a thread of its own,
//! see [`crate::querier::watch`]), read into the state once a second.
//!
//! Each `[[watch]]` entry is one thread ([`watch_loop`]): the stream watch's receiver (its
//! sockets waited on with one epoll) feeding a [`watch::Watcher`], whose snapshot is published
//! once a second beside the probe state.

pub(crate) mod bounds;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod schedule;
pub(crate) mod state;
pub(crate) mod watch;
pub(crate) mod webconfig;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};

use metrics::Published;
use state::{Change, Limits, QuerierState, State, Window};

use crate::findings::{Findings, Judgement, DEFAULT_THRESHOLD_PCT};
use crate::prober::{self, ProbeConfig};
use crate::querier::watch::QuerierWatch;
use crate::run::Outcome;

// How often the main thread and each target's loop look at the stop flag (STOP_TICK, 250 ms; it
// was 50): SIGTERM and Ctrl-C stop `serve` within about two of them (the main thread's look at
// Ctrl-C's flag, then the loops' look at `quit`), whatever the timeout (windows under way are
// abandoned: their figures would have nowhere to go). Everything else they wait for wakes them:
// a window's end, the next window, a cut.
use crate::net::STOP_TICK;
/// How late a window may start, and how long after the next window's start it may still send
/// its last probe, without an overrun: its engine starts its schedule once its sockets are set
/// up, and on a loaded machine threads wake late (12-13 ms measured with 64 targets on 2
/// vCPUs). Past this, its sending is cut, so two windows never send together for longer. A
/// tenth of the window, at most 100 ms.
fn grace(t: &Target) -> Duration {
    (t.window / 10).min(Duration::from_millis(100))
}

/// One validated target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: String,
    /// One window's engine configuration (`count` probes).
    pub probe: ProbeConfig,
    /// `count` probes at `interval`: the time between window starts (computed in 128-bit
    /// nanoseconds, so no count truncates it).
    pub window: Duration,
    /// `--querier-wait`: the silence that sets `mcprobe_querier_silent`.
    pub querier_wait: Option<Duration>,
    /// `--mesh`: this host also answers the group.
    pub mesh: Option<Mesh>,
}

/// A mesh target's own responder: the group, port, interface and key of the target, the
/// host's `--name`. Its acks (back through multicast loop) are recognised by its id and are
/// not a peer's.
#[derive(Debug, Clone)]
pub(crate) struct Mesh {
    pub responder: crate::responder::ResponderConfig,
    /// The probes a second the schedule keeps the host answering ([`schedule::interval`]);
    /// `None` when the user chose the rate (`--rate`, `--interval`): then it is kept.
    pub budget: Option<f64>,
    /// At most this many peers are probed by unicast in a window, in turns.
    pub unicast_max: usize,
}

impl Target {
    /// Window `k`'s `--ack-port`: windows overlap while one waits for its late acks, so they
    /// take two blocks of ports in turn (the ack port and the hosts' ports after it, then the
    /// next block).
    pub(crate) fn ack_port_of_window(&self, k: u64) -> Option<u16> {
        let block = (self.unicast_slots() + 1) * (k % 2) as usize;
        self.probe.ack_port.and_then(|p| u16::try_from(usize::from(p) + block).ok())
    }

    /// The ports its windows take for acks, first and last.
    pub(crate) fn ack_ports(&self) -> Option<(u16, u16)> {
        let first = self.probe.ack_port?;
        Some((first, self.ack_port_of_window(1)? + self.unicast_slots() as u16))
    }

    /// Probes a second this target sends at most: multicast plus one unicast probe per host.
    pub(crate) fn send_rate(&self) -> f64 {
        (1 + self.unicast_slots()) as f64 / self.probe.interval.as_secs_f64()
    }

    /// The most hosts a window probes by unicast: `--hosts`; a mesh's sample of its peers.
    pub(crate) fn unicast_slots(&self) -> usize {
        self.mesh.as_ref().map_or(self.probe.hosts.len(), |m| m.unicast_max)
    }
}

#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub listen: SocketAddr,
    pub forget: Duration,
    pub max_series: usize,
    /// `--group-series`: a series per responder and group, within `max_series`.
    pub group_series: bool,
    pub targets: Vec<Target>,
    /// The `[[watch]]` entries.
    pub watches: Vec<watch::WatchTarget>,
    pub quiet: bool,
    /// `--web-config`: TLS and basic auth.
    pub web: webconfig::WebConfig,
}

/// `mcprobe serve`: runs until `stop` (Ctrl-C, SIGTERM).
pub(crate) fn run(cfg: ServeConfig, stop: &AtomicBool) -> Result<()> {
    let hosts = cfg.targets.iter().map(Target::unicast_slots);
    let watched = cfg.watches.iter().map(|w| w.groups.len());
    let http = http::MAX_CONNECTIONS + http::MAX_REFUSING;
    // A mesh responder: its socket(s), its tap, a few to spare.
    let meshes = 8 * cfg.targets.iter().filter(|t| t.mesh.is_some()).count() as u64;
    bounds::ensure_descriptors(bounds::descriptors_needed(hosts, http) + bounds::watch_descriptors(watched) + meshes)?;
    let limits =
        Limits { max_series: cfg.max_series, forget_s: cfg.forget.as_secs_f64(), group_series: cfg.group_series };
    let mut state = State::new(limits, cfg.targets.iter().map(|t| t.name.clone()));
    for t in &cfg.targets {
        state.set_groups(&t.name, &t.probe.groups);
        if let Some(m) = &t.mesh {
            state.set_mesh(&t.name, &m.responder.name, &t.probe.hosts);
        }
    }
    // The mesh targets' responders are bound before anything runs: a port taken ends serve now.
    let mut responders = Vec::new();
    for t in &cfg.targets {
        if let Some(m) = &t.mesh {
            let r = crate::responder::Responder::bind(m.responder.clone())
                .map_err(|e| e.context(format!("target {}: its mesh responder", t.name)))?;
            responders.push((t.name.clone(), r));
        }
    }
    let published = Published::new(state.clone());
    let server =
        http::Server::bind(cfg.listen, metrics::registry(published.clone()), published.clone(), cfg.web.clone())?;
    if !cfg.quiet {
        let names: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
        let watches: Vec<&str> = cfg.watches.iter().map(|w| w.name.as_str()).collect();
        let (scheme, addr) = (server.scheme(), server.local_addr());
        let mut doing = Vec::new();
        if !names.is_empty() {
            doing.push(format!("probing target(s) {}", names.join(", ")));
        }
        if !watches.is_empty() {
            doing.push(format!("watching {}", watches.join(", ")));
        }
        for t in &cfg.targets {
            let Some(m) = &t.mesh else { continue };
            let rate = match m.budget {
                Some(b) => format!("{:.3} probes/s, lowered as peers appear so that a host answers at most {b:.0} probes/s (rate x (peers + unicast peers a window))", 1.0 / t.probe.interval.as_secs_f64()),
                None => format!("{:.3} probes/s as given, whatever the peers", 1.0 / t.probe.interval.as_secs_f64()),
            };
            doing.push(format!(
                "mesh {}: {rate}; at most {} peers by unicast a window, in turns",
                t.name, m.unicast_max
            ));
        }
        eprintln!("serving {scheme}://{addr}/metrics; {}", doing.join("; "));
    }
    // `quit` stops everything: set from `stop`, or by a target that cannot start.
    let quit = AtomicBool::new(false);
    let state = Mutex::new(state);
    let failure = Mutex::new(None);
    thread::scope(|s| {
        s.spawn(|| {
            if let Err(e) = server.run(&quit) {
                failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                quit.store(true, Ordering::SeqCst);
            }
        });
        // Each mesh responder on a thread of its own; its id is known before the target's first
        // window, so its own acks are never taken for a peer's.
        let mut answering = Vec::new();
        for (name, r) in responders {
            let (tx, rx) = std::sync::mpsc::channel();
            let (quit, failure) = (&quit, &failure);
            let target = name.clone();
            answering.push(s.spawn(move || {
                let ran = r.run(quit, move |ev| {
                    if let crate::responder::Event::Listening { id } = ev {
                        let _ = tx.send(*id);
                    }
                });
                if let Err(e) = ran {
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e.context(format!("target {target}: its mesh responder")));
                    quit.store(true, Ordering::SeqCst);
                }
            }));
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(id) => {
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    st.set_own_id(&name, id);
                    published.set(st.clone());
                }
                Err(_) => {
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(anyhow!("target {name}: its mesh responder did not start within 5 s"));
                    quit.store(true, Ordering::SeqCst);
                }
            }
        }
        let loops: Vec<_> = (cfg.targets.iter())
            .map(|t| {
                let (quit, state, published, failure) = (&quit, &state, &published, &failure);
                s.spawn(move || {
                    if let Err(e) = target_loop(t, quit, state, published, cfg.quiet) {
                        failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        quit.store(true, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let watch_loops: Vec<_> = (cfg.watches.iter())
            .map(|w| {
                let (quit, published, failure) = (&quit, &published, &failure);
                let (forget, max_series) = (cfg.forget, cfg.max_series);
                s.spawn(move || {
                    if let Err(e) = watch_loop(w, forget, max_series, quit, published, cfg.quiet) {
                        failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        quit.store(true, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Ctrl-C sets `stop`, which nothing can ring: looked at every STOP_TICK (it was every
        // 20 ms), as is `quit` when a thread fails. The loops see `quit` within their own wait.
        while !quit.load(Ordering::SeqCst) {
            if stop.load(Ordering::SeqCst) {
                quit.store(true, Ordering::SeqCst);
            }
            thread::sleep(STOP_TICK);
        }
        for l in loops.into_iter().chain(watch_loops).chain(answering) {
            let _ = l.join();
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    if !cfg.quiet {
        eprintln!("stopped");
    }
    Ok(())
}

/// One `[[watch]]` entry until `quit`: joins its groups (a group that cannot be joined ends
/// `serve`, as a target's first window does), feeds every datagram to its watcher, and once a
/// second closes the second, forgets the streams silent longer than `forget` and publishes.
fn watch_loop(
    w: &watch::WatchTarget,
    forget: Duration,
    max_series: usize,
    quit: &AtomicBool,
    published: &Published,
    quiet: bool,
) -> Result<()> {
    use crate::stream::receive::{group_port, Receiver};
    const SECOND: u64 = 1_000_000_000;
    let mut rx = Receiver::open(&w.groups, w.iface.as_ref(), w.source, w.rcvbuf)
        .map_err(|e| e.context(format!("watch {}", w.name)))?;
    let t0 = crate::net::now_ns();
    let mut watcher = watch::Watcher::new(w, max_series, t0);
    published.set_watch(&w.name, watcher.snapshot(t0));
    let forget_ns = u64::try_from(forget.as_nanos()).unwrap_or(u64::MAX);
    let mut next_tick = t0 + SECOND;
    while !quit.load(Ordering::SeqCst) {
        // Until the next datagram, or the next second's duty, or STOP_TICK for `quit`; in whole
        // ms rounded up, as the poll takes it (rounded down, the last ms would spin).
        let wait = Duration::from_nanos(next_tick.saturating_sub(crate::net::now_ns())).min(STOP_TICK);
        let wait = Duration::from_millis(u64::from(crate::net::wait_ms(wait)));
        rx.poll(wait, |g, port, bytes, r| watcher.packet(g, port, r.from, bytes, r.rx_ns))
            .map_err(|e| e.context(format!("watch {}", w.name)))?;
        let now = crate::net::now_ns();
        if now >= next_tick {
            next_tick = now - (now - t0) % SECOND + SECOND;
            for (g, p, d) in rx.local_drops() {
                watcher.set_local_drops(g, p, d);
            }
            let events = watcher.tick(now, forget_ns);
            published.set_watch(&w.name, watcher.snapshot(now));
            for e in events.iter().filter(|_| !quiet) {
                let (k, what) = match e {
                    watch::Event::Appeared(k) => (k, "appeared"),
                    watch::Event::Forgotten(k) => (k, "forgotten (silent longer than --forget)"),
                    watch::Event::Capped(k) => {
                        (k, "not followed: its group has max_sources, or the entry --max-series streams, already; its datagrams and those of further sources are summed as source \"other\"")
                    }
                };
                eprintln!("watch {}: stream {} from {} {what}", w.name, group_port(k.group, k.port), k.source);
            }
        }
    }
    Ok(())
}

fn unix_now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A window under way, on a thread of its own (not scoped: `serve` stops without waiting for
/// the late acks of a window that no one will read).
struct InFlight {
    thread: thread::JoinHandle<Result<Outcome>>,
    /// Stops the window's sender (the engine's `stop`); its receiver still waits for late acks.
    cut: Arc<AtomicBool>,
    /// When to set `cut`: [`grace`] after the next window started.
    cut_at: Option<Instant>,
    /// The window's number, in what its thread sends when it is over.
    k: u64,
}

impl InFlight {
    /// `prober`: the target's identity for its whole life, the high 32 bits of every window's
    /// session, so a responder names this prober once rather than once per window.
    /// Window `k` of its target: with `--ack-port`, windows take two blocks of ports in turn,
    /// since one waits for its late acks while the next sends.
    /// `done` hears `k` when the window's thread is over, so the target's loop wakes for it.
    /// `base`: the window's engine configuration (a mesh's has its own hosts and rate).
    fn start(t: &Target, base: &ProbeConfig, prober: u32, k: u64, done: &mpsc::Sender<u64>) -> Result<Self> {
        // Every window is its own session: acks of one are never taken for another's.
        let session = u64::from(prober) << 32 | u64::from(rand::random::<u32>());
        let probe = ProbeConfig { session, ack_port: t.ack_port_of_window(k), ..base.clone() };
        let cut = Arc::new(AtomicBool::new(false));
        let stop = cut.clone();
        let thread = thread::Builder::new()
            .name("window".into())
            .spawn({
                let done = done.clone();
                move || {
                    let outcome = prober::run(&probe, &stop, None, None);
                    // The loop may be gone (serve stopping): nobody to tell.
                    let _ = done.send(k);
                    outcome
                }
            })
            .map_err(|e| anyhow!("cannot start a window's thread: {e}"))?;
        Ok(InFlight { thread, cut, cut_at: None, k })
    }
}

/// Says an overrun at most once per [`bounds::OVERRUN_LOG_PERIOD`] per target.
struct OverrunLog {
    last: Option<Instant>,
    unsaid: u64,
}

impl OverrunLog {
    fn record(&mut self, t: &Target, why: &str, state: &Mutex<State>, published: &Published, quiet: bool) {
        let total = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let total = st.overrun(&t.name);
            published.set(st.clone());
            total
        };
        self.unsaid += 1;
        if quiet || self.last.is_some_and(|l| l.elapsed() < bounds::OVERRUN_LOG_PERIOD) {
            return;
        }
        let more =
            if self.unsaid > 1 { format!(" ({} overruns since the last line)", self.unsaid) } else { String::new() };
        eprintln!(
            "mcprobe: target {}: a window overran --window {:.3} s: {why}{more}; {total} in all (mcprobe_window_overruns_total; said at most every {} min)",
            t.name,
            t.window.as_secs_f64(),
            bounds::OVERRUN_LOG_PERIOD.as_secs() / 60
        );
        self.last = Some(Instant::now());
        self.unsaid = 0;
    }
}

/// Runs one target's windows until `quit`. An error in the first window (no such route, a port
/// that cannot be bound) ends `serve`; later ones are logged and the next window tries again.
fn target_loop(t: &Target, quit: &AtomicBool, state: &Mutex<State>, published: &Published, quiet: bool) -> Result<()> {
    let mut folded_any = false;
    // The querier watch lives as long as the target: its log spans every window. It is read on
    // a clock of its own, so the metrics follow it even while windows fail.
    let watch = crate::querier::watch::start(&t.probe.iface, t.probe.group, t.querier_wait, quiet, &t.name);
    let watch = watch.as_ref().and_then(|w| w.as_ref().ok());
    let mut querier_read: Option<Instant> = None;
    let mut overruns = OverrunLog { last: None, unsaid: 0 };
    let mut answered = Answered::Unknown;
    let mut plan = MeshPlan::default();
    let prober: u32 = rand::random();
    // Windows started so far: which block of ack ports the next one takes.
    let mut started = 0u64;
    // The newest window (sending) and the one before it (waiting for its late acks).
    let (mut sending, mut waiting): (Option<InFlight>, Option<InFlight>) = (None, None);
    let mut due = Instant::now();
    // Each window's thread says when it is over: the loop waits for that, for the next window,
    // a cut, the querier watch's next read or STOP_TICK (for `quit`), not on a fixed nap.
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let abandon = |windows: [Option<InFlight>; 2]| {
        windows.into_iter().flatten().for_each(|w| w.cut.store(true, Ordering::SeqCst))
    };
    // Windows whose thread said it is over (it tells just before it returns: joining it
    // then waits a moment at most), by number.
    let mut over: Vec<u64> = Vec::new();
    loop {
        // Until the next window is due: fold what finished, read the querier watch.
        loop {
            for slot in [&mut waiting, &mut sending] {
                if slot.as_ref().is_some_and(|w| w.thread.is_finished() || over.contains(&w.k)) {
                    let w = slot.take().expect("checked");
                    let joined = w.thread.join();
                    if let Some(o) = finish(t, joined, &mut folded_any, &mut answered, state, published, quiet)? {
                        if o.interrupted {
                            let why =
                                format!("its sender sent {} of {} probes in time (cut)", o.run.sent(), t.probe.count);
                            overruns.record(t, &why, state, published, quiet);
                        }
                    }
                }
            }
            if let Some(w) = watch.filter(|_| querier_read.is_none_or(|r| r.elapsed() >= QUERIER_READ)) {
                publish_querier(t, w, state, published);
                querier_read = Some(Instant::now());
            }
            if quit.load(Ordering::SeqCst) {
                abandon([sending, waiting]);
                return Ok(());
            }
            let now = Instant::now();
            let cut_at = waiting.as_ref().and_then(|w| w.cut_at);
            if let Some(w) = waiting.as_mut().filter(|_| cut_at.is_some_and(|c| now >= c)) {
                w.cut.store(true, Ordering::SeqCst);
                w.cut_at = None;
            }
            // The window before last must be over before a new one starts: then it is due.
            if now >= due && waiting.is_none() {
                break;
            }
            // Past due, the window before last is what is awaited: its thread tells.
            let mut nap = if now >= due { STOP_TICK } else { (due - now).min(STOP_TICK) };
            if let Some(c) = cut_at.filter(|&c| c > now) {
                nap = nap.min(c - now);
            }
            if let Some(r) = querier_read.filter(|_| watch.is_some()) {
                nap = nap.min((r + QUERIER_READ).saturating_duration_since(now));
            }
            // Only windows still here can be waited for (one folded already may have told).
            over.retain(|k| [&waiting, &sending].iter().any(|w| w.as_ref().is_some_and(|w| w.k == *k)));
            if let Ok(k) = done_rx.recv_timeout(nap) {
                over.push(k);
            }
        }
        // The newest window's time is up: its sending ends now (normally it has, one interval
        // ago; a late last probe gets `grace`); it waits for its late acks beside the next one.
        let now = Instant::now();
        if let Some(mut w) = sending.take() {
            w.cut_at = Some(now + grace(t));
            waiting = Some(w);
        }
        let late = now > due + grace(t);
        if late {
            let why = format!(
                "the window before it still waited for its late acks (--timeout {:?}) or the machine stalled serve, so this one started {:.3} s late",
                t.probe.timeout,
                (now - due).as_secs_f64()
            );
            overruns.record(t, &why, state, published, quiet);
        }
        let base = mesh_window(t, state, &mut plan, quiet);
        sending = Some(InFlight::start(t, base.as_ref().unwrap_or(&t.probe), prober, started, &done_tx)?);
        started += 1;
        // A window that starts late is given its whole length; the schedule moves with it.
        due = if late { now } else { due } + t.window;
    }
}

/// Where a mesh target's schedule stands: the last peer of the last unicast sample (the next
/// sample starts after it) and the last interval said in the log.
#[derive(Default)]
struct MeshPlan {
    after: Option<std::net::IpAddr>,
    said: Option<(usize, Duration)>,
}

/// A mesh target's next window: its peers (`--hosts` and those learned from their multicast
/// acks, this host's own addresses left out), the window's unicast sample of them, and the rate
/// the schedule allows with that many ([`schedule`]); said in the log when the rate changes.
/// `None` for a target that is not a mesh.
fn mesh_window(t: &Target, state: &Mutex<State>, plan: &mut MeshPlan, quiet: bool) -> Option<ProbeConfig> {
    let m = t.mesh.as_ref()?;
    let mut peers: std::collections::BTreeSet<std::net::IpAddr> = t.probe.hosts.iter().copied().collect();
    // Peers by name: on loopback (or behind one address) several answer from one address, and
    // each still sends this host probes and acks.
    let learned = {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        let learned = st.series.range(state::range_of(&t.name)).filter(|(k, _)| k.path == state::Path::Multicast);
        learned.map(|(k, _)| k.address).collect::<Vec<_>>()
    };
    let count = learned.len() + peers.iter().filter(|a| !learned.contains(a)).count();
    peers.extend(learned);
    // On loopback every peer answers from this host's own address: no unicast there.
    let local = crate::net::local_addrs().unwrap_or_default();
    peers.retain(|a| !a.is_loopback() && !local.contains(a));
    let hosts = schedule::unicast_sample(&peers, plan.after, m.unicast_max);
    if let Some(&last) = hosts.last() {
        plan.after = Some(last);
    }
    let interval = schedule::interval(t.probe.interval, m.budget, count, hosts.len());
    if !quiet && plan.said.is_none_or(|(n, i)| i != interval || (n == 0) != (count == 0)) {
        // What the window sends: whole probes (0.2/s at N = 200, not the interval's 0.209).
        let rate = schedule::count(t.window, interval) as f64 / t.window.as_secs_f64();
        let pps = schedule::packets_per_s(rate, count, hosts.len());
        let answered = schedule::answered_per_s(rate, count, hosts.len());
        let why = match m.budget {
            Some(b) if interval > t.probe.interval => {
                format!("lowered from {:.3}/s to answer at most {b:.0}", 1.0 / t.probe.interval.as_secs_f64())
            }
            Some(b) => format!("at most {b:.0}"),
            None => "as --rate/--interval says".to_string(),
        };
        eprintln!(
            "target {}: mesh of {count} peer(s), {} by unicast in this window: {rate:.3} probes/s, about {answered:.0} probes answered and {pps:.0} packets a second per host ({why})",
            t.name,
            hosts.len()
        );
        plan.said = Some((count, interval));
    }
    let count = schedule::count(t.window, interval);
    Some(ProbeConfig { hosts, interval, count, ..t.probe.clone() })
}

/// How often a target's querier watch is read into the metrics.
const QUERIER_READ: Duration = Duration::from_secs(1);

/// Reads the querier watch into the state; publishes only when that changed something.
fn publish_querier(t: &Target, watch: &QuerierWatch, state: &Mutex<State>, published: &Published) {
    let q = QuerierState::of(&watch.observation());
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if st.set_querier(&t.name, q) {
        published.set(st.clone());
    }
}

type Joined = thread::Result<Result<Outcome>>;

/// Whether the target's last window had multicast responders, as last said in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    Unknown,
    Nobody,
    Some,
}

fn finish(
    t: &Target,
    joined: Joined,
    folded_any: &mut bool,
    answered: &mut Answered,
    state: &Mutex<State>,
    published: &Published,
    quiet: bool,
) -> Result<Option<Outcome>> {
    let outcome = match joined.map_err(|_| anyhow!("a probe window panicked")).and_then(|r| r) {
        Ok(o) => o,
        Err(e) if !*folded_any => return Err(e.context(format!("target {}", t.name))),
        Err(e) => {
            eprintln!("mcprobe: target {}: window failed: {e:#}", t.name);
            return Ok(None);
        }
    };
    *folded_any = true;
    let mut judgement = Judgement::new(
        DEFAULT_THRESHOLD_PCT,
        std::net::SocketAddr::new(t.probe.group, t.probe.port),
        t.probe.key.is_some(),
    );
    // A mesh's own responder answers no expected host (see `Findings::of`).
    judgement.own = state.lock().unwrap_or_else(|e| e.into_inner()).own_id(&t.name).map(crate::findings::ResponderId);
    let found = (!t.probe.hosts.is_empty()).then(|| Findings::of(&outcome, judgement));
    let diagnosis = found.as_ref().and_then(|f| f.diagnosis.as_ref());
    let w = Window {
        outcome: &outcome,
        diagnosis,
        interval_s: t.probe.interval.as_secs_f64(),
        now_unix_s: unix_now_s(),
        // As the engine counts them: with --groups, rounds of every group.
        outage_min: t.probe.outage_min.saturating_mul(t.probe.groups.len().max(1) as u64),
    };
    let (events, responders) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let events = st.fold(&t.name, &w);
        let responders = st.targets.get(&t.name).map_or(0, |x| x.responders);
        published.set(st.clone());
        (events, responders)
    };
    if quiet {
        return Ok(Some(outcome));
    }
    // A target nobody answers is said once, and again when that changes (a line per window
    // would be 8 640 a day).
    let now = if responders == 0 { Answered::Nobody } else { Answered::Some };
    if now != *answered {
        let group = match t.probe.groups.as_slice() {
            [] | [_] => std::net::SocketAddr::new(t.probe.group, t.probe.port).to_string(),
            gs => format!("{} groups ({} to {}, port {})", gs.len(), gs[0], gs[gs.len() - 1], t.probe.port),
        };
        match now {
            Answered::Nobody => eprintln!(
                "mcprobe: target {}: no responder answers the probes to {group} (are responders running there, and is multicast forwarded?); said again when one does",
                t.name
            ),
            _ if *answered == Answered::Nobody => {
                eprintln!("target {}: {responders} responder(s) answer again", t.name)
            }
            _ => {}
        }
        *answered = now;
    }
    let mut refused = 0;
    for e in events {
        let what = match e.change {
            Change::Appeared => "appeared",
            Change::Restarted => "restarted (new id)",
            Change::Silent => "went silent",
            Change::Returned => "answers again",
            Change::Forgotten => "forgotten (silent longer than --forget)",
            Change::Refused => {
                refused += 1;
                continue;
            }
        };
        let k = &e.key;
        eprintln!("target {}: responder {} ({}, {}) {what}", k.target, k.responder, k.address, k.path.as_str());
    }
    if refused > 0 {
        eprintln!("target {}: {refused} new responder series refused (--max-series reached)", t.name);
    }
    Ok(Some(outcome))
}
