//! HdrHistogram files: per responder and path, the RTT percentile distribution (`.hgrm`, the
//! text of HdrHistogram's `outputPercentileDistribution`, values in µs, which HdrHistogram's
//! plotter reads), and `rtt.hlog`, the interval histogram log (V2 compressed, base64, one tag per
//! responder and path, one line per report interval, values in ns as HdrHistogram's log tools
//! expect).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::findings::Path as ProbePath;
use crate::output::html::data::tag;
use crate::run::Outcome;
use crate::stats::{self, format_id, HostStats, IntervalRow, IntervalRtt};

/// The interval log's file name.
pub(crate) const HLOG: &str = "rtt.hlog";
/// Percentile rows per halving of the distance to 100 %, as HdrHistogram's own tools print.
const TICKS_PER_HALF: u32 = 5;
/// Decimals of `.hgrm` values in µs: whole ns.
const HGRM_DECIMALS: usize = 3;
/// `.hgrm` values are in µs; histograms count ns.
const NS_PER_US: f64 = 1000.0;

/// A histogram like the one stats keeps per responder (same precision and lowest value), so
/// interval histograms add up to it exactly; it grows with its values.
pub(crate) fn rtt_histogram(samples_ns: &[u32]) -> Histogram<u32> {
    let mut h = stats::rtt_histogram(1_000_000);
    h.auto(true);
    for &v in samples_ns {
        let v = u64::from(v.max(1));
        if h.record(v).is_err() {
            h.saturating_record(v);
        }
    }
    h
}

/// The rows of HdrHistogram's percentile distribution: (value, percentile in %, count up to it).
/// Follows the Java `PercentileIterator` step by step, in percent as it does, so the levels are
/// exact (50, 90, …) and each row's value is the one `value_at_quantile` gives at that level
/// (the Rust crate's own quantile iterator adds up fractions and drifts past them).
pub(crate) fn percentile_rows(h: &Histogram<u32>) -> Vec<(u64, f64, u64)> {
    let total = h.len();
    let mut rows = Vec::new();
    if total == 0 {
        return rows;
    }
    let (mut level, mut running) = (0.0f64, 0u64);
    for v in h.iter_recorded() {
        running += v.count_since_last_iteration();
        let reached = 100.0 * running as f64 / total as f64;
        while reached >= level {
            rows.push((v.value_iterated_to(), level, running));
            let halvings = ((100.0 / (100.0 - level)).ln() / 2f64.ln()) as u32;
            level += 100.0 / (u64::from(TICKS_PER_HALF) << (halvings + 1)) as f64;
            if running == total {
                break;
            }
        }
        if running == total {
            break;
        }
    }
    rows.push((h.max(), 100.0, total));
    rows
}

/// Writes `h` (ns) as HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)` does: values
/// in µs, with 3 decimals where Java would print as many as the significant digits (2): the
/// values are whole ns, so the file keeps them exactly.
pub(crate) fn write_hgrm(w: &mut impl Write, h: &Histogram<u32>) -> io::Result<()> {
    let digits = HGRM_DECIMALS;
    writeln!(w, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    for (value, pct, total) in percentile_rows(h) {
        let (value, q) = (value as f64 / NS_PER_US, pct / 100.0);
        if pct < 100.0 {
            writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q))?;
        } else {
            writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
        }
    }
    let sub_buckets = (2 * 10u64.pow(h.sigfig().into())).next_power_of_two();
    writeln!(
        w,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        h.mean() / NS_PER_US,
        h.stdev() / NS_PER_US
    )?;
    writeln!(w, "#[Max     = {:>12.digits$}, Total count    = {:>12}]", h.max() as f64 / NS_PER_US, h.len())?;
    writeln!(w, "#[Buckets = {:>12}, SubBuckets     = {sub_buckets:>12}]", h.buckets())
}

/// The interval log of a run, its body gathered as intervals close and written out at the end
/// with a header (its start time is known only once the run has started).
pub(crate) struct HlogBody {
    lines: Vec<u8>,
    serializer: V2DeflateSerializer,
    /// The report interval: every line's duration.
    width: Duration,
}

impl HlogBody {
    pub(crate) fn new(width: Duration) -> Self {
        HlogBody { lines: Vec::new(), serializer: V2DeflateSerializer::new(), width }
    }

    /// Appends one line per row: the interval's RTT histogram under its responder's tag.
    pub(crate) fn add(&mut self, rows: &[IntervalRow], path: ProbePath) -> Result<()> {
        // Without header settings the builder writes nothing: each batch only appends lines.
        let mut log = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(MAX_DIVISOR)
            .begin_log_with(&mut self.lines, &mut self.serializer)?;
        for r in rows {
            let t = tag(&r.responder, &r.responder_id, path);
            let start = Duration::from_secs_f64(r.interval_start_s);
            let h = match &r.rtt {
                IntervalRtt::Samples(s) => rtt_histogram(s),
                IntervalRtt::Histogram(h) => (**h).clone(),
            };
            log.write_histogram(&h, start, self.width, Tag::new(&t))
                .map_err(|e| anyhow::anyhow!("cannot encode an interval histogram: {e}"))?;
        }
        Ok(())
    }
}

