//! Several report folders in one page. Runs of different probers become a matrix (rows: prober,
//! columns: responder) of loss and RTT p50, also written as `matrix.csv`; runs of one prober at
//! different times become a trend table. Folders of different groups or ports measured
//! different things: they are refused, by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use anyhow::{bail, Result};

use super::data::{Folder, SummaryRec};
use super::{esc, fmt_opt, page};

pub(crate) const MATRIX: &str = "matrix.csv";
/// Responder columns that fit across the page; with more, the heatmaps turn.
const WIDE: usize = 16;

pub(crate) enum Kind {
    /// Different probers: one row each.
    Matrix,
    /// One prober at different times, oldest first.
    Trend,
}

pub(crate) struct Merge<'a> {
    pub kind: Kind,
    /// In row order, with their row labels.
    pub rows: Vec<(&'a Folder, String)>,
    /// Responder labels, sorted: the columns.
    pub responders: Vec<String>,
}

fn group_of(f: &Folder) -> String {
    match f.meta.group {
        std::net::IpAddr::V6(g) => format!("[{g}]:{}", f.meta.port),
        g => format!("{g}:{}", f.meta.port),
    }
}

pub(crate) fn merge(folders: &[Folder]) -> Result<Merge<'_>> {
    let groups: BTreeSet<String> = folders.iter().map(group_of).collect();
    if groups.len() > 1 {
        let list: Vec<String> = folders.iter().map(|f| format!("{} ({})", f.dir.display(), group_of(f))).collect();
        bail!(
            "cannot merge folders that probed different groups or ports: {}; merge runs of one group only",
            list.join(", ")
        );
    }
    let mut seen: BTreeMap<&str, &Folder> = BTreeMap::new();
    for f in folders {
        if let Some(other) = seen.insert(&f.meta.run_id, f) {
            bail!(
                "cannot merge {} and {}: they hold the same run ({})",
                other.dir.display(),
                f.dir.display(),
                f.meta.run_id
            );
        }
    }
    let prober = |f: &Folder| (f.prober_label().to_string(), f.meta.prober_address);
    let probers: BTreeSet<_> = folders.iter().map(prober).collect();
    let mut ordered: Vec<&Folder> = folders.iter().collect();
    ordered.sort_by_key(|f| (prober(f), f.meta.start_unix_ms));
    let kind = if probers.len() == 1 { Kind::Trend } else { Kind::Matrix };
    let rows = ordered
        .into_iter()
        .map(|f| {
            let runs_of_prober = folders.iter().filter(|g| prober(g) == prober(f)).count();
            let label = match kind {
                Kind::Trend => f.meta.start_utc.clone(),
                Kind::Matrix if runs_of_prober > 1 => format!("{} @ {}", f.prober_label(), f.meta.start_utc),
                Kind::Matrix => f.prober_label().to_string(),
            };
            (f, label)
        })
        .collect();
    let responders: BTreeSet<String> = folders.iter().flat_map(|f| f.answered().map(SummaryRec::label)).collect();
    Ok(Merge { kind, rows, responders: responders.into_iter().collect() })
}

/// The multicast row of responder `label` in `f`.
fn cell<'a>(f: &'a Folder, label: &str) -> Option<&'a SummaryRec> {
    f.answered().find(|r| r.label() == label)
}

/// Blues, light to dark (ColorBrewer, sequential: readable in grey and by colour-blind readers).
fn shade(t: f64) -> (String, &'static str) {
    let (a, b) = ((0xf7, 0xfb, 0xff), (0x08, 0x30, 0x6b));
    let t = t.clamp(0.0, 1.0);
    let mix = |x: i32, y: i32| (x as f64 + (y - x) as f64 * t).round() as i32;
    (format!("#{:02x}{:02x}{:02x}", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2)), if t > 0.5 { "#fff" } else { "#111" })
}

