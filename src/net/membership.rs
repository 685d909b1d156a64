//! Join and leave delay per group (RFC 3918 §8.2 join delay, §6.2 leave delay), from what a
//! host's interface shows: the membership reports the host sends, and the datagrams to its
//! groups that reach it. Pure: bytes and kernel timestamps in, typed changes and delays out;
//! [`super::membership_tap`] reads the frames.
//!
//! - **Reports** ([`parse_report`]): IGMPv1/v2 reports and v2 leaves, IGMPv3 reports (RFC 3376
//!   §4.2), MLDv1 reports and dones, MLDv2 reports (RFC 3810 §5.2), each read into
//!   (group, [`Change::Join`] or [`Change::Leave`]) per group it names.
//! - **Delays** ([`DelayTracker`]): the join instant of a group is the *first* report carrying
//!   it as joined after a time it was not (the kernel repeats a state-change report robustness
//!   times, and answers queries with current-state reports: those repeats are not joins); the
//!   leave instant is the first report of it leaving. Join delay = first datagram of the group
//!   arriving after the join − the join report; leave delay = last datagram of the group
//!   arriving after the leave − the leave report.
//!
//! Where no switch filters (no snooping, or no querier, so the LAN floods multicast), the group
//! arrives before the join and keeps arriving after the leave: neither delay exists then, and
//! the tracker says so ([`Outcome::AlreadyArriving`], [`Outcome::StillArriving`]) instead of
//! giving a number.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a report says about a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Join,
    Leave,
}

/// One group a report names, and what it says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub group: IpAddr,
    pub change: Change,
}

const IGMP_V1_REPORT: u8 = 0x12;
const IGMP_V2_REPORT: u8 = 0x16;
const IGMP_V2_LEAVE: u8 = 0x17;
const IGMP_V3_REPORT: u8 = 0x22;
const MLD_V1_REPORT: u8 = 131;
const MLD_V1_DONE: u8 = 132;
const MLD_V2_REPORT: u8 = 143;

/// RFC 3376 §4.2.12 / RFC 3810 §5.2.12 record types.
const MODE_IS_INCLUDE: u8 = 1;
const MODE_IS_EXCLUDE: u8 = 2;
const CHANGE_TO_INCLUDE: u8 = 3;
const CHANGE_TO_EXCLUDE: u8 = 4;
const ALLOW_NEW_SOURCES: u8 = 5;
const BLOCK_OLD_SOURCES: u8 = 6;

/// What a group record of type `kind` with `sources` sources says: EXCLUDE (any-source
/// membership, whatever it excludes) and INCLUDE with sources (source-specific) are
/// memberships; INCLUDE of nothing is none. ALLOW adds sources (a source-specific join);
/// BLOCK removes them, read as a leave: true of a source-specific member giving up its
/// source, which is how a host leaves an SSM channel. (A BLOCK can also mean an any-source
/// member excluding one more source; mcprobe never does that.)
fn record_change(kind: u8, sources: usize) -> Option<Change> {
    match kind {
        MODE_IS_EXCLUDE | CHANGE_TO_EXCLUDE | ALLOW_NEW_SOURCES => Some(Change::Join),
        MODE_IS_INCLUDE | CHANGE_TO_INCLUDE if sources > 0 => Some(Change::Join),
        MODE_IS_INCLUDE | CHANGE_TO_INCLUDE | BLOCK_OLD_SOURCES => Some(Change::Leave),
        _ => None,
    }
}

/// The membership changes in a frame (from its network header on) that is an IGMP or MLD
/// report; empty for anything else (queries, other ICMPv6, truncated or malformed reports: a
/// record running past the end stops the reading there).
pub fn parse_report(frame: &[u8]) -> Vec<Membership> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => parse_igmp(frame),
        Some(6) => parse_mld(frame),
        _ => Vec::new(),
    }
}

fn v4_at(b: &[u8], o: usize) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(*b.get(o)?, *b.get(o + 1)?, *b.get(o + 2)?, *b.get(o + 3)?))
}

