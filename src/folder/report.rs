//! Writing report.html (and with several folders matrix.csv) from report folders: read back,
//! rendered by [`crate::output::html`], written whole.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::output::html::{merge, page, REPORT};

/// What `write_report` wrote.
pub(crate) struct Written {
    pub html: PathBuf,
    pub matrix: Option<PathBuf>,
}

impl Written {
    pub(crate) fn all(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.html).chain(&self.matrix)
    }
}

/// Reads `dirs` and writes `to/report.html` (with several folders also `to/matrix.csv`).
pub(crate) fn write_report(dirs: &[PathBuf], to: &Path) -> Result<Written> {
    let folders = dirs.iter().map(|d| super::read::read(d)).collect::<Result<Vec<_>>>()?;
    let (html, csv) = match folders.as_slice() {
        [one] => (page::render(one)?, None),
        many => {
            let m = merge::merge(many)?;
            (m.render()?, m.csv())
        }
    };
    std::fs::create_dir_all(to).with_context(|| format!("--out {}: cannot create the folder", to.display()))?;
    let matrix = csv.map(|text| super::meta::write_atomic(to, merge::MATRIX, text.as_bytes())).transpose()?;
    Ok(Written { html: super::meta::write_atomic(to, REPORT, html.as_bytes())?, matrix })
}
