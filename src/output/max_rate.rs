//! What `max-rate` shows and writes: the table, the verdict lines, and the rows of `trials.csv`
//! and `maxrate.csv`. Renders only; every decision is in [`crate::maxrate::judge`] and [`super::search`].

use std::io::{self, Write};

use serde::Serialize;

use crate::maxrate::judge::{self, ResponderTrial, TrialResult};
use crate::maxrate::{ResponderResult, SearchOutcome};
use crate::stats::ns_to_us;

/// `trials.csv`: one row per trial and responder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct TrialRow {
    pub trial: u32,
    /// The trial's own probe session (the file's `run_id` is the search's).
    pub session: String,
    pub phase: &'static str,
    pub rate_asked: u64,
    pub rate_achieved: f64,
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub forward_lost: u64,
    /// Of `forward_lost`, dropped by the responder's own host (empty when it does not say).
    pub forward_host_drops: Option<u64>,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub late: u64,
    pub limited: u64,
    /// The prober's own socket drops in this trial, over all responders.
    pub local_drops: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub pass: bool,
    /// For a failing responder: what most of its unanswered probes became.
    pub cause: Option<&'static str>,
}

impl TrialRow {
    pub(crate) fn of(t: &TrialResult, r: &ResponderTrial) -> Self {
        let f = &r.figures;
        TrialRow {
            trial: t.index,
            session: format!("{:016x}", t.session),
            phase: t.phase.as_str(),
            rate_asked: t.rate_asked,
            rate_achieved: (t.rate_achieved * 10.0).round() / 10.0,
            responder: r.name.clone(),
            responder_id: r.id.to_string(),
            address: r.addr.to_string(),
            sent: f.sent,
            received: f.received,
            lost: f.lost,
            forward_lost: f.forward_lost,
            forward_host_drops: f.forward_host_drops,
            return_lost: f.return_lost,
            unknown_lost: f.unknown_lost,
            late: f.late,
            limited: f.limited,
            local_drops: t.local_drops,
            rtt_p50_us: f.rtt.map(|x| ns_to_us(x.p50_ns)),
            rtt_p99_us: f.rtt.map(|x| ns_to_us(x.p99_ns)),
            pass: r.pass,
            cause: (!r.pass).then(|| judge::cause(t, r).as_str()),
        }
    }
}

/// `maxrate.csv`: one row per responder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ResultRow {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub max_rate: u64,
    pub fails_at: Option<u64>,
    pub confirmed: bool,
    pub weakest: bool,
    pub trials: usize,
    pub complete: bool,
}

pub(crate) fn result_rows(o: &SearchOutcome) -> Vec<ResultRow> {
    let weakest = o.weakest().map(|w| w.id);
    (o.results.iter())
        .map(|r| ResultRow {
            responder: r.name.clone(),
            responder_id: r.id.to_string(),
            address: r.addr.to_string(),
            max_rate: r.rate,
            fails_at: r.fails_at,
            confirmed: r.confirmed,
            weakest: Some(r.id) == weakest,
            trials: o.trials.len(),
            complete: o.complete,
        })
        .collect()
}

/// One line per finished trial, for stderr.
pub(crate) fn trial_line(t: &TrialResult) -> String {
    let fails: Vec<String> = (t.responders.iter().filter(|r| !r.pass))
        .map(|r| {
            format!(
                "{} lost {} ({})",
                label(&r.name, r),
                r.figures.lost + r.figures.limited,
                judge::cause(t, r).as_str()
            )
        })
        .collect();
    let passed = t.responders.iter().filter(|r| r.pass).count();
    format!(
        "trial {} ({}) at {}/s (sent at {:.0}/s{}): {passed} of {} passed{}",
        t.index,
        t.phase.as_str(),
        t.rate_asked,
        t.rate_achieved,
        if judge::sender_behind(t) { ", behind" } else { "" },
        t.responders.len(),
        if fails.is_empty() { String::new() } else { format!("; {}", fails.join(", ")) }
    )
}

fn label(name: &str, r: &ResponderTrial) -> String {
    if name.is_empty() {
        r.addr.ip().to_string()
    } else {
        name.to_string()
    }
}

fn result_label(r: &ResponderResult) -> String {
    if r.name.is_empty() {
        r.id.to_string()
    } else {
        r.name.clone()
    }
}

/// The table of results, the weakest responder and the first failing step.
pub(crate) fn write_table(w: &mut impl Write, o: &SearchOutcome, tolerance_pct: f64) -> io::Result<()> {
    if o.results.is_empty() {
        writeln!(w, "no responder answered: nothing to measure (check --group, --port, --iface and the responders)")?;
        return Ok(());
    }
    let name_w = o.results.iter().map(|r| result_label(r).len()).max().unwrap_or(0).max(9);
    let addr_w = o.results.iter().map(|r| r.addr.to_string().len()).max().unwrap_or(0).max(7);
    writeln!(
        w,
        "{:<name_w$}  {:<addr_w$}  {:>12}  {:>12}  CONFIRMED",
        "RESPONDER", "ADDRESS", "MAX RATE/s", "FAILS AT/s"
    )?;
    for r in &o.results {
        writeln!(
            w,
            "{:<name_w$}  {:<addr_w$}  {:>12}  {:>12}  {}",
            result_label(r),
            r.addr,
            r.rate,
            r.fails_at.map_or("-".to_string(), |f| f.to_string()),
            if r.confirmed { "yes" } else { "no" }
        )?;
    }
    writeln!(
        w,
        "{} trials; loss tolerance {tolerance_pct}%{}",
        o.trials.len(),
        match (o.complete, o.interrupted) {
            (true, _) => String::new(),
            (false, true) => "; interrupted: results so far, unconfirmed ones marked".to_string(),
            (false, false) => "; stopped at --max-trials: results so far, unconfirmed ones marked".to_string(),
        }
    )?;
    if let Some(weak) = o.weakest() {
        writeln!(w, "weakest: {} ({}) at {} probes/s", result_label(weak), weak.addr.ip(), weak.rate)?;
    }
    if let Some(t) = o.first_failing() {
        writeln!(w, "first failing step: trial {} at {}/s (sent at {:.0}/s):", t.index, t.rate_asked, t.rate_achieved)?;
        for r in t.responders.iter().filter(|r| !r.pass) {
            let f = &r.figures;
            let c = judge::cause(t, r);
            writeln!(
                w,
                "  {}: {} of {} unanswered (forward {}, return {}, unknown {}, late {}, rate-limited {}; prober's local drops {}): {}",
                label(&r.name, r),
                f.lost + f.limited,
                f.sent,
                f.forward_lost,
                f.return_lost,
                f.unknown_lost,
                f.late,
                f.limited,
                t.local_drops,
                c.explain()
            )?;
        }
        if judge::sender_behind(t) {
            writeln!(
                w,
                "  note: this host sent only {:.0} of the {}/s asked: the prober's own limit, and its catching up left in bursts",
                t.rate_achieved, t.rate_asked
            )?;
        }
    }
    Ok(())
}
