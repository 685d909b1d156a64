//! `max-groups`' words: a line per step while it runs, and the result per responder.

use std::fmt::Write;
use std::io;

use serde::Serialize;

use crate::maxgroups::driver::{Heard, Outcome};
use crate::maxgroups::judge::{Capacity, Failure, Refusal, Step};

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

/// `max-groups --json`: the same result as [`result`], as data.
#[derive(Serialize)]
struct JsonSearch {
    /// Groups in the list searched (the canary not counted).
    groups: usize,
    steps: usize,
    /// Every ramping responder settled (not cut by --max-steps or Ctrl-C).
    complete: bool,
    interrupted: bool,
    /// Per ramping responder, weakest first.
    responders: Vec<JsonCapacity>,
    /// Responders that answered without ramping (not searched).
    not_ramping: Vec<JsonResponder>,
}

#[derive(Serialize)]
struct JsonResponder {
    responder: String,
    responder_id: String,
    address: String,
}

#[derive(Serialize)]
struct JsonCapacity {
    #[serde(flatten)]
    who: JsonResponder,
    /// The most groups joined in a step where every one arrived and no canary came.
    worked: u32,
    /// none, new-groups-dropped, snooping-flooded, no-snooping, host-limit.
    failure: &'static str,
    /// The failure in words, as the text says it.
    explanation: String,
    /// The groups joined when it failed (none: the most it joined); absent for no-snooping.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<u32>,
    /// new-groups-dropped: of `at`, the groups not forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<u32>,
    /// Probes of the canary that reached it (the flooding's evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    canary_probes: Option<u64>,
    /// host-limit: socket-memberships, files, memory or errno-N.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<String>,
    /// The failure held for --confirm steps in a row.
    confirmed: bool,
    /// Every step had its canary count: flooding would have been seen.
    flood_watched: bool,
}

fn who(heard: &[Heard], id: crate::findings::ResponderId) -> JsonResponder {
    let h = heard.iter().find(|h| h.id == id);
    JsonResponder {
        responder: h.map_or_else(String::new, |h| h.name.clone()),
        responder_id: id.to_string(),
        address: h.map_or_else(String::new, |h| h.addr.ip().to_string()),
    }
}

fn json_capacity(c: &Capacity, heard: &[Heard]) -> JsonCapacity {
    let (at, missing, canary_probes, refusal) = match c.failure {
        Failure::NoneUpTo { tried } => (Some(tried), None, None, None),
        Failure::NewGroupsDropped { at, missing } => (Some(at), Some(missing), None, None),
        Failure::SnoopingFlooded { at, canary } => (Some(at), None, Some(canary), None),
        Failure::NoSnooping { canary } => (None, None, Some(canary), None),
        Failure::HostLimit { at, refusal } => (Some(at), None, None, Some(refusal_tag(refusal))),
    };
    JsonCapacity {
        who: who(heard, c.id),
        worked: c.worked,
        failure: c.failure.as_str(),
        explanation: c.failure.explain(),
        at,
        missing,
        canary_probes,
        refusal,
        confirmed: c.confirmed,
        flood_watched: c.flood_watched,
    }
}

fn refusal_tag(r: Refusal) -> String {
    match r {
        Refusal::SocketMemberships => "socket-memberships".into(),
        Refusal::Files => "files".into(),
        Refusal::Memory => "memory".into(),
        Refusal::Other(e) => format!("errno-{e}"),
    }
}

/// `max-groups --json`.
pub(crate) fn write_json(w: &mut impl io::Write, out: &Outcome, range: usize) -> io::Result<()> {
    let doc = JsonSearch {
        groups: range,
        steps: out.steps.len(),
        complete: out.complete,
        interrupted: out.interrupted,
        responders: out.capacities.iter().map(|c| json_capacity(c, &out.heard)).collect(),
        not_ramping: out.heard.iter().filter(|h| !h.ramping).map(|h| who(&out.heard, h.id)).collect(),
    };
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}
