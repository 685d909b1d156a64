//! The report's charts, drawn with plotters into SVG strings. Pure: data in, SVG text out.
//! Colours come from the Okabe–Ito palette, which readers with the common colour-vision
//! deficiencies can tell apart; every axis says its unit.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Okabe–Ito, most distinct first (its yellow left out: too faint on white).
pub(crate) const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
];
/// The summary of responders not drawn one by one.
pub(crate) const OTHERS: RGBColor = RGBColor(0x99, 0x99, 0x99);
pub(crate) const WIDTH: u32 = 1160;
const FONT: &str = "sans-serif";

pub(crate) fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// One responder's line of points.
pub(crate) struct Line {
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// The range (lowest, highest) of the responders not drawn, at each x.
pub(crate) struct Band {
    pub points: Vec<(f64, f64, f64)>,
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw a chart: {e}")
}

fn draw(size: (u32, u32), f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        f(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A tick label for a value in µs, in the unit that keeps it short: 300 µs, 1.5 ms, 2 s.
pub(crate) fn us_label(v: f64) -> String {
    let (x, unit) = if v >= 1e6 {
        (v / 1e6, "s")
    } else if v >= 1e3 {
        (v / 1e3, "ms")
    } else {
        (v, "µs")
    };
    let s = format!("{x:.2}");
    format!("{} {unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Powers of ten (and 2×, 5× when few) spanning `lo..hi`, for log axes.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades < 1.5 {
        &[1.0, 2.0, 5.0]
    } else if decades < 3.0 {
        &[1.0, 3.0]
    } else {
        &[1.0]
    };
    while decade <= hi {
        for s in steps {
            let v = decade * s;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// The range of y values, padded, for a log axis.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| *v > 0.0).fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    if hi <= 0.0 {
        return (1.0, 1000.0);
    }
    (lo / 1.3, hi * 1.3)
}

/// The percentile label of x = 1/(1−p): 1 → 0 %, 2 → 50 %, 10 → 90 %, 1000 → 99.9 %.
pub(crate) fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// RTT against percentile on HdrHistogram's axis: x = 1/(1−p), log scale.
pub(crate) fn percentiles(lines: &[Line], band: Option<&Band>) -> Result<String> {
    let all_x = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_hi = all_x.fold(100f64, f64::max) * 1.25;
    let band_y = band.iter().flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2]));
    let (y_lo, y_hi) = y_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).chain(band_y));
    let mut x_keys = vec![1.0, 2.0];
    x_keys.extend(std::iter::successors(Some(10.0), |x| Some(x * 10.0)).take_while(|x| *x <= x_hi));
    draw((WIDTH, 440), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (1.0..x_hi).log_scale().with_key_points(x_keys),
                (y_lo..y_hi).log_scale().with_key_points(log_ticks(y_lo, y_hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile (scale 1/(1−p): each step right is 10× rarer)")
            .y_desc("RTT (log scale)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| us_label(*y))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .draw()
            .map_err(err)?;
        if let Some(b) = band {
            draw_band(&mut chart, b)?;
        }
        for l in lines {
            chart.draw_series(LineSeries::new(l.points.iter().copied(), l.color.stroke_width(2))).map_err(err)?;
        }
        Ok(())
    })
}

type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

fn draw_band<X, Y>(chart: &mut Chart<X, Y>, b: &Band) -> Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    if b.points.is_empty() {
        return Ok(());
    }
    let mut outline: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.1)).collect();
    outline.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
    chart.draw_series(std::iter::once(Polygon::new(outline, OTHERS.mix(0.35).filled()))).map_err(err)?;
    Ok(())
}

/// One responder's course over the run: p50 and max per interval (x at the interval's middle,
/// `None` where nothing came back), intervals with lost probes, and outages (start, end) in s.
pub(crate) struct Course {
    pub color: RGBColor,
    pub p50: Vec<(f64, Option<f64>)>,
    pub max: Vec<(f64, Option<f64>)>,
    pub lost: Vec<f64>,
    pub outages: Vec<(f64, f64)>,
}

/// Contiguous runs of defined points: a line breaks where an interval had no RTT.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        match y {
            Some(y) => out.last_mut().expect("never empty").push((x, y)),
            None if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// RTT over time per responder: p50 (thick) and max (thin, faded) per interval; a triangle on the
/// floor marks an interval with lost probes, a shaded span an outage.
pub(crate) fn timeline(courses: &[Course], band: Option<&Band>, duration_s: f64) -> Result<String> {
    let ys = courses.iter().flat_map(|c| c.p50.iter().chain(&c.max).filter_map(|p| p.1));
    let band_y = band.iter().flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2]));
    let (y_lo, y_hi) = y_range(ys.chain(band_y));
    let y_lo = y_lo / 1.6; // room for the loss marks on the floor
    let floor = y_lo * 1.25;
    let x_hi = duration_s.max(1.0);
    draw((WIDTH, 440), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_hi, (y_lo..y_hi).log_scale().with_key_points(log_ticks(y_lo * 1.6, y_hi)))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the first probe (s)")
            .x_label_formatter(&|x| if x_hi >= 20.0 { format!("{x:.0}") } else { format!("{x:.1}") })
            .y_desc("RTT (log scale)")
            .y_label_formatter(&|y| us_label(*y))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .draw()
            .map_err(err)?;
        for c in courses {
            let spans =
                c.outages.iter().map(|&(a, b)| Rectangle::new([(a, y_lo), (b, y_hi)], c.color.mix(0.15).filled()));
            chart.draw_series(spans).map_err(err)?;
        }
        if let Some(b) = band {
            draw_band(&mut chart, b)?;
        }
        for c in courses {
            // A stretch of one interval (a run shorter than two, or one between gaps) has no
            // line to draw: it is a dot, or it would not show at all.
            for s in segments(&c.max) {
                let dot = (s.len() == 1).then(|| Circle::new(s[0], 3, c.color.mix(0.45).stroke_width(1)));
                chart.draw_series(dot).map_err(err)?;
                chart.draw_series(LineSeries::new(s, c.color.mix(0.45).stroke_width(1))).map_err(err)?;
            }
            for s in segments(&c.p50) {
                let dot = (s.len() == 1).then(|| Circle::new(s[0], 4, c.color.filled()));
                chart.draw_series(dot).map_err(err)?;
                chart.draw_series(LineSeries::new(s, c.color.stroke_width(2))).map_err(err)?;
            }
            let marks = c.lost.iter().map(|&x| TriangleMarker::new((x, floor), 5, c.color.filled()));
            chart.draw_series(marks).map_err(err)?;
        }
        Ok(())
    })
}

