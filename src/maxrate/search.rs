//! The rate search, pure: from the trials run so far, the next rate to try, and what each
//! responder's result is. No clock, no I/O; the driver ([`super`]) runs the trials.
//!
//! The method is RFC 2544's throughput test (section 26.1), applied per receiver as RFC 3918
//! does for multicast: the highest rate at which a receiver loses at most the tolerance over a
//! whole trial. One trial at one rate serves every responder at once (they all hear the same
//! probes), so each responder's bracket is derived from the shared list of trials:
//!
//! - `hi` = the lowest rate it failed at; `lo` = the highest rate below `hi` it passed at.
//!   Deriving both from the whole history (rather than updating them step by step) keeps a
//!   responder that passes above a rate it failed at (a lucky trial) from raising its result.
//! - **step up**: while some responder has not failed yet, multiply the highest rate tried by
//!   `factor`, up to `max`;
//! - **bisect**: while some bracket is wider than the resolution, try its midpoint, weakest
//!   responder first;
//! - **confirm**: a result counts once it passed twice (the trial that found it and one more at
//!   exactly that rate). A failed confirmation lowers `hi` and the bisection resumes.
//!
//! Rates are whole probes per second, so "the same rate" is an exact comparison.

use std::collections::BTreeMap;

use crate::findings::ResponderId;

/// How the search moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SearchConfig {
    /// The first rate tried.
    pub start: u64,
    /// Never try above this.
    pub max: u64,
    /// Step-up factor (RFC 2544 leaves it open; 2 halves the number of steps of 1.5).
    pub factor: f64,
    /// A bracket is resolved when `hi - lo ≤ lo × resolution` (relative; 0.05 = 5 %).
    pub resolution: f64,
    /// A responder failing at or below this rate is not searched further down: its result is
    /// "below the floor" (the highest pass below it, or 0).
    pub floor: u64,
}

/// One trial's verdict for one responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub responder: ResponderId,
    pub pass: bool,
}

/// One finished trial: the rate asked for, and who passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trial {
    pub rate: u64,
    /// The rate a pass counts at: `rate`, or the rate the sender achieved when it fell behind
    /// (it sent fewer probes than asked, so a pass proves no more). A failure counts at `rate`:
    /// between its stalls the sender kept to the rate asked, and a policer at a lower rate cut
    /// those stretches (a 2 000/s limit lost 11 probes in a trial asked at 2 458/s that averaged
    /// 1 509/s).
    pub passed_at: u64,
    pub verdicts: Vec<Verdict>,
}

impl Trial {
    fn counts_at(&self, v: &Verdict) -> u64 {
        if v.pass {
            self.passed_at
        } else {
            self.rate
        }
    }

    /// A trial that sent at the rate asked.
    #[cfg(test)]
    pub(crate) fn at(rate: u64, verdicts: Vec<Verdict>) -> Trial {
        Trial { rate, passed_at: rate, verdicts }
    }
}

/// What the search says to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run a trial at this rate; `phase` says why (for the progress display and the CSV).
    Try { rate: u64, phase: Phase },
    /// Every responder's result is found and confirmed.
    Done,
}

/// Trials at one rate whose sender fell behind before the search gives that rate up.
pub(crate) const SENDER_TRIES: usize = 3;

/// The lowest rate this host's sender fell behind at (below 90 % of it) [`SENDER_TRIES`] times,
/// and the best it sent there: the search goes no higher than that (a pass there proves only the
/// rate sent, so it would ask for the rate again and again), for every responder, while the
/// brackets below it are searched as usual.
pub(crate) fn sender_cap(trials: &[Trial]) -> Option<(u64, u64)> {
    let behind = || trials.iter().filter(|t| t.passed_at < t.rate);
    let rate = behind().map(|t| t.rate).filter(|&r| behind().filter(|t| t.rate == r).count() >= SENDER_TRIES).min()?;
    Some((rate, behind().filter(|t| t.rate == rate).map(|t| t.passed_at).max().unwrap_or(1)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    Step,
    Bisect,
    Confirm,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Step => "step",
            Phase::Bisect => "bisect",
            Phase::Confirm => "confirm",
        }
    }
}

/// One responder's standing after the trials so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// Highest rate passed below `hi` (0: none).
    pub lo: u64,
    /// Lowest rate failed (`None`: never failed).
    pub hi: Option<u64>,
    /// Trials passed at exactly `lo`.
    pub passes_at_lo: u32,
}

