//! Join and leave delay per group at a responder (`respond --groups … --churn PERIOD`): the
//! churn schedule, and the latest delays of each group for the acks ([`wire::GroupDelays`]).
//!
//! **The schedule** ([`churn_step`]): the responder joins every group at start; then every
//! PERIOD it leaves the next group in turn and joins it again PERIOD/2 later (channel zapping,
//! one group out at a time; each group goes round once every N × PERIOD). PERIOD/2 must be
//! longer than the LAN's leave delay plus the quiet time (PERIOD/8), else the group is still
//! arriving when it is joined again and that leave has no delay (it says so).
//!
//! **The clock**: with CAP_NET_RAW, the membership tap ([`crate::net::membership_tap`]) stamps
//! the reports leaving the interface and the probes reaching it (the figures a capture on the
//! interface gives). Without it, the join instant is the time of the join system call (the
//! kernel sends the report at least two ticks later, `jiffies + 2` in igmp.c: 8 ms at HZ=250, 8 to
//! 16 ms measured in the lab, so join delays read that much
//! longer) and the first probe the socket receives; leaves cannot be measured (a socket gets
//! nothing after it leaves), and are reported as not measurable.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{InterfaceIndexOrAddress, SockRef};

use super::ResponderConfig;
use crate::net::membership::{Change, Delay, DelayKind, DelayTracker, Membership, Outcome};
use crate::net::membership_tap::{MembershipSpec, MembershipTap};
use crate::net::{now_ns, Iface};
use crate::wire::{DelayClock, DelayFigure, GroupDelays};

/// Step `k` (from 0) of the churn schedule over `n` groups: when, from the end of the first
/// joins, which group (its index), and whether it leaves or joins again.
pub(crate) fn churn_step(k: u64, n: usize, period: Duration) -> (Duration, usize, Change) {
    let cycle = k / 2;
    let group = (cycle % n.max(1) as u64) as usize;
    let at = period.saturating_mul(u32::try_from(cycle + 1).unwrap_or(u32::MAX));
    if k % 2 == 0 {
        (at, group, Change::Leave)
    } else {
        (at.saturating_add(period / 2), group, Change::Join)
    }
}

/// The quiet time for a churn period: a group that did not arrive for this long is not
/// flowing (see [`DelayTracker::new`]). Probes of each group must come more often.
pub(crate) fn quiet_for(period: Duration) -> Duration {
    (period / 8).max(Duration::from_millis(20))
}

enum Clock {
    Tap(MembershipTap),
    /// The system calls' times and the socket's arrivals.
    Syscall(DelayTracker),
}

/// The latest figures of each group, as the engine puts them in acks; and, on the system-call
/// clock, the probes the socket received, for [`Churn::tick`] to take.
#[derive(Debug, Default)]
pub(crate) struct AckFigures {
    latest: HashMap<IpAddr, GroupDelays>,
    /// (group, kernel receive time) of multicast probes since the last tick, when collected.
    arrivals: Vec<(IpAddr, u64)>,
    collect: bool,
    /// Acks that had figures to carry but no room for them (the probe under
    /// [`NEEDED_PROBE_LEN`]), and whether that was told.
    no_room: u64,
    no_room_told: bool,
    /// Groups a probe has arrived for, and those whose first probe was of the prober's first
    /// round (sequence number under the number of groups): its prober started after the
    /// responder's first join, which then has no delay.
    seen: HashSet<IpAddr>,
    late: HashSet<IpAddr>,
    groups: u64,
}

/// The probe length that leaves room for an ack with the join/leave record and any name.
pub(crate) const NEEDED_PROBE_LEN: usize =
    crate::wire::ACK_FIXED_LEN + 1 + crate::wire::EXT_JOIN_LEAVE_LEN + 1 + crate::wire::MAX_NAME_LEN;

/// Most arrivals kept between two ticks (a tick comes every 20 ms or sooner): the first probe
/// after a join is all the system-call clock needs of them.
const MAX_ARRIVALS: usize = 1 << 16;

impl AckFigures {
    /// Figures for a responder on `groups` groups.
    pub(crate) fn new(groups: usize) -> AckFigures {
        AckFigures { groups: groups as u64, ..AckFigures::default() }
    }

