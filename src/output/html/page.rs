//! The page of one run: what was run and the verdict, the summary table, then the charts.
//! Rendering only: the numbers come from the folder's files.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Result;
use plotters::style::RGBColor;

use super::charts::{self, Band, Bar, Course, Line, OTHERS, PALETTE};
use super::data::{Folder, SummaryRec};
use super::{esc, fmt_opt, page};
use crate::findings::Verdict;

/// Responders drawn one by one when there are more than fit the palette; the rest become a grey
/// band (their range) and the page says so.
const DRAWN_WHEN_MANY: usize = 6;
/// Summary rows shown open; the rest fold away (one click, no script).
const SUMMARY_ROWS: usize = 25;
/// Rows of the loss chart before the rest are added up into one.
const LOSS_ROWS: usize = 20;

/// Multicast rows, worst first: most loss, then slowest p99, then by name.
fn ranked(f: &Folder) -> Vec<&SummaryRec> {
    let mut rows: Vec<&SummaryRec> = f.summary.iter().filter(|r| r.is_multicast()).collect();
    rows.sort_by(|a, b| {
        b.loss_pct
            .total_cmp(&a.loss_pct)
            .then(b.rtt_p99_us.unwrap_or(0.0).total_cmp(&a.rtt_p99_us.unwrap_or(0.0)))
            .then(a.label().cmp(&b.label()))
    });
    rows
}

/// The responders drawn (with their colours) and the others, and the sentence that says which.
struct Selection<'a> {
    drawn: Vec<(&'a SummaryRec, RGBColor)>,
    others: Vec<&'a SummaryRec>,
}

impl<'a> Selection<'a> {
    fn of(rows: Vec<&'a SummaryRec>) -> Self {
        let n = if rows.len() <= PALETTE.len() { rows.len() } else { DRAWN_WHEN_MANY };
        let drawn = rows.iter().take(n).zip(PALETTE).map(|(r, c)| (*r, c)).collect();
        Selection { drawn, others: rows.into_iter().skip(n).collect() }
    }

    fn note(&self) -> String {
        if self.others.is_empty() {
            return String::new();
        }
        format!(
            "<p class=\"note\">{} responders: the {} worst (most loss, then highest p99) are drawn; the other {} \
             are summarised as the grey band, the range they span.</p>",
            self.drawn.len() + self.others.len(),
            self.drawn.len(),
            self.others.len()
        )
    }

    fn legend(&self) -> String {
        let mut s = String::from("<ul class=\"legend\">");
        for (r, c) in &self.drawn {
            let _ = write!(
                s,
                "<li class=\"series\" data-responder=\"{}\" data-color=\"{}\"><i style=\"background:{}\"></i>{}</li>",
                esc(&r.label()),
                charts::hex(*c),
                charts::hex(*c),
                esc(&r.label())
            );
        }
        if !self.others.is_empty() {
            let _ = write!(
                s,
                "<li class=\"others\"><i style=\"background:{}\"></i>{} others (range)</li>",
                charts::hex(OTHERS),
                self.others.len()
            );
        }
        s.push_str("</ul>");
        s
    }
}

/// (1/(1−p), RTT µs) points of one responder: its whole distribution from its .hgrm, or the
/// summary's percentiles when the folder has none.
fn distribution(f: &Folder, r: &SummaryRec) -> Vec<(f64, f64)> {
    if let Some(rows) = f.rtt.get(&r.tag()) {
        let mut pts: Vec<(f64, f64)> =
            rows.iter().filter(|(_, q, _)| *q < 1.0).map(|&(v, q, _)| (1.0 / (1.0 - q), v)).collect();
        pts.dedup_by(|b, a| a.1 == b.1 && b.0 < a.0 * 1.05);
        return pts;
    }
    let pts = [(2.0, r.rtt_p50_us), (10.0, r.rtt_p90_us), (100.0, r.rtt_p99_us), (1000.0, r.rtt_p999_us)];
    pts.into_iter().filter_map(|(x, y)| Some((x, y?))).collect()
}