/// One bar split into parts (value, colour), under a label.
pub(crate) struct Bar {
    pub label: String,
    pub parts: Vec<(f64, RGBColor)>,
}

/// Horizontal bars, stacked parts, one row per label (top to bottom as given).
pub(crate) fn bars(rows: &[Bar], x_desc: &str, x_max: f64) -> Result<String> {
    let n = rows.len().max(1);
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(8).clamp(8, 40) as u32 * 8 + 16;
    let x_max = if x_max > 0.0 { x_max * 1.08 } else { 1.0 };
    draw((WIDTH, 70 + 24 * n as u32), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_labels(0)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .disable_y_mesh()
            .draw()
            .map_err(err)?;
        // Row labels right-aligned left of the plot, where the y labels would go.
        let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, l) in labels.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
            root.draw(&Text::new(l.clone(), (px - 8, py), style.clone())).map_err(err)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let y0 = (n - 1 - i) as f64 + 0.18;
            let mut x = 0.0;
            for &(v, color) in r.parts.iter().filter(|p| p.0 > 0.0) {
                chart
                    .draw_series(std::iter::once(Rectangle::new([(x, y0), (x + v, y0 + 0.64)], color.filled())))
                    .map_err(err)?;
                x += v;
            }
        }
        Ok(())
    })
}

/// A heatmap cell's colour: green reached without loss, orange to red by the share of its probes
/// lost, dark grey never reached.
pub(crate) fn reach_color(reached: bool, loss_pct: f64) -> RGBColor {
    if !reached {
        return RGBColor(0x33, 0x33, 0x33);
    }
    if loss_pct <= 0.0 {
        return PALETTE[2];
    }
    // From Okabe-Ito orange (a little loss) to vermillion (all of it).
    let t = (loss_pct / 100.0).clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(0xE6, 0xD5), mix(0x9F, 0x3E), mix(0x00, 0x00))
}

/// Responders (rows) × groups (columns, in the order probed), each cell coloured by
/// [`reach_color`]; `cells[r][g]` is (reached, loss %). The x axis counts groups.
pub(crate) fn heatmap(labels: &[String], cells: &[Vec<(bool, f64)>]) -> Result<String> {
    let rows = labels.len().max(1);
    let cols = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(8).clamp(8, 40) as u32 * 8 + 16;
    let row_h = if rows > 40 { 8 } else { 22 };
    draw((WIDTH, 80 + row_h * rows as u32), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..cols as f64, 0.0..rows as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("group (in the order probed)")
            .x_label_formatter(&|x| format!("{}", x.round() as u64))
            .y_labels(0)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .disable_mesh()
            .draw()
            .map_err(err)?;
        let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        if rows <= 40 {
            for (i, l) in labels.iter().enumerate() {
                let (px, py) = chart.backend_coord(&(0.0, (rows - 1 - i) as f64 + 0.5));
                root.draw(&Text::new(l.clone(), (px - 8, py), style.clone())).map_err(err)?;
            }
        }
        for (i, row) in cells.iter().enumerate() {
            let y0 = (rows - 1 - i) as f64;
            // Runs of equal colour as one rectangle: a clean row of 4096 groups is one element.
            let mut g = 0;
            while g < row.len() {
                let color = reach_color(row[g].0, row[g].1);
                let mut end = g + 1;
                while end < row.len() && reach_color(row[end].0, row[end].1) == color {
                    end += 1;
                }
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(g as f64, y0 + 0.08), (end as f64, y0 + 0.92)],
                        color.filled(),
                    )))
                    .map_err(err)?;
                g = end;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_say_percentiles_and_units() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(us_label(300.0), "300 µs");
        assert_eq!(us_label(1500.0), "1.5 ms");
        assert_eq!(us_label(2_000_000.0), "2 s");
    }

    #[test]
    fn lines_break_where_an_interval_had_no_rtt() {
        let s = segments(&[(0.5, Some(1.0)), (1.5, None), (2.5, Some(2.0)), (3.5, Some(3.0)), (4.5, None)]);
        assert_eq!(s, vec![vec![(0.5, 1.0)], vec![(2.5, 2.0), (3.5, 3.0)]]);
    }

    #[test]
    fn charts_are_svg_with_one_line_per_responder() {
        let lines: Vec<Line> =
            (0..3).map(|i| Line { color: PALETTE[i], points: vec![(1.0, 10.0), (2.0, 20.0 + i as f64)] }).collect();
        let svg = percentiles(&lines, None).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("viewBox"));
        for c in &PALETTE[..3] {
            assert_eq!(svg.matches(&format!("stroke=\"{}\"", hex(*c))).count(), 1);
        }
    }
}
