//! The search's engine: one prober session per step, over every group of the range and the
//! canary (round robin, `rounds` probes of each per step); each step's per-(responder, group)
//! answers and the responders' memberships records go to [`super::steps`], the steps to
//! [`super::judge`]. It stops when every ramping responder is settled, after `max_steps`, or on
//! Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use super::judge::{self, Capacity, JudgeConfig, Refusal, Step};
use super::steps::{AckFacts, Stepper};
use crate::findings::ResponderId;
use crate::prober::{self, ProbeConfig};
use crate::wire::{MembershipRefusal, Memberships};

/// A validated search.
#[derive(Debug, Clone)]
pub(crate) struct MaxGroupsConfig {
    /// Every step's prober run but its session and count: `groups` is the range, then the
    /// canary.
    pub probe: ProbeConfig,
    /// Groups of the range (the canary is the one after them in `probe.groups`).
    pub range: usize,
    pub step: Duration,
    /// Probes of each group per step.
    pub rounds: u32,
    pub max_steps: u32,
    pub judge: JudgeConfig,
}

impl MaxGroupsConfig {
    pub(crate) fn canary(&self) -> IpAddr {
        self.probe.groups[self.range]
    }
}

/// A responder heard in the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heard {
    pub id: ResponderId,
    pub name: String,
    pub addr: SocketAddr,
    /// Its acks carried a memberships record (it ramps: `respond --ramp`).
    pub ramping: bool,
}

/// What the driver tells as it goes.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    StepDone { index: u32, step: &'a Step, heard: &'a [Heard] },
}

/// A finished search.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub steps: Vec<Step>,
    pub heard: Vec<Heard>,
    /// Per ramping responder, weakest first.
    pub capacities: Vec<Capacity>,
    /// Every ramping responder settled (not cut by `max_steps` or Ctrl-C).
    pub complete: bool,
    pub interrupted: bool,
}

fn refusal(r: MembershipRefusal) -> Refusal {
    match r {
        MembershipRefusal::SocketLimit => Refusal::SocketMemberships,
        MembershipRefusal::Files => Refusal::Files,
        MembershipRefusal::Memory => Refusal::Memory,
        MembershipRefusal::Other => Refusal::Other(0),
    }
}

fn facts(m: &Memberships) -> AckFacts {
    AckFacts {
        joined: m.joined,
        refused: m.refused,
        refusal: m.refusal.map(refusal),
        canary_total: m.canary.map(u64::from),
        flood_at: m.flood_at,
    }
}

pub(crate) fn run(cfg: &MaxGroupsConfig, stop: &AtomicBool, mut on_event: impl FnMut(Event)) -> Result<Outcome> {
    let mut stepper = Stepper::new(cfg.range);
    let mut steps: Vec<Step> = Vec::new();
    let mut heard: Vec<Heard> = Vec::new();
    let per_step = u64::from(cfg.rounds.max(1)) * cfg.probe.groups.len() as u64;
    let (mut complete, mut interrupted) = (false, false);
    while (steps.len() as u32) < cfg.max_steps {
        let probe = ProbeConfig {
            session: rand::random(),
            count: per_step,
            interval: cfg.step / per_step.max(1) as u32,
            ..cfg.probe.clone()
        };
        let outcome = prober::run(&probe, stop, None, None)?;
        if outcome.interrupted || stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        for h in outcome.run.hosts() {
            let id = ResponderId(h.responder_id);
            let ramping = h.memberships.is_some();
            match heard.iter_mut().find(|k| k.id == id) {
                Some(k) => k.ramping |= ramping,
                None => heard.push(Heard { id, name: h.name.clone(), addr: h.addr, ramping }),
            }
            let Some((first, newest)) = &h.memberships else { continue };
            stepper.ack(id, None, facts(first));
            for (i, t) in h.groups.iter().enumerate().take(cfg.range) {
                if t.reached() {
                    stepper.ack(id, Some(i), facts(newest));
                }
            }
            stepper.ack(id, None, facts(newest));
        }
        steps.push(stepper.finish());
        let index = steps.len() as u32;
        on_event(Event::StepDone { index, step: steps.last().expect("just pushed"), heard: &heard });
        let ramping: Vec<ResponderId> = heard.iter().filter(|k| k.ramping).map(|k| k.id).collect();
        if !ramping.is_empty() && ramping.iter().all(|&id| judge::settled(&steps, id, cfg.range as u32, &cfg.judge)) {
            complete = true;
            break;
        }
    }
    let capacities = judge::capacities(&steps, &cfg.judge);
    Ok(Outcome { steps, heard, capacities, complete, interrupted })
}