/// The range of the others' distributions at 0, 50, 90, 99, … %, as far as their counts reach.
fn distribution_band(f: &Folder, others: &[&SummaryRec]) -> Option<Band> {
    let dists: Vec<_> = others.iter().filter_map(|r| f.rtt.get(&r.tag())).collect();
    let xs = [1.0, 2.0, 4.0, 10.0, 20.0, 100.0, 200.0, 1000.0, 2000.0, 10_000.0, 100_000.0];
    // The value at quantile q: the first row at or past it.
    let at = |rows: &[(f64, f64, u64)], q: f64| rows.iter().find(|r| r.1 >= q - 1e-12).map(|r| r.0);
    let points: Vec<(f64, f64, f64)> = xs
        .iter()
        .filter_map(|&x| {
            let vals =
                dists.iter().filter(|d| d.last().is_some_and(|l| l.2 as f64 >= x)).filter_map(|d| at(d, 1.0 - 1.0 / x));
            let (lo, hi) = vals.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
            (hi > 0.0).then_some((x, lo, hi))
        })
        .collect();
    (points.len() > 1).then_some(Band { points })
}

fn section(id: &str, title: &str, intro: &str, body: &str) -> String {
    format!("<section id=\"{id}\"><h2>{title}</h2>{intro}{body}</section>\n")
}

fn figure(svg: &str, legend: &str, note: &str) -> String {
    format!("<figure class=\"chart\">{legend}{svg}</figure>{note}")
}

fn percentile_section(f: &Folder, sel: &Selection) -> Result<String> {
    let lines: Vec<Line> = sel.drawn.iter().map(|(r, c)| Line { color: *c, points: distribution(f, r) }).collect();
    let band = distribution_band(f, &sel.others);
    let svg = charts::percentiles(&lines, band.as_ref())?;
    Ok(section(
        "percentiles",
        "Latency distribution",
        "<p>RTT at each percentile, from the whole run's histogram (the .hgrm files). Read up to the right: the tail. \
         Lines that stay flat and low are healthy; a line that climbs early has a slow tail.</p>",
        &figure(&svg, &sel.legend(), &sel.note()),
    ))
}

/// Points of the time chart across 1200 px: more intervals than this are put together in bins.
const MAX_POINTS: f64 = 150.0;

/// One bin of a responder's intervals: the median of their p50s, the highest max, probes lost.
#[derive(Default)]
struct Bin {
    p50s: Vec<f64>,
    max: Option<f64>,
    lost: u64,
}

impl Bin {
    fn p50(&mut self) -> Option<f64> {
        self.p50s.sort_by(f64::total_cmp);
        self.p50s.get(self.p50s.len().saturating_sub(1) / 2).copied()
    }
}