fn v6_at(b: &[u8], o: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

fn parse_igmp(frame: &[u8]) -> Vec<Membership> {
    let mut out = Vec::new();
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    if ihl < 20 || frame.len() < ihl + 8 || frame[9] != 2 {
        return out;
    }
    let igmp = &frame[ihl..];
    let one = |change| v4_at(igmp, 4).map(|g| Membership { group: IpAddr::V4(g), change });
    match igmp[0] {
        IGMP_V1_REPORT | IGMP_V2_REPORT => out.extend(one(Change::Join)),
        IGMP_V2_LEAVE => out.extend(one(Change::Leave)),
        IGMP_V3_REPORT => {
            let records = usize::from(u16::from_be_bytes([igmp[6], igmp[7]]));
            let mut at = 8;
            for _ in 0..records {
                let Some(head) = igmp.get(at..at + 8) else { break };
                let (kind, aux, sources) =
                    (head[0], usize::from(head[1]), usize::from(u16::from_be_bytes([head[2], head[3]])));
                let len = 8 + 4 * sources + 4 * aux;
                if igmp.len() < at + len {
                    break;
                }
                if let (Some(change), Some(g)) = (record_change(kind, sources), v4_at(igmp, at + 4)) {
                    out.push(Membership { group: IpAddr::V4(g), change });
                }
                at += len;
            }
        }
        _ => {}
    }
    out
}

/// IPv6 extension headers a report may follow (MLD is sent with a hop-by-hop router alert).
fn icmpv6_of(frame: &[u8]) -> Option<&[u8]> {
    let mut next = *frame.get(6)?;
    let mut at = 40;
    // Hop-by-hop, routing, destination options: (next header, length in 8-byte units − 1).
    for _ in 0..4 {
        match next {
            58 => return frame.get(at..),
            0 | 43 | 60 => {
                next = *frame.get(at)?;
                at += (usize::from(*frame.get(at + 1)?) + 1) * 8;
            }
            _ => return None,
        }
    }
    None
}

fn parse_mld(frame: &[u8]) -> Vec<Membership> {
    let mut out = Vec::new();
    let Some(icmp) = icmpv6_of(frame) else { return out };
    let one = |change| v6_at(icmp, 8).map(|g| Membership { group: IpAddr::V6(g), change });
    match icmp.first() {
        Some(&MLD_V1_REPORT) => out.extend(one(Change::Join)),
        Some(&MLD_V1_DONE) => out.extend(one(Change::Leave)),
        Some(&MLD_V2_REPORT) if icmp.len() >= 8 => {
            let records = usize::from(u16::from_be_bytes([icmp[6], icmp[7]]));
            let mut at = 8;
            for _ in 0..records {
                let Some(head) = icmp.get(at..at + 20) else { break };
                let (kind, aux, sources) =
                    (head[0], usize::from(head[1]), usize::from(u16::from_be_bytes([head[2], head[3]])));
                let len = 20 + 16 * sources + 4 * aux;
                if icmp.len() < at + len {
                    break;
                }
                if let (Some(change), Some(g)) = (record_change(kind, sources), v6_at(icmp, at + 4)) {
                    out.push(Membership { group: IpAddr::V6(g), change });
                }
                at += len;
            }
        }
        _ => {}
    }
    out
}

/// Which delay a [`Delay`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelayKind {
    Join,
    Leave,
}

/// How a join or leave of one group turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Join: the first datagram of the group after the join; leave: the last one after the
    /// leave (kernel timestamps, ns).
    Measured { data_ns: u64 },
    /// Join: the group was already arriving (within the quiet time before the join): the
    /// network floods it (no snooping switch, or no querier), so there is no join delay.
    AlreadyArriving,
    /// Join: no datagram of the group arrived while it was joined.
    NeverArrived,
    /// Leave: no datagram of the group arrived after the leave.
    NoneAfter,
    /// Leave: datagrams kept arriving until the end of the window (the next join, or the end
    /// of the watch) without a quiet time: the network does not stop sending the group (no
    /// snooping, or no querier), so there is no leave delay.
    StillArriving { last_ns: u64 },
}

/// One join or leave of a group, as the interface saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub group: IpAddr,
    pub kind: DelayKind,
    /// When the report (the first one of this change) left the host, ns.
    pub report_ns: u64,
    pub outcome: Outcome,
}

