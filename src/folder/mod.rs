//! A report folder (`--out`): writing it ([`csv`], [`hdr`], [`meta`]), reading it back
//! ([`read`]) and turning folders into report.html ([`report`]), in one place. The renderers of
//! [`crate::output`] make the rows and pages; this module puts them on disk.

pub(crate) mod csv;
pub(crate) mod hdr;
pub(crate) mod meta;
pub(crate) mod read;
pub(crate) mod report;

pub use csv::remove_unfinished;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::findings::Path as ProbePath;
use crate::output::meta::{run_id, RunMeta};
use crate::run::Outcome;
use crate::stats::IntervalRow;
use hdr::HlogBody;

/// The interval log being gathered while a run goes on; shared with the row sink.
pub(crate) type Hlog = Arc<Mutex<HlogBody>>;

pub(crate) fn hlog(report_interval: std::time::Duration) -> Hlog {
    Arc::new(Mutex::new(HlogBody::new(report_interval)))
}

/// Adds a batch of closed multicast intervals to the log.
pub(crate) fn add_intervals(hlog: &Hlog, rows: &[IntervalRow]) -> Result<()> {
    hlog.lock().unwrap_or_else(|e| e.into_inner()).add(rows, ProbePath::Multicast)
}

/// Writes the HdrHistogram files, `meta.json` listing every file of the run (`csvs` and these),
/// and with `html` the folder's `report.html`. Returns the paths written, `report.html` last.
pub(crate) fn finish(dir: &Path, o: &mut Outcome, hlog: Hlog, csvs: &[PathBuf], html: bool) -> Result<Vec<PathBuf>> {
    let body = Arc::into_inner(hlog).context("the interval log is still in use")?;
    let run_id = run_id(o);
    let mut written = hdr::write_files(dir, o, body.into_inner().unwrap_or_else(|e| e.into_inner()), &run_id)?;
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut m = RunMeta::of(o, host, std::env::args().collect());
    let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
    m.files = csvs.iter().chain(&written).filter_map(name).collect();
    if html {
        m.files.push(crate::output::html::REPORT.to_string());
    }
    written.push(m.write(dir)?);
    if html {
        written.push(report::write_report(&[dir.to_path_buf()], dir)?.html);
    }
    Ok(written)
}
