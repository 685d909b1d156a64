//! Reading a report folder back: the CSVs, `meta.json` and the RTT distributions of `rtt.hlog`.
//! Only the columns the report shows are read, so older or newer folders with more columns
//! still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::meta::RunMeta;

/// One row of summary.csv, as the report uses it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SummaryRec {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub path: String,
    pub expected_host: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub forward_lost: u64,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub late: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p90_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    pub jitter_us: Option<f64>,
    pub verdict: Option<String>,
    pub outages: u64,
}

impl SummaryRec {
    pub fn is_multicast(&self) -> bool {
        self.path != "unicast"
    }

    /// The name a reader knows this responder by.
    pub fn label(&self) -> String {
        match (self.responder.is_empty(), self.responder_id.get(..8)) {
            (false, _) => self.responder.clone(),
            (true, Some(id)) => format!("({id})"),
            (true, None) => self.address.clone(),
        }
    }
}

/// One row of intervals.csv.
#[derive(Debug, Clone, Deserialize)]
pub struct IntervalRec {
    pub interval_start_s: f64,
    pub responder_id: String,
    pub sent: u64,
    pub lost: u64,
    pub rtt_p50_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
}

/// One row of outages.csv.
#[derive(Debug, Clone, Deserialize)]
pub struct OutageRec {
    pub responder_id: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
    pub probes_lost: u64,
}

/// Everything the report reads from one folder.
#[derive(Debug)]
pub struct Folder {
    pub dir: PathBuf,
    pub meta: RunMeta,
    pub summary: Vec<SummaryRec>,
    pub intervals: Vec<IntervalRec>,
    pub outages: Vec<OutageRec>,
    /// Whole-run RTT histograms (ns) by tag (`NAME.ID8.PATH`), the sum of the log's intervals.
    pub rtt: BTreeMap<String, Histogram<u32>>,
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
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            anyhow::bail!("{}: not a folder", dir.display());
        }
        Ok(Folder {
            dir: dir.to_path_buf(),
            meta: RunMeta::read(dir)
                .with_context(|| format!("{}: not a report folder of mcprobe 0.1 or later", dir.display()))?,
            summary: read_csv(dir, "summary.csv", true)?,
            intervals: read_csv(dir, "intervals.csv", false)?,
            outages: read_csv(dir, "outages.csv", false)?,
            rtt: read_hlog(&dir.join(crate::hdr::HLOG))?,
        })
    }

    /// The multicast rows that answered at least once.
    pub fn answered(&self) -> impl Iterator<Item = &SummaryRec> {
        self.summary.iter().filter(|r| r.is_multicast() && r.received > 0)
    }
}

/// Adds up the interval histograms of `rtt.hlog` per tag (an absent log gives none).
pub fn read_hlog(path: &Path) -> Result<BTreeMap<String, Histogram<u32>>> {
    let mut out: BTreeMap<String, Histogram<u32>> = BTreeMap::new();
    let Ok(bytes) = std::fs::read(path) else { return Ok(out) };
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("{}: unreadable line ({e:?})", path.display()))?;
        let LogEntry::Interval(h) = entry else { continue };
        let tag = h.tag().map_or(String::new(), |t| t.as_str().to_string());
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.encoded_histogram())
            .with_context(|| format!("{}: bad base64 under tag {tag}", path.display()))?;
        let hist: Histogram<u32> = de
            .deserialize(&mut raw.as_slice())
            .map_err(|e| anyhow::anyhow!("{}: bad histogram under tag {tag}: {e:?}", path.display()))?;
        match out.get_mut(&tag) {
            Some(sum) => sum.add(&hist).map_err(|e| anyhow::anyhow!("{}: tag {tag}: {e:?}", path.display()))?,
            None => {
                let mut sum = crate::hdr::rtt_histogram(&[]);
                sum.add(&hist).map_err(|e| anyhow::anyhow!("{}: tag {tag}: {e:?}", path.display()))?;
                out.insert(tag, sum);
            }
        }
    }
    Ok(out)
}
