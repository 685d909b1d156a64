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
        Command::Serve(a) => a.quiet,
        Command::Discover(_) | Command::Completions(_) | Command::Man(_) => false,
    };
    QUIET.store(quiet, Ordering::Relaxed);
    let handler = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user wants out now, without half-written reports.
            mcprobe::report::remove_unfinished();
            std::process::exit(130);
        }
        if !QUIET.load(Ordering::Relaxed) {
            eprintln!("mcprobe: stopping; Ctrl-C again to quit at once");
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
        Command::Serve(a) => mcprobe::serve::run(a, &STOP),
        Command::Completions(a) => mcprobe::manual::completions(a),
        Command::Man(a) => mcprobe::manual::man(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("mcprobe: error: {e:#}");
            std::process::exit(2);
        }
    }
}
