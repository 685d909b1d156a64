//! `mcprobe max-groups`: the group capacity search, a line per step on stderr, the result on
//! stdout.

use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::{exit, iface_label};
use crate::cli::MaxGroupsArgs;
use crate::config;
use crate::maxgroups::driver::{self, Event};
use crate::output::max_groups as output;

/// `mcprobe max-groups`.
pub(crate) fn max_groups(args: &MaxGroupsArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config::max_groups(args)?;
    if !args.quiet {
        eprintln!(
            "searching the group capacity over {} ({} … ) port {}, canary {}, via {}: steps of {}, {} of each group a step",
            crate::output::counted(cfg.range as u64, "group", "groups"),
            cfg.probe.groups[0],
            cfg.probe.port,
            cfg.canary(),
            iface_label(&cfg.probe.iface, cfg.probe.group),
            crate::output::progress::human(cfg.step),
            crate::output::counted(cfg.rounds as u64, "probe", "probes")
        );
    }
    let outcome = driver::run(&cfg, stop, |ev| match ev {
        Event::StepDone { index, step, heard } => {
            if !args.quiet {
                eprintln!("{}", output::step_line(index, step, heard));
            }
        }
    })?;
    if args.json {
        output::write_json(&mut std::io::stdout().lock(), &outcome, cfg.range)?;
    } else {
        print!("{}", output::result(&outcome, cfg.range));
    }
    let below = args.min_groups.is_some_and(|m| outcome.capacities.iter().any(|c| c.worked < m));
    Ok(if outcome.capacities.is_empty() || below { exit::THRESHOLD } else { exit::OK })
}
