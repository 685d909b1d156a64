//! The rows of the CSV files (and of the JSON's `responders` and `outages`): one findings row or
//! outage, as plain columns. Only renders; [`crate::folder`] writes the files.

use serde::Serialize;

use crate::findings::{Outage, Row, RunFacts};
use crate::stats::ns_to_us;

/// A CSV cell as a spreadsheet may open it safely (OWASP, "CSV Injection"): a cell starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by Excel, LibreOffice and
/// Google Sheets (`=HYPERLINK(…)`, `+cmd|…`), so it gets a leading `'`, which makes it text.
/// Numbers stay as they are (`-5` is a number, not a formula). A responder's name, sent by any
/// host on the LAN, lands in several files: docs/src/csv-injection.md.
pub(crate) fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// A cell written by [`neutralise`], as it was.
pub(crate) fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if neutralise(rest).len() == cell.len() => rest,
        _ => cell,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One row of `groups.csv`, with `--groups`: one responder on one group (multicast). Counted from
/// the responder's first answer on any group, as its loss is; `reached` is false for a group it
/// never answered on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct GroupRow {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub group: String,
    pub reached: bool,
    pub probes: u32,
    pub answered: u32,
    pub lost: u32,
    pub loss_pct: f64,
    /// Of `lost`: never reached the responder, acks lost on the way back, direction unknown.
    pub forward_lost: u32,
    pub return_lost: u32,
    pub unknown_lost: u32,
    pub rtt_min_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    /// The first probe of this group it answered.
    pub first_seq: Option<u64>,
    /// With a responder's `--churn`: joins of this group it measured; the latest join and
    /// leave delay (ms) when measured, and their state (`measured`, `already_arriving`,
    /// `never_arrived`, `none_after`, `still_arriving`, `not_measurable`, `none`); the clock
    /// (`interface`, or `syscall` without CAP_NET_RAW). Empty without churn.
    pub joins: Option<u32>,
    pub join_delay_ms: Option<f64>,
    pub join_state: Option<&'static str>,
    pub leave_delay_ms: Option<f64>,
    pub leave_state: Option<&'static str>,
    pub delay_clock: Option<&'static str>,
}

impl GroupRow {
    /// Every (responder, group) row of `g`, responders in report order, groups as probed.
    pub(crate) fn all(g: &crate::findings::groups::GroupsFinding) -> Vec<GroupRow> {
        let mut out = Vec::with_capacity(g.responders.len() * g.groups.len());
        for r in &g.responders {
            for (k, (group, t)) in g.groups.iter().zip(&r.tallies).enumerate() {
                use crate::findings::join_leave::{clock, state};
                let jl = r.delays.get(k).filter(|d| d.joins > 0);
                let ms = |f: crate::stats::DelayFigure| match f {
                    crate::stats::DelayFigure::Measured(ns) => Some(round3(ns as f64 / 1e6)),
                    _ => None,
                };
                let us = |ns: u32| t.reached().then(|| round3(ns_to_us(u64::from(ns))));
                out.push(GroupRow {
                    responder: neutralise(&r.responder.name).into_owned(),
                    responder_id: r.responder.id.to_string(),
                    address: r.responder.addr.to_string(),
                    group: group.to_string(),
                    reached: t.reached(),
                    probes: t.probes,
                    answered: t.answered,
                    lost: t.lost(),
                    loss_pct: if t.probes == 0 {
                        0.0
                    } else {
                        round3(100.0 * f64::from(t.lost()) / f64::from(t.probes))
                    },
                    forward_lost: t.forward,
                    return_lost: t.ret,
                    unknown_lost: t.lost() - t.forward - t.ret,
                    rtt_min_us: us(t.rtt_min_ns),
                    rtt_mean_us: t.rtt_mean_ns().map(|ns| round3(ns_to_us(ns))),
                    rtt_max_us: us(t.rtt_max_ns),
                    first_seq: t.first_seq,
                    joins: jl.map(|d| d.joins),
                    join_delay_ms: jl.and_then(|d| ms(d.join)),
                    join_state: jl.map(|d| state(d.join)),
                    leave_delay_ms: jl.and_then(|d| ms(d.leave)),
                    leave_state: jl.map(|d| state(d.leave)),
                    delay_clock: jl.map(|d| clock(d.clock)),
                });
            }
        }
        out
    }
}

/// One row of `summary.csv` (and of the JSON's `responders`): one responder on one path.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct SummaryRow {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub path: &'static str,
    pub expected_host: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub lost_after_first: u64,
    pub loss_after_first_pct: f64,
    pub forward_lost: u64,
    /// Of `forward_lost`: dropped by the responder's own host (full socket buffer) and by the
    /// network; empty when the responder does not report its drops.
    pub forward_host_drops: Option<u64>,
    pub forward_network_lost: Option<u64>,
    /// Of `forward_lost`: lost after the responder's latest report of its drops, by its host
    /// or the network (it has not said); empty when it does not report its drops.
    pub forward_unreported: Option<u64>,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub limited: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p90_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    pub rtt_stddev_us: Option<f64>,
    pub net_rtt_p50_us: Option<f64>,
    pub net_rtt_mean_us: Option<f64>,
    pub jitter_us: Option<f64>,
    pub first_ack_ms: Option<f64>,
    /// The responder's join delay, when it joined during the run.
    pub join_delay_ms: Option<f64>,
    pub ttl: u8,
    pub hops: Option<u8>,
    pub arrival: &'static str,
    pub verdict: Option<&'static str>,
    pub outages: u64,
    pub longest_outage_probes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub limited_tail: u64,
    pub restarts: u64,
    pub restart_gap_lost: u64,
    pub inconsistent_acks: u64,
    pub dwell_over_rtt: u64,
    /// Run-wide, the same on every row: acks of other sessions, and datagrams that were not
    /// valid acks, both ignored.
    pub run_foreign_acks: u64,
    pub run_invalid: u64,
}

