//! The CSV files of a report folder: `summary.csv` and `outages.csv` at the end, `intervals.csv`
//! and `probes.csv` as the run goes (the rows are [`crate::output::csv`]'s). Every file appears
//! complete or not at all: it is written to a temporary file and renamed into place.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::findings::Findings;
use crate::output::csv::{OutageRow, SummaryRow};
use crate::stats::{IntervalRow, RawRow};

/// A CSV file being written under a temporary name; [`AtomicCsv::commit`] renames it into place.
/// Its first column is the run id (the session id): every file of a folder says which run wrote
/// it.
pub(crate) struct AtomicCsv {
    writer: csv::Writer<tempfile::NamedTempFile>,
    path: PathBuf,
    run_id: String,
    /// A row serialized, before its cells are neutralised (reused).
    scratch: Vec<u8>,
}

/// `row` as a CSV record whose cells a spreadsheet will not run (see
/// [`crate::output::csv::neutralise`]): serialized, read back as cells, each neutralised.
fn safe_record<T: Serialize>(row: &T, scratch: &mut Vec<u8>) -> Result<csv::StringRecord> {
    scratch.clear();
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(std::mem::take(scratch));
    w.serialize(row)?;
    *scratch = w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(scratch.as_slice());
    let mut record = csv::StringRecord::new();
    r.read_record(&mut record)?;
    Ok(record.iter().map(|c| crate::output::csv::neutralise(c)).collect())
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
        let writer = csv::WriterBuilder::new().has_headers(false).from_writer(tmp);
        Ok(AtomicCsv { writer, path: dir.join(name), run_id: format!("{run_id:016x}"), scratch: Vec::new() })
    }

    pub(crate) fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        let record = safe_record(&(&self.run_id, row), &mut self.scratch)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.writer.write_record(&record).with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub(crate) fn commit(self) -> Result<PathBuf> {
        let tmp = self.writer.into_inner().map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?;
        tmp.as_file().sync_all().ok();
        // Reports are for reading: rw-r--r--, not the temporary file's rw-------.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).ok();
        tmp.persist(&self.path).with_context(|| format!("cannot rename into {}", self.path.display()))?;
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

/// Writes `summary.csv`, `outages.csv` and, after a querier watch, `queriers.csv`; returns
/// their paths.
pub(crate) fn write_final_csvs(dir: &FsPath, f: &Findings) -> Result<Vec<PathBuf>> {
    let rows: Vec<SummaryRow> = f.rows.iter().map(|r| SummaryRow::of(r, &f.run)).collect();
    let outages: Vec<OutageRow> = f.outages.iter().map(OutageRow::of).collect();
    let id = f.run.session;
    let mut paths = vec![write_all(dir, "summary.csv", id, &rows)?, write_all(dir, "outages.csv", id, &outages)?];
    if let Some(queriers) = f.querier.as_ref().and_then(crate::output::querier::csv_rows) {
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
