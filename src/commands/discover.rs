//! `mcprobe discover`: a burst of probes 20 ms apart, a short wait, the responders that answered.

use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::{emit, exit, run_probe};
use crate::cli::DiscoverArgs;
use crate::config;
use crate::output;

pub(crate) fn discover(args: &DiscoverArgs, stop: &AtomicBool) -> Result<i32> {
    let setup = config::discover(args)?;
    let probed = run_probe(&setup, stop, None, |_, _| Ok(()))?;
    let (found, json) = (&probed.found, setup.output.json);
    emit(|out| if json { output::write_json(out, found) } else { output::write_census(out, found) })?;
    let (code, lines) = exit::of_run(found, setup.thresholds);
    lines.iter().for_each(|l| eprintln!("{l}"));
    Ok(probed.code(code))
}
