//! From per-step observations of each responder to its group capacity and failure mode. Pure:
//! the driver hands in what the acks said, step by step; nothing here touches a clock or a
//! socket.
//!
//! A step is one window of the run (a few rounds of probes over every group). In it a responder
//! is seen with: how many groups it had joined (long enough before the window to be forwarded),
//! how many of those it answered a probe of, what its kernel refused so far, and how many probes
//! of the canary (a group nobody joined) reached its interface. One step's verdict:
//!
//! 1. refused memberships: the host's limit ([`Failure::HostLimit`]), whatever the network did;
//! 2. canary probes seen: the network floods ([`Failure::SnoopingFlooded`], or
//!    [`Failure::NoSnooping`] when it floods from the first step on);
//! 3. joined groups not reached: the network drops the groups beyond its table
//!    ([`Failure::NewGroupsDropped`]).
//!
//! A failure counts once it holds for `confirm` steps in a row (a group whose first probes came
//! late, or a burst of loss, is not a full table); a failing run cut short by the end of the
//! steps counts, marked unconfirmed. The count that worked is the most groups joined in a step
//! with every one reached and no canary, before the failure.

use crate::findings::ResponderId;

/// Why a responder's kernel refused a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `ENOBUFS`: one socket's memberships are capped by `net.ipv4.igmp_max_memberships`
    /// (default 20) and by its option memory, `net.core.optmem_max` (~48 bytes each).
    SocketMemberships,
    /// `EMFILE`/`ENFILE`: no file descriptor for another socket of memberships.
    Files,
    /// `ENOMEM`.
    Memory,
    /// Any other error number.
    Other(i32),
}

impl Refusal {
    pub(crate) fn explain(self) -> String {
        match self {
            Refusal::SocketMemberships => "its kernel refused more memberships on one socket (ENOBUFS): \
                net.ipv4.igmp_max_memberships (default 20) or net.core.optmem_max on that host"
                .into(),
            Refusal::Files => "it ran out of file descriptors for the sockets holding the memberships \
                (EMFILE/ENFILE): its open-file limit (ulimit -n)"
                .into(),
            Refusal::Memory => "its kernel ran out of memory for memberships (ENOMEM)".into(),
            Refusal::Other(e) => format!("its kernel refused a membership (errno {e})"),
        }
    }
}

/// One responder in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observation {
    /// Groups it had joined, early enough before the step to be forwarded in it.
    pub joined: u32,
    /// Groups it had joined at the step's end (at least `joined`): flooding that starts in
    /// the step started with at most this many.
    pub joined_end: u32,
    /// Of those, the groups it answered at least one probe of in the step.
    pub reached: u32,
    /// Memberships its kernel refused so far (0: none), and why the first was refused.
    pub refused: u32,
    pub refusal: Option<Refusal>,
    /// Probes of the canary group that reached its interface in the step; `None`: it cannot
    /// watch (its packet tap needs CAP_NET_RAW), so flooding goes unseen.
    pub canary_seen: Option<u64>,
    /// Groups it had joined when the first canary probe ever reached it (`None`: none yet).
    pub flood_at: Option<u32>,
}

/// One step: every responder heard in it (a known responder not heard is the driver's to add,
/// with what it knew of its joins and nothing reached).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Step {
    pub responders: Vec<(ResponderId, Observation)>,
}

/// How strict the judge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JudgeConfig {
    /// Joined groups a step may miss and still pass (0: every one).
    pub missing_allowed: u32,
    /// Canary probes a step may see and still pass (0: none).
    pub canary_allowed: u64,
    /// Failing steps in a row for a failure to count (at least 1).
    pub confirm: u32,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig { missing_allowed: 0, canary_allowed: 0, confirm: 2 }
    }
}

/// What one step says of one responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepVerdict {
    /// Nothing joined yet, nothing seen: says nothing.
    Idle,
    Ok,
    Refused(Refusal),
    Flooded {
        canary: u64,
    },
    Dropped {
        missing: u32,
    },
}

impl StepVerdict {
    fn failing(self) -> bool {
        !matches!(self, StepVerdict::Idle | StepVerdict::Ok)
    }
}

