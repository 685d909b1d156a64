//! Reading a report folder back (into [`crate::output::html::data`]): the CSVs, `meta.json` and
//! the RTT distributions of the `.hgrm` files.
//! Only the columns the report shows are read, so older or newer folders with more columns
//! still load.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use crate::output::html::data::{Distribution, Folder, GroupRec, IntervalRec, OutageRec, SummaryRec};
use crate::output::meta::RunMeta;
use crate::output::words::Said;

/// What a number read from a folder may be: finite, from 0 to `max` (a value beyond it no run
/// writes, and a chart's axes would be drawn over it: `inf` once kept `report` busy for ever).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    max: f64,
    what: &'static str,
}

/// A percentage.
const PCT: Bound = Bound { max: 100.0, what: "a percentage from 0 to 100" };
/// A time in µs (RTTs, jitter): up to a day, far beyond any timeout.
const US: Bound = Bound { max: 86_400e6, what: "a time from 0 to 86 400 000 000 µs" };
/// A time in ms (join delays): up to a day.
const MS: Bound = Bound { max: 86_400e3, what: "a time from 0 to 86 400 000 ms" };
/// A time in s into a run (interval starts, outages): up to ten years.
const SECS: Bound = Bound { max: 315_360_000.0, what: "a time from 0 to 315 360 000 s" };
/// A quantile of an `.hgrm` row.
const QUANTILE: Bound = Bound { max: 1.0, what: "a quantile from 0 to 1" };
/// A count of an `.hgrm` row: exact in an f64.
const COUNT: Bound = Bound { max: 9_007_199_254_740_992.0, what: "a count from 0 to 2^53" };

impl Bound {
    fn holds(self, v: f64) -> bool {
        v.is_finite() && (0.0..=self.max).contains(&v)
    }
}

/// The numbers of one record read back, by column, with what each may be.
pub(crate) trait Numbers {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)>;
}

impl Numbers for SummaryRec {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)> {
        vec![
            ("loss_pct", Some(self.loss_pct), PCT),
            ("loss_after_first_pct", self.loss_after_first_pct, PCT),
            ("rtt_p50_us", self.rtt_p50_us, US),
            ("rtt_p90_us", self.rtt_p90_us, US),
            ("rtt_p99_us", self.rtt_p99_us, US),
            ("rtt_p999_us", self.rtt_p999_us, US),
            ("rtt_max_us", self.rtt_max_us, US),
            ("jitter_us", self.jitter_us, US),
            ("join_delay_ms", self.join_delay_ms, MS),
        ]
    }
}

impl Numbers for IntervalRec {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)> {
        vec![
            ("interval_start_s", Some(self.interval_start_s), SECS),
            ("rtt_p50_us", self.rtt_p50_us, US),
            ("rtt_max_us", self.rtt_max_us, US),
        ]
    }
}

impl Numbers for OutageRec {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)> {
        vec![("start_s", Some(self.start_s), SECS), ("end_s", self.end_s, SECS)]
    }
}

impl Numbers for GroupRec {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)> {
        vec![("loss_pct", Some(self.loss_pct), PCT)]
    }
}

impl Numbers for RunMeta {
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Bound)> {
        let rate = Bound { max: 1e9, what: "a rate from 0 to 1 000 000 000 per s" };
        vec![
            ("rate_per_s", Some(self.rate_per_s), rate),
            ("duration_s", Some(self.duration_s), SECS),
            ("report_interval_s", Some(self.report_interval_s), SECS),
            ("timeout_s", Some(self.timeout_s), SECS),
            ("start_unix_ms", Some(self.start_unix_ms as f64), COUNT),
        ]
    }
}

/// A value as an error shows it: 1e308, not 309 digits.
fn shown(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// The first number of `rec` out of its bounds, as an error naming `at` and the column (or a
/// JSON file's field: `kind`).
fn check(rec: &impl Numbers, kind: &str, at: impl FnOnce() -> String) -> Result<()> {
    match rec.numbers().into_iter().find(|(_, v, b)| v.is_some_and(|v| !b.holds(v))) {
        Some((column, Some(v), b)) => anyhow::bail!("{}, {kind} {column}: {} is not {}", at(), shown(v), b.what),
        _ => Ok(()),
    }
}

/// Where a folder's files come from: the disk, or bytes in memory (the fuzz target).
trait Source {
    /// The bytes of file `name`; `None` when there is no such file.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
}

struct Disk<'a>(&'a Path);

impl Source for Disk<'_> {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.0.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

impl Source for BTreeMap<String, Vec<u8>> {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(name).cloned())
    }
}

