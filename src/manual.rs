//! `mcprobe completions SHELL` and `mcprobe man`: generated from the clap definition, so they
//! never disagree with `--help`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};

use crate::cli::Cli;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mcprobe completions bash > /etc/bash_completion.d/mcprobe
  mcprobe completions zsh > ~/.zfunc/_mcprobe")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(a: &CompletionsArgs) -> Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "mcprobe", &mut out);
    write_stdout(&out)
}

pub fn man() -> Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).context("cannot render the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<i32> {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(crate::app::EXIT_OK),
    }
}
