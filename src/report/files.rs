//! The CSV files of `--out`: `summary.csv` and `outages.csv` at the end, `intervals.csv` and
//! `probes.csv` as the run goes. Every file appears complete or not at all: it is written to a
//! temporary file in the target folder and renamed into place.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::findings::{Findings, Outage, Row, RunFacts};
use crate::stats::{ns_to_us, IntervalRow, RawRow};

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One row of `summary.csv` (and of the JSON's `responders`): one responder on one path.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct SummaryRow {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    pub path: &'static str,
    pub expected_host: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub lost_after_first: u64,
    pub loss_after_first_pct: f64,
    pub forward_lost: u64,
    /// Of `forward_lost`: dropped by the responder's own host (full socket buffer) and by the
    /// network; empty when the responder does not report its drops.
    pub forward_host_drops: Option<u64>,
    pub forward_network_lost: Option<u64>,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub limited: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p90_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    pub rtt_stddev_us: Option<f64>,
    pub net_rtt_p50_us: Option<f64>,
    pub net_rtt_mean_us: Option<f64>,
    pub jitter_us: Option<f64>,
    pub first_ack_ms: Option<f64>,
    /// The responder's join delay, when it joined during the run.
    pub join_delay_ms: Option<f64>,
    pub ttl: u8,
    pub hops: Option<u8>,
    pub arrival: &'static str,
    pub verdict: Option<&'static str>,
    pub outages: u64,
    pub longest_outage_probes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub limited_tail: u64,
    pub restarts: u64,
    pub restart_gap_lost: u64,
    pub inconsistent_acks: u64,
    pub dwell_over_rtt: u64,
    /// Run-wide, the same on every row: acks of other sessions, and datagrams that were not
    /// valid acks, both ignored.
    pub run_foreign_acks: u64,
    pub run_invalid: u64,
}

impl SummaryRow {
    pub(crate) fn of(r: &Row, run: &RunFacts) -> Self {
        let f = &r.figures;
        let us = |ns: f64| round3(ns / 1000.0);
        let rtt = f.rtt;
        SummaryRow {
            responder: r.name().to_string(),
            responder_id: r.id().map_or(String::new(), |id| id.to_string()),
            address: match (&r.responder, r.expected_host) {
                (Some(x), _) => x.addr.to_string(),
                (None, Some(h)) => h.to_string(),
                (None, None) => String::new(),
            },
            path: r.path.as_str(),
            expected_host: r.expected_host.map(|h| h.to_string()),
            sent: f.sent,
            received: f.received,
            lost: f.lost,
            loss_pct: round3(f.loss_pct()),
            lost_after_first: f.lost_after_first,
            loss_after_first_pct: round3(f.loss_after_first_pct()),
            forward_lost: f.forward_lost,
            forward_host_drops: f.forward_host_drops,
            forward_network_lost: f.forward_host_drops.map(|h| f.forward_lost - h),
            return_lost: f.return_lost,
            unknown_lost: f.unknown_lost,
            limited: f.limited,
            duplicates: f.duplicates,
            reordered: f.reordered,
            late: f.late,
            rtt_min_us: rtt.map(|x| ns_to_us(x.min_ns)),
            rtt_mean_us: rtt.map(|x| us(x.mean_ns)),
            rtt_p50_us: rtt.map(|x| ns_to_us(x.p50_ns)),
            rtt_p90_us: rtt.map(|x| ns_to_us(x.p90_ns)),
            rtt_p99_us: rtt.map(|x| ns_to_us(x.p99_ns)),
            rtt_p999_us: rtt.map(|x| ns_to_us(x.p999_ns)),
            rtt_max_us: rtt.map(|x| ns_to_us(x.max_ns)),
            rtt_stddev_us: rtt.map(|x| us(x.stddev_ns)),
            net_rtt_p50_us: rtt.and_then(|x| x.net_p50_ns.map(ns_to_us)),
            net_rtt_mean_us: rtt.and_then(|x| x.net_mean_ns.map(us)),
            jitter_us: rtt.map(|x| us(x.jitter_ns)),
            first_ack_ms: f.first_ack_ns.map(|ns| round3(ns as f64 / 1e6)),
            join_delay_ms: f.join_delay_ns.map(|ns| round3(ns as f64 / 1e6)),
            ttl: f.ttl,
            hops: r.hops,
            arrival: if r.responder.is_some() { f.arrival.as_str() } else { "" },
            verdict: r.verdict.map(|v| v.as_str()),
            outages: f.outages,
            longest_outage_probes: f.longest_outage_probes,
            first_seq: f.first_seq,
            last_seq: f.last_seq,
            limited_tail: f.limited_tail,
            restarts: f.restarts,
            restart_gap_lost: f.restart_gap_lost,
            inconsistent_acks: f.inconsistent_acks,
            dwell_over_rtt: f.dwell_over_rtt,
            run_foreign_acks: run.foreign_acks,
            run_invalid: run.invalid,
        }
    }
}

/// One row of `outages.csv`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct OutageRow {
    pub responder: String,
    pub responder_id: String,
    /// Send time of the first unanswered probe, seconds after the first probe.
    pub start_s: f64,
    /// Send time of the first probe answered again; empty if the run ended first.
    pub end_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub probes_lost: u64,
    pub first_lost_seq: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: Option<u64>,
}

impl OutageRow {
    pub(crate) fn of(o: &Outage) -> Self {
        let ms3 = |d: std::time::Duration| (d.as_nanos() as f64 / 1e6).round() / 1e3;
        OutageRow {
            responder: o.name.clone(),
            responder_id: o.id.to_string(),
            start_s: ms3(o.start),
            end_s: o.end.map(ms3),
            duration_s: o.end.map(|e| ms3(e.saturating_sub(o.start))),
            probes_lost: o.probes_lost,
            first_lost_seq: o.first_lost_seq,
            start_unix_ns: o.start_unix_ns,
            end_unix_ns: o.end_unix_ns,
        }
    }
}

