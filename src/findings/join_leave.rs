//! Join and leave delay per group (RFC 3918 §8.2, §6.2), from the latest figures each
//! responder's acks carried for each group (`respond --churn`; see `crate::stats::GroupDelays`):
//! a distribution over the groups (p50, p99, max) per responder, and what could not be measured
//! and why. Pure.

use crate::stats::{DelayClock, DelayFigure, GroupDelays};

use super::groups::GroupReach;

/// The distribution of one delay over the groups that have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Groups with a measured delay.
    pub groups: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// Nearest-rank quantiles of `values` (sorted here); `None` when empty.
pub fn spread(mut values: Vec<u64>) -> Option<Spread> {
    values.sort_unstable();
    let n = values.len();
    let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| Spread { groups: n, p50_ns: at(0.5), p99_ns: at(0.99), max_ns: values[n - 1] })
}

/// One responder's join and leave delays over its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinLeaveSummary {
    /// Joins measured, all groups together (each churn cycle of each group, and the first joins).
    pub joins: u64,
    pub join: Option<Spread>,
    pub leave: Option<Spread>,
    /// Groups whose latest join found the group already arriving, or whose latest leave left it
    /// arriving: the LAN floods them (no snooping, or no querier), so they have no delay.
    pub flooded: usize,
    /// Groups whose latest join saw no probe of the group at all.
    pub never_arrived: usize,
    /// Groups whose only join came before their probes started (the prober started after the
    /// responder): no delay.
    pub started_after: usize,
    /// Groups left and joined again at least once: their probes sent while they were left
    /// count as lost (by design, not the network's doing).
    pub churned: usize,
    /// The responder timed the joins from its system calls (no CAP_NET_RAW): two or more kernel ticks
    /// early, and no leave delays.
    pub syscall_clock: bool,
}

impl JoinLeaveSummary {
    /// The summary of `r`'s groups; `None` when its responder sent no join/leave figures.
    pub fn of(r: &GroupReach) -> Option<JoinLeaveSummary> {
        let told: Vec<&GroupDelays> = r.delays.iter().filter(|d| d.joins > 0).collect();
        if told.is_empty() {
            return None;
        }
        let measured = |f: DelayFigure| match f {
            DelayFigure::Measured(ns) => Some(ns),
            _ => None,
        };
        let flooded =
            |d: &&&GroupDelays| d.join == DelayFigure::AlreadyArriving || d.leave == DelayFigure::StillArriving;
        Some(JoinLeaveSummary {
            joins: told.iter().map(|d| u64::from(d.joins)).sum(),
            join: spread(told.iter().filter_map(|d| measured(d.join)).collect()),
            leave: spread(told.iter().filter_map(|d| measured(d.leave)).collect()),
            flooded: told.iter().filter(flooded).count(),
            never_arrived: told.iter().filter(|d| d.join == DelayFigure::NeverArrived).count(),
            churned: told.iter().filter(|d| d.joins > 1).count(),
            started_after: told.iter().filter(|d| d.join == DelayFigure::StartedAfter).count(),
            syscall_clock: told.iter().any(|d| d.clock == DelayClock::Syscall),
        })
    }
}

/// A figure's state as a CSV cell says it.
pub fn state(f: DelayFigure) -> &'static str {
    match f {
        DelayFigure::None => "none",
        DelayFigure::Measured(_) => "measured",
        DelayFigure::AlreadyArriving => "already_arriving",
        DelayFigure::NeverArrived => "never_arrived",
        DelayFigure::NoneAfter => "none_after",
        DelayFigure::StillArriving => "still_arriving",
        DelayFigure::NotMeasurable => "not_measurable",
        DelayFigure::StartedAfter => "probes_started_after",
    }
}

/// A clock as a CSV cell says it.
pub fn clock(c: DelayClock) -> &'static str {
    match c {
        DelayClock::Unknown => "",
        DelayClock::Interface => "interface",
        DelayClock::Syscall => "syscall",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Responder, ResponderId};
    use std::net::SocketAddr;

    fn d(joins: u32, join: DelayFigure, leave: DelayFigure) -> GroupDelays {
        GroupDelays { joins, join, leave, clock: DelayClock::Interface }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let s = spread((1..=200).collect()).unwrap();
        assert_eq!((s.groups, s.p50_ns, s.p99_ns, s.max_ns), (200, 100, 198, 200));
        assert_eq!(spread(vec![7]).map(|s| (s.p50_ns, s.p99_ns, s.max_ns)), Some((7, 7, 7)));
        assert_eq!(spread(Vec::new()), None);
    }

    #[test]
    fn a_summary_counts_what_has_no_delay_apart() {
        use DelayFigure::*;
        let r = GroupReach {
            responder: Responder { id: ResponderId(1), name: "h2".into(), addr: SocketAddr::from(([10, 77, 0, 2], 1)) },
            tallies: Vec::new(),
            delays: vec![
                d(2, Measured(1_000_000), Measured(400_000_000)),
                d(1, Measured(3_000_000), None),
                d(1, AlreadyArriving, StillArriving),
                d(1, NeverArrived, None),
                GroupDelays::default(),
            ],
        };
        let s = JoinLeaveSummary::of(&r).unwrap();
        assert_eq!((s.joins, s.flooded, s.never_arrived, s.syscall_clock, s.churned), (5, 1, 1, false, 1));
        assert_eq!(s.join.map(|j| (j.groups, j.p50_ns, j.max_ns)), Some((2, 1_000_000, 3_000_000)));
        assert_eq!(s.leave.map(|l| (l.groups, l.max_ns)), Some((1, 400_000_000)));
        assert_eq!(JoinLeaveSummary::of(&GroupReach { delays: Vec::new(), ..r }), Option::None);
    }
}