/// The max column of a log line is in ms, as in HdrHistogram's Java log writer (values are ns).
const MAX_DIVISOR: f64 = 1e6;

/// Writes `rtt.hlog` (the streamed multicast lines in `body`, then the unicast paths' intervals)
/// and one `.hgrm` per responder and path; returns the paths written.
pub(crate) fn write_files(dir: &Path, o: &mut Outcome, mut body: HlogBody, run_id: &str) -> Result<Vec<PathBuf>> {
    for u in &mut o.unicast {
        body.add(&u.run.drain_interval_rows(), ProbePath::Unicast)?;
    }
    let start = UNIX_EPOCH + Duration::from_nanos(o.run.start_ns().unwrap_or(0));
    let mut head = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    IntervalLogWriterBuilder::new()
        .add_comment("[Histogram log format version 1.3]")
        .add_comment(&format!("[mcprobe run {run_id}: RTT in ns per report interval; tags NAME.ID.PATH]"))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(MAX_DIVISOR)
        .begin_log_with(&mut head, &mut serializer)?;
    head.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    head.extend_from_slice(&body.lines);
    let mut written = vec![super::meta::write_atomic(dir, HLOG, &head)?];
    let paths =
        std::iter::once((&o.run, ProbePath::Multicast)).chain(o.unicast.iter().map(|u| (&u.run, ProbePath::Unicast)));
    for (run, path) in paths {
        for h in run.hosts().iter().filter(|h| !h.rtt.is_empty()) {
            written.push(write_hgrm_file(dir, h, path, run_id)?);
        }
    }
    Ok(written)
}

/// The `.hgrm` file name of one responder and path.
pub(crate) fn hgrm_name(name: &str, responder_id: &str, path: ProbePath) -> String {
    format!("rtt.{}.hgrm", tag(name, responder_id, path))
}

/// The distribution, then one more comment line tying the file to its run (HdrHistogram's
/// plotter skips `#` lines).
fn write_hgrm_file(dir: &Path, h: &HostStats, path: ProbePath, run_id: &str) -> Result<PathBuf> {
    let mut text = Vec::new();
    write_hgrm(&mut text, &h.rtt)?;
    let id = format_id(h.responder_id);
    writeln!(text, "#[mcprobe run {run_id}, responder {} ({id}), path {}, RTT in µs]", h.name, path.as_str())?;
    super::meta::write_atomic(dir, &hgrm_name(&h.name, &format_id(h.responder_id), path), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_rows_step_through_exact_levels_like_javas_iterator() {
        let samples: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        let h = rtt_histogram(&samples);
        let rows = percentile_rows(&h);
        let levels: Vec<f64> = rows.iter().take(8).map(|r| r.1).collect();
        assert_eq!(levels, [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 55.0, 60.0]);
        let at = |pct: f64| rows.iter().find(|r| r.1 == pct).map(|r| (r.0, r.2));
        // Each row counts the samples up to its value (its bucket's top, which may hold several).
        let upto = |v: u64| samples.iter().filter(|&&s| u64::from(s) <= v).count() as u64;
        let (p50, p90) = (h.value_at_quantile(0.5), h.value_at_quantile(0.9));
        assert_eq!(at(50.0), Some((p50, upto(p50))));
        assert_eq!(at(90.0), Some((p90, upto(p90))));
        assert!(upto(p50) >= 500 && upto(p90) >= 900);
        assert_eq!(rows.last(), Some(&(h.max(), 100.0, 1000)));
        assert!(rows.windows(2).all(|w| w[0].1 < w[1].1 && w[0].0 <= w[1].0 && w[0].2 <= w[1].2));
    }

    #[test]
    fn hgrm_text_has_the_layout_of_output_percentile_distribution() {
        let h = rtt_histogram(&[1500, 2500, 2500, 40_000]);
        let mut out = Vec::new();
        write_hgrm(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "       1.503 0.000000000000          1           1.00");
        let n = lines.len();
        assert_eq!(lines[n - 4], "      40.191 1.000000000000          4");
        assert!(lines[n - 3].starts_with("#[Mean    =       11.642, StdDeviation   = "), "{}", lines[n - 3]);
        assert_eq!(lines[n - 2], "#[Max     =       40.191, Total count    =            4]");
        assert_eq!(lines[n - 1], format!("#[Buckets = {:>12}, SubBuckets     =          256]", h.buckets()));
    }

    #[test]
    fn tags_are_valid_log_tags_and_file_names() {
        let t = tag("a b,c/d\n", "0123456789abcdef", ProbePath::Unicast);
        assert_eq!(t, "a_b_c_d_.01234567.unicast");
        assert!(Tag::new(&t).is_some());
        assert_eq!(tag("", "ff", ProbePath::Multicast), "unnamed.ff.multicast");
    }
}
