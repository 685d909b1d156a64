//! `mcprobe man [SUBCOMMAND]`: the man page, generated from the clap definition, so it never
//! disagrees with `--help`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::exit;
use crate::cli::{Cli, ManArgs};

pub(crate) fn man(a: &ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    let page = match &a.command {
        None => cmd,
        Some(name) => {
            let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
            let Some(sub) = cmd.find_subcommand(name).cloned() else {
                anyhow::bail!("man {name}: no such subcommand; one of {}", names.join(", "));
            };
            // The page of `mcprobe serve` is mcprobe-serve(1), as git and cargo name theirs. clap
            // takes a &'static name; this command renders one page and exits.
            let page_name: &'static str = Box::leak(format!("mcprobe-{name}").into_boxed_str());
            // A subcommand has no version of its own: the page's header shows the program's.
            sub.name(page_name).version(crate::cli::VERSION)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out).context("cannot render the man page")?;
    write_stdout(&out)
}

/// Writes generated text to stdout; a closed pipe ends quietly.
pub(super) fn write_stdout(bytes: &[u8]) -> Result<i32> {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(exit::OK),
    }
}
