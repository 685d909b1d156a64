//! A report folder (`--out`): writing it ([`csv`], [`hdr`], [`meta`]), reading it back
//! ([`read`]) and turning folders into report.html ([`report`]), in one place. The renderers of
//! [`crate::output`] make the rows and pages; this module puts them on disk.
//!
//! How a run writes its folder ([`RunFolder`]), so that a crash, a kill or a full disk never
//! costs the earlier run's results and never leaves half a run behind:
//! - every file goes first into a staging folder inside it (`.mcprobe-staging-PID-RUNID`);
//! - only when the run is complete are the files moved into place (each a rename), the earlier
//!   run's files that this run did not write are removed, and the manifest (`.mcprobe-files`,
//!   the names this run wrote) is written last;
//! - a folder that holds files no mcprobe run wrote (the manifest does not list them) is refused
//!   unless `--force`, and then they are left alone;
//! - the first write error stops all writing at once and is said on stderr; the run goes on,
//!   prints its results, and ends with exit code 2; the earlier run's files stay as they were;
//! - a staging folder whose process is gone (a `kill -9`) is removed by the next run there.

pub(crate) mod csv;
pub(crate) mod hdr;
pub(crate) mod meta;
pub mod read;
pub(crate) mod report;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use crate::findings::{Findings, Path as ProbePath};
use crate::output::meta::{run_id, RunMeta};
use crate::run::Outcome;
use crate::stats::{IntervalRow, RawRow};
use hdr::HlogBody;

/// The manifest: which files of the folder the last run wrote, one name per line.
pub(crate) const MANIFEST: &str = ".mcprobe-files";
const STAGING_PREFIX: &str = ".mcprobe-staging-";

/// Staging folders of this process, removed by a second Ctrl-C before it exits at once.
static STAGING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// `--out` folders this process created: removed with them when they are left empty.
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes this process's unfinished report files (for an immediate exit): the earlier run's
/// files are untouched.
pub fn remove_unfinished() {
    for dir in STAGING.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
    // Only an empty one, deepest first: a folder that holds anything else was not only this
    // run's.
    for dir in CREATED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A report folder being written; see the module's documentation.
pub(crate) struct RunFolder {
    writer: Writer,
    /// The files the earlier run wrote (its manifest): replaced, or removed at the commit.
    earlier: Vec<String>,
}

/// Writes into a run's staging folder until the first error, from any thread.
#[derive(Clone)]
pub(crate) struct Writer {
    dir: PathBuf,
    staging: PathBuf,
    /// The first write error, if any: from then on nothing is written.
    failed: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Records the first write error and says it at once; later errors add nothing.
    pub(crate) fn fail(&self, e: &anyhow::Error) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            // Said as the user knows the folder: the file's name, not the staging path, and the
            // system's reason.
            let what = e.to_string().replace(&format!("{}/", self.staging.display()), "");
            // tempfile appends the temporary file's path to the system's reason: not the user's.
            let root = e.root_cause().to_string();
            let cause = root.split(" at path \"").next().unwrap_or(&root);
            let why = format!("--out {}: {what}: {cause}", self.dir.display());
            eprintln!(
                "mcprobe: error: {why}; nothing more is written there (the earlier run's files are kept), the run goes on and prints its results"
            );
            *failed = Some(why);
        }
    }

    /// Whether a write failed: writers stop at once.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Runs `write` on the staging folder unless a write failed before; records its error.
    pub(crate) fn write<T>(&self, write: impl FnOnce(&Path) -> Result<T>) -> Option<T> {
        if self.has_failed() {
            return None;
        }
        match write(&self.staging) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }
}

impl RunFolder {
    /// Opens `dir` for a run: creates it, removes what killed runs left, refuses foreign files
    /// unless `force`, and makes this run's staging folder.
    pub(crate) fn open(dir: &Path, force: bool, run: u64) -> Result<Self> {
        let shown = dir.display();
        // The folders this creates, deepest first (`--out a/b/new` may create all three).
        let created: Vec<PathBuf> =
            dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(dir).with_context(|| format!("--out {shown}: cannot create the folder"))?;
        CREATED.lock().unwrap_or_else(|e| e.into_inner()).extend(created);
        remove_leftovers(dir)?;
        let earlier = read_manifest(dir);
        let mut foreign: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("--out {shown}: cannot list the folder"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != MANIFEST && !n.starts_with(STAGING_PREFIX) && !earlier.contains(n))
            .collect();
        foreign.sort();
        if !foreign.is_empty() && !force {
            let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
            bail!(
                "--out {shown}: holds files that no mcprobe run wrote there ({}{more}); write into an empty or new folder, or add --force to write beside them (files of the same names are replaced)",
                foreign[..foreign.len().min(5)].join(", ")
            );
        }
        let staging = dir.join(format!("{STAGING_PREFIX}{}-{run:016x}", std::process::id()));
        std::fs::create_dir(&staging)
            .with_context(|| format!("--out {shown}: cannot create a folder in it for this run's files"))?;
        STAGING.lock().unwrap_or_else(|e| e.into_inner()).push(staging.clone());
        let writer = Writer { dir: dir.to_path_buf(), staging, failed: Arc::new(Mutex::new(None)) };
        Ok(RunFolder { writer, earlier })
    }

