use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use mcprobe::cli::Cli;
use mcprobe::commands;

/// Set by the first Ctrl-C (or SIGTERM): the run stops sending, collects its acks and reports.
static STOP: AtomicBool = AtomicBool::new(false);

fn main() {
    let cli = Cli::parse();
    // `--quiet`: the handler says nothing either. Commands that do not measure end at once.
    let first = commands::on_first_interrupt(&cli.command).filter(|_| !cli.command.quiet());
    let graceful = commands::on_first_interrupt(&cli.command).is_some();
    let handler = ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) || !graceful {
            // A second Ctrl-C: the user wants out now, without half-written reports.
            mcprobe::folder::remove_unfinished();
            std::process::exit(commands::exit::INTERRUPTED_TWICE);
        }
        // The same handler serves Ctrl-C and SIGTERM: the line names neither.
        if let Some(line) = first {
            eprintln!("{line}");
        }
    });
    if let Err(e) = handler {
        eprintln!("mcprobe: warning: cannot handle Ctrl-C ({e}); it will stop without a report");
    }
    let result = commands::run(&cli.command, &STOP);
    match result {
        Ok(code) => std::process::exit(code),
        // A closed pipe (`mcprobe … | head`): the reader has what it wanted; end quietly, as
        // ripgrep does.
        Err(e) if is_broken_pipe(&e) => std::process::exit(commands::exit::OK),
        Err(e) => {
            eprintln!("mcprobe: error: {e:#}");
            std::process::exit(commands::exit::USAGE);
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