impl Standing {
    fn of(id: ResponderId, trials: &[Trial]) -> Standing {
        let verdicts = || {
            trials
                .iter()
                .flat_map(|t| t.verdicts.iter().filter(|v| v.responder == id).map(|v| (t.counts_at(v), v.pass)))
        };
        let hi = verdicts().filter(|&(_, pass)| !pass).map(|(r, _)| r).min();
        let below = |r: u64| hi.is_none_or(|h| r < h);
        let lo = verdicts().filter(|&(r, pass)| pass && below(r)).map(|(r, _)| r).max().unwrap_or(0);
        let passes_at_lo = verdicts().filter(|&(r, pass)| pass && r == lo && lo > 0).count() as u32;
        Standing { lo, hi, passes_at_lo }
    }

    /// The bracket needs no more bisection.
    fn narrow(&self, c: &SearchConfig) -> bool {
        match self.hi {
            None => self.lo >= c.max,
            Some(hi) => hi <= c.floor || hi - self.lo <= 1 || (hi - self.lo) as f64 <= self.lo as f64 * c.resolution,
        }
    }

    /// The search is over for this responder: narrow, and its result confirmed (or 0).
    pub(crate) fn settled(&self, c: &SearchConfig) -> bool {
        self.narrow(c) && (self.lo == 0 || self.passes_at_lo >= 2)
    }

    /// The result so far: the highest rate it passed, below any failure.
    pub(crate) fn rate(&self) -> u64 {
        self.lo
    }
}

/// Every responder heard in any trial, with its standing.
pub(crate) fn standings(trials: &[Trial]) -> BTreeMap<ResponderId, Standing> {
    let ids: std::collections::BTreeSet<ResponderId> =
        trials.iter().flat_map(|t| t.verdicts.iter().map(|v| v.responder)).collect();
    ids.into_iter().map(|id| (id, Standing::of(id, trials))).collect()
}

/// The next step of the search: [`wanted`], no higher than this host can send ([`sender_cap`]).
pub(crate) fn next(c: &SearchConfig, trials: &[Trial]) -> Next {
    match sender_cap(trials) {
        Some((_, best)) => wanted(&SearchConfig { max: c.max.min(best.max(1)), ..*c }, trials),
        None => wanted(c, trials),
    }
}

