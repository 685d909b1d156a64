//! Reading a report folder back: the CSVs, `meta.json` and the RTT distributions of the `.hgrm`
//! files.
//! Only the columns the report shows are read, so older or newer folders with more columns
//! still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::findings::{Path as ProbePath, Verdict};
use crate::meta::RunMeta;

/// One row of summary.csv, as the report uses it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SummaryRec {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub path: ProbePath,
    pub expected_host: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub forward_lost: u64,
    /// Absent from folders written before responders reported their host drops.
    #[serde(default)]
    pub forward_host_drops: Option<u64>,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub late: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p90_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    pub jitter_us: Option<f64>,
    #[serde(default)]
    pub join_delay_ms: Option<f64>,
    pub verdict: Option<Verdict>,
    pub outages: u64,
}

impl SummaryRec {
    pub(crate) fn is_multicast(&self) -> bool {
        self.path == ProbePath::Multicast
    }

    /// Its histograms' tag (`NAME.ID8.PATH`).
    pub(crate) fn tag(&self) -> String {
        crate::hdr::tag(&self.responder, &self.responder_id, self.path)
    }

    /// The name a reader knows this responder by.
    pub(crate) fn label(&self) -> String {
        match (self.responder.is_empty(), self.responder_id.get(..8)) {
            (false, _) => self.responder.clone(),
            (true, Some(id)) => format!("({id})"),
            (true, None) => self.address.clone(),
        }
    }
}

/// One row of intervals.csv.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IntervalRec {
    pub interval_start_s: f64,
    pub responder_id: String,
    pub lost: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
}

/// One row of outages.csv.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OutageRec {
    pub responder_id: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
}

/// Everything the report reads from one folder.
#[derive(Debug)]
pub(crate) struct Folder {
    pub dir: PathBuf,
    pub meta: RunMeta,
    pub summary: Vec<SummaryRec>,
    pub intervals: Vec<IntervalRec>,
    pub outages: Vec<OutageRec>,
    /// Whole-run RTT distributions by tag (`NAME.ID8.PATH`), from the `.hgrm` files: the same
    /// figures as the sum of rtt.hlog's intervals, without decoding 60 000 histograms.
    pub rtt: BTreeMap<String, Distribution>,
}

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

impl Folder {
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            anyhow::bail!("{}: not a folder", dir.display());
        }
        let meta = RunMeta::read(dir)
            .with_context(|| format!("{}: not a report folder of mcprobe 0.1 or later", dir.display()))?;
        let summary: Vec<SummaryRec> = read_csv(dir, "summary.csv", true)?;
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
        })
    }

    /// The multicast rows that answered at least once.
    pub(crate) fn answered(&self) -> impl Iterator<Item = &SummaryRec> {
        self.summary.iter().filter(|r| r.is_multicast() && r.received > 0)
    }
}

/// One responder's whole-run distribution from its `.hgrm`: (RTT µs, quantile, count up to it).
pub(crate) type Distribution = Vec<(f64, f64, u64)>;

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
