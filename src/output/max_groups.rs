//! `max-groups`' words: a line per step while it runs, and the result per responder.

use std::fmt::Write;

use crate::maxgroups::driver::{Heard, Outcome};
use crate::maxgroups::judge::{Failure, Step};

fn label(heard: &[Heard], id: crate::findings::ResponderId) -> String {
    heard.iter().find(|h| h.id == id).map_or_else(|| id.to_string(), |h| format!("{} ({})", h.name, h.addr.ip()))
}

/// One step, one line: per ramping responder, joined / reached and the canary.
pub(crate) fn step_line(index: u32, step: &Step, heard: &[Heard]) -> String {
    let mut line = format!("step {index}:");
    if step.responders.is_empty() {
        line.push_str(" no ramping responder answered");
    }
    for (id, o) in &step.responders {
        let canary = o.canary_seen.map_or("canary not watched".to_string(), |c| format!("canary {c}"));
        let refused = if o.refused > 0 { format!(", {} refused", o.refused) } else { String::new() };
        let _ =
            write!(line, " {}: {} of {} joined reached, {canary}{refused};", label(heard, *id), o.reached, o.joined);
    }
    line.trim_end_matches(';').to_string()
}

/// The result: per responder the most groups that worked and how it failed beyond.
pub(crate) fn result(out: &Outcome, range: usize) -> String {
    let mut s = format!("after {} steps:\n", out.steps.len());
    if out.capacities.is_empty() {
        s.push_str(
            "no responder ramped its groups: start them with `mcprobe respond --groups LIST --ramp STEP/PERIOD`\n",
        );
    }
    for c in &out.capacities {
        let _ = writeln!(
            s,
            "{}: {} groups worked; failure: {}: {}",
            label(&out.heard, c.id),
            c.worked,
            c.failure.as_str(),
            c.failure.explain()
        );
        if !c.confirmed {
            let _ = writeln!(s, "  (seen in the last step only: not confirmed)");
        }
        if !c.flood_watched {
            let _ = writeln!(
                s,
                "  (its canary was not watched: run it as root or with CAP_NET_RAW, or flooding goes unseen)"
            );
        }
        if matches!(c.failure, Failure::NoneUpTo { tried } if (tried as usize) < range) && !out.complete {
            let _ = writeln!(s, "  (the search stopped before it joined all {range} groups)");
        }
    }
    if out.capacities.iter().any(|c| c.failure.is_network()) {
        s.push_str(
            "A switch's group table also holds the groups the LAN's other hosts joined (each IPv6 host joins about \
             two solicited-node groups; a Linux bridge counts every group once, a per-port limit only that port's): \
             its size is the count that worked plus those.\n",
        );
    }
    for h in out.heard.iter().filter(|h| !h.ramping) {
        let _ = writeln!(
            s,
            "{}: answered but does not ramp (not started with --ramp): not searched",
            label(&out.heard, h.id)
        );
    }
    if out.interrupted {
        s.push_str("interrupted: the result covers the steps before Ctrl-C\n");
    }
    s
}
