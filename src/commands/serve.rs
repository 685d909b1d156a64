//! `mcprobe serve`: probes without end and serves the figures to Prometheus.

use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::exit;
use crate::cli::ServeArgs;

pub(crate) fn serve(args: &ServeArgs, stop: &AtomicBool) -> Result<i32> {
    crate::serve::run(crate::config::serve::from_args(args)?, stop)?;
    Ok(exit::OK)
}
