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
    /// Of `forward_lost`, lost after the responder's latest drop report: its host's or the
    /// network's, not told (empty when it does not report its drops).
    pub forward_unreported: Option<u64>,
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
            forward_lost: f.loss.forward,
            forward_host_drops: f.loss.host_drops,
            forward_unreported: f.loss.host_drops.map(|_| f.loss.unreported),
            return_lost: f.loss.ret,
            unknown_lost: f.loss.unknown,
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
    /// The result is the responder's own --rate-limit, not the path's limit.
    pub capped_by_rate_limit: bool,
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
            capped_by_rate_limit: r.capped_by_limit,
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

/// The table of results, then what the search found ([`lines`]).
pub(crate) fn write_table(w: &mut impl Write, o: &SearchOutcome, tolerance_pct: f64) -> io::Result<()> {
    if !o.results.is_empty() {
        use super::table::Align::{Left, Right};
        let mut t = super::table::Table::new(&[
            ("RESPONDER", Left),
            ("ADDRESS", Left),
            ("MAX RATE/s", Right),
            ("FAILS AT/s", Right),
            ("CONFIRMED", Right),
            ("LIMITED BY", Left),
        ]);
        for r in &o.results {
            t.row(vec![
                result_label(r),
                r.addr.to_string(),
                r.rate.to_string(),
                r.fails_at.map_or("-".to_string(), |f| f.to_string()),
                (if r.confirmed { "yes" } else { "no" }).to_string(),
                limited_by(o, r).to_string(),
            ]);
        }
        t.write(w)?;
    }
    lines(o, tolerance_pct).iter().try_for_each(|l| writeln!(w, "{l}"))
}

fn limited_by(o: &SearchOutcome, r: &ResponderResult) -> &'static str {
    match (r.capped_by_limit, r.fails_at, o.sender_limit) {
        (true, _, _) => "its --rate-limit",
        (false, Some(_), _) => "the path or host",
        (false, None, Some(_)) => "this host's sender",
        (false, None, None) => "--max",
    }
}

/// What the search found, in words: the same lines under the table, in the JSON and in
/// report.html.
pub(crate) fn lines(o: &SearchOutcome, tolerance_pct: f64) -> Vec<String> {
    if o.results.is_empty() {
        return vec![
            "no responder answered: nothing to measure (check --group, --port, --iface and the responders)".to_string()
        ];
    }
    let mut out = vec![format!(
        "{} trials; loss tolerance {tolerance_pct}%{}",
        o.trials.len(),
        match (o.complete, o.interrupted) {
            (true, _) => {
                // The search ends with a result unconfirmed only when confirming it needs a
                // rate this host could not send (`search::wanted`).
                let open: Vec<String> = o.results.iter().filter(|r| !r.confirmed).map(result_label).collect();
                if open.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} unconfirmed: settling them needs a rate this host could not send (below)",
                        open.join(", ")
                    )
                }
            }
            (false, true) => "; interrupted: results so far, unconfirmed ones marked".to_string(),
            (false, false) => "; stopped at --max-trials: results so far, unconfirmed ones marked".to_string(),
        }
    )];
    if let Some(weak) = o.weakest() {
        out.push(format!("weakest: {} ({}) at {} probes/s", result_label(weak), weak.addr.ip(), weak.rate));
    }
    if let Some(rate) = o.sender_limit {
        out.push(format!(
            "this host could not send {rate}/s ({} trials below 90 % of it, at best {:.0}/s): the search went no higher; a result there is this host's limit, not the network's",
            crate::maxrate::search::SENDER_TRIES,
            o.best_sent_at(rate)
        ));
    }
    // A result capped by a responder's own --rate-limit is that setting, not the LAN's limit:
    // said before anything else is read into it.
    let capped: Vec<String> = o.results.iter().filter(|r| r.capped_by_limit).map(result_label).collect();
    if !capped.is_empty() {
        let who = if capped.len() == o.results.len() { "every result".to_string() } else { capped.join(", ") };
        out.push(format!(
            "capped: {who} stopped at the responder's own --rate-limit (10000/s per prober unless set), not at a limit of the network: start them with `respond --rate-limit 0` (or a higher limit) to measure beyond it"
        ));
    }
    if let Some(t) = o.first_failing() {
        out.push(format!(
            "first failing step: trial {} at {}/s (sent at {:.0}/s):",
            t.index, t.rate_asked, t.rate_achieved
        ));
        for r in t.responders.iter().filter(|r| !r.pass) {
            let f = &r.figures;
            out.push(format!(
                "  {}: {} of {} unanswered (forward {}, return {}, unknown {}, late {}, rate-limited {}; prober's local drops {}): {}",
                label(&r.name, r),
                f.lost + f.limited,
                f.sent,
                f.loss.forward,
                f.loss.ret,
                f.loss.unknown,
                f.late,
                f.limited,
                t.local_drops,
                judge::cause(t, r).explain()
            ));
        }
        if judge::sender_behind(t) {
            out.push(format!(
                "  note: this host sent only {:.0} of the {}/s asked (the prober's own limit): a failure counts at the rate asked, which it sent between its stalls, a pass only at the rate sent",
                t.rate_achieved, t.rate_asked
            ));
        }
    }
    out
}

