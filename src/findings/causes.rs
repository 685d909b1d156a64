//! Evidence before verdicts: which causes of "multicast lost where unicast works" the evidence
//! leaves, likeliest first. A cause is named alone only when the evidence proves it (its
//! responder says it serves another group); otherwise every cause that still fits is listed,
//! each with what speaks for it, so an engineer never goes to fix the wrong box on our word.
//! Pure: reads what the diagnosis gathered.
//!
//! What tells the causes apart:
//! - the group a responder says it serves, in its acks to unicast probes (`wire::AckExt`):
//!   another group is a configuration mistake, named; the same group rules that mistake out;
//! - multicast acks from anyone at all: a firewall on this host that drops them drops them all,
//!   so one host answering rules it out, as does this host's packet tap (`--ack-port`'s
//!   section in the manual) when it saw no ack go missing;
//! - the responder's host tap (carried in its acks): when it saw no probe dropped at its
//!   interface, the probes never got there, so its host's firewall is ruled out;
//! - the querier watch, which says whether a snooping switch has anyone to keep joins alive.

use std::net::IpAddr;

use super::diagnosis::{Advice, QuerierHeard, Verdict};

/// What is known about one host whose multicast is lost while its unicast works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evidence {
    /// Multicast acks it sent that arrived.
    pub multicast_received: u64,
    /// Probes sent on the multicast path, and how many of the last ones went unanswered.
    pub sent: u64,
    pub trailing_lost: u64,
    /// The group its responder said it serves; `None` when it did not say.
    pub served_group: Option<IpAddr>,
    /// Multicast probes from this host that its responder said reached its socket during the
    /// run (in its acks to unicast probes); `None` when it did not say.
    pub multicast_heard: Option<u64>,
    /// The group this prober probes.
    pub probed_group: IpAddr,
    /// No responder at all answered on the group.
    pub nobody_on_the_group: bool,
    /// This host's packet tap watched the acks (and saw none of this host's go missing, or
    /// they would be named already).
    pub acks_tapped: bool,
    /// Its host's tap ran (its acks carried the count): `true` when it counted no probe
    /// dropped at its interface during the run.
    pub host_tap_clean: Option<bool>,
    /// With `--groups`: (groups it never answered on, groups probed).
    pub missing_groups: Option<(u64, u64)>,
}

/// Unanswered probes at the end of a run, at least, that mean multicast stopped rather than
/// lost a few (and at least a twentieth of the run).
const STOPPED_MIN: u64 = 10;

/// The causes the evidence leaves for a host of [`Verdict::MulticastLost`] whose cause no
/// stronger evidence named (TTL, the taps' drops): the likeliest first, then the others.
pub(crate) fn multicast_lost(e: &Evidence) -> (Advice, Vec<Advice>) {
    // Only when nothing came by multicast: with --groups a responder names its first group,
    // and one that answers on some groups serves them, whatever its first one is.
    if let Some(serves) = e.served_group.filter(|g| *g != e.probed_group && e.multicast_received == 0) {
        return (Advice::OtherGroup { serves, probed: e.probed_group }, Vec::new());
    }
    if e.multicast_received > 0 {
        // Some groups reach it and others never do: the loss is theirs, whatever else is lost.
        if let Some((missing, of)) = e.missing_groups.filter(|(m, _)| *m > 0) {
            return (Advice::GroupsMissing { missing, of }, Vec::new());
        }
        // It got through, but not all of it: neither a group nor a firewall mistake. Stopping
        // for good while unicast goes on is what a forgotten join looks like.
        if e.trailing_lost >= STOPPED_MIN.max(e.sent / 20) {
            let stopped = Advice::MulticastStopped { probes: e.trailing_lost, querier: QuerierHeard::NotWatched };
            return (stopped, Vec::new());
        }
        return (Advice::MulticastLossy, Vec::new());
    }
    // Its responder got them: what is lost is the acks, on the way back.
    if let Some(probes) = e.multicast_heard.filter(|&n| n > 0) {
        return (Advice::AcksLostComingBack { probes, tapped: e.acks_tapped }, Vec::new());
    }
    let mut causes = Vec::new();
    // A stateful firewall here drops every responder's multicast acks, never just one's; and
    // none was sent if its responder says no multicast probe reached it.
    if e.nobody_on_the_group && !e.acks_tapped && e.multicast_heard.is_none() {
        causes.push(Advice::AcksMaybeDroppedHere);
    }
    let host_tap_clean = e.host_tap_clean == Some(true);
    causes.push(Advice::NotReaching { host_tap_clean, querier: QuerierHeard::NotWatched });
    if e.host_tap_clean.is_none() {
        causes.push(Advice::HostMayDropProbes);
    }
    // Another group on every responder is a likelier mistake than a network that carries no
    // multicast to anyone; on one host alone, the least likely.
    if e.served_group.is_none() {
        let at = if e.nobody_on_the_group { usize::from(!e.acks_tapped) } else { causes.len() };
        causes.insert(at, Advice::MaybeOtherGroup { everyone: e.nobody_on_the_group });
    }
    let first = causes.remove(0);
    (first, causes)
}

/// Adds what a querier watch heard to the causes that depend on it.
pub(crate) fn with_querier(causes: &mut [Advice], heard: QuerierHeard) {
    for a in causes {
        if let Advice::NotReaching { querier, .. } | Advice::MulticastStopped { querier, .. } = a {
            *querier = heard;
        }
    }
}

