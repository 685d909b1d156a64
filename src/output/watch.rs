//! What the watch shows and writes: the table (live and final), the JSON report, and
//! `report.html` with rate and gap timelines (SVG drawn with plotters, as the probe report's
//! charts). Renders only.

use std::fmt::Write as _;

use anyhow::Result;
use plotters::prelude::*;
use serde::Serialize;

use crate::output::html::charts::{self, PALETTE, WIDTH};
use crate::output::html::esc;
use crate::stream::engine::{IntervalRow, StreamSummary};
use crate::stream::pcap::PcapStats;
use crate::stream::verdict::{Failure, Thresholds};

/// The whole watch, as `--json` prints it and `watch.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub mcprobe_version: &'static str,
    /// `live` or `pcap`.
    pub mode: &'static str,
    /// The interface (live) or the capture file (pcap).
    pub input: String,
    /// Unix time of the watch's start (live), or of the capture's first datagram watched.
    pub started_unix_ns: u64,
    pub duration_s: f64,
    pub streams: Vec<StreamSummary>,
    pub thresholds: Thresholds,
    pub failures: Vec<Failure>,
    /// Datagrams of streams beyond the cap (not followed).
    pub untracked_datagrams: u64,
    pub pcap: Option<PcapStats>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn opt_u(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

/// The table: one line per stream.
pub fn table(streams: &[StreamSummary]) -> String {
    let head = [
        "STREAM", "FORMAT", "PKTS", "MBIT/S", "PEAK1MS", "LOST", "LOSS%", "DUP", "REOR", "MAXGAP", "JIT", "CC", "DF",
        "MLR", "SILENT",
    ];
    let rows: Vec<[String; 15]> = streams
        .iter()
        .map(|s| {
            [
                s.label(),
                s.format.clone().unwrap_or_else(|| "-".into()),
                s.packets.to_string(),
                opt(s.mbps, 3),
                opt(s.peak_1ms_mbps, 1),
                opt_u(s.lost),
                opt(s.loss_pct, 3),
                opt_u(s.duplicates),
                opt_u(s.reordered),
                s.max_gap_ms.map_or("-".into(), |g| format!("{g:.1}ms")),
                s.rtp_jitter_ms.or(s.iat_jitter_ms).map_or("-".into(), |j| format!("{j:.3}ms")),
                opt_u(s.cc_errors),
                s.df_max_ms.map_or("-".into(), |d| format!("{d:.1}ms")),
                opt(s.mlr_max, 1),
                if s.stopped { format!("{:.1}s", s.silence_s) } else { "-".into() },
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i < 2 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
            out.push_str(if i + 1 < cells.len() { "  " } else { "\n" });
        }
    };
    line(&mut out, &head.map(String::from));
    for r in &rows {
        line(&mut out, r);
    }
    out
}

/// A chart of one value per stream over time: lines, `log` for a log y axis.
fn chart(series: &[(String, Vec<(f64, f64)>)], y_desc: &str, log: bool, duration_s: f64) -> Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw a chart: {e}");
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let y_hi = ys.clone().fold(0f64, f64::max);
    let y_lo = ys.filter(|y| *y > 0.0).fold(f64::MAX, f64::min);
    let x_hi = duration_s.max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut b = ChartBuilder::on(&root);
        b.margin(12).x_label_area_size(46).y_label_area_size(70);
        macro_rules! finish {
            ($c:expr) => {{
                let mut c = $c;
                c.configure_mesh()
                    .x_desc("time since the watch started (s)")
                    .y_desc(y_desc)
                    .label_style(("sans-serif", 13))
                    .axis_desc_style(("sans-serif", 14))
                    .light_line_style(WHITE)
                    .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
                    .draw()
                    .map_err(|e| err(&e))?;
                for (i, (_, pts)) in series.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| !log || p.1 > 0.0).collect();
                    c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2))).map_err(|e| err(&e))?;
                    c.draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled()))).map_err(|e| err(&e))?;
                }
            }};
        }
        if log && y_lo < f64::MAX {
            finish!(b.build_cartesian_2d(0.0..x_hi, (y_lo / 1.5..y_hi * 1.5).log_scale()).map_err(|e| err(&e))?);
        } else {
            finish!(b.build_cartesian_2d(0.0..x_hi, 0.0..(y_hi * 1.15).max(1e-3)).map_err(|e| err(&e))?);
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// `report.html`: verdict, the table, and per stream its rate (mean and 1 ms peak), its
/// longest gap per interval and its losses over time. At most as many streams drawn as the
/// palette has colours; the table lists them all.
pub fn html(r: &WatchReport, timelines: &[(String, Vec<IntervalRow>)]) -> Result<String> {
    let drawn = &timelines[..timelines.len().min(PALETTE.len())];
    let mid = |p: &IntervalRow| p.t_s + p.width_s / 2.0;
    let series = |f: &dyn Fn(&IntervalRow) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        drawn
            .iter()
            .map(|(l, pts)| (l.clone(), pts.iter().filter_map(|p| f(p).map(|v| (mid(p), v))).collect()))
            .collect()
    };
    let mut body = String::new();
    let verdict = if r.failures.is_empty() {
        "<p class=\"good\">Every stream met the thresholds.</p>".to_string()
    } else {
        let items: String = r.failures.iter().map(|f| format!("<li>{}</li>", esc(&f.to_string()))).collect();
        format!("<p class=\"bad\">Thresholds missed:</p><ul>{items}</ul>")
    };
    let _ = write!(
        body,
        "<h1>mcprobe watch</h1>{verdict}<p class=\"note\">{} {}, {:.1} s, {} stream(s).</p>",
        r.mode,
        esc(&r.input),
        r.duration_s,
        r.streams.len()
    );
    body.push_str("<h2>Streams</h2><div class=\"scroll\"><pre>");
    body.push_str(&esc(&table(&r.streams)));
    body.push_str("</pre></div>");
    let legend: String = drawn
        .iter()
        .enumerate()
        .map(|(i, (l, _))| format!("<li><i style=\"background:{}\"></i>{}</li>", charts::hex(PALETTE[i]), esc(l)))
        .collect();
    let legend = format!("<ul class=\"legend\">{legend}</ul>");
    type Pick<'a> = &'a dyn Fn(&IntervalRow) -> Option<f64>;
    let charts_of: [(&str, &str, bool, Pick); 4] = [
        ("Rate", "Mbit/s (mean per interval)", false, &|p| Some(p.mbps)),
        ("Microbursts", "Mbit/s over the busiest 1 ms", false, &|p| Some(p.peak_1ms_mbps)),
        ("Gaps", "longest gap between packets (ms, log)", true, &|p| p.max_gap_ms),
        ("Losses", "datagrams lost per interval", false, &|p| p.lost.map(|l| l as f64)),
    ];
    for (title, y, log, f) in charts_of {
        let _ = write!(
            body,
            "<h2>{title}</h2>{legend}<figure class=\"chart\">{}</figure>",
            chart(&series(f), y, log, r.duration_s)?
        );
    }
    if timelines.len() > drawn.len() {
        let _ = write!(
            body,
            "<p class=\"note\">{} more stream(s) in the table and stream-intervals.csv, not drawn.</p>",
            timelines.len() - drawn.len()
        );
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"mcprobe {}\">\
         <title>mcprobe watch</title><style>{CSS}</style></head><body>\n{body}<footer>Written by mcprobe {}. Beside this \
         page: streams.csv, stream-intervals.csv, watch.json.</footer></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    ))
}

const CSS: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1b1b1b;margin:0 auto;max-width:1200px;padding:16px 20px}\
h2{font-size:19px;border-bottom:1px solid #ddd}pre{font-size:12px}.good{color:#00704f}.bad{color:#b23c00}\
figure.chart svg{width:100%;height:auto}ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}\
ul.legend i{display:inline-block;width:14px;height:14px;margin-right:5px;vertical-align:-2px}.note{color:#555;font-size:13px}\
div.scroll{overflow-x:auto}footer{margin-top:30px;color:#666;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::engine::{Engine, EngineConfig};

    /// The table and the JSON of a known watch, pinned: an RTP stream with two losses, a raw
    /// stream, a group that received nothing.
    #[test]
    fn table_and_json_are_pinned() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut e = Engine::new(EngineConfig::default(), 0);
        for g in ["239.1.1.1", "239.1.1.2", "239.1.1.3"] {
            e.watch(ip(g), 5000);
        }
        for n in (0..2000u32).filter(|n| ![500, 1500].contains(n)) {
            let mut b = vec![0x80, 96];
            b.extend((n as u16).to_be_bytes());
            b.extend((n * 90).to_be_bytes());
            b.extend(9u32.to_be_bytes());
            b.extend([0; 1188]);
            e.packet(ip("239.1.1.1"), 5000, ip("10.0.0.1"), 4000, &b, n as u64 * 1_000_000);
            if n % 10 == 0 {
                e.packet(ip("239.1.1.2"), 5000, ip("10.0.0.2"), 4000, b"hello", n as u64 * 1_000_000 + 500_000);
            }
        }
        e.finish(2_500_000_000);
        let s = e.summaries(2_500_000_000);
        insta::assert_snapshot!("watch_table", table(&s));
        insta::assert_snapshot!("watch_streams", serde_json::to_string_pretty(&s).unwrap());
    }

    #[test]
    fn the_table_aligns_and_the_page_draws_every_chart() {
        let s = StreamSummary {
            group: "239.1.1.1".into(),
            port: 5000,
            source: Some("10.77.0.1".into()),
            format: Some("rtp+ts".into()),
            packets: 1234,
            mbps: Some(4.5),
            lost: Some(3),
            loss_pct: Some(0.243),
            stopped: true,
            silence_s: 2.0,
            ..StreamSummary::default()
        };
        let t = table(std::slice::from_ref(&s));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("239.1.1.1:5000 from 10.77.0.1  rtp+ts"), "{t}");
        assert!(lines[1].ends_with("2.0s"), "{t}");
        let row = IntervalRow {
            t_s: 0.0,
            width_s: 1.0,
            mbps: 4.5,
            peak_1ms_mbps: 9.0,
            max_gap_ms: Some(12.0),
            lost: Some(1),
            ..Default::default()
        };
        let r = WatchReport {
            mcprobe_version: "x",
            mode: "live",
            input: "veth0".into(),
            started_unix_ns: 0,
            duration_s: 2.0,
            streams: vec![s],
            thresholds: Thresholds::default(),
            failures: vec![],
            untracked_datagrams: 0,
            pcap: None,
        };
        let page =
            html(&r, &[("239.1.1.1:5000 from 10.77.0.1".into(), vec![row.clone(), IntervalRow { t_s: 1.0, ..row }])])
                .unwrap();
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("Every stream met the thresholds"));
    }
}
