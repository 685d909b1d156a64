//! `mcprobe serve`: probes without end and serves the figures to Prometheus.
//!
//! Each target runs back-to-back windows of the ordinary probe engine ([`prober::run`] with
//! `count` probes): window k+1 starts on window k's schedule end, so probing is continuous while
//! k waits for its late acks. Each window is its own session and socket. A finished window is
//! folded into the cumulative [`state::State`] (pure), and a copy is published for the HTTP
//! side, which never touches the probe or ack path. Memory is bounded by construction: a window's
//! engine state is dropped once folded, and the state holds at most `--max-series` series per
//! target, each of fixed size. Each target also has a querier watch for its whole life (a
//! thread of its own, see [`crate::net::querier`]), read into the state once a second.

pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod state;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};

pub(crate) use config::ServeArgs;
use config::Target;
use metrics::Published;
use state::{Change, Limits, QuerierState, State, Window};

use crate::findings::{Findings, Judgement, DEFAULT_THRESHOLD_PCT};
use crate::net::querier::QuerierWatch;
use crate::prober::{self, Outcome, ProbeConfig};

/// `mcprobe serve`: runs until `stop` (Ctrl-C, SIGTERM); the windows under way finish and are
/// folded in before it returns.
pub fn run(args: &ServeArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config::from_args(args)?;
    let limits = Limits { max_series: cfg.max_series, forget_s: cfg.forget.as_secs_f64() };
    let state = State::new(limits, cfg.targets.iter().map(|t| t.name.clone()));
    let published = Published::new(state.clone());
    let server = http::Server::bind(cfg.listen, metrics::registry(published.clone()))?;
    if !cfg.quiet {
        let names: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
        eprintln!("serving http://{}/metrics; probing target(s) {}", server.local_addr(), names.join(", "));
    }
    // `quit` stops everything: set from `stop`, or by a target that cannot start.
    let quit = AtomicBool::new(false);
    let state = Mutex::new(state);
    let failure = Mutex::new(None);
    thread::scope(|s| {
        s.spawn(|| server.run(&quit));
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
        while !quit.load(Ordering::SeqCst) {
            if stop.load(Ordering::SeqCst) {
                quit.store(true, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(20));
        }
        for l in loops {
            let _ = l.join();
        }
        server.wake();
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    if !cfg.quiet {
        eprintln!("stopped");
    }
    Ok(crate::app::EXIT_OK)
}

fn unix_now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Runs one target's windows until `quit`. An error in the first window (no such route, a port
/// that cannot be bound) ends `serve`; later ones are logged and the next window tries again.
fn target_loop(t: &Target, quit: &AtomicBool, state: &Mutex<State>, published: &Published, quiet: bool) -> Result<()> {
    let window = t.window();
    let mut folded_any = false;
    // The querier watch lives as long as the target: its log spans every window. It is read on
    // a clock of its own, so the metrics follow it even while windows fail.
    let watch = crate::watch::start(&t.probe.iface, t.probe.group, t.querier_wait, quiet, &t.name);
    let watch = watch.as_ref().and_then(|w| w.as_ref().ok());
    let mut querier_read: Option<Instant> = None;
    thread::scope(|s| {
        let mut pending = VecDeque::new();
        let mut next = Instant::now();
        let mut k = 0;
        while !quit.load(Ordering::SeqCst) {
            // Every window is its own session: acks of one are never taken for another's.
            let probe = ProbeConfig { session: rand::random(), ack_port: t.ack_port_of_window(k), ..t.probe.clone() };
            k += 1;
            pending.push_back(s.spawn(move || prober::run(&probe, quit, None, |_| {})));
            next += window;
            loop {
                while pending.front().is_some_and(|h: &thread::ScopedJoinHandle<_>| h.is_finished()) {
                    let h = pending.pop_front().expect("checked");
                    finish(t, h.join(), &mut folded_any, state, published, quiet)?;
                }
                if let Some(w) = watch.filter(|_| querier_read.is_none_or(|r| r.elapsed() >= QUERIER_READ)) {
                    publish_querier(t, w, state, published);
                    querier_read = Some(Instant::now());
                }
                let now = Instant::now();
                if now >= next || quit.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep((next - now).min(Duration::from_millis(50)));
            }
        }
        for h in pending {
            finish(t, h.join(), &mut folded_any, state, published, quiet)?;
        }
        Ok(())
    })
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

fn finish(
    t: &Target,
    joined: Joined,
    folded_any: &mut bool,
    state: &Mutex<State>,
    published: &Published,
    quiet: bool,
) -> Result<()> {
    let outcome = match joined.map_err(|_| anyhow!("a probe window panicked")).and_then(|r| r) {
        Ok(o) => o,
        Err(e) if !*folded_any => return Err(e.context(format!("target {}", t.name))),
        Err(e) => {
            eprintln!("mcprobe: target {}: window failed: {e:#}", t.name);
            return Ok(());
        }
    };
    *folded_any = true;
    let judgement = Judgement {
        threshold_pct: DEFAULT_THRESHOLD_PCT,
        group: std::net::SocketAddr::new(t.probe.group, t.probe.port),
        keyed: t.probe.key.is_some(),
    };
    let found = (!t.probe.hosts.is_empty()).then(|| Findings::of(&outcome, judgement));
    let diagnosis = found.as_ref().and_then(|f| f.diagnosis.as_ref());
    let w =
        Window { outcome: &outcome, diagnosis, interval_s: t.probe.interval.as_secs_f64(), now_unix_s: unix_now_s() };
    let events = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let events = st.fold(&t.name, &w);
        published.set(st.clone());
        events
    };
    if quiet {
        return Ok(());
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
    Ok(())
}
