//! From the acks of a run to the judge's steps. Pure: the driver feeds each ack (who answered,
//! which group the probe went to, what the ack's extension said) and closes a step when its
//! time is up; no clock here.
//!
//! A responder ramps its memberships in the order of the range, so "it has joined J groups"
//! means the range's first J. The groups a step expects a responder to get are those it had
//! joined when the step began: the newest count it reported in an earlier step. Groups joined
//! during the step are not held against it (their first probes may come before the network has
//! the membership). The canary count in an ack is the responder's total since it started; a
//! step's is the growth from the newest total before it (or, in a responder's first step, from
//! the first ack of the step).

use std::collections::BTreeMap;

use crate::findings::ResponderId;

use super::judge::{Observation, Refusal, Step};

/// What one ack says about its responder's memberships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AckFacts {
    /// Groups of the range it has joined (the first `joined` of them).
    pub joined: u32,
    /// Memberships its kernel refused so far, and why the first was.
    pub refused: u32,
    pub refusal: Option<Refusal>,
    /// Canary probes its interface got since it started; `None`: not watched.
    pub canary_total: Option<u64>,
    /// Groups it had joined when the first canary probe came (`None`: none came).
    pub flood_at: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct Responder {
    /// Groups joined when the current step began (the newest count before it).
    joined_before: u32,
    /// Canary total before the current step (`None` before its first step, or unwatched).
    canary_before: Option<u64>,
    /// The first and the newest ack of the current step.
    first: Option<AckFacts>,
    newest: Option<AckFacts>,
    /// Groups (by index in the range) answered in the current step.
    reached: Vec<bool>,
}

/// The steps of one run, as acks come.
#[derive(Debug, Clone)]
pub(crate) struct Stepper {
    groups: usize,
    responders: BTreeMap<ResponderId, Responder>,
}

impl Stepper {
    /// For a range of `groups` groups (the canary not counted).
    pub(crate) fn new(groups: usize) -> Stepper {
        Stepper { groups, responders: BTreeMap::new() }
    }

    /// One ack of `id` to a probe of group `index` of the range (`None`: the canary, or a probe
    /// whose group is not the range's; it then only carries facts).
    pub(crate) fn ack(&mut self, id: ResponderId, index: Option<usize>, facts: AckFacts) {
        let groups = self.groups;
        let r = self.responders.entry(id).or_default();
        if r.reached.len() != groups {
            r.reached = vec![false; groups];
        }
        if let Some(i) = index.filter(|&i| i < groups) {
            r.reached[i] = true;
        }
        r.first.get_or_insert(facts);
        // Counts only grow within a responder's life: keep the largest (acks may come reordered).
        r.newest = Some(match r.newest {
            None => facts,
            Some(n) => AckFacts {
                joined: n.joined.max(facts.joined),
                refused: n.refused.max(facts.refused),
                refusal: n.refusal.or(facts.refusal),
                canary_total: n.canary_total.max(facts.canary_total),
                flood_at: n.flood_at.or(facts.flood_at),
            },
        });
    }

    /// Closes the current step: one observation per responder heard in it.
    pub(crate) fn finish(&mut self) -> Step {
        let mut out = Vec::new();
        for (id, r) in &mut self.responders {
            let (Some(first), Some(newest)) = (r.first.take(), r.newest.take()) else { continue };
            let expected = (r.joined_before as usize).min(r.reached.len());
            let reached = r.reached[..expected].iter().filter(|&&b| b).count() as u32;
            let base = r.canary_before.or(first.canary_total);
            let canary_seen = match (base, newest.canary_total) {
                (Some(b), Some(n)) => Some(n.saturating_sub(b)),
                _ => None,
            };
            out.push((
                *id,
                Observation {
                    joined: expected as u32,
                    joined_end: newest.joined.max(expected as u32),
                    reached,
                    refused: newest.refused,
                    refusal: newest.refusal,
                    canary_seen,
                    flood_at: newest.flood_at,
                },
            ));
            r.joined_before = r.joined_before.max(newest.joined);
            r.canary_before = newest.canary_total;
            r.reached.iter_mut().for_each(|b| *b = false);
        }
        Step { responders: out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: ResponderId = ResponderId(7);

    fn facts(joined: u32, canary: u64) -> AckFacts {
        AckFacts { joined, canary_total: Some(canary), ..AckFacts::default() }
    }

    #[test]
    fn a_step_expects_the_groups_joined_before_it() {
        let mut s = Stepper::new(10);
        // Step 1: it joins 4 while the step runs; nothing is expected of it yet.
        for i in 0..4 {
            s.ack(H, Some(i), facts(4, 0));
        }
        let st = s.finish();
        assert_eq!(
            st.responders,
            vec![(H, Observation { joined: 0, joined_end: 4, reached: 0, canary_seen: Some(0), ..Default::default() })]
        );
        // Step 2: 4 expected, 3 answered; it joined 8 meanwhile.
        for i in [0, 1, 3, 4, 5] {
            s.ack(H, Some(i), facts(8, 0));
        }
        let o = s.finish().responders[0].1;
        assert_eq!((o.joined, o.reached), (4, 3));
        // Step 3: 8 expected, all answered; the canary total grew from 0 to 5.
        for i in 0..8 {
            s.ack(H, Some(i), facts(8, if i < 4 { 2 } else { 5 }));
        }
        let o = s.finish().responders[0].1;
        assert_eq!((o.joined, o.reached, o.canary_seen), (8, 8, Some(5)));
    }

    #[test]
    fn refusals_silence_and_unwatched_canaries() {
        let mut s = Stepper::new(30);
        s.ack(H, Some(0), AckFacts { joined: 20, ..AckFacts::default() });
        s.finish();
        let refused =
            AckFacts { joined: 20, refused: 3, refusal: Some(Refusal::SocketMemberships), ..AckFacts::default() };
        s.ack(H, Some(1), refused);
        // An older ack arriving late does not lower the counts.
        s.ack(H, Some(2), AckFacts { joined: 19, ..AckFacts::default() });
        let o = s.finish().responders[0].1;
        assert_eq!(
            (o.joined, o.reached, o.refused, o.refusal, o.canary_seen),
            (20, 2, 3, Some(Refusal::SocketMemberships), None)
        );
        // A step it is not heard in has no observation of it.
        assert!(s.finish().responders.is_empty());
        // Probes of no group of the range (the canary) count for nothing but their facts.
        s.ack(H, None, facts(20, 9));
        s.ack(H, Some(99), facts(20, 9));
        assert_eq!(s.finish().responders[0].1.reached, 0);
    }
}