impl SummaryRow {
    pub(crate) fn of(r: &Row, run: &RunFacts) -> Self {
        let f = &r.figures;
        let us = |ns: f64| round3(ns / 1000.0);
        let rtt = f.rtt;
        SummaryRow {
            responder: r.name().to_string(),
            responder_id: r.id().map_or(String::new(), |id| id.to_string()),
            address: match (&r.responder, r.expected_host) {
                (Some(x), _) => x.addr.to_string(),
                (None, Some(h)) => h.to_string(),
                (None, None) => String::new(),
            },
            path: r.path.as_str(),
            expected_host: r.expected_host.map(|h| h.to_string()),
            sent: f.sent,
            received: f.received,
            lost: f.lost,
            loss_pct: round3(f.loss_pct()),
            lost_after_first: f.lost_after_first,
            loss_after_first_pct: round3(f.loss_after_first_pct()),
            forward_lost: f.loss.forward,
            forward_host_drops: f.loss.host_drops,
            forward_network_lost: f.loss.network_forward(),
            forward_unreported: f.loss.host_drops.map(|_| f.loss.unreported),
            return_lost: f.loss.ret,
            unknown_lost: f.loss.unknown,
            limited: f.limited,
            duplicates: f.duplicates,
            reordered: f.reordered,
            late: f.late,
            rtt_min_us: rtt.map(|x| ns_to_us(x.min_ns)),
            rtt_mean_us: rtt.map(|x| us(x.mean_ns)),
            rtt_p50_us: rtt.map(|x| ns_to_us(x.p50_ns)),
            rtt_p90_us: rtt.map(|x| ns_to_us(x.p90_ns)),
            rtt_p99_us: rtt.map(|x| ns_to_us(x.p99_ns)),
            rtt_p999_us: rtt.map(|x| ns_to_us(x.p999_ns)),
            rtt_max_us: rtt.map(|x| ns_to_us(x.max_ns)),
            rtt_stddev_us: rtt.map(|x| us(x.stddev_ns)),
            net_rtt_p50_us: rtt.and_then(|x| x.net_p50_ns.map(ns_to_us)),
            net_rtt_mean_us: rtt.and_then(|x| x.net_mean_ns.map(us)),
            jitter_us: rtt.map(|x| us(x.jitter_ns)),
            first_ack_ms: f.first_ack_ns.map(|ns| round3(ns as f64 / 1e6)),
            join_delay_ms: f.join_delay_ns.map(|ns| round3(ns as f64 / 1e6)),
            ttl: f.ttl,
            hops: r.hops,
            arrival: if r.responder.is_some() { f.arrival.as_str() } else { "" },
            verdict: r.verdict.map(|v| v.as_str()),
            outages: f.outages,
            longest_outage_probes: f.longest_outage_probes,
            first_seq: f.first_seq,
            last_seq: f.last_seq,
            limited_tail: f.limited_tail,
            restarts: f.restarts,
            restart_gap_lost: f.restart_gap_lost,
            inconsistent_acks: f.inconsistent_acks,
            dwell_over_rtt: f.dwell_over_rtt,
            run_foreign_acks: run.foreign_acks,
            run_invalid: run.invalid,
        }
    }
}

/// One row of `outages.csv`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct OutageRow {
    pub responder: String,
    pub responder_id: String,
    /// Send time of the first unanswered probe, seconds after the first probe.
    pub start_s: f64,
    /// Send time of the first probe answered again; empty if the run ended first.
    pub end_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub probes_lost: u64,
    pub first_lost_seq: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: Option<u64>,
}

impl OutageRow {
    pub(crate) fn of(o: &Outage) -> Self {
        let ms3 = |d: std::time::Duration| (d.as_nanos() as f64 / 1e6).round() / 1e3;
        OutageRow {
            responder: o.name.clone(),
            responder_id: o.id.to_string(),
            start_s: ms3(o.start),
            end_s: o.end.map(ms3),
            duration_s: o.end.map(|e| ms3(e.saturating_sub(o.start))),
            probes_lost: o.probes_lost,
            first_lost_seq: o.first_lost_seq,
            start_unix_ns: o.start_unix_ns,
            end_unix_ns: o.end_unix_ns,
        }
    }
}

#[cfg(test)]
mod injection_tests {
    use super::*;

    #[test]
    fn formula_cells_become_text_and_numbers_stay() {
        for (cell, want) in [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-5", "-5"),
            ("-1.5e3", "-1.5e3"),
            ("node-1", "node-1"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), want, "{cell:?}");
            assert_eq!(unneutralise(&neutralise(cell)), cell, "{cell:?}");
        }
        // A name that starts with a quote of its own is kept as it is.
        assert_eq!(unneutralise("'abc"), "'abc");
    }
}
