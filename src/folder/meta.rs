//! `meta.json` on disk, and the atomic file writes of a report folder: every file appears whole or
//! not at all (a temporary file in the folder, renamed into place readable by all).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::output::meta::{RunMeta, FILE, FORMAT};

impl RunMeta {
    /// Writes `dir/meta.json`, complete or not at all.
    pub(crate) fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(FILE);
        let mut tmp = tempfile::Builder::new()
            .prefix(".meta.json.")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        serde_json::to_writer_pretty(&mut tmp, self)?;
        writeln!(tmp)?;
        persist(tmp, &path)?;
        Ok(path)
    }

    /// Reads the bytes of `path`, a meta.json.
    pub(crate) fn parse(text: &[u8], path: &Path) -> Result<Self> {
        let meta: RunMeta =
            serde_json::from_slice(text).with_context(|| format!("{}: not a run's metadata", path.display()))?;
        if meta.format > FORMAT {
            anyhow::bail!("{}: format {} is newer than this mcprobe reads ({FORMAT})", path.display(), meta.format);
        }
        Ok(meta)
    }
}

/// Moves a finished temporary file into place, readable by all (rw-r--r--).
pub(crate) fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).ok();
    tmp.persist(path).with_context(|| format!("cannot rename into {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `dir/name` whole or not at all: a temporary file in the folder, renamed
/// into place readable by all.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    persist(tmp, &path)?;
    Ok(path)
}
