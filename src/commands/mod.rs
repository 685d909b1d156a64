//! The commands, one file each: thin drivers that take a configuration built by
//! [`crate::config`], run the engines, turn their outcome into findings and hand those to the
//! outputs. Each returns the exit code, decided in [`exit`]; every `Err` is a usage or
//! environment error, which `main` turns into exit code 2.

mod completions;
mod demo;
mod discover;
mod doctor;
pub mod exit;
mod man;
mod max_groups;
mod max_rate;
mod mesh;
mod probe;
pub(crate) mod querier;
mod report;
mod respond;
mod serve;
mod watch;

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};

use crate::cli::Command;
use crate::net::Iface;

pub(crate) use probe::run_probe;

/// Runs one command to its exit code.
pub fn run(cmd: &Command, stop: &AtomicBool) -> Result<i32> {
    match cmd {
        Command::Respond(a) => respond::respond(a, stop),
        Command::Probe(a) => probe::probe(a, stop),
        Command::Discover(a) => discover::discover(a, stop),
        Command::Demo(a) => demo::demo(a, stop),
        Command::MaxRate(a) => max_rate::max_rate(a, stop),
        Command::MaxGroups(a) => max_groups::max_groups(a, stop),
        Command::Mesh(a) => mesh::mesh(a, stop),
        Command::Report(a) => report::report(a),
        Command::Serve(a) => serve::serve(a, stop),
        Command::Watch(a) => watch::watch(a, stop),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => man::man(a),
        Command::Doctor(a) => doctor::doctor(a),
    }
}

/// What the first Ctrl-C (or SIGTERM) does to a command: a measuring command stops and still
/// reports (with this line, unless `--quiet`); the others end at once.
pub fn on_first_interrupt(cmd: &Command) -> Option<&'static str> {
    match cmd {
        Command::Probe(_)
        | Command::Discover(_)
        | Command::Demo(_)
        | Command::MaxRate(_)
        | Command::MaxGroups(_)
        | Command::Mesh(_) => Some("mcprobe: stopping and collecting the last acks; interrupt again to quit at once"),
        Command::Respond(_) => Some("mcprobe: stopping; interrupt again to quit at once"),
        Command::Serve(_) => Some("mcprobe: stopping the probes and the HTTP server; interrupt again to quit at once"),
        Command::Watch(_) => Some("mcprobe: stopping the watch and reporting; interrupt again to quit at once"),
        Command::Report(_) | Command::Completions(_) | Command::Man(_) | Command::Doctor(_) => None,
    }
}

/// Writes to stdout. A closed pipe (`mcprobe … | head`) comes back as an error that `main`
/// recognises and ends on quietly.
pub(crate) fn emit(f: impl FnOnce(&mut io::StdoutLock) -> io::Result<()>) -> Result<()> {
    let mut out = io::stdout().lock();
    f(&mut out).and_then(|()| out.flush()).context("cannot write to stdout")
}

/// The interface and the source address of `group`'s family on it, as the first line of a run
/// names them.
pub(crate) fn iface_label(iface: &Option<Iface>, group: IpAddr) -> String {
    match iface {
        Some(i) => {
            let route = if i.by_route { ", the route to the group" } else { "" };
            i.source_for(group).map_or(format!("{}{route}", i.name), |a| format!("{} ({a}){route}", i.name))
        }
        None => "the interface the kernel picks".to_string(),
    }
}