fn timeline_section(f: &Folder, sel: &Selection) -> Result<String> {
    let width = f.meta.report_interval_s;
    // The time axis spans the intervals (the run's duration also counts the wait for late acks).
    let end = f.intervals.iter().map(|i| i.interval_start_s + width).fold(0.0, f64::max);
    let end = if end > 0.0 { end } else { f.meta.duration_s };
    let per_bin = (end / width / MAX_POINTS).ceil().max(1.0);
    let bin_s = width * per_bin;
    let mut bins: BTreeMap<&str, BTreeMap<u64, Bin>> = BTreeMap::new();
    for i in &f.intervals {
        let b = bins
            .entry(i.responder_id.as_str())
            .or_default()
            .entry((i.interval_start_s / bin_s + 1e-9) as u64)
            .or_default();
        b.p50s.extend(i.rtt_p50_us);
        b.max = b.max.into_iter().chain(i.rtt_max_us).reduce(f64::max);
        b.lost += i.lost;
    }
    let mid = |k: u64| (k as f64 + 0.5) * bin_s;
    let mut course = |r: &SummaryRec, color: RGBColor| {
        let mut c = Course { color, p50: Vec::new(), max: Vec::new(), lost: Vec::new(), outages: Vec::new() };
        for (&k, b) in bins.get_mut(r.responder_id.as_str()).into_iter().flatten() {
            c.p50.push((mid(k), b.p50()));
            c.max.push((mid(k), b.max));
            if b.lost > 0 {
                c.lost.push(mid(k));
            }
        }
        c.outages = (f.outages.iter().filter(|o| o.responder_id == r.responder_id))
            .map(|o| (o.start_s, o.end_s.unwrap_or(end)))
            .collect();
        c
    };
    let courses: Vec<Course> = sel.drawn.iter().map(|(r, c)| course(r, *c)).collect();
    // The others' p50 range per bin.
    let mut range: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
    for r in &sel.others {
        for (&k, b) in bins.get_mut(r.responder_id.as_str()).into_iter().flatten() {
            if let Some(v) = b.p50() {
                let e = range.entry(k).or_insert((mid(k), v, v));
                e.1 = e.1.min(v);
                e.2 = e.2.max(v);
            }
        }
    }
    let band = (!range.is_empty()).then(|| Band { points: range.into_values().collect() });
    let svg = charts::timeline(&courses, band.as_ref(), end)?;
    let lost: u64 = sel.drawn.iter().map(|(r, _)| r.lost).sum();
    let outages: usize = courses.iter().map(|c| c.outages.len()).sum();
    let per_point = if per_bin > 1.0 {
        format!("Per {bin_s} s ({per_bin} report intervals of {width} s put together: the median of their p50s, the highest maximum)")
    } else {
        format!("Per report interval ({width} s)")
    };
    Ok(section(
        "timeline",
        "RTT over time",
        &format!(
            "<p>{per_point}: p50 (thick line) and maximum (thin line) of each responder. \
             ▲ on the floor: lost probes in that span ({lost} lost among the responders drawn); shaded spans: \
             outages ({outages}, details in outages.csv).</p>"
        ),
        &figure(&svg, &sel.legend(), &sel.note()),
    ))
}

fn loss_section(f: &Folder) -> Result<String> {
    let rows = ranked(f);
    let parts = |r: &SummaryRec| {
        let pct = |n: u64| if r.sent == 0 { 0.0 } else { 100.0 * n as f64 / r.sent as f64 };
        let loss = r.loss();
        let host = loss.host_drops_or_zero();
        vec![
            (pct(loss.forward - host - loss.unreported), PALETTE[0]),
            (pct(host), PALETTE[5]),
            (pct(loss.unreported), PALETTE[3]),
            (pct(loss.ret), PALETTE[1]),
            (pct(r.late), PALETTE[4]),
            (pct(loss.unknown), OTHERS),
        ]
    };
    let mut bars: Vec<Bar> = rows.iter().take(LOSS_ROWS).map(|r| Bar { label: r.label(), parts: parts(r) }).collect();
    let rest = &rows[rows.len().min(LOSS_ROWS)..];
    if !rest.is_empty() {
        // The mean of the rest: one bar as long as a typical one of them.
        let mut sum = vec![0.0; 6];
        for r in rest {
            for (s, (v, _)) in sum.iter_mut().zip(parts(r)) {
                *s += v / rest.len() as f64;
            }
        }
        let colors = [PALETTE[0], PALETTE[5], PALETTE[3], PALETTE[1], PALETTE[4], OTHERS];
        bars.push(Bar { label: format!("{} others (mean)", rest.len()), parts: sum.into_iter().zip(colors).collect() });
    }
    let x_max = bars.iter().map(|b| b.parts.iter().map(|p| p.0).sum::<f64>()).fold(0.0, f64::max);
    let svg = charts::bars(&bars, "loss (% of probes sent)", x_max)?;
    let mut legend = String::from("<ul class=\"legend\">");
    for (name, c) in [
        ("forward: probe lost", PALETTE[0]),
        ("forward: dropped by the responder's own host", PALETTE[5]),
        ("forward: its host or the network, not yet told", PALETTE[3]),
        ("return: ack lost", PALETTE[1]),
        ("late ack", PALETTE[4]),
        ("unknown", OTHERS),
    ] {
        let _ = write!(legend, "<li class=\"kind\"><i style=\"background:{}\"></i>{name}</li>", charts::hex(c));
    }
    legend.push_str("</ul>");
    let series: String = rows
        .iter()
        .take(LOSS_ROWS)
        .map(|r| format!("<li class=\"series\" data-responder=\"{}\"></li>", esc(&r.label())))
        .collect();
    let note = if rest.is_empty() {
        String::new()
    } else {
        format!("<p class=\"note\">The {LOSS_ROWS} responders with the most loss are drawn; the other {} as one bar, their mean.</p>", rest.len())
    };
    let none = if x_max == 0.0 { "<p class=\"good\">No probe was lost.</p>" } else { "" };
    Ok(section(
        "loss",
        "Loss per responder",
        &format!(
            "<p>Lost probes in % of those sent, split by direction from the responder's own counters: forward (the probe \
             never reached it; the part its own host dropped, its socket buffer full, drawn apart when it says, and the part lost after its latest such report, not yet told), return (its ack never came back), late (the ack came after the timeout), unknown \
             (after its last ack, nothing tells).</p>{none}"
        ),
        &format!("<figure class=\"chart\">{legend}<ul class=\"series-list\" hidden>{series}</ul>{svg}</figure>{note}"),
    ))
}