/// The network carried every joined group and no canary (whatever the host refused).
fn network_ok(o: &Observation, c: &JudgeConfig) -> bool {
    o.canary_seen.unwrap_or(0) <= c.canary_allowed && o.joined.saturating_sub(o.reached) <= c.missing_allowed
}

pub(crate) fn verdict(o: &Observation, c: &JudgeConfig) -> StepVerdict {
    let canary = o.canary_seen.unwrap_or(0);
    if o.refused > 0 {
        StepVerdict::Refused(o.refusal.unwrap_or(Refusal::Other(0)))
    } else if canary > c.canary_allowed {
        StepVerdict::Flooded { canary }
    } else if o.joined.saturating_sub(o.reached) > c.missing_allowed {
        StepVerdict::Dropped { missing: o.joined - o.reached }
    } else if o.joined == 0 {
        StepVerdict::Idle
    } else {
        StepVerdict::Ok
    }
}

/// How a responder's capacity ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No failure up to this many joined groups (the most it joined).
    NoneUpTo { tried: u32 },
    /// With `at` groups joined, `missing` of them were not forwarded to it: the network's table
    /// (or a per-port limit) is full and new groups are dropped.
    NewGroupsDropped { at: u32, missing: u32 },
    /// With at most `at` groups joined (its count when the first canary probe came, else at
    /// the end of the step in which it came), the canary reached it: the network's table filled up and it started flooding every
    /// group to every port (a Linux bridge turns snooping off).
    SnoopingFlooded { at: u32, canary: u64 },
    /// The canary reached it from the first step: the network floods multicast anyway (no
    /// snooping, or no querier), so it has no group table to fill.
    NoSnooping { canary: u64 },
    /// With `at` groups joined, its own kernel refused the next: the host's limit.
    HostLimit { at: u32, refusal: Refusal },
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::NoneUpTo { .. } => "none",
            Failure::NewGroupsDropped { .. } => "new-groups-dropped",
            Failure::SnoopingFlooded { .. } => "snooping-flooded",
            Failure::NoSnooping { .. } => "no-snooping",
            Failure::HostLimit { .. } => "host-limit",
        }
    }

    /// A limit of the network (not of the responder's host, and not "none found").
    pub(crate) fn is_network(self) -> bool {
        matches!(self, Failure::NewGroupsDropped { .. } | Failure::SnoopingFlooded { .. } | Failure::NoSnooping { .. })
    }

    pub(crate) fn explain(self) -> String {
        match self {
            Failure::NoneUpTo { tried } => format!("every group reached up to {tried} joined"),
            Failure::NewGroupsDropped { at, missing } => format!(
                "with {at} groups joined, {missing} were not forwarded: the network's group table (or a per-port \
                 limit) is full and drops new groups"
            ),
            Failure::SnoopingFlooded { at, .. } => format!(
                "by {at} groups joined, a group nobody joined reached it: the network's group table filled up \
                 and it floods every group to every port (a Linux bridge turns snooping off until it is turned \
                 back on)"
            ),
            Failure::NoSnooping { .. } => "a group nobody joined reached it from the start: the network floods \
                multicast (no snooping, or no querier), there is no group table to fill"
                .into(),
            Failure::HostLimit { at, refusal } => {
                format!("with {at} groups joined, {}: a limit of that host, not of the network", refusal.explain())
            }
        }
    }
}

/// One responder's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capacity {
    pub id: ResponderId,
    /// The most groups joined in a step where every one was reached and no canary came, before
    /// the failure (0: none).
    pub worked: u32,
    pub failure: Failure,
    /// The failure held for `confirm` steps in a row (always true for [`Failure::NoneUpTo`]).
    pub confirmed: bool,
    /// Every step had its canary count: flooding would have been seen.
    pub flood_watched: bool,
}

/// The steps of one responder, in order (steps without it are left out).
fn observations(steps: &[Step], id: ResponderId) -> Vec<Observation> {
    steps.iter().filter_map(|s| s.responders.iter().find(|(r, _)| *r == id).map(|(_, o)| *o)).collect()
}

