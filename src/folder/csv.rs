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
    out: std::io::BufWriter<tempfile::NamedTempFile>,
    path: PathBuf,
    run_id: String,
    /// One row serialized (reused).
    line: Vec<u8>,
}

/// Whether a cell of this serialized record starts with a character a spreadsheet reads as a
/// formula (see [`crate::output::csv::neutralise`]): only such rare records are parsed back and
/// neutralised cell by cell. Parsing every record back built a CSV reader per row, which held up
/// the ack receiver (it writes probes.csv) for over a second per 4 000 rows in a debug build.
fn may_need_neutralising(line: &[u8]) -> bool {
    let risky = |b: u8| matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r');
    let (mut quoted, mut start) = (false, true);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if start {
            start = false;
            if b == b'"' {
                quoted = true;
                if line.get(i + 1).copied().is_some_and(risky) {
                    return true;
                }
                i += 1;
                continue;
            }
            if risky(b) {
                return true;
            }
        }
        match b {
            b'"' if quoted && line.get(i + 1) == Some(&b'"') => i += 1,
            b'"' if quoted => quoted = false,
            b',' if !quoted => start = true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// `line` (one serialized record) with every cell neutralised, serialized again.
fn neutralised(line: &[u8]) -> Result<Vec<u8>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(line);
    let mut record = csv::StringRecord::new();
    r.read_record(&mut record)?;
    let safe: csv::StringRecord = record.iter().map(|c| crate::output::csv::neutralise(c)).collect();
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(&safe)?;
    w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))
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
        Ok(AtomicCsv {
            out: std::io::BufWriter::new(tmp),
            path: dir.join(name),
            run_id: format!("{run_id:016x}"),
            line: Vec::new(),
        })
    }

    pub(crate) fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        let what = || format!("cannot write {}", self.path.display());
        self.line.clear();
        {
            // A writer is cheap to build (unlike a reader, which builds its parser's automaton).
            let mut w = csv::WriterBuilder::new().has_headers(false).buffer_capacity(1024).from_writer(&mut self.line);
            w.serialize((&self.run_id, row)).with_context(what)?;
            w.flush().with_context(what)?;
        }
        if may_need_neutralising(&self.line) {
            let safe = neutralised(&self.line).with_context(what)?;
            self.out.write_all(&safe).with_context(what)
        } else {
            self.out.write_all(&self.line).with_context(what)
        }
    }

    pub(crate) fn commit(self) -> Result<PathBuf> {
        let tmp = self.out.into_inner().map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?;
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

/// Writes `summary.csv`, `outages.csv`, with `--groups` `groups.csv` and, after a querier watch,
/// `queriers.csv`; returns
/// their paths.
pub(crate) fn write_final_csvs(dir: &FsPath, f: &Findings) -> Result<Vec<PathBuf>> {
    let rows: Vec<SummaryRow> = f.rows.iter().map(|r| SummaryRow::of(r, &f.run)).collect();
    let outages: Vec<OutageRow> = f.outages.iter().map(OutageRow::of).collect();
    let id = f.run.session;
    let mut paths = vec![write_all(dir, "summary.csv", id, &rows)?, write_all(dir, "outages.csv", id, &outages)?];
    if let Some(g) = &f.groups {
        paths.push(write_all(dir, "groups.csv", id, &crate::output::csv::GroupRow::all(g))?);
    }
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

#[cfg(test)]
mod neutralise_tests {
    use super::*;

    #[test]
    fn only_records_with_a_risky_cell_start_are_parsed_back() {
        for (line, risky) in [
            (&b"a,b,1.5,-\n"[..], true),
            (b"ab,s-split,10.0.0.1:24242,\n", false),
            (b"x,=HYPERLINK(1),y\n", true),
            (b"x,\"=1,2\",y\n", true),
            (b"x,\"a,=b\",y\n", false),
            (b"x,\"a\"\"=b\",y\n", false),
            (b"@x\n", true),
            (b"x,\"\"\"=b\",y\n", false),
        ] {
            assert_eq!(may_need_neutralising(line), risky, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn written_rows_are_neutralised_where_a_spreadsheet_would_run_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = AtomicCsv::create::<(String, String, i64)>(dir.path(), "t.csv", 1).unwrap();
        f.write(&("=cmd|x".to_string(), "plain, with comma".to_string(), -5)).unwrap();
        f.write(&("ok".to_string(), "+cmd".to_string(), 7)).unwrap();
        f.write(&("n".to_string(), "+1".to_string(), 8)).unwrap();
        let text = std::fs::read_to_string(f.commit().unwrap()).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows,
            [
                "0000000000000001,'=cmd|x,\"plain, with comma\",-5",
                "0000000000000001,ok,'+cmd,7",
                "0000000000000001,n,+1,8"
            ]
        );
    }
}
