//! `mcprobe doctor`: the facts of this host, the checks, and the report. Exit code 0 when nothing
//! was found, 1 with findings, 2 for usage errors.

use anyhow::Result;

use super::{emit, exit};
use crate::cli::doctor::DoctorArgs;
use crate::config;
use crate::doctor::{checks, gather};
use crate::output;

pub(crate) fn doctor(args: &DoctorArgs) -> Result<i32> {
    let (s, index) = config::doctor(args)?;
    let facts = gather::gather(&s, index);
    let report = checks::check(&s, &facts);
    emit(|out| {
        if args.json {
            output::doctor::write_json(out, &s, &report)
        } else {
            output::doctor::write_text(out, &s, &report)
        }
    })?;
    Ok(if report.findings.is_empty() { exit::OK } else { exit::THRESHOLD })
}
