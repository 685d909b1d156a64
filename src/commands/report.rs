//! `mcprobe report DIR [DIR...]`: report.html (and with several folders matrix.csv) from report
//! folders.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::{emit, exit};
use crate::cli::ReportArgs;

pub(crate) fn report(args: &ReportArgs) -> Result<i32> {
    let to =
        args.out
            .clone()
            .unwrap_or_else(|| if args.dirs.len() == 1 { args.dirs[0].clone() } else { PathBuf::from(".") });
    let written = crate::folder::report::write_report(&args.dirs, &to)?;
    emit(|o| written.all().try_for_each(|p| writeln!(o, "wrote {}", p.display())))?;
    Ok(exit::OK)
}
