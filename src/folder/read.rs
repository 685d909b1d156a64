//! Reading a report folder back (into [`crate::output::html::data`]): the CSVs, `meta.json` and
//! the RTT distributions of the `.hgrm` files.
//! Only the columns the report shows are read, so older or newer folders with more columns
//! still load.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use crate::output::html::data::{Distribution, Folder};
use crate::output::meta::RunMeta;
use crate::output::words::Said;

fn read_csv<T: DeserializeOwned>(dir: &Path, name: &str, required: bool) -> Result<Vec<T>> {
    let path = dir.join(name);
    if !required && !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}: row {}", path.display(), i + 2)))
        .collect()
}

/// Reads one report folder.
pub(crate) fn read(dir: &Path) -> Result<Folder> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a folder", dir.display());
    }
    let meta = RunMeta::read(dir)
        .with_context(|| format!("{}: not a report folder of mcprobe 0.1 or later", dir.display()))?;
    let summary: Vec<crate::output::html::data::SummaryRec> = read_csv(dir, "summary.csv", true)?;
    let mut rtt = BTreeMap::new();
    for r in summary.iter().filter(|r| r.received > 0) {
        let tag = r.tag();
        if let Some(d) = read_hgrm(&dir.join(format!("rtt.{tag}.hgrm")))? {
            rtt.insert(tag, d);
        }
    }
    Ok(Folder {
        dir: dir.to_path_buf(),
        meta,
        summary,
        intervals: read_csv(dir, "intervals.csv", false)?,
        outages: read_csv(dir, "outages.csv", false)?,
        rtt,
        findings: read_findings(dir)?,
    })
}

/// The findings of the folder's `report.json` (none in folders written before it existed).
fn read_findings(dir: &Path) -> Result<Vec<Said>> {
    #[derive(serde::Deserialize)]
    struct Report {
        findings: Vec<Said>,
    }
    let path = dir.join(crate::output::json::FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("{}: not mcprobe's JSON report", path.display()))?;
    Ok(report.findings)
}

/// Reads the percentile rows of an `.hgrm` file (None when there is none).
fn read_hgrm(path: &Path) -> Result<Option<Distribution>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2).filter(|(_, l)| !l.starts_with('#') && !l.is_empty()) {
        let mut cols = line.split_whitespace();
        let mut next = || cols.next().and_then(|c| c.parse::<f64>().ok());
        match (next(), next(), next()) {
            (Some(v), Some(q), Some(n)) => rows.push((v, q, n as u64)),
            _ => anyhow::bail!("{} line {}: not a percentile row", path.display(), i + 1),
        }
    }
    Ok(Some(rows))
}
