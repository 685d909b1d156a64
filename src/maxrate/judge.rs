//! From one trial's findings to verdicts, and from a failing trial to what failed. Pure: the
//! driver hands in findings and figures, nothing here touches a clock or a socket.

use std::net::SocketAddr;
use std::time::Duration;

use crate::findings::{Findings, ResponderId};
use crate::stats::Figures;

use super::search::Phase;

/// One responder in one trial.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponderTrial {
    pub id: ResponderId,
    pub name: String,
    pub addr: SocketAddr,
    pub figures: Figures,
    pub pass: bool,
}

/// One finished trial.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrialResult {
    /// 1 for the first trial.
    pub index: u32,
    pub phase: Phase,
    /// The trial's probe session: its `run_id`.
    pub session: u64,
    pub rate_asked: u64,
    /// Probes sent over the time they took to leave (see [`achieved_rate`]).
    pub rate_achieved: f64,
    /// Acks this host's socket dropped (SO_RXQ_OVFL), over all responders.
    pub local_drops: u64,
    pub send_errors: u64,
    pub responders: Vec<ResponderTrial>,
}

/// A responder we heard before, so a trial in which it is silent counts against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    pub id: ResponderId,
    pub name: String,
    pub addr: SocketAddr,
}

/// At most `tolerance_pct` of the probes sent may go unanswered (lost, late or rate-limited: a
/// responder that does not answer a probe has not kept up, whatever it calls it).
pub(crate) fn passes(f: &Figures, tolerance_pct: f64) -> bool {
    let allowed = (f.sent as f64 * tolerance_pct / 100.0).floor() as u64;
    f.sent > 0 && f.lost + f.limited <= allowed
}

/// The multicast responders of a trial, plus every known responder it did not hear (all lost).
pub(crate) fn responders(found: &Findings, known: &[Known], tolerance_pct: f64) -> Vec<ResponderTrial> {
    let mut out: Vec<ResponderTrial> = found
        .responders()
        .filter_map(|r| {
            let who = r.responder.as_ref()?;
            let pass = passes(&r.figures, tolerance_pct);
            Some(ResponderTrial {
                id: who.id,
                name: who.name.clone(),
                addr: who.addr,
                figures: r.figures.clone(),
                pass,
            })
        })
        .collect();
    for k in known {
        if !out.iter().any(|r| r.id == k.id) {
            let figures = Figures::silent(found.run.sent);
            out.push(ResponderTrial { id: k.id, name: k.name.clone(), addr: k.addr, figures, pass: false });
        }
    }
    out.sort_by(|a, b| (&a.name, a.addr, a.id).cmp(&(&b.name, b.addr, b.id)));
    out
}

/// Probes per second actually sent: the gaps between `sent` probes over the time from the start
/// of the schedule to the last one leaving (`Outcome::send_span`), at most the rate asked.
/// Measured, not inferred from lateness: a stalled trial's sender moves its schedule later
/// (`ProbeConfig::backlog_max`), which its lateness does not show.
pub(crate) fn achieved_rate(sent: u64, asked: u64, span: Duration) -> f64 {
    if sent < 2 || span.is_zero() {
        return asked as f64;
    }
    ((sent - 1) as f64 / span.as_secs_f64()).min(asked as f64)
}

impl TrialResult {
    /// The rate a pass in this trial proves (see `search::Trial::passed_at`): the rate asked, or
    /// the rate achieved when the sender fell behind ([`sender_behind`]). A responder that kept
    /// up with a sender held back to 2 157/s has passed 2 157/s, not the 2 750/s asked (a
    /// limiter at 2 000/s, burst 200, passed such a trial on a loaded CI machine, and the search
    /// reported 2 750).
    pub(crate) fn passed_at(&self) -> u64 {
        if sender_behind(self) {
            (self.rate_achieved.floor() as u64).clamp(1, self.rate_asked.max(1))
        } else {
            self.rate_asked
        }
    }
}