    /// A multicast probe `seq` to `group` reached the socket at `rx_ns`.
    pub(crate) fn arrived(&mut self, group: IpAddr, rx_ns: u64, seq: u64) {
        if self.seen.len() < super::super::net::membership::MAX_GROUPS && self.seen.insert(group) && seq < self.groups {
            self.late.insert(group);
        }
        if self.collect && self.arrivals.len() < MAX_ARRIVALS {
            self.arrivals.push((group, rx_ns));
        }
    }

    /// The latest figures of `group`, once it has any.
    pub(crate) fn of(&self, group: IpAddr) -> Option<GroupDelays> {
        let mut f = self.latest.get(&group).copied()?;
        if f.joins == 1 && matches!(f.join, DelayFigure::Measured(_)) && self.late.contains(&group) {
            f.join = DelayFigure::StartedAfter;
        }
        Some(f)
    }

    /// An ack within `limit` bytes with a name of `name` bytes on the wire (its length byte
    /// included; 0 without a name) had figures to carry: counts it when they do not fit.
    pub(crate) fn check_room(&mut self, limit: usize, name: usize) {
        let need = crate::wire::ACK_FIXED_LEN + 1 + crate::wire::EXT_JOIN_LEAVE_LEN + name;
        if limit < need {
            self.no_room += 1;
        }
    }

    /// The one line to print, once, when acks had no room for the figures.
    fn no_room_line(&mut self) -> Option<String> {
        (self.no_room > 0 && !self.no_room_told).then(|| {
            self.no_room_told = true;
            format!(
                "--churn: probes too small to carry the join and leave delays back ({} so far); probe with --size {NEEDED_PROBE_LEN} or more",
                self.no_room
            )
        })
    }
}

/// The measurement of join and leave delays.
pub(crate) struct JoinLeave {
    clock: Clock,
}

impl JoinLeave {
    /// Starts measuring on interface `ifindex` (when known) for probes to `port`; the second
    /// element is the one line to print when only the system-call clock is available.
    pub(crate) fn start(ifindex: Option<u32>, port: u16, period: Duration) -> (JoinLeave, Option<String>) {
        let quiet = quiet_for(period);
        let tap = match ifindex {
            Some(ifindex) => MembershipTap::start(&MembershipSpec { ifindex, ports: (port, port), quiet }),
            None => Err("the join and leave delays need --iface to watch an interface".to_string()),
        };
        let (clock, note) = match tap {
            Ok(t) => (Clock::Tap(t), None),
            Err(why) => {
                let note = format!(
                    "{why}; join delays are timed from the join system call (the report leaves two or more kernel ticks later, 8-16 ms at HZ=250, so they read that much longer) and leave delays are not measured"
                );
                let tracker = DelayTracker::new(u64::try_from(quiet.as_nanos()).unwrap_or(u64::MAX));
                (Clock::Syscall(tracker), Some(note))
            }
        };
        (JoinLeave { clock }, note)
    }

    /// The clock the figures come from.
    pub(crate) fn clock(&self) -> DelayClock {
        match self.clock {
            Clock::Tap(_) => DelayClock::Interface,
            Clock::Syscall(_) => DelayClock::Syscall,
        }
    }

    /// The responder joined (`Change::Join`) or left `group` at `now_ns` (just after the
    /// system call returned).
    pub(crate) fn changed(&mut self, group: IpAddr, change: Change, now_ns: u64) {
        if let Clock::Syscall(t) = &mut self.clock {
            t.report(now_ns, Membership { group, change });
        }
    }

    /// Takes the probes the socket received (system-call clock) and the delays completed
    /// since the last call into `figures`.
    pub(crate) fn refresh(&mut self, figures: &mut AckFigures) {
        let clock = self.clock();
        figures.collect = clock == DelayClock::Syscall;
        let done = match &mut self.clock {
            Clock::Tap(t) => t.take(),
            Clock::Syscall(t) => {
                for (g, rx) in figures.arrivals.drain(..) {
                    t.datagram(rx, g);
                }
                t.take()
            }
        };
        for d in done {
            let e = figures.latest.entry(d.group).or_insert(GroupDelays { clock, ..GroupDelays::default() });
            match d.kind {
                DelayKind::Join => {
                    e.joins = e.joins.saturating_add(1);
                    e.join = figure(&d);
                    if clock == DelayClock::Syscall {
                        e.leave = DelayFigure::NotMeasurable;
                    }
                }
                DelayKind::Leave if clock == DelayClock::Syscall => e.leave = DelayFigure::NotMeasurable,
                DelayKind::Leave => e.leave = figure(&d),
            }
        }
    }
}