    /// The handle that writes this run's files (into the staging folder until the commit).
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.writer.dir
    }

    /// Moves the staged files into place, removes the earlier run's other files, writes the
    /// manifest; returns the paths now in the folder. After a failed write: removes the staging
    /// folder and returns the error (the earlier run's files stay).
    pub(crate) fn commit(self) -> Result<Vec<PathBuf>> {
        let Writer { dir, staging, failed } = &self.writer;
        STAGING.lock().unwrap_or_else(|e| e.into_inner()).retain(|d| d != staging);
        if let Some(why) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::fs::remove_dir_all(staging);
            bail!("the report folder was not written ({why})");
        }
        let shown = dir.display();
        let mut names: Vec<String> = std::fs::read_dir(staging)
            .with_context(|| format!("--out {shown}: cannot list this run's files"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let mut written = Vec::new();
        for n in &names {
            let to = dir.join(n);
            std::fs::rename(staging.join(n), &to)
                .with_context(|| format!("--out {shown}: cannot move {n} into place"))?;
            written.push(to);
        }
        for old in self.earlier.iter().filter(|o| !names.contains(o)) {
            let p = dir.join(old);
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&p)
                    .with_context(|| format!("--out {shown}: cannot remove {old} of the earlier run"))?;
            }
        }
        let mut manifest = String::from("# the files mcprobe's last run wrote in this folder; others are left alone\n");
        names.iter().for_each(|n| manifest.push_str(&format!("{n}\n")));
        meta::write_atomic(dir, MANIFEST, manifest.as_bytes())?;
        let _ = std::fs::remove_dir_all(staging);
        Ok(written)
    }
}

impl Drop for RunFolder {
    /// A folder dropped without a commit (an error on the way) leaves nothing behind.
    fn drop(&mut self) {
        if self.writer.staging.exists() {
            let _ = std::fs::remove_dir_all(&self.writer.staging);
        }
    }
}

/// The names the earlier run's manifest lists (none without a manifest).
fn read_manifest(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST)) else { return Vec::new() };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('/'))
        .map(String::from)
        .collect()
}

/// Removes the staging folders of runs whose process is gone.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING_PREFIX) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists() && p != std::process::id());
        if !alive {
            std::fs::remove_dir_all(e.path()).with_context(|| {
                format!("--out {}: cannot remove {name}, left by a run that was killed", dir.display())
            })?;
        }
    }
    Ok(())
}

/// The files a probing run streams while it goes on: `intervals.csv`, `probes.csv` with `--raw`,
/// and the interval histogram log. Shared with the prober's row sink.
pub(crate) struct Streams {
    csvs: Option<csv::StreamedCsvs>,
    hlog: HlogBody,
}

impl Streams {
    pub(crate) fn open(folder: &Writer, raw: bool, run: u64, report_interval: std::time::Duration) -> Arc<Mutex<Self>> {
        let csvs = folder.write(|dir| csv::StreamedCsvs::create(dir, raw, run));
        Arc::new(Mutex::new(Streams { csvs, hlog: HlogBody::new(report_interval) }))
    }

    /// Adds a batch of closed probes and intervals; a failure is the folder's, never the run's.
    pub(crate) fn add(&mut self, folder: &Writer, raw: &[RawRow], intervals: &[IntervalRow]) {
        let (csvs, hlog) = (&mut self.csvs, &mut self.hlog);
        folder.write(|_| {
            if let Some(c) = csvs.as_mut() {
                c.write(raw, intervals)?;
            }
            hlog.add(intervals, ProbePath::Multicast)
        });
    }
}

/// Writes the rest of a probing run into the staging folder: the final CSVs, `report.json`, the
/// HdrHistogram files and `meta.json`, then commits the folder and writes its `report.html`
/// (unless `html` is off). Returns the paths written; an error of the folder, never of the run.
pub(crate) fn finish_run(
    folder: RunFolder,
    streams: Arc<Mutex<Streams>>,
    found: &Findings,
    o: &mut Outcome,
    html: bool,
    prober_name: Option<&str>,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let Streams { csvs, hlog } = Arc::into_inner(streams)
        .context("the report's row writer is still in use")?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let run_id = run_id(o);
    folder.writer().write(|dir| {
        csv::write_final_csvs(dir, found)?;
        if let Some(c) = csvs {
            c.commit()?;
        }
        let mut json = Vec::new();
        crate::output::write_json(&mut json, found)?;
        meta::write_atomic(dir, crate::output::json::FILE, &json)?;
        hdr::write_files(dir, o, hlog, &run_id)?;
        extra(dir)?;
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let mut m = RunMeta::of(o, host, std::env::args().collect());
        m.prober_name = prober_name.map(String::from);
        m.loss_from_first_answer = found.run.from_first_answer;
        m.files = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        m.files.sort();
        if html {
            m.files.push(crate::output::html::REPORT.to_string());
        }
        m.write(dir)
    });
    let dir = folder.dir().to_path_buf();
    let mut written = folder.commit()?;
    if html {
        let page = report::write_report(std::slice::from_ref(&dir), &dir)?.html;
        // The page belongs to the run: the manifest lists it too.
        let mut manifest = std::fs::read_to_string(dir.join(MANIFEST)).unwrap_or_default();
        manifest.push_str(&format!("{}\n", crate::output::html::REPORT));
        meta::write_atomic(&dir, MANIFEST, manifest.as_bytes())?;
        written.push(page);
    }
    Ok(written)
}