/// Why a responder failed a trial: what most of its unanswered probes became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Acks dropped by this host's own socket buffer: this host's limit.
    LocalDrops,
    /// Probes that never reached the responder: its host (receive buffer, CPU) or the path to it.
    Forward,
    /// Probes the responder's own host dropped: its socket buffer was full (it reports these).
    ResponderHost,
    /// Probes that never reached the responder, lost after its latest report of its drops:
    /// its host or the path to it, not yet told.
    ForwardUntold,
    /// Acks lost on the way back.
    Return,
    /// Probes the responder chose not to answer (its `--rate-limit`).
    RateLimited,
    /// Acks slower than `--timeout`.
    Late,
    /// Lost after the responder's newest ack: the direction is unknown.
    Unknown,
}

impl Cause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::LocalDrops => "local-drops",
            Cause::Forward => "forward",
            Cause::ResponderHost => "responder-host",
            Cause::ForwardUntold => "forward-untold",
            Cause::Return => "return",
            Cause::RateLimited => "rate-limited",
            Cause::Late => "late",
            Cause::Unknown => "unknown",
        }
    }

    pub(crate) fn explain(self) -> &'static str {
        match self {
            Cause::LocalDrops => "acks dropped by this host's socket buffer: a limit of this host, not of the network",
            Cause::Forward => "probes did not reach the responder: the path to it (or its host, if it does not report its own drops)",
            Cause::ResponderHost => {
                "probes dropped by the responder's own socket buffer: a limit of that host (raise its --rcvbuf), not of the network"
            }
            Cause::ForwardUntold => {
                "probes did not reach the responder, after its latest report of its own drops: its host or the path to it, not yet told"
            }
            Cause::Return => "acks lost on the way back from the responder",
            Cause::RateLimited => {
                "the responder's --rate-limit (default 10000/s per prober): start it with a higher one"
            }
            Cause::Late => "acks slower than --timeout: queues building up",
            Cause::Unknown => "lost at the end of the trial; the direction cannot be told",
        }
    }
}

/// The prober sent at less than 90 % of the rate asked: the trial tested a lower rate than it
/// says (a stalled sender moves its schedule later, see `ProbeConfig::backlog_max`). A limit of
/// this host, not of the network.
pub(crate) fn sender_behind(t: &TrialResult) -> bool {
    t.rate_achieved < 0.9 * t.rate_asked as f64
}