/// The groups `--churn` has left for now: their probes reach the interface (until the LAN
/// stops sending them) but not the socket, by design; the probe tap does not count them.
pub(crate) type Left = Arc<Mutex<HashSet<IpAddr>>>;

/// How long after a group is joined again the probe tap goes on leaving it out: longer than the
/// tap's reads lag behind on a busy host.
const UNMARK_AFTER: Duration = Duration::from_secs(2);

/// The groups whose probes the probe tap must not count (see [`Left`]), kept by whoever joins
/// and leaves them (`--churn`, `--ramp`). A group is marked left before it is left (or from the
/// start, until first joined), and counted again only [`UNMARK_AFTER`] after its join: the tap
/// decides when it reads a probe, not when the probe came, so it may miss a few probes the
/// socket got (it then counts less), never count one the socket could not get.
#[derive(Default)]
pub(crate) struct LeftGroups {
    set: Left,
    /// Groups joined, still left for the tap until the instant beside, oldest first.
    unmark: Vec<(IpAddr, Instant)>,
}

impl LeftGroups {
    /// `groups` left from the start (`--ramp`: none joined yet).
    pub(crate) fn of(groups: impl IntoIterator<Item = IpAddr>) -> Self {
        LeftGroups { set: Arc::new(Mutex::new(groups.into_iter().collect())), unmark: Vec::new() }
    }

    /// The set, shared with the probe tap.
    pub(crate) fn shared(&self) -> Left {
        self.set.clone()
    }

    /// `group` is about to be left: left for the tap now, and no earlier join unmarks it.
    pub(crate) fn leaving(&mut self, group: IpAddr) {
        self.unmark.retain(|(g, _)| *g != group);
        self.set.lock().unwrap_or_else(|e| e.into_inner()).insert(group);
    }

    /// `group` was joined at `now`: counted again [`UNMARK_AFTER`] later (see [`Self::due`]).
    pub(crate) fn joined(&mut self, group: IpAddr, now: Instant) {
        self.unmark.push((group, now + UNMARK_AFTER));
    }

    /// When [`Self::due`] next has a group to count again.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.unmark.first().map(|(_, at)| *at)
    }

    /// Counts again the groups joined [`UNMARK_AFTER`] before `now` or earlier.
    pub(crate) fn due(&mut self, now: Instant) {
        let n = self.unmark.iter().take_while(|(_, at)| *at <= now).count();
        if n > 0 {
            let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
            for (g, _) in self.unmark.drain(..n) {
                set.remove(&g);
            }
        }
    }
}

/// `--churn`: the schedule, run from the responder's loop, and the measurement.
pub(crate) struct Churn {
    period: Duration,
    groups: Vec<IpAddr>,
    iface: Option<Iface>,
    measure: JoinLeave,
    /// When the first joins were done: the schedule counts from there.
    start: Option<Instant>,
    next: u64,
    /// The group out now, and the socket it was on (it joins again there: it has room).
    out: Option<(IpAddr, usize)>,
    left: LeftGroups,
}

impl Churn {
    /// Starts measuring, before the first joins (so that the tap sees their reports); the
    /// line to print when the delays are timed from the system calls.
    pub(crate) fn start(cfg: &ResponderConfig, period: Duration) -> (Churn, Option<String>) {
        let (measure, note) = JoinLeave::start(cfg.iface.as_ref().map(|i| i.index), cfg.port, period);
        let churn = Churn {
            period,
            groups: cfg.groups.clone(),
            iface: cfg.iface.clone(),
            measure,
            start: None,
            next: 0,
            out: None,
            left: LeftGroups::default(),
        };
        (churn, note)
    }

    /// The groups left for now, shared with the probe tap.
    pub(crate) fn left(&self) -> Left {
        self.left.shared()
    }

    /// The first joins were done: they were timed `joining_ns` (before the system calls).
    pub(crate) fn joined_all(&mut self, joining_ns: u64) {
        for &g in &self.groups {
            self.measure.changed(g, Change::Join, joining_ns);
        }
        self.start = Some(Instant::now());
    }