fn hosts_section(f: &Folder) -> Result<Option<String>> {
    let mut hosts: BTreeMap<&str, (Option<&SummaryRec>, Option<&SummaryRec>)> = BTreeMap::new();
    for r in &f.summary {
        if let Some(h) = r.expected_host.as_deref().filter(|h| !h.is_empty()) {
            let e = hosts.entry(h).or_default();
            if r.is_multicast() {
                e.0 = e.0.or(Some(r));
            } else {
                e.1 = e.1.or(Some(r));
            }
        }
    }
    if hosts.is_empty() {
        return Ok(None);
    }
    let mut bars = Vec::new();
    let mut table = String::from(
        "<table><thead><tr><th>host</th><th class=\"t\">responder</th><th>multicast rcvd</th><th>loss %</th>\
         <th>unicast rcvd</th><th>loss %</th><th>verdict</th></tr></thead><tbody>",
    );
    let mut series = String::new();
    for (host, (mc, uc)) in &hosts {
        let loss = |r: &Option<&SummaryRec>| r.map_or(100.0, |r| r.loss_pct);
        bars.push(Bar { label: format!("{host} multicast"), parts: vec![(loss(mc), PALETTE[0])] });
        bars.push(Bar { label: format!("{host} unicast"), parts: vec![(loss(uc), PALETTE[4])] });
        let verdict = mc.or(*uc).and_then(|r| r.verdict);
        let name = mc.or(*uc).map(|r| r.responder.clone()).unwrap_or_default();
        let rcvd = |r: &Option<&SummaryRec>| r.map_or(0, |r| r.received);
        let ok = if verdict == Some(Verdict::Ok) { "good" } else { "bad" };
        let _ = write!(
            table,
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{:.2}</td><td class=\"{ok}\">{}</td></tr>",
            esc(host),
            esc(&name),
            rcvd(mc),
            loss(mc),
            rcvd(uc),
            loss(uc),
            verdict.map_or("", Verdict::as_str)
        );
        let _ = write!(series, "<li class=\"series\" data-responder=\"{}\"></li>", esc(host));
    }
    table.push_str("</tbody></table>");
    let x_max = bars.iter().map(|b| b.parts[0].0).fold(1.0, f64::max);
    let svg = charts::bars(&bars, "loss (% of probes sent)", x_max)?;
    let legend = format!(
        "<ul class=\"legend\"><li class=\"kind\"><i style=\"background:{}\"></i>multicast</li>\
         <li class=\"kind\"><i style=\"background:{}\"></i>unicast</li></ul>",
        charts::hex(PALETTE[0]),
        charts::hex(PALETTE[4])
    );
    Ok(Some(section(
        "hosts",
        "Expected hosts: unicast beside multicast",
        "<p>Each host listed with --hosts got unicast probes beside the multicast ones: multicast lost where unicast \
         works points at the multicast path (IGMP snooping, a filter), both lost at the host or the network.</p>",
        &format!("<figure class=\"chart\">{legend}<ul class=\"series-list\" hidden>{series}</ul>{svg}</figure>{table}"),
    )))
}