/// Whether `advice` is one of [`multicast_lost`]'s answers short of proof, which stronger
/// evidence found later (the querier's silence) may replace.
pub(crate) fn unproven(advice: Advice) -> bool {
    matches!(
        advice,
        Advice::MulticastLossy
            | Advice::MulticastStopped { .. }
            | Advice::NotReaching { .. }
            | Advice::AcksMaybeDroppedHere
            | Advice::MaybeOtherGroup { .. }
            | Advice::HostMayDropProbes
    )
}

/// Whether `verdict` with `advice` is a case [`multicast_lost`] decides.
pub(crate) fn undecided(verdict: Verdict, advice: Advice) -> bool {
    verdict == Verdict::MulticastLost && advice == Advice::Usual
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBED: &str = "239.255.42.42";

    fn evidence() -> Evidence {
        Evidence {
            multicast_received: 0,
            sent: 100,
            trailing_lost: 0,
            served_group: None,
            multicast_heard: None,
            probed_group: PROBED.parse().unwrap(),
            nobody_on_the_group: true,
            acks_tapped: false,
            host_tap_clean: None,
            missing_groups: None,
        }
    }

    #[test]
    fn a_responder_that_answers_on_the_group_is_not_on_another_one() {
        let e = Evidence {
            multicast_received: 40,
            served_group: Some("239.1.1.1".parse().unwrap()),
            missing_groups: Some((3, 64)),
            ..evidence()
        };
        assert_eq!(multicast_lost(&e).0, Advice::GroupsMissing { missing: 3, of: 64 });
    }

    #[test]
    fn groups_that_never_reach_a_host_are_the_cause_of_its_loss() {
        let e = Evidence { multicast_received: 993, missing_groups: Some((7, 1000)), ..evidence() };
        assert_eq!(multicast_lost(&e), (Advice::GroupsMissing { missing: 7, of: 1000 }, vec![]));
        // Every group reached: the loss is what it is, not a missing group.
        let e = Evidence { multicast_received: 993, missing_groups: Some((0, 1000)), ..evidence() };
        assert_eq!(multicast_lost(&e).0, Advice::MulticastLossy);
    }

    #[test]
    fn a_responder_on_another_group_is_named_alone() {
        let e = Evidence { served_group: Some("239.1.1.1".parse().unwrap()), ..evidence() };
        let (named, others) = multicast_lost(&e);
        assert_eq!(named, Advice::OtherGroup { serves: "239.1.1.1".parse().unwrap(), probed: PROBED.parse().unwrap() });
        assert!(others.is_empty());
    }

    #[test]
    fn a_responder_that_got_the_multicast_probes_puts_the_loss_on_the_way_back() {
        let heard = Evidence { multicast_heard: Some(30), ..evidence() };
        assert_eq!(multicast_lost(&heard), (Advice::AcksLostComingBack { probes: 30, tapped: false }, vec![]));
        // None reached it: no ack was sent, so none can be dropped here.
        let (named, others) = multicast_lost(&Evidence { multicast_heard: Some(0), ..evidence() });
        assert!(!std::iter::once(named).chain(others).any(|a| a == Advice::AcksMaybeDroppedHere));
    }

    #[test]
    fn with_no_evidence_every_cause_that_fits_is_listed() {
        // Issue 19's first fault: a stateful firewall here looks like a group typo to the
        // sockets; without a tap both stay, the firewall first.
        let (named, others) = multicast_lost(&evidence());
        assert_eq!(named, Advice::AcksMaybeDroppedHere);
        assert_eq!(
            others,
            [
                Advice::MaybeOtherGroup { everyone: true },
                Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::NotWatched },
                Advice::HostMayDropProbes
            ]
        );
    }

    #[test]
    fn each_piece_of_evidence_rules_out_its_cause() {
        // The responders serve this group: not a typo.
        let same = Evidence { served_group: Some(PROBED.parse().unwrap()), ..evidence() };
        assert!(!std::iter::once(multicast_lost(&same).0)
            .chain(multicast_lost(&same).1)
            .any(|a| matches!(a, Advice::MaybeOtherGroup { .. })));
        // The tap here saw no ack go missing: not this host's firewall.
        let tapped = Evidence { acks_tapped: true, ..same };
        let (named, others) = multicast_lost(&tapped);
        assert_eq!(named, Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::NotWatched });
        assert_eq!(others, [Advice::HostMayDropProbes]);
        // Its host's tap saw nothing dropped at its interface: not its host either.
        let (named, others) = multicast_lost(&Evidence { host_tap_clean: Some(true), ..tapped });
        assert_eq!(named, Advice::NotReaching { host_tap_clean: true, querier: QuerierHeard::NotWatched });
        assert!(others.is_empty());
        // Others answer on the group: this host's firewall would drop theirs too.
        let (named, others) = multicast_lost(&Evidence { nobody_on_the_group: false, ..evidence() });
        assert_eq!(named, Advice::NotReaching { host_tap_clean: false, querier: QuerierHeard::NotWatched });
        assert_eq!(others, [Advice::HostMayDropProbes, Advice::MaybeOtherGroup { everyone: false }]);
        // Some multicast got through: lossy, not a mistake.
        assert_eq!(multicast_lost(&Evidence { multicast_received: 30, ..same }), (Advice::MulticastLossy, vec![]));
        // Stopped for good, while unicast went on: a forgotten join, not a lossy path.
        let stopped = multicast_lost(&Evidence { multicast_received: 30, trailing_lost: 70, ..same });
        assert_eq!(stopped, (Advice::MulticastStopped { probes: 70, querier: QuerierHeard::NotWatched }, vec![]));
        let few = Evidence { multicast_received: 30, trailing_lost: 9, ..same };
        assert_eq!(multicast_lost(&few).0, Advice::MulticastLossy);
    }
}