impl Merge<'_> {
    /// `matrix.csv`, one line per prober and responder (long form, for spreadsheets and plots);
    /// none for a trend.
    pub(crate) fn csv(&self) -> Option<String> {
        if !matches!(self.kind, Kind::Matrix) {
            return None;
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        let head = ["prober", "prober_address", "run_id", "start_utc", "responder", "responder_id", "address", "sent"];
        let rest = ["received", "loss_pct", "rtt_p50_us", "rtt_p99_us"];
        w.write_record(head.iter().chain(&rest)).ok()?;
        for (f, _) in &self.rows {
            for r in f.answered() {
                let addr = f.meta.prober_address.map(|a| a.to_string()).unwrap_or_default();
                let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
                let cells = [
                    f.prober_label().to_string(),
                    addr,
                    f.meta.run_id.clone(),
                    f.meta.start_utc.clone(),
                    r.label(),
                    r.responder_id.clone(),
                    r.address.clone(),
                    r.sent.to_string(),
                    r.received.to_string(),
                    f.judged_loss_pct(r).to_string(),
                    opt(r.rtt_p50_us),
                    opt(r.rtt_p99_us),
                ];
                w.write_record(cells.iter().map(|c| crate::output::csv::neutralise(c).into_owned())).ok()?;
            }
        }
        String::from_utf8(w.into_inner().ok()?).ok()
    }

    /// A heatmap table: rows as merged, one column per responder, `value` coloured by `scale`.
    /// More responders than fit across 1280 px: the heatmaps turn, one row per responder.
    fn transposed(&self) -> bool {
        self.responders.len() > WIDE
    }

    /// A heatmap table of `value` coloured by `scale`: rows as merged and one column per
    /// responder, or turned when there are many responders.
    fn heatmap(
        &self,
        kind: &str,
        value: impl Fn(&Folder, &SummaryRec) -> Option<f64>,
        scale: impl Fn(f64) -> f64,
        digits: usize,
    ) -> String {
        let td = |f: &Folder, r: &str| match cell(f, r).and_then(|c| value(f, c)) {
            Some(v) => {
                let (bg, fg) = shade(scale(v));
                format!("<td style=\"background:{bg};color:{fg}\">{v:.digits$}</td>")
            }
            None => "<td class=\"absent\" title=\"never answered\">–</td>".to_string(),
        };
        let mut s = format!("<div class=\"scroll\"><table class=\"heat\" data-kind=\"{kind}\"><thead><tr><th></th>");
        if self.transposed() {
            for (_, label) in &self.rows {
                let _ = write!(s, "<th>{}</th>", esc(label));
            }
            s.push_str("</tr></thead><tbody>");
            for r in &self.responders {
                let _ = write!(s, "<tr><th class=\"series\" data-responder=\"{0}\">{0}</th>", esc(r));
                self.rows.iter().for_each(|(f, _)| s.push_str(&td(f, r)));
                s.push_str("</tr>");
            }
        } else {
            for r in &self.responders {
                let _ = write!(s, "<th class=\"series\" data-responder=\"{0}\">{0}</th>", esc(r));
            }
            s.push_str("</tr></thead><tbody>");
            for (f, label) in &self.rows {
                let _ = write!(s, "<tr><th>{}</th>", esc(label));
                self.responders.iter().for_each(|r| s.push_str(&td(f, r)));
                s.push_str("</tr>");
            }
        }
        s.push_str("</tbody></table></div>");
        s
    }

    fn folders_table(&self) -> String {
        let mut s = String::from(
            "<table class=\"runs\"><thead><tr><th>row</th><th>prober</th><th>started (UTC)</th><th>duration s</th><th>probes</th>\
             <th>answered</th><th>without loss</th><th>worst</th><th>median p50 µs</th><th>highest p99 µs</th>\
             <th>run id</th></tr></thead><tbody>",
        );
        for (f, label) in &self.rows {
            let answered: Vec<&SummaryRec> = f.answered().collect();
            let lossless = answered.iter().filter(|r| r.lost == 0).count();
            let worst = answered.iter().max_by(|a, b| f.judged_loss_pct(a).total_cmp(&f.judged_loss_pct(b)));
            let mut p50: Vec<f64> = answered.iter().filter_map(|r| r.rtt_p50_us).collect();
            p50.sort_by(f64::total_cmp);
            let median = p50.get(p50.len() / 2).copied();
            let p99 = answered
                .iter()
                .filter_map(|r| r.rtt_p99_us)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let prober = match f.meta.prober_address {
                Some(a) => format!("{} ({a})", f.prober_label()),
                None => f.prober_label().to_string(),
            };
            let _ = write!(
                s,
                "<tr title=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{lossless}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.dir.display().to_string()),
                esc(label),
                esc(&prober),
                esc(&f.meta.start_utc),
                f.meta.duration_s,
                f.meta.probes_sent,
                answered.len(),
                worst.filter(|w| f.judged_loss_pct(w) > 0.0).map_or("none lost".into(), |w| format!("{} {:.2} %", esc(&w.label()), f.judged_loss_pct(w))),
                fmt_opt(median, 1),
                fmt_opt(p99, 1),
                esc(&f.meta.run_id),
            );
        }
        s.push_str("</tbody></table>");
        s
    }

    pub(crate) fn render(&self) -> Result<String> {
        let max_loss =
            self.rows.iter().flat_map(|(f, _)| f.answered().map(|r| f.judged_loss_pct(r))).fold(0.0, f64::max).max(1.0);
        let p50s: Vec<f64> = self.rows.iter().flat_map(|(f, _)| f.answered().filter_map(|r| r.rtt_p50_us)).collect();
        let (lo, hi) = p50s.iter().fold((f64::MAX, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let log_t = move |v: f64| if hi > lo { (v / lo).ln() / (hi / lo).ln() } else { 0.0 };
        let loss = self.heatmap("loss", |f, r| Some(f.judged_loss_pct(r)), |v| (v / max_loss).sqrt(), 2);
        let rtt = self.heatmap("rtt_p50", |_, r| r.rtt_p50_us, log_t, 0);
        let worst = (self.rows.iter()).flat_map(|(f, l)| f.answered().map(move |r| (f, l, r))).max_by(|a, b| {
            a.0.judged_loss_pct(a.2)
                .total_cmp(&b.0.judged_loss_pct(b.2))
                .then(a.2.rtt_p99_us.unwrap_or(0.0).total_cmp(&b.2.rtt_p99_us.unwrap_or(0.0)))
        });
        let absent = self
            .rows
            .iter()
            .map(|(f, _)| self.responders.iter().filter(|r| cell(f, r).is_none()).count())
            .sum::<usize>();
        let (title, rows_are, verdict) = match self.kind {
            Kind::Matrix => (
                "Prober × responder matrix",
                "prober",
                format!("{} probers × {} responders", self.rows.len(), self.responders.len()),
            ),
            Kind::Trend => (
                "Trend: one prober over time",
                "run",
                format!(
                    "{} runs of {} over time, {} responders",
                    self.rows.len(),
                    esc(&self.rows[0].0.meta.prober_host),
                    self.responders.len()
                ),
            ),
        };
        let mut verdict = format!("{verdict}; {absent} pairs never answered (–).");
        match worst {
            Some((f, l, r)) if f.judged_loss_pct(r) > 0.0 => {
                let (name, loss, p99) = (esc(&r.label()), f.judged_loss_pct(r), fmt_opt(r.rtt_p99_us, 1));
                let _ = write!(verdict, " Worst: {name} seen from {}: {loss:.2} % loss, p99 {p99} µs.", esc(l));
            }
            Some((_, l, r)) => {
                let (name, p99) = (esc(&r.label()), fmt_opt(r.rtt_p99_us, 1));
                let _ = write!(verdict, " No probe lost; slowest: {name} seen from {}, p99 {p99} µs.", esc(l));
            }
            None => {}
        }
        let group = group_of(self.rows[0].0);
        let axes = if self.transposed() {
            format!(
                "rows: responder, columns: {rows_are}; turned: {} responders do not fit across",
                self.responders.len()
            )
        } else {
            format!("rows: {rows_are}, columns: responder")
        };
        let body = format!(
            "<header><h1>mcprobe report: {} runs of {group}</h1><p class=\"verdict\">{verdict}</p></header>\n\
             <section id=\"runs\"><h2>{title}</h2><p>One row per {rows_are}{}.</p>{}</section>\n\
             <section id=\"matrix-loss\"><h2>Loss % ({axes})</h2>\
             <p>Darker is more loss (square-root scale up to {max_loss:.2} %). – : this responder never answered this {rows_are}.</p>{loss}</section>\n\
             <section id=\"matrix-rtt\"><h2>RTT p50, µs ({axes})</h2>\
             <p>Darker is slower (log scale from {} to {} µs).</p>{rtt}</section>\n",
            self.rows.len(),
            if matches!(self.kind, Kind::Matrix) { "; matrix.csv beside this page has every cell" } else { ", oldest first" },
            self.folders_table(),
            fmt_opt((lo < f64::MAX).then_some(lo), 1),
            fmt_opt((hi > 0.0).then_some(hi), 1),
        );
        let ids: Vec<&str> = self.rows.iter().map(|(f, _)| f.meta.run_id.as_str()).collect();
        let mut body = body;
        for (i, (f, label)) in self.rows.iter().enumerate() {
            body.push_str(&super::findings_section(
                &format!("findings-{i}"),
                &format!("Findings of {label}"),
                &f.findings,
            ));
        }
        let files = match self.kind {
            Kind::Matrix => vec![MATRIX.to_string()],
            Kind::Trend => Vec::new(),
        };
        Ok(page(&format!("mcprobe: {} runs of {group}", self.rows.len()), &body, &ids.join(" "), &files))
    }
}
