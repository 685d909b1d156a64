//! `mcprobe max-groups`: per responder, the largest number of groups it can join and still
//! receive every one of them, and how it fails beyond that (RFC 3918 section 7.1, group
//! capacity, per receiver).
//!
//! The responders are remote: the prober cannot make them join. Each responder ramps its own
//! memberships (`respond --groups RANGE --ramp STEP/PERIOD`) and says in its acks how many
//! groups it has joined, what the kernel refused and how many probes of the *canary* (a group
//! of the range nobody joins) reached its interface. The prober sends to every group of the
//! range and to the canary, round robin, and cuts the run into steps; per step and responder it
//! hands an [`judge::Observation`] to the judge.
//!
//! What a full group table looks like from a receiver (measured on Linux bridges,
//! results/groups-capacity-lab-2026-12-02.md):
//! - the bridge's table (`mcast_hash_max`) full: the bridge turns snooping off and floods every
//!   group to every port, until someone turns it back on. Every joined group is still
//!   reached; only the canary, which nobody joined, shows it: [`judge::Failure::SnoopingFlooded`];
//! - a per-port limit (`mcast_max_groups`, and most hardware switches): the groups beyond it
//!   are not forwarded at all: [`judge::Failure::NewGroupsDropped`];
//! - the responder's own kernel refusing a membership (`ENOBUFS` past
//!   `net.ipv4.igmp_max_memberships` or `net.core.optmem_max` on one socket, `EMFILE` past the
//!   open-file limit): [`judge::Failure::HostLimit`], a limit of that host, not of the network.
//!
//! - [`steps`]: acks to steps (pure);
//! - [`judge`]: steps to a verdict per responder (pure);
//! - this module: the canary (pure);
//! - [`driver`]: the engine, one prober session per step.

pub(crate) mod driver;
pub(crate) mod judge;
pub(crate) mod steps;

use std::net::IpAddr;

/// The canary when none is given: the address right after the range's highest group, if it is
/// a multicast address of the same family and not in the range (so nobody ramping the range
/// joins it).
pub(crate) fn default_canary(groups: &[IpAddr]) -> Option<IpAddr> {
    let top = groups.iter().copied().max()?;
    let next = match top {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).checked_add(1)?.into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).checked_add(1)?.into()),
    };
    (next.is_multicast() && !groups.contains(&next)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_follows_the_range() {
        let v = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(default_canary(&[v("239.9.0.1"), v("239.9.0.2")]), Some(v("239.9.0.3")));
        assert_eq!(default_canary(&[v("ff15::1:ff")]), Some(v("ff15::1:100")));
        assert_eq!(default_canary(&[v("239.255.255.255")]), None, "240.0.0.0 is not multicast");
        assert_eq!(default_canary(&[]), None);
    }
}