fn read_csv<T: DeserializeOwned + Numbers>(src: &dyn Source, dir: &Path, name: &str, required: bool) -> Result<Vec<T>> {
    let path = dir.join(name);
    let bytes = match src.get(name)? {
        Some(b) => b,
        None if required => anyhow::bail!("cannot read {}: no such file", path.display()),
        None => return Ok(Vec::new()),
    };
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    let headers = r.headers().with_context(|| format!("{}: no header row", path.display()))?.clone();
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<T>().enumerate() {
        let at = || format!("{}: row {}", path.display(), i + 2);
        let row = row.map_err(|e| {
            // Name the column a value could not be read from, when the reader knows it.
            let column = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.field().and_then(|f| headers.get(f as usize)),
                _ => None,
            };
            match column {
                Some(c) => anyhow::anyhow!("{}, column {c}: {e}", at()),
                None => anyhow::anyhow!("{}: {e}", at()),
            }
        })?;
        check(&row, "column", at)?;
        rows.push(row);
    }
    Ok(rows)
}

/// Reads one report folder.
pub(crate) fn read(dir: &Path) -> Result<Folder> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a folder", dir.display());
    }
    parse(&Disk(dir), dir)
}

/// Reads a folder given as its files' bytes by name (`meta.json`, `summary.csv`, …), then
/// renders its report.html: what `mcprobe report` does with a folder, for the fuzz target
/// (`fuzz/fuzz_targets/folder.rs`). An error for a folder it refuses; never a panic or a hang.
pub fn report_from_files(files: &BTreeMap<String, Vec<u8>>) -> Result<String> {
    let folder = parse(files, Path::new("fuzz"))?;
    crate::output::html::page::render(&folder)
}

/// Folders of the commands whose runs `report` does not read, by a file only they write.
const OTHER_FOLDERS: [(&str, &str); 2] = [("maxrate.csv", "max-rate"), ("streams.csv", "watch")];

fn parse(src: &dyn Source, dir: &Path) -> Result<Folder> {
    let meta_path = dir.join(crate::output::meta::FILE);
    if src.get(crate::output::meta::FILE)?.is_none() {
        if let Some((file, cmd)) = OTHER_FOLDERS.into_iter().find(|(f, _)| src.get(f).ok().flatten().is_some()) {
            anyhow::bail!(
                "{}: a folder of `mcprobe {cmd}` ({file}), whose report.html is already in it; `mcprobe report` reads the folders of probe, mesh and demo",
                dir.display()
            );
        }
    }
    let meta = src
        .get(crate::output::meta::FILE)?
        .with_context(|| format!("cannot read {}: no such file", meta_path.display()))
        .and_then(|text| RunMeta::parse(&text, &meta_path))
        .with_context(|| format!("{}: not a report folder of mcprobe 0.1 or later", dir.display()))?;
    check(&meta, "field", || meta_path.display().to_string())?;
    if meta.report_interval_s <= 0.0 {
        anyhow::bail!("{}, field report_interval_s: 0 is not an interval", meta_path.display());
    }
    let mut summary: Vec<SummaryRec> = read_csv(src, dir, "summary.csv", true)?;
    // Names as the responders gave them (the files neutralise formula-like cells).
    for r in &mut summary {
        r.responder = crate::output::csv::unneutralise(&r.responder).to_string();
    }
    let mut rtt = BTreeMap::new();
    for r in summary.iter().filter(|r| r.received > 0) {
        let tag = r.tag();
        let name = format!("rtt.{tag}.hgrm");
        if let Some(d) = read_hgrm(src, &dir.join(&name), &name)? {
            rtt.insert(tag, d);
        }
    }
    Ok(Folder {
        dir: dir.to_path_buf(),
        meta,
        summary,
        intervals: read_csv(src, dir, "intervals.csv", false)?,
        outages: read_csv(src, dir, "outages.csv", false)?,
        rtt,
        findings: read_findings(src, dir)?,
        groups: read_csv(src, dir, "groups.csv", false)?,
    })
}

/// The findings of the folder's `report.json` (none in folders written before it existed).
fn read_findings(src: &dyn Source, dir: &Path) -> Result<Vec<Said>> {
    #[derive(serde::Deserialize)]
    struct Report {
        findings: Vec<Said>,
    }
    let path = dir.join(crate::output::json::FILE);
    let Ok(Some(text)) = src.get(crate::output::json::FILE) else { return Ok(Vec::new()) };
    let report: Report =
        serde_json::from_slice(&text).with_context(|| format!("{}: not mcprobe's JSON report", path.display()))?;
    Ok(report.findings)
}

/// Reads the percentile rows of an `.hgrm` file (None when there is none).
fn read_hgrm(src: &dyn Source, path: &Path, name: &str) -> Result<Option<Distribution>> {
    let Ok(Some(bytes)) = src.get(name) else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2).filter(|(_, l)| !l.starts_with('#') && !l.is_empty()) {
        let mut cols = line.split_whitespace();
        let mut next = || cols.next().and_then(|c| c.parse::<f64>().ok());
        let (Some(v), Some(q), Some(n)) = (next(), next(), next()) else {
            anyhow::bail!("{} line {}: not a percentile row", path.display(), i + 1)
        };
        for (column, x, b) in [("Value", v, US), ("Percentile", q, QUANTILE), ("TotalCount", n, COUNT)] {
            if !b.holds(x) {
                anyhow::bail!("{} line {}, column {column}: {} is not {}", path.display(), i + 1, shown(x), b.what);
            }
        }
        rows.push((v, q, n as u64));
    }
    Ok(Some(rows))
}