/// A CSV file being written under a temporary name; [`AtomicCsv::commit`] renames it into place.
/// Its first column is the run id (the session id): every file of a folder says which run wrote
/// it.
pub(crate) struct AtomicCsv {
    writer: csv::Writer<tempfile::NamedTempFile>,
    path: PathBuf,
    tmp_path: PathBuf,
    run_id: String,
}

/// Temporary files not yet renamed into place: a second Ctrl-C removes them before exiting, so
/// nothing half-written is left behind.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the temporary files of reports still being written (for an immediate exit).
pub fn remove_unfinished() {
    let files = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    for f in files.iter() {
        let _ = std::fs::remove_file(f);
    }
}

/// The header line of `T`'s CSV rows, taken from a default row, so that a file without rows
/// still says what its columns are.
fn header_line<T: Serialize + Default>() -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(T::default())?;
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
    Ok([b"run_id,".as_slice(), &bytes[..end]].concat())
}

impl AtomicCsv {
    /// Starts `dir/name` for rows of type `T`, its header already written.
    pub(crate) fn create<T: Serialize + Default>(dir: &FsPath, name: &str, run_id: u64) -> Result<Self> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        tmp.write_all(&header_line::<T>()?).with_context(|| format!("cannot write in {}", dir.display()))?;
        let tmp_path = tmp.path().to_path_buf();
        UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).push(tmp_path.clone());
        let writer = csv::WriterBuilder::new().has_headers(false).from_writer(tmp);
        Ok(AtomicCsv { writer, path: dir.join(name), tmp_path, run_id: format!("{run_id:016x}") })
    }

    pub(crate) fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        self.writer.serialize((&self.run_id, row)).with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub(crate) fn commit(self) -> Result<PathBuf> {
        let tmp = self.writer.into_inner().map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?;
        tmp.as_file().sync_all().ok();
        // Reports are for reading: rw-r--r--, not the temporary file's rw-------.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).ok();
        tmp.persist(&self.path).with_context(|| format!("cannot rename into {}", self.path.display()))?;
        UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != &self.tmp_path);
        Ok(self.path)
    }
}

fn write_all<T: Serialize + Default>(dir: &FsPath, name: &str, run_id: u64, rows: &[T]) -> Result<PathBuf> {
    let mut f = AtomicCsv::create::<T>(dir, name, run_id)?;
    for r in rows {
        f.write(r)?;
    }
    f.commit()
}

/// The names of the files a run writes into `--out`, besides one `.hgrm` per responder and path.
pub(crate) const RUN_FILES: [&str; 8] = [
    "summary.csv",
    "intervals.csv",
    "outages.csv",
    "probes.csv",
    "queriers.csv",
    "meta.json",
    "rtt.hlog",
    "report.html",
];

/// Whether `name` is a file a run writes into `--out`.
fn is_run_file(name: &str) -> bool {
    RUN_FILES.contains(&name) || name.ends_with(".hgrm")
}

/// Creates the output folder, or says clearly why it cannot, and removes the files an earlier
/// run left there (only the names a run writes), so that no file of another run (a `probes.csv`
/// of an earlier `--raw` run, the `.hgrm` of a responder gone since) stands beside this run's.
/// Returns the names removed.
pub(crate) fn prepare_dir(dir: &FsPath) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create the folder", dir.display()))?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("--out {}: cannot list the folder", dir.display()))?;
    let mut removed = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_run_file(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("--out {}: cannot replace {name}", dir.display()))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Writes `summary.csv`, `outages.csv` and, after a querier watch, `queriers.csv`; returns
/// their paths.
pub(crate) fn write_final_csvs(dir: &FsPath, f: &Findings) -> Result<Vec<PathBuf>> {
    let rows: Vec<SummaryRow> = f.rows.iter().map(|r| SummaryRow::of(r, &f.run)).collect();
    let outages: Vec<OutageRow> = f.outages.iter().map(OutageRow::of).collect();
    let id = f.run.session;
    let mut paths = vec![write_all(dir, "summary.csv", id, &rows)?, write_all(dir, "outages.csv", id, &outages)?];
    if let Some(queriers) = f.querier.as_ref().and_then(super::querier::csv_rows) {
        paths.push(write_all(dir, "queriers.csv", id, &queriers)?);
    }
    Ok(paths)
}

/// The files filled while the run goes on: `intervals.csv`, and `probes.csv` with `--raw`.
pub(crate) struct StreamedCsvs {
    intervals: AtomicCsv,
    raw: Option<AtomicCsv>,
}

impl StreamedCsvs {
    pub(crate) fn create(dir: &FsPath, raw: bool, run_id: u64) -> Result<Self> {
        let raw = if raw { Some(AtomicCsv::create::<RawRow>(dir, "probes.csv", run_id)?) } else { None };
        Ok(StreamedCsvs { intervals: AtomicCsv::create::<IntervalRow>(dir, "intervals.csv", run_id)?, raw })
    }

    pub(crate) fn write(&mut self, raw: &[RawRow], intervals: &[IntervalRow]) -> Result<()> {
        intervals.iter().try_for_each(|r| self.intervals.write(r))?;
        if let Some(f) = self.raw.as_mut() {
            raw.iter().try_for_each(|r| f.write(r))?;
        }
        Ok(())
    }

    pub(crate) fn commit(self) -> Result<Vec<PathBuf>> {
        let mut paths = vec![self.intervals.commit()?];
        if let Some(f) = self.raw {
            paths.push(f.commit()?);
        }
        Ok(paths)
    }
}