/// The trial the search wants next, whatever this host can send.
fn wanted(c: &SearchConfig, trials: &[Trial]) -> Next {
    let Some(highest) = trials.iter().map(|t| t.rate).max() else {
        return Next::Try { rate: c.start.clamp(1, c.max.max(1)), phase: Phase::Step };
    };
    let all = standings(trials);
    // Step up while someone has not failed yet and has not passed `max`: from the highest rate
    // tried, or `max` again when a trial at `max` proved less (its sender fell behind).
    if all.values().any(|s| s.hi.is_none() && s.lo < c.max) {
        let up = ((highest as f64 * c.factor).round() as u64).max(highest + 1).min(c.max);
        return Next::Try { rate: up, phase: Phase::Step };
    }
    // Bisect the weakest open bracket first: its result matters most (it is the group's). A
    // bracket from `max` up is left open: this host cannot send there (`next` lowers `max` to
    // what it sent), so a trial there would only fall behind again.
    let mut open: Vec<(u64, u64)> =
        all.values().filter(|s| !s.narrow(c) && s.lo < c.max).filter_map(|s| s.hi.map(|hi| (s.lo, hi))).collect();
    open.sort();
    if let Some(&(lo, hi)) = open.first() {
        let mid = (lo + (hi - lo) / 2).min(c.max);
        return Next::Try { rate: mid.max(1), phase: Phase::Bisect };
    }
    // Confirm the lowest unconfirmed result this host can send: one above `max` stays
    // unconfirmed (asking for it again would fall behind again, until --max-trials).
    let unconfirmed = all.values().filter(|s| !s.settled(c) && s.lo <= c.max).map(|s| s.lo).min();
    match unconfirmed {
        Some(rate) => Next::Try { rate, phase: Phase::Confirm },
        None => Next::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: SearchConfig = SearchConfig { start: 1000, max: 64_000, factor: 2.0, resolution: 0.05, floor: 100 };

    /// Runs the search against responders that pass exactly below their capacity; returns the
    /// rates tried and the results.
    fn simulate(c: &SearchConfig, capacity: &[u64]) -> (Vec<(u64, Phase)>, BTreeMap<ResponderId, Standing>) {
        let mut trials = Vec::new();
        let mut tried = Vec::new();
        for _ in 0..100 {
            match next(c, &trials) {
                Next::Done => return (tried, standings(&trials)),
                Next::Try { rate, phase } => {
                    tried.push((rate, phase));
                    let verdicts = (capacity.iter().enumerate())
                        .map(|(i, &cap)| Verdict { responder: ResponderId(i as u64), pass: rate <= cap })
                        .collect();
                    trials.push(Trial::at(rate, verdicts));
                }
            }
        }
        panic!("the search did not end in 100 trials: {tried:?}");
    }

    #[test]
    fn first_trial_is_the_start_rate() {
        assert_eq!(next(&CFG, &[]), Next::Try { rate: 1000, phase: Phase::Step });
        let small = SearchConfig { max: 500, ..CFG };
        assert_eq!(next(&small, &[]), Next::Try { rate: 500, phase: Phase::Step });
    }

    #[test]
    fn steps_up_then_bisects_then_confirms() {
        let (tried, results) = simulate(&CFG, &[10_000]);
        let rates: Vec<u64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(&rates[..5], &[1000, 2000, 4000, 8000, 16_000]);
        assert!(tried[5..tried.len() - 1].iter().all(|t| t.1 == Phase::Bisect), "{tried:?}");
        assert_eq!(tried.last().unwrap().1, Phase::Confirm);
        let s = results[&ResponderId(0)];
        // Within the resolution below the true capacity, never above it.
        assert!(s.rate() <= 10_000 && s.rate() as f64 >= 10_000.0 * 0.95, "{s:?}");
        assert_eq!(tried.last().unwrap().0, s.rate(), "the confirming trial is at the result");
        assert!(s.settled(&CFG));
    }

    #[test]
    fn each_responder_gets_its_own_rate_and_the_weakest_is_bisected_first() {
        let (tried, results) = simulate(&CFG, &[3000, 40_000, 20_000]);
        for (i, cap) in [3000u64, 40_000, 20_000].into_iter().enumerate() {
            let r = results[&ResponderId(i as u64)].rate();
            assert!(r <= cap && r as f64 >= cap as f64 * 0.95, "responder {i}: {r} for capacity {cap}");
        }
        let first_bisect = tried.iter().find(|t| t.1 == Phase::Bisect).unwrap().0;
        assert!((2000..4000).contains(&first_bisect), "weakest first: {tried:?}");
    }

    #[test]
    fn a_responder_that_never_fails_ends_at_max_confirmed() {
        let (tried, results) = simulate(&CFG, &[1_000_000]);
        assert_eq!(results[&ResponderId(0)].rate(), 64_000);
        assert_eq!(tried.last().unwrap(), &(64_000, Phase::Confirm));
        assert_eq!(tried.iter().filter(|t| t.0 == 64_000).count(), 2);
    }

    #[test]
    fn a_responder_that_fails_everything_stops_at_the_floor() {
        let (tried, results) = simulate(&CFG, &[0]);
        assert_eq!(results[&ResponderId(0)].rate(), 0);
        assert!(tried.len() <= 6, "a dead responder must not cost many trials: {tried:?}");
        assert!(tried.iter().all(|t| t.0 >= CFG.floor / 2));
    }

    #[test]
    fn a_failed_confirmation_lowers_the_result() {
        // Passes 10 000 once (the bisection), then fails there when confirming: the result must end
        // below 10 000 and be confirmed there.
        let c = SearchConfig { start: 8000, max: 16_000, ..CFG };
        let mut trials = vec![
            Trial::at(8000, vec![Verdict { responder: ResponderId(1), pass: true }]),
            Trial::at(16_000, vec![Verdict { responder: ResponderId(1), pass: false }]),
            Trial::at(10_000, vec![Verdict { responder: ResponderId(1), pass: true }]),
        ];
        let mut guard = 0;
        loop {
            guard += 1;
            assert!(guard < 50);
            match next(&c, &trials) {
                Next::Done => break,
                Next::Try { rate, .. } => {
                    let pass = rate < 10_000 && trials.iter().filter(|t| t.rate == rate).count() < 5;
                    trials.push(Trial::at(rate, vec![Verdict { responder: ResponderId(1), pass }]));
                }
            }
        }
        let s = standings(&trials)[&ResponderId(1)];
        assert!(s.rate() < 10_000 && s.rate() >= 9000, "{s:?}");
        assert!(s.passes_at_lo >= 2);
    }

    #[test]
    fn a_lucky_pass_above_a_failure_does_not_raise_the_result() {
        let id = ResponderId(7);
        let trials = vec![
            Trial::at(1000, vec![Verdict { responder: id, pass: true }]),
            Trial::at(2000, vec![Verdict { responder: id, pass: false }]),
            Trial::at(4000, vec![Verdict { responder: id, pass: true }]),
        ];
        let s = standings(&trials)[&id];
        assert_eq!((s.lo, s.hi), (1000, Some(2000)));
    }

    #[test]
    fn a_sender_behind_lowers_what_a_pass_proves_not_where_a_failure_counts() {
        let id = ResponderId(7);
        let v = |pass| vec![Verdict { responder: id, pass }];
        // Asked 2 750/s, sent 2 157/s: passed 2 157, not 2 750.
        let behind_pass = Trial { rate: 2750, passed_at: 2157, verdicts: v(true) };
        let s = standings(&[Trial::at(1000, v(true)), behind_pass, Trial::at(4000, v(false))])[&id];
        assert_eq!((s.lo, s.hi), (2157, Some(4000)));
        // Asked 2 458/s, averaged 1 509/s, failed: it failed at 2 458, where it was sent between
        // stalls.
        let behind_fail = Trial { rate: 2458, passed_at: 1509, verdicts: v(false) };
        let s = standings(&[Trial::at(1000, v(true)), behind_fail])[&id];
        assert_eq!((s.lo, s.hi), (1000, Some(2458)));
    }

    #[test]
    fn a_trial_at_max_whose_sender_fell_behind_is_tried_again() {
        let c = SearchConfig { max: 6000, ..CFG };
        let id = ResponderId(3);
        let v = |pass| vec![Verdict { responder: id, pass }];
        // Passed at 6 000/s asked but sent at 4 310/s: 6 000 is not proven yet.
        let trials = [Trial::at(3000, v(true)), Trial { rate: 6000, passed_at: 4310, verdicts: v(true) }];
        assert_eq!(next(&c, &trials), Next::Try { rate: 6000, phase: Phase::Step });
        // Once proven, confirmed like any result.
        let mut trials = trials.to_vec();
        trials.push(Trial::at(6000, v(true)));
        assert_eq!(next(&c, &trials), Next::Try { rate: 6000, phase: Phase::Confirm });
    }

    /// CI's failure (stop 32): a loaded machine sent 792 of 1 000/s asked, 1 137 of 2 000 and
    /// 2 045 of 4 000, with a policer at 2 000/s in front of one responder. The search asked for
    /// that responder's result again and again (each pass counted at the lower rate sent) until
    /// --max-trials. It must end instead, that result unconfirmed and no higher than the policer.
    #[test]
    fn a_sender_behind_at_every_rate_ends_the_search_instead_of_confirming_forever() {
        let c = SearchConfig { start: 1000, max: 6000, ..CFG };
        let (policed, clean) = (ResponderId(3), ResponderId(2));
        let mut trials: Vec<Trial> = Vec::new();
        let ended = (0..30).find_map(|_| match next(&c, &trials) {
            Next::Done => Some(trials.len()),
            Next::Try { rate, .. } => {
                let sent = ((rate as f64 * 0.8) as u64).min(2045);
                let verdicts =
                    vec![Verdict { responder: policed, pass: rate <= 2000 }, Verdict { responder: clean, pass: true }];
                trials.push(Trial { rate, passed_at: sent, verdicts });
                None
            }
        });
        let tried: Vec<u64> = trials.iter().map(|t| t.rate).collect();
        let n = ended.unwrap_or_else(|| panic!("the search did not end in 30 trials: {tried:?}"));
        assert!(n <= 20, "{n} trials: {tried:?}");
        let all = standings(&trials);
        let (p, k) = (all[&policed], all[&clean]);
        assert!(p.rate() <= 2000 && p.rate() < k.rate(), "{p:?} {k:?}");
        assert!(!p.settled(&c), "never passed at a rate this host really sent twice: unconfirmed");
        assert!(sender_cap(&trials).is_some(), "{tried:?}");
    }

    #[test]
    fn a_rate_this_host_cannot_send_is_given_up_after_three_tries() {
        let c = SearchConfig { max: 6000, ..CFG };
        let (fast, slow) = (ResponderId(3), ResponderId(4));
        let v = |f: bool, s: bool| vec![Verdict { responder: fast, pass: f }, Verdict { responder: slow, pass: s }];
        // Asked 6 000/s three times, sent at most 3 976/s: fast is done at 4 000 (confirmed once
        // more), slow is bisected below its failure at 4 000 as usual.
        let behind = |sent| Trial { rate: 6000, passed_at: sent, verdicts: v(true, false) };
        let mut trials =
            vec![Trial::at(2000, v(true, true)), Trial::at(4000, v(true, false)), behind(3846), behind(3976)];
        assert_eq!(sender_cap(&trials), None);
        assert_eq!(next(&c, &trials), Next::Try { rate: 6000, phase: Phase::Step });
        trials.push(behind(3709));
        assert_eq!(sender_cap(&trials), Some((6000, 3976)));
        assert_eq!(next(&c, &trials), Next::Try { rate: 3000, phase: Phase::Bisect });
        let s = standings(&trials)[&fast];
        assert!(s.narrow(&SearchConfig { max: 3976, ..c }) && !s.settled(&SearchConfig { max: 3976, ..c }));
    }
}
