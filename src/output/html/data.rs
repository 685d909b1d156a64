//! A report folder as read back for report.html (see [`crate::folder::read`]): only the columns
//! the report shows, so older or newer folders with more columns still load.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::findings::{Path as ProbePath, Verdict};
use crate::output::meta::RunMeta;
use crate::output::words::Said;

/// A histogram's tag (and `.hgrm` name part): `NAME.ID8.PATH`, the name reduced to characters
/// that tags and file names allow, the id's first 8 hex digits telling restarts apart.
pub(crate) fn tag(name: &str, responder_id: &str, path: ProbePath) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let safe = if safe.is_empty() { "unnamed".to_string() } else { safe };
    format!("{safe}.{}.{}", responder_id.get(..8).unwrap_or(responder_id), path.as_str())
}

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
    /// Loss counted from this responder's first answer (older folders: absent).
    #[serde(default)]
    pub loss_after_first_pct: Option<f64>,
    pub forward_lost: u64,
    /// Absent from folders written before responders reported their host drops.
    #[serde(default)]
    pub forward_host_drops: Option<u64>,
    /// Absent from folders written before the loss after the latest report was told apart.
    #[serde(default)]
    pub forward_unreported: Option<u64>,
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
    /// The file's flat loss columns as the one loss breakdown.
    pub(crate) fn loss(&self) -> crate::stats::LossSplit {
        crate::stats::LossSplit::capped(
            self.forward_lost,
            self.forward_host_drops,
            self.forward_unreported.unwrap_or(0),
            self.return_lost,
            self.unknown_lost,
        )
    }

    pub(crate) fn is_multicast(&self) -> bool {
        self.path == ProbePath::Multicast
    }

    /// Its histograms' tag (`NAME.ID8.PATH`).
    pub(crate) fn tag(&self) -> String {
        tag(&self.responder, &self.responder_id, self.path)
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

/// One row of groups.csv (`--groups`): one responder on one group.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GroupRec {
    pub responder: String,
    pub responder_id: String,
    pub group: String,
    pub reached: bool,
    pub loss_pct: f64,
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
    /// Every finding in words, from `report.json` (empty in folders written before it existed).
    pub findings: Vec<Said>,
    /// With `--groups`: groups.csv, responders in report order, groups as probed.
    pub groups: Vec<GroupRec>,
}

/// One responder's whole-run distribution from its `.hgrm`: (RTT µs, quantile, count up to it).
pub(crate) type Distribution = Vec<(f64, f64, u64)>;

impl Folder {
    /// The loss of a row as its run judged it: from the first answer in a mesh's folder (hosts
    /// start at different times), from the first probe otherwise.
    pub(crate) fn judged_loss_pct(&self, r: &SummaryRec) -> f64 {
        match (self.meta.loss_from_first_answer, r.loss_after_first_pct) {
            (true, Some(p)) => p,
            _ => r.loss_pct,
        }
    }

    /// How merged reports name this run's prober: the name it gave itself (`mesh --name`), else
    /// its host name.
    pub(crate) fn prober_label(&self) -> &str {
        self.meta.prober_name.as_deref().unwrap_or(&self.meta.prober_host)
    }

    /// Whether any row is of the unicast path (with --hosts): the charts then say they show
    /// the multicast path only.
    pub(crate) fn has_unicast(&self) -> bool {
        self.summary.iter().any(|r| !r.is_multicast())
    }

    /// The multicast rows that answered at least once.
    pub(crate) fn answered(&self) -> impl Iterator<Item = &SummaryRec> {
        self.summary.iter().filter(|r| r.is_multicast() && r.received > 0)
    }
}