/// The one-sentence verdict.
fn verdict(f: &Folder) -> String {
    let answered: Vec<&SummaryRec> = f.answered().collect();
    let lossless = answered.iter().filter(|r| r.lost == 0).count();
    let mut s = format!(
        "{} responder{} answered, {lossless} without loss.",
        answered.len(),
        if answered.len() == 1 { "" } else { "s" }
    );
    if let Some(w) = ranked(f).first().filter(|r| r.received > 0 || r.lost > 0) {
        let why = if w.lost > 0 {
            format!(
                "{:.2} % loss ({} forward, {} return, {} late, {} unknown){}",
                w.loss_pct,
                w.loss().forward,
                w.loss().ret,
                w.late,
                w.loss().unknown,
                match w.outages {
                    0 => String::new(),
                    1 => ", 1 outage".to_string(),
                    n => format!(", {n} outages"),
                }
            )
        } else {
            format!("no loss, the highest p99 RTT: {} µs", fmt_opt(w.rtt_p99_us, 1))
        };
        let _ = write!(s, " Worst: {} — {why}.", esc(&w.label()));
    }
    let expected: Vec<&SummaryRec> =
        f.summary.iter().filter(|r| r.is_multicast() && r.expected_host.is_some()).collect();
    if !expected.is_empty() {
        let ok = expected.iter().filter(|r| r.verdict == Some(Verdict::Ok)).count();
        let _ = write!(s, " {ok} of {} expected hosts ok.", expected.len());
    }
    s
}