    /// When [`tick`](Self::tick) next has something to do: the schedule's next step, or a
    /// group to unmark. The responder's loop waits for it instead of ticking.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let step = self.start.map(|s| s + churn_step(self.next, self.groups.len(), self.period).0);
        step.into_iter().chain(self.left.next_due()).min()
    }

    /// Runs the schedule's steps that are due on `socks` (the sockets holding the groups) and
    /// brings `figures` up to date. An error is one line for the user; the schedule goes on.
    pub(crate) fn tick(&mut self, socks: &[UdpSocket], figures: &mut AckFigures) -> Option<String> {
        let mut failed = None;
        if let Some(start) = self.start {
            let elapsed = start.elapsed();
            // One step per tick: a late tick never leaves and joins a group again in one go
            // (the kernel would merge the two into no report at all).
            if let Some((_, i, change)) =
                Some(churn_step(self.next, self.groups.len(), self.period)).filter(|(at, ..)| *at <= elapsed)
            {
                self.next += 1;
                let group = self.groups[i];
                // Left for the probe tap before the leave, counted again a while after the join
                // (see [`LeftGroups`]).
                let done = match change {
                    Change::Leave => {
                        self.left.leaving(group);
                        self.leave(socks, group)
                    }
                    Change::Join => {
                        let done = self.rejoin(socks, group);
                        self.left.joined(group, Instant::now());
                        done
                    }
                };
                match done {
                    Ok(()) => self.measure.changed(group, change, now_ns()),
                    Err(e) => failed = Some(e),
                }
            }
        }
        self.left.due(Instant::now());
        self.measure.refresh(figures);
        failed.or_else(|| figures.no_room_line())
    }

    fn leave(&mut self, socks: &[UdpSocket], group: IpAddr) -> Result<(), String> {
        // The socket that holds it: the only one whose leave succeeds.
        let mut last = None;
        for (k, s) in socks.iter().enumerate() {
            match membership(s, group, self.iface.as_ref(), false) {
                Ok(()) => {
                    self.out = Some((group, k));
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(format!("--churn: cannot leave {group}: {}", last.map_or("no socket".into(), |e| e.to_string())))
    }

    fn rejoin(&mut self, socks: &[UdpSocket], group: IpAddr) -> Result<(), String> {
        let k = match self.out.take() {
            Some((g, k)) if g == group => k,
            _ => return Err(format!("--churn: {group} was not left, so not joined again")),
        };
        membership(&socks[k], group, self.iface.as_ref(), true)
            .map_err(|e| format!("--churn: cannot join {group} again: {e}"))
    }
}

/// Joins (`join`) or leaves `group` on `sock`, on the interface the first joins used.
fn membership(sock: &UdpSocket, group: IpAddr, iface: Option<&Iface>, join: bool) -> std::io::Result<()> {
    let s = SockRef::from(sock);
    match group {
        IpAddr::V4(g) => {
            let via = match iface {
                Some(i) => InterfaceIndexOrAddress::Index(i.index),
                None => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
            };
            if join {
                s.join_multicast_v4_n(&g, &via)
            } else {
                s.leave_multicast_v4_n(&g, &via)
            }
        }
        IpAddr::V6(g) => {
            let index = iface.map_or(0, |i| i.index);
            if join {
                s.join_multicast_v6(&g, index)
            } else {
                s.leave_multicast_v6(&g, index)
            }
        }
    }
}

/// A tracker's delay as the wire says it.
pub(crate) fn figure(d: &Delay) -> DelayFigure {
    match d.outcome {
        Outcome::Measured { .. } => DelayFigure::Measured(d.delay_ns().unwrap_or(0)),
        Outcome::AlreadyArriving => DelayFigure::AlreadyArriving,
        Outcome::NeverArrived => DelayFigure::NeverArrived,
        Outcome::NoneAfter => DelayFigure::NoneAfter,
        Outcome::StillArriving { .. } => DelayFigure::StillArriving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_group_is_counted_by_the_tap_only_once_its_late_reads_are_past() {
        let (g, h): (IpAddr, IpAddr) = ("239.9.0.1".parse().unwrap(), "239.9.0.2".parse().unwrap());
        let mut left = LeftGroups::of([g, h]);
        let not_joined = left.shared();
        let t0 = Instant::now();
        left.joined(g, t0);
        assert_eq!(left.next_due(), Some(t0 + UNMARK_AFTER));
        left.due(t0);
        assert!(not_joined.lock().unwrap().contains(&g), "a probe read now may have come before the join");
        left.due(t0 + UNMARK_AFTER);
        assert_eq!(*not_joined.lock().unwrap(), [h].into_iter().collect());
        assert_eq!(left.next_due(), None);
        // --churn: left, joined again, and left again before that join's delay is over: it
        // stays left (the earlier join does not count it again).
        let t1 = t0 + UNMARK_AFTER;
        left.leaving(g);
        left.joined(g, t1);
        left.leaving(g);
        left.due(t1 + UNMARK_AFTER);
        assert!(not_joined.lock().unwrap().contains(&g));
    }

    #[test]
    fn the_schedule_leaves_one_group_at_a_time_and_rejoins_it_half_a_period_later() {
        let p = Duration::from_secs(4);
        let steps: Vec<_> = (0..8).map(|k| churn_step(k, 3, p)).collect();
        assert_eq!(
            steps,
            [
                (Duration::from_secs(4), 0, Change::Leave),
                (Duration::from_secs(6), 0, Change::Join),
                (Duration::from_secs(8), 1, Change::Leave),
                (Duration::from_secs(10), 1, Change::Join),
                (Duration::from_secs(12), 2, Change::Leave),
                (Duration::from_secs(14), 2, Change::Join),
                (Duration::from_secs(16), 0, Change::Leave),
                (Duration::from_secs(18), 0, Change::Join),
            ]
        );
        assert_eq!(quiet_for(p), Duration::from_millis(500));
    }

    #[test]
    fn acks_without_room_for_the_figures_are_told_once() {
        let mut f = AckFigures::default();
        f.check_room(NEEDED_PROBE_LEN, 1 + crate::wire::MAX_NAME_LEN);
        f.check_room(ACK_ROOM, 3);
        assert_eq!(f.no_room_line(), None);
        f.check_room(ACK_ROOM - 1, 3);
        f.check_room(64, 0);
        assert!(f.no_room_line().unwrap().contains("(2 so far); probe with --size 198 or more"));
        f.check_room(64, 0);
        assert_eq!(f.no_room_line(), None);
    }

    #[test]
    fn a_first_join_before_the_prober_started_has_no_delay() {
        let (mut jl, _) = JoinLeave::start(None, 5000, Duration::from_secs(4));
        let mut f = AckFigures::new(6);
        let (early, late): (IpAddr, IpAddr) = ("239.1.1.1".parse().unwrap(), "239.1.1.2".parse().unwrap());
        jl.changed(early, Change::Join, 0);
        jl.changed(late, Change::Join, 0);
        jl.refresh(&mut f);
        // The prober was sending before: its first probe there is of a later round.
        f.arrived(early, 1_000_000, 12);
        // It started after the join: probe 1 is of its first round.
        f.arrived(late, 500_000_000, 1);
        jl.refresh(&mut f);
        assert_eq!(f.of(early).unwrap().join, DelayFigure::Measured(1_000_000));
        assert_eq!(f.of(late).unwrap().join, DelayFigure::StartedAfter);
        // Its rejoins have delays again.
        jl.changed(late, Change::Leave, 1_000_000_000);
        jl.changed(late, Change::Join, 2_000_000_000);
        f.arrived(late, 2_003_000_000, 40);
        jl.refresh(&mut f);
        assert_eq!(f.of(late).unwrap().join, DelayFigure::Measured(3_000_000));
    }

    /// An ack with the record and a two-letter name.
    const ACK_ROOM: usize = crate::wire::ACK_FIXED_LEN + 1 + crate::wire::EXT_JOIN_LEAVE_LEN + 3;

    #[test]
    fn without_a_tap_joins_come_from_the_system_call_and_leaves_are_not_measured() {
        let (mut jl, note) = JoinLeave::start(None, 5000, Duration::from_secs(4));
        assert!(note.unwrap().contains("--iface"));
        assert_eq!(jl.clock(), DelayClock::Syscall);
        let mut f = AckFigures::default();
        let g: IpAddr = "239.1.1.1".parse().unwrap();
        jl.refresh(&mut f);
        jl.changed(g, Change::Join, 1_000_000_000);
        f.arrived(g, 1_004_000_000, 7);
        jl.refresh(&mut f);
        let d = f.of(g).unwrap();
        assert_eq!((d.joins, d.join, d.leave), (1, DelayFigure::Measured(4_000_000), DelayFigure::NotMeasurable));
        assert_eq!(d.clock, DelayClock::Syscall);
        jl.changed(g, Change::Leave, 2_000_000_000);
        jl.changed(g, Change::Join, 4_000_000_000);
        f.arrived(g, 4_010_000_000, 9);
        jl.refresh(&mut f);
        let d = f.of(g).unwrap();
        assert_eq!((d.joins, d.join, d.leave), (2, DelayFigure::Measured(10_000_000), DelayFigure::NotMeasurable));
    }
}