/// `max-rate --json` (and `report.json` in its folder).
#[derive(Serialize)]
pub(crate) struct JsonSearch {
    pub search_id: String,
    pub complete: bool,
    pub interrupted: bool,
    pub max_loss_pct: f64,
    pub results: Vec<ResultRow>,
    pub trials: Vec<TrialRow>,
    /// What the search found, in the words the terminal printed.
    pub findings: Vec<String>,
}

impl JsonSearch {
    pub(crate) fn of(o: &SearchOutcome, tolerance_pct: f64) -> Self {
        JsonSearch {
            search_id: format!("{:016x}", o.id),
            complete: o.complete,
            interrupted: o.interrupted,
            max_loss_pct: tolerance_pct,
            results: result_rows(o),
            trials: o.trials.iter().flat_map(|t| t.responders.iter().map(move |r| TrialRow::of(t, r))).collect(),
            findings: lines(o, tolerance_pct),
        }
    }
}

pub(crate) fn write_json(w: &mut impl Write, o: &SearchOutcome, tolerance_pct: f64) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &JsonSearch::of(o, tolerance_pct))?;
    writeln!(w)
}

/// report.html of a `max-rate` folder: the results, what the search found, and every trial.
pub(crate) fn html(o: &SearchOutcome, tolerance_pct: f64, command: &str) -> String {
    use super::html::{esc, page};
    let mut body = String::from("<header><h1>mcprobe max-rate</h1>");
    let weakest = o.weakest().map_or("No responder answered.".to_string(), |w| {
        format!("Weakest: {} at {} probes/s ({}).", result_label(w), w.rate, limited_by(o, w))
    });
    body.push_str(&format!(
        "<p class=\"verdict\">{}</p><p class=\"note\">{}</p></header>\n",
        esc(&weakest),
        esc(command)
    ));
    body.push_str("<section id=\"results\"><h2>Highest loss-free rate per responder</h2><table><thead><tr><th>responder</th><th class=\"t\">address</th><th>max rate /s</th><th>fails at /s</th><th>confirmed</th><th class=\"t\">limited by</th></tr></thead><tbody>");
    for r in &o.results {
        body.push_str(&format!(
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td></tr>",
            esc(&result_label(r)),
            esc(&r.addr.to_string()),
            r.rate,
            r.fails_at.map_or("–".to_string(), |f| f.to_string()),
            if r.confirmed { "yes" } else { "no" },
            limited_by(o, r)
        ));
    }
    body.push_str("</tbody></table></section>\n");
    let said: Vec<crate::output::words::Said> = lines(o, tolerance_pct)
        .into_iter()
        .map(|text| crate::output::words::Said { topic: crate::output::words::Topic::Responders, text })
        .collect();
    body.push_str(&super::html::findings_section("findings", "Findings", &said));
    body.push_str("<section id=\"trials\"><h2>Trials</h2><div class=\"scroll\"><table><thead><tr><th>trial</th><th class=\"t\">phase</th><th>asked /s</th><th>sent /s</th><th class=\"t\">responder</th><th>sent</th><th>unanswered</th><th class=\"t\">result</th></tr></thead><tbody>");
    for t in &o.trials {
        for r in &t.responders {
            let f = &r.figures;
            let result = if r.pass { "pass".to_string() } else { format!("fail: {}", judge::cause(t, r).as_str()) };
            body.push_str(&format!(
                "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{:.0}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td class=\"t {}\">{}</td></tr>",
                t.index,
                t.phase.as_str(),
                t.rate_asked,
                t.rate_achieved,
                esc(&label(&r.name, r)),
                f.sent,
                f.lost + f.limited,
                if r.pass { "good" } else { "bad" },
                esc(&result)
            ));
        }
    }
    body.push_str("</tbody></table></div></section>\n");
    let files = vec!["trials.csv".to_string(), "maxrate.csv".to_string(), "report.json".to_string()];
    page("mcprobe max-rate", &body, &format!("{:016x}", o.id), &files)
}