/// One responder's capacity from the steps so far.
pub(crate) fn capacity(steps: &[Step], id: ResponderId, c: &JudgeConfig) -> Capacity {
    let obs = observations(steps, id);
    let verdicts: Vec<StepVerdict> = obs.iter().map(|o| verdict(o, c)).collect();
    let confirm = c.confirm.max(1) as usize;
    // The first failing run that is long enough, or that the steps' end cut short.
    let mut first_failure: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < verdicts.len() {
        if !verdicts[i].failing() {
            i += 1;
            continue;
        }
        let run = verdicts[i..].iter().take_while(|v| v.failing()).count();
        if run >= confirm {
            first_failure = Some((i, true));
            break;
        }
        if i + run == verdicts.len() {
            first_failure = Some((i, false));
            break;
        }
        i += run;
    }
    let before = first_failure.map_or(obs.len(), |(f, _)| f);
    let mut worked = obs[..before]
        .iter()
        .zip(&verdicts[..before])
        .filter(|(_, v)| **v == StepVerdict::Ok)
        .map(|(o, _)| o.joined)
        .max()
        .unwrap_or(0);
    let flood_watched = !obs.is_empty() && obs.iter().all(|o| o.canary_seen.is_some());
    let (failure, confirmed) = match first_failure {
        None => (Failure::NoneUpTo { tried: obs.iter().map(|o| o.joined).max().unwrap_or(0) }, true),
        Some((f, confirmed)) => {
            let o = &obs[f];
            let failure = match verdicts[f] {
                StepVerdict::Refused(refusal) => {
                    // The host stopped joining where its kernel refused (it may have got there
                    // during the step); the network may well carry all it holds, which the steps
                    // after show.
                    let after = &obs[f..];
                    let at = after.iter().map(|o| o.joined_end.max(o.joined)).max().unwrap_or(o.joined);
                    let carried = after.iter().filter(|o| network_ok(o, c)).map(|o| o.joined).max().unwrap_or(0);
                    worked = worked.max(carried);
                    Failure::HostLimit { at, refusal }
                }
                StepVerdict::Flooded { canary } if !verdicts[..f].contains(&StepVerdict::Ok) => {
                    Failure::NoSnooping { canary }
                }
                // Reach says nothing once everything floods: the count that worked is that of
                // the steps before.
                // Where it began: the responder's count at the first canary probe, else the step's.
                StepVerdict::Flooded { canary } => {
                    Failure::SnoopingFlooded { at: o.flood_at.unwrap_or(o.joined_end.max(o.joined)), canary }
                }
                StepVerdict::Dropped { missing } => {
                    // The groups it got all arrived together.
                    worked = worked.max(o.reached);
                    Failure::NewGroupsDropped { at: o.joined, missing }
                }
                StepVerdict::Idle | StepVerdict::Ok => unreachable!("a failing step"),
            };
            (failure, confirmed)
        }
    };
    Capacity { id, worked, failure, confirmed, flood_watched }
}

/// Every responder seen in the steps, weakest first (then by id).
pub(crate) fn capacities(steps: &[Step], c: &JudgeConfig) -> Vec<Capacity> {
    let mut ids: Vec<ResponderId> = steps.iter().flat_map(|s| s.responders.iter().map(|(r, _)| *r)).collect();
    ids.sort();
    ids.dedup();
    let mut out: Vec<Capacity> = ids.into_iter().map(|id| capacity(steps, id, c)).collect();
    out.sort_by_key(|r| (r.worked, r.id));
    out
}

