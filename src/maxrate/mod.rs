//! `mcprobe max-rate`: per responder, the highest probe rate it answers with at most
//! `--max-loss` loss over a whole trial (RFC 2544's throughput test, per receiver as in
//! RFC 3918).
//!
//! - [`search`]: which rate to try next, from the trials so far (pure);
//! - [`judge`]: a trial's findings to pass/fail per responder, and why a failure failed (pure);
//! - this module: the search's result (pure);
//! - [`driver`]: the engine, which runs one prober session per trial.
//!
//! `output/max_rate.rs` renders the result; `commands/max_rate.rs` is the command.

pub(crate) mod driver;
pub(crate) mod judge;
pub(crate) mod search;

use std::net::SocketAddr;

use crate::findings::ResponderId;
use judge::TrialResult;

/// One responder's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponderResult {
    pub id: ResponderId,
    pub name: String,
    pub addr: SocketAddr,
    /// The highest rate it passed below any failure (0: none).
    pub rate: u64,
    /// The lowest rate it failed at.
    pub fails_at: Option<u64>,
    /// Passed a confirming trial at `rate` (or found nothing to confirm).
    pub confirmed: bool,
    /// It failed at `fails_at` because it rate-limited the probes (its `--rate-limit`): the
    /// result is the responder's setting, not what the path carries.
    pub capped_by_limit: bool,
}

/// A finished search.
#[derive(Debug, Clone)]
pub(crate) struct SearchOutcome {
    /// The `run_id` of the search's CSV files (each trial has its own probe session).
    pub id: u64,
    pub trials: Vec<TrialResult>,
    /// Per responder, sorted by rate, weakest first.
    pub results: Vec<ResponderResult>,
    /// The search ran to its end (not cut by `--max-trials` or Ctrl-C).
    pub complete: bool,
    pub interrupted: bool,
    /// A rate this host's sender could not reach, above which the search did not go (see
    /// `search::sender_cap`).
    pub sender_limit: Option<u64>,
}

impl SearchOutcome {
    /// Whether `id` failed at `rate` mostly because it rate-limited the probes.
    pub(crate) fn limited_at(trials: &[TrialResult], id: ResponderId, rate: u64) -> bool {
        trials.iter().filter(|t| t.rate_asked == rate).any(|t| {
            t.responders.iter().any(|r| r.id == id && !r.pass && judge::cause(t, r) == judge::Cause::RateLimited)
        })
    }

    pub(crate) fn weakest(&self) -> Option<&ResponderResult> {
        self.results.first()
    }

    /// The best rate this host sent when asked for `rate`.
    pub(crate) fn best_sent_at(&self, rate: u64) -> f64 {
        self.trials.iter().filter(|t| t.rate_asked == rate).map(|t| t.rate_achieved).fold(0.0, f64::max)
    }

    /// The first trial in which some responder failed.
    pub(crate) fn first_failing(&self) -> Option<&TrialResult> {
        self.trials.iter().find(|t| t.responders.iter().any(|r| !r.pass))
    }
}
