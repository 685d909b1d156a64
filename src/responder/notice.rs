//! The lines a responder prints about the probes it refuses, one per [`Event`] notice. Pure
//! rendering: the engine decides when a notice is due (see [`super::Notices`]).

use super::Event;

/// Seconds with millisecond precision: clock skews are seconds to hours.
fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// One line for a notice; the `Listening` and `NewSession` lines are the caller's.
pub(crate) fn describe(ev: &Event) -> String {
    match ev {
        Event::BadMac { from } => format!(
            "probes from {from} fail the key check (its prober has another key, or none; or they are copies sent to another group, port or source than their prober's): not answered, counted as unauthenticated; the prober is told with a notice"
        ),
        Event::Unbound { from } => format!(
            "probes from {from} are keyed by an older mcprobe, whose tags do not bind the group, port and source (a copy would be answered on any group): not answered, counted as unbound; upgrade mcprobe there"
        ),
        Event::ClockSkew { from, skew_ns, max_ns } => {
            let side = if *skew_ns >= 0 { "behind" } else { "ahead of" };
            format!(
                "probes from {from} are stamped {} {side} this host's clock, beyond --max-clock-skew {}: not answered, counted as stale; sync the clocks (NTP)",
                secs(skew_ns.unsigned_abs()),
                secs(*max_ns)
            )
        }
        Event::WrongSource { from, session, bound } => format!(
            "probes of session {session:016x} from {from}, but {bound} started it: not answered (a replay or a forged source), counted"
        ),
        Event::OverBudget { rate } => format!(
            "over the total budget of {rate} acks/s (--total-rate-limit): refusing probes, counted as rate-limited in the acks"
        ),
        Event::ProbesFiltered { from, new, total, cause } => {
            let why = match cause {
                Some(c) => c.clone(),
                None => "this host's firewall drops them (`mcprobe doctor --role responder --iface IFACE` reads its rules), or another filter before the socket".to_string(),
            };
            let since = if new == total { String::new() } else { format!(" ({total} in all)") };
            format!("{new} probes from {from} reached this host's interface but never the responder's socket{since}: {why}; its prober counts them as lost")
        }
        Event::JoinedElsewhere { arrive, joined, probes } => format!(
            "{probes} multicast probes for the group arrived on {arrive}, but the group is joined on {joined}: they never reach the socket; restart with --iface {arrive}"
        ),
        Event::TapUnavailable(why) | Event::Churn(why) => why.clone(),
        Event::Listening { id } => format!("listening (id {id:016x})"),
        Event::NewSession { session, from, .. } => format!("session {session:016x} from {from}"),
    }
}
