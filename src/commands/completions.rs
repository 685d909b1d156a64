//! `mcprobe completions SHELL`: generated from the clap definition, so completions never
//! disagree with `--help`.

use anyhow::Result;
use clap::CommandFactory;

use super::man::write_stdout;
use crate::cli::{Cli, CompletionsArgs};

pub(crate) fn completions(a: &CompletionsArgs) -> Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "mcprobe", &mut out);
    write_stdout(&out)
}