impl Delay {
    /// The delay in ns, when there is one.
    pub fn delay_ns(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Measured { data_ns } => Some(data_ns.saturating_sub(self.report_ns)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing seen of the group yet but datagrams.
    Unknown,
    Joined {
        report: u64,
        flooded: bool,
        done: bool,
    },
    Left {
        report: u64,
        last: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Track {
    phase: Phase,
    last_data: Option<u64>,
    /// The latest gap between two datagrams of the group while it was joined and flowing.
    gap: u64,
}

/// How many of a group's own gaps between datagrams make a quiet time at least: probes sent
/// sparser than the quiet time given must not pass for a group that stopped.
const QUIET_GAPS: u64 = 3;

/// Most groups a tracker follows; datagrams to more are not tracked (a bound against a flood
/// of groups, far above any real use).
pub const MAX_GROUPS: usize = 1 << 16;

/// Turns reports and datagrams, in the order the interface saw them, into [`Delay`]s.
#[derive(Debug)]
pub struct DelayTracker {
    quiet_ns: u64,
    groups: HashMap<IpAddr, Track>,
    done: Vec<Delay>,
}

impl DelayTracker {
    /// `quiet_ns`: how long a group must not arrive before it counts as not flowing; several
    /// times the interval between two datagrams of one group. A group whose own datagrams came
    /// sparser while it flowed gets three of its gaps instead.
    pub fn new(quiet_ns: u64) -> DelayTracker {
        DelayTracker { quiet_ns, groups: HashMap::new(), done: Vec::new() }
    }

    fn track(&mut self, group: IpAddr) -> Option<&mut Track> {
        if !self.groups.contains_key(&group) && self.groups.len() >= MAX_GROUPS {
            return None;
        }
        Some(self.groups.entry(group).or_insert(Track { phase: Phase::Unknown, last_data: None, gap: 0 }))
    }

    /// A report the host sent at `ts_ns`.
    pub fn report(&mut self, ts_ns: u64, m: Membership) {
        let quiet = self.quiet_ns;
        let Some(t) = self.track(m.group) else { return };
        let quiet = quiet.max(t.gap.saturating_mul(QUIET_GAPS));
        let mut closed = None;
        match (t.phase, m.change) {
            (Phase::Joined { .. }, Change::Join) | (Phase::Left { .. }, Change::Leave) => return,
            (Phase::Unknown, Change::Join) | (Phase::Left { .. }, Change::Join) => {
                if let Phase::Left { report, last } = t.phase {
                    closed = Some(close_leave(m.group, report, last, ts_ns, quiet));
                }
                let flooded = t.last_data.is_some_and(|d| ts_ns.saturating_sub(d) < quiet);
                t.phase = Phase::Joined { report: ts_ns, flooded, done: false };
            }
            (Phase::Unknown, Change::Leave) | (Phase::Joined { .. }, Change::Leave) => {
                if let Phase::Joined { report, done: false, .. } = t.phase {
                    let outcome = Outcome::NeverArrived;
                    closed = Some(Delay { group: m.group, kind: DelayKind::Join, report_ns: report, outcome });
                }
                t.phase = Phase::Left { report: ts_ns, last: None };
            }
        }
        self.done.extend(closed);
    }

    /// A datagram to `group` that reached the interface at `ts_ns`.
    pub fn datagram(&mut self, ts_ns: u64, group: IpAddr) {
        let Some(t) = self.track(group) else { return };
        if let (Phase::Joined { done: true, .. }, Some(prev)) = (t.phase, t.last_data) {
            t.gap = ts_ns.saturating_sub(prev);
        }
        t.last_data = Some(ts_ns);
        match &mut t.phase {
            // Read after the report but stamped before it (the system-call clock's socket
            // arrivals are read in batches): not after the join, nor after the leave.
            Phase::Joined { report, .. } | Phase::Left { report, .. } if ts_ns < *report => {}
            Phase::Joined { report, flooded, done } if !*done => {
                *done = true;
                let outcome = if *flooded { Outcome::AlreadyArriving } else { Outcome::Measured { data_ns: ts_ns } };
                let d = Delay { group, kind: DelayKind::Join, report_ns: *report, outcome };
                self.done.push(d);
            }
            Phase::Left { last, .. } => *last = Some(ts_ns),
            _ => {}
        }
    }

    /// The delays complete so far, oldest first, taken.
    pub fn take(&mut self) -> Vec<Delay> {
        std::mem::take(&mut self.done)
    }

    /// Closes every open join and leave at `end_ns` (the end of the watch) and returns all
    /// delays not taken yet.
    pub fn finish(&mut self, end_ns: u64) -> Vec<Delay> {
        let quiet = self.quiet_ns;
        let mut open: Vec<(IpAddr, Track)> = self.groups.drain().collect();
        open.sort_by_key(|(_, t)| match t.phase {
            Phase::Joined { report, .. } | Phase::Left { report, .. } => report,
            Phase::Unknown => 0,
        });
        for (group, t) in open {
            match t.phase {
                Phase::Joined { report, done: false, .. } => {
                    let outcome = Outcome::NeverArrived;
                    self.done.push(Delay { group, kind: DelayKind::Join, report_ns: report, outcome });
                }
                Phase::Left { report, last } => {
                    let quiet = quiet.max(t.gap.saturating_mul(QUIET_GAPS));
                    self.done.push(close_leave(group, report, last, end_ns, quiet))
                }
                _ => {}
            }
        }
        self.take()
    }
}

/// A leave at `report` whose window (until the next join, or the end) closes at `end`.
fn close_leave(group: IpAddr, report: u64, last: Option<u64>, end: u64, quiet: u64) -> Delay {
    let outcome = match last {
        None => Outcome::NoneAfter,
        Some(l) if end.saturating_sub(l) < quiet => Outcome::StillArriving { last_ns: l },
        Some(l) => Outcome::Measured { data_ns: l },
    };
    Delay { group, kind: DelayKind::Leave, report_ns: report, outcome }
}

#[cfg(test)]
mod tests;
