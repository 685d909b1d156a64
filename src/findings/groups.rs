//! Which responder reached which group, in a `--groups` run (RFC 3918's per-group forwarding):
//! from the tallies [`crate::stats`] keeps per host and group (probe `k` went to group
//! `k % groups`). Pure: the outputs render it; none decides anything from their own figures.
//!
//! A group is *reached* by a responder when at least one of its probes was answered. The table
//! collapses a thousand groups to a line per responder ("h2: 998 of 1000 groups; missing
//! 239.1.3.7-239.1.3.8"); groups.csv keeps every (responder, group) pair.

use std::net::IpAddr;

use crate::stats::{GroupTally, HostStats, Run};

use super::{Responder, ResponderId};

/// One responder's answers per group, indexed as [`GroupsFinding::groups`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReach {
    pub responder: Responder,
    pub tallies: Vec<GroupTally>,
    /// Each group's latest join and leave delay, when its responder churns (`respond
    /// --churn`; see [`super::join_leave`]); empty otherwise.
    pub delays: Vec<crate::stats::GroupDelays>,
}

impl GroupReach {
    /// Groups with at least one answer.
    pub fn reached(&self) -> usize {
        self.tallies.iter().filter(|t| t.reached()).count()
    }

    /// Indexes of the groups it never answered on.
    pub fn missing(&self) -> Vec<usize> {
        self.tallies.iter().enumerate().filter(|(_, t)| !t.reached()).map(|(i, _)| i).collect()
    }

    /// Indexes of the groups it reached but lost probes on.
    pub fn lossy(&self) -> Vec<usize> {
        self.tallies.iter().enumerate().filter(|(_, t)| t.reached() && t.lost() > 0).map(|(i, _)| i).collect()
    }
}

/// The per-group figures of a run that probed more than one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupsFinding {
    /// Every group probed, in the order probes went to them.
    pub groups: Vec<IpAddr>,
    /// Probes each group got per second (the run's rate over the groups).
    pub per_group_rate: f64,
    /// One per multicast responder, in report order (name, address, id).
    pub responders: Vec<GroupReach>,
    /// Responders beyond the run's budget of tallies ([`crate::stats::MAX_GROUP_TALLIES`]):
    /// counted in the table, not per group.
    pub untracked: usize,
}

impl GroupsFinding {
    /// The figures of `run`'s responders over `groups`; `None` for a run of one group.
    pub fn of(run: &Run, groups: &[IpAddr], rate: f64) -> Option<GroupsFinding> {
        if groups.len() < 2 {
            return None;
        }
        let mut hosts: Vec<&HostStats> = run.hosts().iter().filter(|h| !h.groups.is_empty()).collect();
        let untracked = run.hosts().len() - hosts.len();
        hosts.sort_by(|a, b| (&a.name, a.addr, a.responder_id).cmp(&(&b.name, b.addr, b.responder_id)));
        let responders = hosts
            .into_iter()
            .map(|h| {
                let mut tallies = h.groups.clone();
                tallies.resize(groups.len(), GroupTally::default());
                let mut delays = h.join_leave.clone();
                if !delays.is_empty() {
                    delays.resize(groups.len(), crate::stats::GroupDelays::default());
                }
                GroupReach {
                    responder: Responder { id: ResponderId(h.responder_id), name: h.name.clone(), addr: h.addr },
                    tallies,
                    delays,
                }
            })
            .collect();
        Some(GroupsFinding {
            groups: groups.to_vec(),
            per_group_rate: rate / groups.len() as f64,
            responders,
            untracked,
        })
    }

    /// Groups no responder reached, while at least one responder reached some group: what the
    /// network (or this host's route) did not forward to anyone.
    pub fn reached_by_none(&self) -> Vec<usize> {
        if self.responders.iter().all(|r| r.reached() == 0) {
            return Vec::new();
        }
        (0..self.groups.len()).filter(|&g| self.responders.iter().all(|r| !r.tallies[g].reached())).collect()
    }

    /// The groups at `indexes` as ranges of consecutive addresses ("239.1.3.7-239.1.3.9"), at
    /// most `max` of them; the count left out is returned beside.
    pub fn ranges(&self, indexes: &[usize], max: usize) -> (Vec<String>, usize) {
        let mut runs: Vec<(IpAddr, IpAddr)> = Vec::new();
        for &i in indexes {
            let g = self.groups[i];
            match runs.last_mut() {
                Some((_, end)) if next(*end) == Some(g) => *end = g,
                _ => runs.push((g, g)),
            }
        }
        let left = runs.len().saturating_sub(max);
        let shown =
            runs.into_iter().take(max).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        (shown, left)
    }
}

/// The address after `a`, if any.
fn next(a: IpAddr) -> Option<IpAddr> {
    match a {
        IpAddr::V4(v) => u32::from(v).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v) => u128::from(v).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn reach(answered: &[u32]) -> GroupReach {
        GroupReach {
            responder: Responder { id: ResponderId(1), name: "h".into(), addr: SocketAddr::from(([10, 77, 0, 2], 1)) },
            tallies: answered.iter().map(|&a| GroupTally { probes: 4, answered: a, ..GroupTally::default() }).collect(),
            delays: Vec::new(),
        }
    }

    fn finding(rs: Vec<GroupReach>, n: usize) -> GroupsFinding {
        let groups = (0..n).map(|i| IpAddr::V4([239, 1, 0, i as u8].into())).collect();
        GroupsFinding { groups, per_group_rate: 1.0, responders: rs, untracked: 0 }
    }

    #[test]
    fn missing_groups_collapse_to_ranges() {
        let r = reach(&[4, 0, 0, 4, 0, 3]);
        assert_eq!((r.reached(), r.missing(), r.lossy()), (3, vec![1, 2, 4], vec![5]));
        let f = finding(vec![r.clone()], 6);
        assert_eq!(f.ranges(&r.missing(), 10), (vec!["239.1.0.1-239.1.0.2".to_string(), "239.1.0.4".into()], 0));
        assert_eq!(f.ranges(&r.missing(), 1), (vec!["239.1.0.1-239.1.0.2".to_string()], 1));
    }

    #[test]
    fn groups_nobody_reached() {
        let f = finding(vec![reach(&[4, 0, 4]), reach(&[4, 0, 0])], 3);
        assert_eq!(f.reached_by_none(), vec![1]);
        // Nothing reached at all is the silence finding's, not a per-group one.
        assert!(finding(vec![reach(&[0, 0, 0])], 3).reached_by_none().is_empty());
    }
}
