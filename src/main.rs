use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use mcprobe::app;
use mcprobe::cli::{Cli, Command};

/// Set by the first Ctrl-C (or SIGTERM): the run stops sending, collects its acks and reports.
static STOP: AtomicBool = AtomicBool::new(false);
/// `--quiet`: the Ctrl-C handler says nothing either.
static QUIET: AtomicBool = AtomicBool::new(false);

fn main() {
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Command::Respond(a) => a.quiet,
        Command::Probe(a) => a.quiet,
        Command::Demo(a) => a.quiet,
        Command::Discover(_) | Command::Report(_) | Command::Completions(_) | Command::Man(_) => false,
        Command::Doctor(_) => false,
        Command::MaxRate(a) => a.quiet,
        Command::Mesh(a) => a.quiet,
        Command::Serve(a) => a.quiet,
    };
    QUIET.store(quiet, Ordering::Relaxed);
    let handler = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user wants out now, without half-written reports.
            mcprobe::report::remove_unfinished();
            std::process::exit(130);
        }
        if !QUIET.load(Ordering::Relaxed) {
            // The same handler serves Ctrl-C and SIGTERM: name neither.
            eprintln!("mcprobe: stopping and collecting the last acks; interrupt again to quit at once");
        }
    });
    if let Err(e) = handler {
        eprintln!("mcprobe: warning: cannot handle Ctrl-C ({e}); it will stop without a report");
    }
    let result = match &cli.command {
        Command::Respond(a) => app::respond(a, &STOP),
        Command::Probe(a) => app::probe(a, &STOP),
        Command::Discover(a) => app::discover(a, &STOP),
        Command::Demo(a) => app::demo(a, &STOP),
        Command::MaxRate(a) => mcprobe::maxrate::command::max_rate(a, &STOP),
        Command::Mesh(a) => mcprobe::mesh::command::mesh(a, &STOP),
        Command::Report(a) => app::report_cmd(a),
        Command::Serve(a) => mcprobe::serve::run(a, &STOP),
        Command::Completions(a) => mcprobe::manual::completions(a),
        Command::Man(a) => mcprobe::manual::man(a),
        Command::Doctor(a) => mcprobe::doctor::command::doctor(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        // A closed pipe (`mcprobe … | head`): the reader has what it wanted; end quietly, as
        // ripgrep does.
        Err(e) if is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("mcprobe: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
