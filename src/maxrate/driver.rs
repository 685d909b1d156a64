//! The search's engine: one prober session per trial, judged by [`super::judge`], the next rate
//! chosen by [`super::search`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use super::judge::{self, Known, TrialResult};
use super::search::{self, Next};
use super::search::{Phase, SearchConfig};
use super::{ResponderResult, SearchOutcome};
use crate::findings::{Findings, Judgement, DEFAULT_THRESHOLD_PCT};
use crate::prober::{self, ProbeConfig};

/// A trial's sender that this machine stalled sends at most this many probes of its backlog
/// at once and moves the rest of its schedule later (see [`ProbeConfig::backlog_max`]): a
/// policer at the rate tried lets a few through (nftables' default burst is 5).
const MAXRATE_BACKLOG: u32 = 4;
use crate::run::Progress;

/// A validated search.
#[derive(Debug, Clone)]
pub(crate) struct MaxRateConfig {
    /// Everything but the rate, count and session of each trial's prober run.
    pub probe: ProbeConfig,
    pub search: SearchConfig,
    pub trial: Duration,
    pub tolerance_pct: f64,
    /// A bound on the search's length, whatever the responders do.
    pub max_trials: u32,
    /// `--min-rate`: the weakest responder's rate below this is a miss.
    pub min_rate: Option<f64>,
}

/// What the driver tells its caller as it goes.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    TrialStart { index: u32, rate: u64, phase: Phase, best: Option<u64> },
    Progress(&'a Progress),
    TrialDone(&'a TrialResult),
}

/// Runs trials until the search is done, `max_trials` ran, or `stop` is set. A trial cut short
/// by `stop` is not judged: a partial trial says nothing about a rate.
pub(crate) fn run(cfg: &MaxRateConfig, stop: &AtomicBool, mut on_event: impl FnMut(Event)) -> Result<SearchOutcome> {
    let judgement = Judgement::new(
        DEFAULT_THRESHOLD_PCT,
        SocketAddr::new(cfg.probe.group, cfg.probe.port),
        cfg.probe.key.is_some(),
    );
    let mut done: Vec<TrialResult> = Vec::new();
    let mut searched: Vec<search::Trial> = Vec::new();
    let mut known: Vec<Known> = Vec::new();
    let (mut complete, mut interrupted) = (false, false);
    while (done.len() as u32) < cfg.max_trials {
        let Next::Try { rate, phase } = search::next(&cfg.search, &searched) else {
            complete = true;
            break;
        };
        let index = done.len() as u32 + 1;
        let best = search::standings(&searched).values().map(|s| s.rate()).min();
        on_event(Event::TrialStart { index, rate, phase, best });
        let probe = ProbeConfig {
            session: rand::random(),
            interval: Duration::from_secs_f64(1.0 / rate as f64),
            count: ((rate as f64 * cfg.trial.as_secs_f64()).round() as u64).max(1),
            // After a stall of this machine, no burst: a policer at the rate tried would cut
            // it, and the loss would be charged to the path.
            backlog_max: Some(MAXRATE_BACKLOG),
            ..cfg.probe.clone()
        };
        let outcome = prober::run(&probe, stop, None, Some(&mut |p| on_event(Event::Progress(p))))?;
        if outcome.interrupted || stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let found = Findings::of(&outcome, judgement);
        let responders = judge::responders(&found, &known, cfg.tolerance_pct);
        for r in &responders {
            if !known.iter().any(|k| k.id == r.id) {
                known.push(Known { id: r.id, name: r.name.clone(), addr: r.addr });
            }
        }
        let t = TrialResult {
            index,
            phase,
            session: probe.session,
            rate_asked: rate,
            rate_achieved: judge::achieved_rate(outcome.run.sent(), rate, outcome.send_span),
            local_drops: outcome.local_drops,
            send_errors: outcome.send_errors,
            responders,
        };
        // A pass in a trial whose sender fell behind counts at the rate it sent.
        let verdicts = t.responders.iter().map(|r| search::Verdict { responder: r.id, pass: r.pass }).collect();
        searched.push(search::Trial { rate, passed_at: t.passed_at(), verdicts });
        on_event(Event::TrialDone(&t));
        done.push(t);
    }
    // The last trial allowed may have been the one that settled the search.
    if !complete && !interrupted {
        complete = !matches!(search::next(&cfg.search, &searched), Next::Try { .. });
    }
    let standings = search::standings(&searched);
    let mut results: Vec<ResponderResult> = known
        .into_iter()
        .map(|k| {
            let s = standings[&k.id];
            ResponderResult {
                id: k.id,
                name: k.name,
                addr: k.addr,
                rate: s.rate(),
                fails_at: s.hi,
                confirmed: s.settled(&cfg.search),
                capped_by_limit: s.hi.is_some_and(|hi| SearchOutcome::limited_at(&done, k.id, hi)),
            }
        })
        .collect();
    results.sort_by(|a, b| (a.rate, &a.name, a.addr).cmp(&(b.rate, &b.name, b.addr)));
    let sender_limit = search::sender_cap(&searched).map(|(rate, _)| rate);
    Ok(SearchOutcome { id: rand::random(), trials: done, results, complete, interrupted, sender_limit })
}