fn what_was_run(f: &Folder) -> String {
    let m = &f.meta;
    let prober = match m.prober_address {
        Some(a) => format!("{} ({a})", m.prober_host),
        None => m.prober_host.clone(),
    };
    let group = match m.group {
        std::net::IpAddr::V6(g) => format!("[{g}]:{}", m.port),
        g => format!("{g}:{}", m.port),
    };
    let items = [
        ("prober", prober),
        ("group", group),
        ("interface", m.interface.clone().unwrap_or_else(|| "the system's choice".into())),
        ("probes", format!("{} at {} /s, {} B, TTL {}", m.probes_sent, m.rate_per_s, m.size_bytes, m.ttl)),
        (
            "started",
            format!("{} UTC, {:.1} s{}", m.start_utc, m.duration_s, if m.interrupted { ", stopped early" } else { "" }),
        ),
        ("run id", m.run_id.clone()),
        ("command", m.arguments.join(" ")),
    ];
    let mut s = String::from("<dl class=\"run\">");
    for (k, v) in items {
        let _ = write!(s, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    s.push_str("</dl>");
    s
}

pub(crate) fn summary_table(rows: &[&SummaryRec]) -> String {
    let mut s = String::from(
        "<table class=\"summary\"><thead><tr><th>responder</th><th class=\"t\">address</th><th class=\"t\">path</th><th>sent</th><th>rcvd</th>\
         <th>loss %</th><th>fwd</th><th title=\"of fwd: dropped by the responder's own host (full socket buffer)\">host</th>\
         <th>ret</th><th>late</th><th>unk</th><th>p50 µs</th><th>p99 µs</th><th>max µs</th>\
         <th>jitter µs</th><th title=\"join delay, when the responder joined during the run\">join ms</th><th>outages</th><th>verdict</th></tr></thead><tbody>",
    );
    for r in rows {
        let cls = if r.lost > 0 { " class=\"lossy\"" } else { "" };
        let _ = write!(
            s,
            "<tr{cls}><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.label()),
            esc(&r.address),
            r.path.as_str(),
            r.sent,
            r.received,
            r.loss_pct,
            r.loss().forward,
            r.loss().host_drops.map_or("-".to_string(), |d| d.to_string()),
            r.loss().ret,
            r.late,
            r.loss().unknown,
            fmt_opt(r.rtt_p50_us, 1),
            fmt_opt(r.rtt_p99_us, 1),
            fmt_opt(r.rtt_max_us, 1),
            fmt_opt(r.jitter_us, 1),
            fmt_opt(r.join_delay_ms, 1),
            r.outages,
            r.verdict.map_or("", Verdict::as_str)
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// The whole page of one run.
pub(crate) fn render(f: &Folder) -> Result<String> {
    let ranked_rows = ranked(f);
    let answered: Vec<&SummaryRec> = ranked_rows.iter().copied().filter(|r| r.received > 0).collect();
    let sel = Selection::of(answered);
    let mut all: Vec<&SummaryRec> = ranked_rows.clone();
    all.extend(f.summary.iter().filter(|r| !r.is_multicast()));
    let mut body =
        format!("<header><h1>mcprobe report</h1><p class=\"verdict\">{}</p>{}</header>\n", verdict(f), what_was_run(f));
    body.push_str(&super::findings_section("findings", "Findings", &f.findings));
    body.push_str(&section(
        "summary",
        "Summary",
        "<p>One row per responder and path, worst first (summary.csv has every column).</p>",
        &if all.len() > SUMMARY_ROWS {
            format!(
                "{}<details><summary>The other {} rows</summary>{}</details>",
                summary_table(&all[..SUMMARY_ROWS]),
                all.len() - SUMMARY_ROWS,
                summary_table(&all[SUMMARY_ROWS..])
            )
        } else {
            summary_table(&all)
        },
    ));
    if f.has_unicast() {
        body.push_str(
            "<p class=\"note\" id=\"multicast-only\">With --hosts: the latency, time and loss charts below show the \
             multicast path only; <a href=\"#hosts\">Expected hosts</a> sets it beside unicast.</p>",
        );
    }
    if sel.drawn.is_empty() {
        body.push_str("<p class=\"bad\">No responder answered: nothing to chart.</p>");
    } else {
        body.push_str(&percentile_section(f, &sel)?);
        body.push_str(&timeline_section(f, &sel)?);
    }
    body.push_str(&loss_section(f)?);
    if !f.groups.is_empty() {
        body.push_str(&groups_section(f)?);
    }
    if let Some(h) = hosts_section(f)? {
        body.push_str(&h);
    }
    let mut files = f.meta.files.clone();
    files.push("meta.json".to_string());
    Ok(page(&format!("mcprobe report {}", f.meta.start_utc), &body, &f.meta.run_id, &files))
}

/// With `--groups`: the responders × groups heatmap, from groups.csv.
fn groups_section(f: &Folder) -> Result<String> {
    let mut labels: Vec<String> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    let mut cells: Vec<Vec<(bool, f64)>> = Vec::new();
    for g in &f.groups {
        if ids.last() != Some(&g.responder_id.as_str()) {
            ids.push(&g.responder_id);
            let id8 = g.responder_id.get(..8).unwrap_or(&g.responder_id);
            labels.push(if g.responder.is_empty() { format!("({id8})") } else { g.responder.clone() });
            cells.push(Vec::new());
        }
        if let Some(row) = cells.last_mut() {
            row.push((g.reached, g.loss_pct));
        }
    }
    let groups = cells.first().map_or(0, Vec::len);
    let first = f.groups.first().map_or("", |g| g.group.as_str());
    let last = f.groups.get(groups.saturating_sub(1)).map_or("", |g| g.group.as_str());
    let svg = charts::heatmap(&labels, &cells)?;
    let key = [
        (charts::reach_color(true, 0.0), "reached, no loss"),
        (charts::reach_color(true, 1.0), "some probes lost"),
        (charts::reach_color(true, 100.0), "most lost"),
        (charts::reach_color(false, 0.0), "never reached"),
    ];
    let legend: String = key
        .iter()
        .map(|(c, what)| format!("<li><i style=\"background:{}\"></i>{what}</li>", charts::hex(*c)))
        .collect();
    Ok(section(
        "groups",
        "Groups",
        &format!(
            "<p>{} responders × {groups} groups, {} to {} in the order probed (groups.csv has every cell).</p>",
            labels.len(),
            esc(first),
            esc(last)
        ),
        &format!("<figure class=\"chart\">{svg}</figure><ul class=\"legend\">{legend}</ul>"),
    ))
}