/// Nothing more to learn about this responder: its failure is confirmed, or it joined `max`
/// groups (the whole range) and passed `confirm` steps with all of them.
pub(crate) fn settled(steps: &[Step], id: ResponderId, max: u32, c: &JudgeConfig) -> bool {
    let r = capacity(steps, id, c);
    match r.failure {
        Failure::NoneUpTo { .. } => {
            let full = observations(steps, id)
                .iter()
                .rev()
                .take_while(|o| o.joined >= max && verdict(o, c) == StepVerdict::Ok)
                .count();
            full >= c.confirm.max(1) as usize
        }
        _ => r.confirmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2: ResponderId = ResponderId(2);
    const H3: ResponderId = ResponderId(3);

    fn ok(joined: u32) -> Observation {
        Observation { joined, joined_end: joined, reached: joined, canary_seen: Some(0), ..Observation::default() }
    }

    fn steps(obs: &[Observation]) -> Vec<Step> {
        obs.iter().map(|o| Step { responders: vec![(H2, *o)] }).collect()
    }

    /// A ramp of `step` groups per step up to `to`, every group reached.
    fn ramp(step: u32, to: u32) -> Vec<Observation> {
        (1..=to / step).map(|k| ok(k * step)).collect()
    }

    impl Observation {
        fn with_joined(self, n: u32) -> Observation {
            Observation { joined: n, reached: n, joined_end: n, ..self }
        }
    }

    fn cap(obs: &[Observation]) -> Capacity {
        capacity(&steps(obs), H2, &JudgeConfig::default())
    }

    #[test]
    fn a_per_port_limit_drops_the_groups_beyond_it() {
        // Measured: a port with mcast_max_groups 64 forwards 62 IPv4 groups (its host's two
        // IPv6 solicited-node groups take the rest); the others are dropped, not flooded.
        let mut obs = ramp(2, 62);
        obs.push(Observation { reached: 62, ..ok(64) });
        obs.push(Observation { reached: 62, ..ok(66) });
        let r = cap(&obs);
        assert_eq!(r.worked, 62);
        assert_eq!(r.failure, Failure::NewGroupsDropped { at: 64, missing: 2 });
        // Coarser steps: 60 all reached, then 62 of 68: the 62 worked.
        let r = cap(&[ok(60), Observation { reached: 62, ..ok(68) }, Observation { reached: 62, ..ok(76) }]);
        assert_eq!((r.worked, r.failure), (62, Failure::NewGroupsDropped { at: 68, missing: 6 }));
        assert!(r.confirmed && r.flood_watched && r.failure.is_network());
    }

    #[test]
    fn a_full_bridge_table_floods_and_only_the_canary_shows_it() {
        // Measured: mcast_hash_max 64 holds 58 IPv4 groups next to the hosts' 6 IPv6 ones; the
        // 59th turns snooping off: every joined group is still reached, the canary arrives.
        // The canary comes in the step in which the 59th was joined.
        let mut obs = ramp(1, 58);
        obs.push(Observation { canary_seen: Some(3), joined_end: 59, ..ok(58) });
        obs.push(Observation { canary_seen: Some(3), joined_end: 60, ..ok(59) });
        let r = cap(&obs);
        assert_eq!(r.worked, 58);
        assert_eq!(r.failure, Failure::SnoopingFlooded { at: 59, canary: 3 });
        assert!(r.confirmed && r.failure.is_network());
        // Seen in the lab (mcast_hash_max 256, 250 fit): the 251st came after the step's last
        // canary probe; the next step got all 260 joined, by flooding. Reach says nothing then.
        let flood = |j, end| Observation { canary_seen: Some(3), joined_end: end, ..ok(j) };
        let r = cap(&[ok(230), Observation { joined_end: 260, ..ok(240) }, flood(260, 270), flood(270, 280)]);
        assert_eq!((r.worked, r.failure), (240, Failure::SnoopingFlooded { at: 270, canary: 3 }));
        // The responder's count when the first canary came says where it began.
        let flood = |j, end| Observation { flood_at: Some(251), ..flood(j, end) };
        let r = cap(&[ok(230), Observation { joined_end: 260, ..ok(240) }, flood(260, 270), flood(270, 280)]);
        assert_eq!((r.worked, r.failure), (240, Failure::SnoopingFlooded { at: 251, canary: 3 }));
    }

    #[test]
    fn a_host_limit_is_not_a_network_limit() {
        // One socket past net.ipv4.igmp_max_memberships = 20: ENOBUFS from the 21st on. The 20
        // it holds are all reached: 20 worked, and the failure is the host's.
        let refused = |n| Observation { refused: n, refusal: Some(Refusal::SocketMemberships), ..ok(20) };
        let mut obs = ramp(5, 20);
        obs.push(refused(5));
        obs.push(refused(10));
        let r = cap(&obs);
        assert_eq!(r.worked, 20);
        assert_eq!(r.failure, Failure::HostLimit { at: 20, refusal: Refusal::SocketMemberships });
        // Seen in the lab: the host got from 4 to its limit of 10 and refused the 11th within
        // one step; the next step shows all 10 carried.
        let first = Observation { joined_end: 10, refused: 1, refusal: Some(Refusal::SocketMemberships), ..ok(4) };
        let r = cap(&[ok(4), first, Observation { refused: 2, ..first }.with_joined(10)]);
        assert_eq!((r.worked, r.failure), (10, Failure::HostLimit { at: 10, refusal: Refusal::SocketMemberships }));
        assert!(!r.failure.is_network());
        // A refusal outranks what the network did in the same step.
        let both = Observation { reached: 10, canary_seen: Some(4), ..refused(1) };
        assert_eq!(verdict(&both, &JudgeConfig::default()), StepVerdict::Refused(Refusal::SocketMemberships));
    }

    #[test]
    fn no_failure_up_to_the_range() {
        let obs = ramp(10, 100);
        let r = cap(&obs);
        assert_eq!((r.worked, r.failure), (100, Failure::NoneUpTo { tried: 100 }));
        assert!(r.confirmed);
        let mut full = steps(&obs);
        assert!(!settled(&full, H2, 100, &JudgeConfig::default()), "one step at the top is not two");
        full.push(Step { responders: vec![(H2, ok(100))] });
        assert!(settled(&full, H2, 100, &JudgeConfig::default()));
    }

    #[test]
    fn flooding_from_the_start_is_no_snooping() {
        let flood = |j| Observation { canary_seen: Some(6), ..ok(j) };
        let r = cap(&[Observation { canary_seen: Some(2), ..Observation::default() }, flood(8), flood(16)]);
        assert_eq!(r.failure, Failure::NoSnooping { canary: 2 });
        assert_eq!(r.worked, 0);
    }

    #[test]
    fn a_short_failing_run_is_a_transient_and_the_last_one_is_unconfirmed() {
        // A late first probe in step 3 (join delay), then all fine: no failure.
        let mut obs = vec![ok(10), ok(20), Observation { reached: 29, ..ok(30) }, ok(40), ok(50)];
        assert_eq!(cap(&obs).failure, Failure::NoneUpTo { tried: 50 });
        // A failing last step alone: reported, not confirmed, not settled.
        obs.push(Observation { reached: 55, ..ok(60) });
        let r = cap(&obs);
        // The 55 it got arrived together: they worked.
        assert_eq!((r.worked, r.failure, r.confirmed), (55, Failure::NewGroupsDropped { at: 60, missing: 5 }, false));
        assert!(!settled(&steps(&obs), H2, 100, &JudgeConfig::default()));
        obs.push(Observation { reached: 55, ..ok(70) });
        assert!(settled(&steps(&obs), H2, 100, &JudgeConfig::default()));
        // A lucky step after the failure does not raise the count that worked.
        obs.push(ok(80));
        assert_eq!(cap(&obs).worked, 55);
    }

    #[test]
    fn without_a_flood_watch_flooding_goes_unseen_and_is_said() {
        let blind: Vec<Observation> =
            ramp(10, 100).into_iter().map(|o| Observation { canary_seen: None, ..o }).collect();
        let r = cap(&blind);
        assert_eq!(r.failure, Failure::NoneUpTo { tried: 100 });
        assert!(!r.flood_watched);
    }

    #[test]
    fn tolerances_and_responders_apart() {
        let c = JudgeConfig { missing_allowed: 1, canary_allowed: 2, confirm: 1 };
        assert_eq!(verdict(&Observation { reached: 9, canary_seen: Some(2), ..ok(10) }, &c), StepVerdict::Ok);
        assert_eq!(verdict(&Observation { reached: 8, ..ok(10) }, &c), StepVerdict::Dropped { missing: 2 });
        assert_eq!(verdict(&Observation::default(), &c), StepVerdict::Idle);
        // Two responders in the same steps: each its own result, the weakest first.
        let s: Vec<Step> = [10, 20, 30]
            .iter()
            .map(|&j| {
                let h3 = if j > 10 { Observation { reached: 10, ..ok(j) } } else { ok(j) };
                Step { responders: vec![(H2, ok(j)), (H3, h3)] }
            })
            .collect();
        let all = capacities(&s, &JudgeConfig::default());
        assert_eq!(all.iter().map(|r| (r.id, r.worked)).collect::<Vec<_>>(), vec![(H3, 10), (H2, 30)]);
        assert_eq!(all[0].failure, Failure::NewGroupsDropped { at: 20, missing: 10 });
    }
}