/// What most of a failing responder's unanswered probes became. The prober's own drops come
/// first: they show up as return (or unknown) loss, and must not be blamed on the network.
pub(crate) fn cause(t: &TrialResult, r: &ResponderTrial) -> Cause {
    let f = &r.figures;
    let local = t.local_drops.min(f.loss.ret + f.loss.unknown);
    let ret = f.loss.ret.saturating_sub(local);
    let unknown = f.loss.unknown.saturating_sub(local.saturating_sub(f.loss.ret));
    let host = f.loss.host_drops_or_zero();
    let parts = [
        (local, Cause::LocalDrops),
        (host, Cause::ResponderHost),
        (f.loss.forward - host - f.loss.unreported, Cause::Forward),
        (f.loss.unreported, Cause::ForwardUntold),
        (ret, Cause::Return),
        (f.limited, Cause::RateLimited),
        (f.late, Cause::Late),
        (unknown, Cause::Unknown),
    ];
    // The first of the largest, in the order above.
    parts.iter().fold((0, Cause::Unknown), |best, &(n, c)| if n > best.0 { (n, c) } else { best }).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LossSplit as LS;

    fn trial(asked: u64, achieved: f64, local_drops: u64) -> TrialResult {
        TrialResult {
            index: 1,
            phase: Phase::Step,
            session: 1,
            rate_asked: asked,
            rate_achieved: achieved,
            local_drops,
            send_errors: 0,
            responders: Vec::new(),
        }
    }

    fn resp(f: Figures) -> ResponderTrial {
        ResponderTrial {
            id: ResponderId(1),
            name: "h".into(),
            addr: "10.0.0.1:1".parse().unwrap(),
            figures: f,
            pass: false,
        }
    }

    #[test]
    fn tolerance_counts_unanswered_probes_of_any_kind() {
        let f = Figures {
            sent: 1000,
            received: 999,
            lost: 1,
            loss: LS { forward: 1, ..LS::default() },
            ..Figures::default()
        };
        assert!(!passes(&f, 0.0));
        assert!(passes(&f, 0.1));
        let limited = Figures { sent: 1000, received: 990, limited: 10, ..Figures::default() };
        assert!(!passes(&limited, 0.5), "rate-limited probes were not answered");
        assert!(passes(&Figures { sent: 10, received: 10, ..Figures::default() }, 0.0));
        assert!(!passes(&Figures::default(), 0.0), "a trial without probes proves nothing");
    }

    #[test]
    fn the_dominant_loss_names_the_cause() {
        let fwd =
            Figures { sent: 100, lost: 30, loss: LS { forward: 25, ret: 5, ..LS::default() }, ..Figures::default() };
        assert_eq!(cause(&trial(1000, 1000.0, 0), &resp(fwd.clone())), Cause::Forward);
        let ret =
            Figures { sent: 100, lost: 30, loss: LS { forward: 5, ret: 25, ..LS::default() }, ..Figures::default() };
        assert_eq!(cause(&trial(1000, 1000.0, 0), &resp(ret.clone())), Cause::Return);
        // The same return loss, all of it dropped by the prober's own socket: this host's limit.
        assert_eq!(cause(&trial(1000, 1000.0, 25), &resp(ret)), Cause::LocalDrops);
        // A prober that sent at 70 % of the rate asked is named apart; the loss keeps its cause.
        assert!(sender_behind(&trial(1000, 700.0, 0)) && !sender_behind(&trial(1000, 950.0, 0)));
        assert_eq!(cause(&trial(1000, 700.0, 0), &resp(fwd.clone())), Cause::Forward);
        let host = Figures { loss: LS { host_drops: Some(20), ..fwd.loss }, ..fwd.clone() };
        assert_eq!(cause(&trial(1000, 1000.0, 0), &resp(host)), Cause::ResponderHost);
        let mostly_network = Figures { loss: LS { host_drops: Some(5), ..fwd.loss }, ..fwd };
        assert_eq!(cause(&trial(1000, 1000.0, 0), &resp(mostly_network)), Cause::Forward);
        let lim =
            Figures { sent: 100, limited: 40, lost: 1, loss: LS { forward: 1, ..LS::default() }, ..Figures::default() };
        assert_eq!(cause(&trial(1000, 1000.0, 0), &resp(lim)), Cause::RateLimited);
    }

    #[test]
    fn achieved_rate_is_measured_over_the_send_span() {
        assert_eq!(achieved_rate(1001, 1000, Duration::from_secs(1)), 1000.0);
        // 1000 gaps of 1 ms in 2 s (a schedule moved 1 s later): half the rate.
        assert!((achieved_rate(1001, 1000, Duration::from_secs(2)) - 500.0).abs() < 1e-9);
        // Never above the rate asked; too few probes to tell: the rate asked.
        assert_eq!(achieved_rate(1001, 1000, Duration::from_millis(900)), 1000.0);
        assert_eq!(achieved_rate(1, 1000, Duration::ZERO), 1000.0);
    }

    #[test]
    fn a_pass_whose_sender_fell_behind_counts_at_the_rate_it_achieved() {
        assert_eq!(trial(2750, 2700.0, 0).passed_at(), 2750);
        assert_eq!(trial(2750, 2157.6, 0).passed_at(), 2157);
        assert_eq!(trial(10, 0.2, 0).passed_at(), 1);
    }
}
