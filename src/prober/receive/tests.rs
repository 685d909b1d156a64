//! The receiver without sockets: synthetic datagrams and ICMP errors from a scripted source, on a
//! fake clock that the source advances.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::auth::Key;
use crate::net::icmp::IcmpError;
use crate::net::Received;
use crate::prober::{ProbeConfig, Shared};
use crate::run::IcmpCounts;
use crate::run::IcmpKind;
use crate::stats::{IntervalRow, RawRow};
use crate::wire::Ack;

const WALL0: u64 = 1_700_000_000_000_000_000;
const MS: Duration = Duration::from_millis(1);

/// Monotonic time in ns since the test began; the wall clock is an offset from it, which moves
/// only when a test steps it.
#[derive(Default)]
struct FakeClock(AtomicU64, AtomicI64);

impl FakeClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
    fn wall_ns(&self) -> u64 {
        (WALL0 + self.0.load(Ordering::SeqCst)).saturating_add_signed(self.shift())
    }
    fn shift(&self) -> i64 {
        self.1.load(Ordering::SeqCst)
    }
}

impl Clock for FakeClock {
    fn mono(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
    fn wall_now(&self) -> (u64, i64) {
        (self.wall_ns(), self.shift())
    }
}

enum Scripted {
    /// After `Duration`, these bytes arrive on socket `usize` from this address.
    Datagram(Duration, usize, Vec<u8>, SocketAddr),
    Icmp(Duration, usize, IcmpError),
}

/// What the source does once its script is played.
enum Then {
    /// Nothing more arrives: each wait runs out.
    Silence,
    /// Garbage every this often, forever (a stray sender).
    Flood(Duration),
}

/// A scripted network on the fake clock: each event comes at its time, unless the receiver's
/// wait runs out first (then the clock moves to the end of the wait and the event stays due).
struct FakeNet<'c> {
    clock: &'c FakeClock,
    script: VecDeque<Scripted>,
    then: Then,
    /// When the next event is due (fixed when it is first waited for).
    next_at: Option<Duration>,
    /// When the last event was due: the next one is due its delay after it, so that events
    /// queue while the receiver naps, as datagrams do in a socket.
    last_at: Option<Duration>,
    /// Waits that ran out, reads that could wait, naps, and every call.
    idles: u64,
    waits: u64,
    naps: u64,
    calls: u64,
    /// The sender's last probe leaves at this instant (it says so in `Shared` then; the
    /// receiver learns it when it next wakes).
    sending_ends: Option<(Duration, &'c Shared)>,
    /// How far the kernel's stamps are off this process's wall clock (libfaketime moves only
    /// the process's).
    stamp_offset_ns: u64,
    /// The wall clock steps by this much at this instant (the system's clock: the kernel's
    /// stamps too), and whether it has.
    step_at: Option<(Duration, i64)>,
    stepped: bool,
}

impl<'c> FakeNet<'c> {
    fn new(clock: &'c FakeClock, script: Vec<Scripted>, then: Then) -> Self {
        FakeNet {
            clock,
            script: script.into(),
            then,
            next_at: None,
            last_at: None,
            idles: 0,
            waits: 0,
            naps: 0,
            calls: 0,
            sending_ends: None,
            stamp_offset_ns: 0,
            step_at: None,
            stepped: false,
        }
    }
}

impl FakeNet<'_> {
    /// Steps the wall clock once its time has come.
    fn clock_ran(&mut self) {
        if let Some((_, by)) = self.step_at.filter(|(at, _)| !self.stepped && self.clock.mono() >= *at) {
            self.clock.1.fetch_add(by, Ordering::SeqCst);
            self.stepped = true;
        }
    }

    fn sender_ran(&mut self) {
        self.clock_ran();
        if let Some((at, shared)) = self.sending_ends.filter(|(at, _)| self.clock.mono() >= *at) {
            *shared.last_tx.lock().unwrap() = Some(at);
            self.sending_ends = None;
        }
    }
}

impl AckSource for FakeNet<'_> {
    fn next(&mut self, buf: &mut [u8], _cmsg: &mut [u8], wait: Duration) -> io::Result<Event> {
        // A loop that never ends, or spins without time passing, is a failure, not a hang.
        assert!(self.clock.mono() < Duration::from_secs(3600), "the receive loop never completed");
        self.calls += 1;
        self.waits += u64::from(!wait.is_zero());
        assert!(self.calls < 10_000_000, "the receive loop spins (last wait {wait:?})");
        let now = self.clock.mono();
        let after = match (self.script.front(), &self.then) {
            (Some(Scripted::Datagram(after, ..) | Scripted::Icmp(after, ..)), _) => Some(*after),
            (None, Then::Flood(gap)) => Some(*gap),
            (None, Then::Silence) => None,
        };
        let at = after.map(|a| *self.next_at.get_or_insert(self.last_at.unwrap_or(now) + a));
        let Some(at) = at.filter(|&at| at <= now + wait) else {
            self.clock.advance(wait);
            // A look that could not wait (a drain after a nap) is no wake-up.
            self.idles += u64::from(!wait.is_zero());
            self.sender_ran();
            return Ok(Event::Idle);
        };
        self.clock.advance(at.saturating_sub(now));
        self.sender_ran();
        (self.next_at, self.last_at) = (None, Some(at));
        // Stamped when it arrived (`at`), as the kernel does, not when it is read (after a nap),
        // on the wall clock of then.
        let stepped = self.step_at.map_or(0, |(t, by)| if at >= t { by } else { 0 });
        let rx_ns = (WALL0 + at.as_nanos() as u64 + self.stamp_offset_ns).saturating_add_signed(stepped);
        let datagram = |buf: &mut [u8], sock: usize, bytes: &[u8], from: SocketAddr| {
            buf[..bytes.len()].copy_from_slice(bytes);
            let rx = Received { len: bytes.len(), from, rx_ns, ttl: 64, dst: None, local_drops: None };
            Event::Datagram { sock, rx }
        };
        Ok(match self.script.pop_front() {
            Some(Scripted::Datagram(_, sock, bytes, from)) => datagram(buf, sock, &bytes, from),
            Some(Scripted::Icmp(_, host, error)) => Event::Icmp { host, error },
            None => datagram(buf, 0, b"not an ack", addr("10.0.0.99")),
        })
    }

    fn nap(&mut self, d: Duration) {
        self.clock.advance(d);
        self.naps += 1;
        self.sender_ran();
    }

    fn room(&self) -> usize {
        usize::MAX
    }
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 24242)
}

fn config(hosts: &[&str]) -> ProbeConfig {
    let mut cfg = ProbeConfig::new("239.1.2.3".parse().unwrap(), 24242);
    cfg.timeout = Duration::from_secs(1);
    cfg.hosts = hosts.iter().map(|h| h.parse().unwrap()).collect();
    cfg
}

const SESSION: u64 = 0x5e55;

/// The shared state after `n` multicast probes (and `n` to each host), one every `gap` from
/// the clock's start, sending done at the last one.
fn sent(cfg: &ProbeConfig, clock: &FakeClock, n: u64, gap: Duration) -> Shared {
    let shared = Shared::new(cfg, SESSION, &[]);
    {
        let mut runs = shared.runs.lock().unwrap();
        for k in 0..n {
            if k > 0 {
                clock.advance(gap);
            }
            runs.multicast.record_send(clock.wall_ns());
            runs.unicast.iter_mut().for_each(|u| _ = u.run.record_send(clock.wall_ns()));
        }
    }
    *shared.last_tx.lock().unwrap() = Some(clock.mono());
    shared
}

fn ack(session: u64, seq: u64, tx_ns: u64) -> Vec<u8> {
    let ack = Ack { session, seq, tx_ns, responder: 7, name: "h2".into(), ..Ack::default() };
    ack.encode_within(1500).unwrap()
}

/// The acks of probes `seqs` sent by [`sent`] with `gap`, each `rtt` after its probe; the
/// clock must still stand at the last probe.
fn acks(session: u64, seqs: std::ops::Range<u64>, gap: Duration, rtt: Duration, from: &str) -> Vec<Scripted> {
    seqs.enumerate()
        .map(|(i, seq)| {
            let tx_ns = WALL0 + (gap * seq as u32).as_nanos() as u64;
            let after = if i == 0 { rtt } else { Duration::ZERO };
            Scripted::Datagram(after, 0, ack(session, seq, tx_ns), addr(from))
        })
        .collect()
}

#[test]
fn end_of_run_steps() {
    let t = Duration::from_secs(1);
    let mut end = EndOfRun::new(t, Duration::ZERO);
    // A datagram within FINALIZE_EVERY of the last close: nothing to do.
    assert_eq!(end.step(MS, false, None), Step { finalize: false, complete: false });
    // A wait ran out, or FINALIZE_EVERY under a steady stream: close old probes, but not end
    // the run before sending is done.
    assert_eq!(end.step(2 * MS, true, None), Step { finalize: true, complete: false });
    assert_eq!(end.step(2 * MS + FINALIZE_EVERY, false, None), Step { finalize: true, complete: false });
    // Sending done at 10 s: complete when drained past the timeout...
    let last = Some(Duration::from_secs(10));
    assert!(!end.step(Duration::from_secs(10) + t - MS, true, last).complete);
    assert!(end.step(Duration::from_secs(10) + t, true, last).complete);
    // ... but drained means DRAIN_WAIT of silence: a wait that ran out just after a datagram
    // does not end the run.
    let at = |d: Duration| Duration::from_secs(10) + d;
    let mut end = EndOfRun::new(t, Duration::ZERO);
    assert!(!end.step(at(t), false, last).complete);
    assert!(!end.step(at(t + DRAIN_WAIT - MS), true, last).complete);
    assert!(end.step(at(t + DRAIN_WAIT), true, last).complete);
    // ... or, with datagrams still coming, past the timeout plus the margin.
    let mut end = EndOfRun::new(t, Duration::ZERO);
    assert!(!end.step(at(t + FINALIZE_EVERY), false, last).complete);
    assert!(!end.step(at(t + RETAIN_MARGIN - MS), false, last).complete);
    assert!(end.step(at(t + RETAIN_MARGIN + FINALIZE_EVERY), false, last).complete);
    assert_eq!(end.retain(), t + RETAIN_MARGIN);
}

#[test]
fn the_wait_runs_to_the_next_deadline() {
    let t = Duration::from_secs(1);
    let s = Duration::from_secs;
    let end = EndOfRun::new(t, s(10));
    // Sending under way, nothing open: a look once per timeout (to learn sending ended).
    assert_eq!(end.wait(s(10), None, None), t);
    // The oldest open probe's close, FINALIZE_SLACK after its retention runs out...
    assert_eq!(end.wait(s(10), None, Some(s(10) + 300 * MS)), 300 * MS + FINALIZE_SLACK);
    // ... but no sooner than FINALIZE_EVERY after the last close.
    assert_eq!(end.wait(s(10), None, Some(s(10) - FINALIZE_SLACK)), FINALIZE_EVERY);
    // Sending done at 10.5 s: the run's end, unless a close comes first.
    let last = Some(s(10) + 500 * MS);
    assert_eq!(end.wait(s(11), last, None), 500 * MS);
    assert_eq!(end.wait(s(11), last, Some(s(11) + 100 * MS)), 100 * MS + FINALIZE_SLACK);
    // Past the end, after a datagram: DRAIN_WAIT of silence.
    let mut end = EndOfRun::new(t, s(10));
    end.step(s(12), false, last);
    assert_eq!(end.wait(s(12), last, None), DRAIN_WAIT);
    // A short timeout still waits FINALIZE_EVERY while sending: the loop never spins.
    let end = EndOfRun::new(MS, s(10));
    assert_eq!(end.wait(s(10), None, None), FINALIZE_EVERY);
}

#[test]
fn a_quiet_run_completes_one_timeout_after_the_last_probe() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let gap = 10 * MS;
    let shared = sent(&cfg, &clock, 50, gap);
    let last_tx = clock.mono();
    let mut net = FakeNet::new(&clock, acks(SESSION, 0..50, gap, 100 * MS, "10.0.0.2"), Then::Silence);
    let totals = receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    let took = clock.mono() - last_tx;
    // The loop waits for the run's end itself: it completes on the dot.
    assert_eq!(took, cfg.timeout, "completed {took:?} after the last probe");
    // It woke for nothing but deadlines: its first look, a close every FINALIZE_SLACK from the
    // first probe's (1.25 s after it) to the end (1.49 s), and the end. A 20 ms tick woke 45
    // times in this second.
    assert!(net.idles <= 7, "{} wake-ups without a datagram in {took:?}", net.idles);
    let runs = shared.runs.lock().unwrap();
    let h = &runs.multicast.hosts()[0];
    assert_eq!((h.received, h.late, runs.multicast.finalized()), (50, 0, 50));
    assert_eq!((totals.invalid, totals.forged, totals.local_drops()), (0, 0, 0));
}

#[test]
fn the_end_of_sending_is_learned_in_time_to_end_on_the_dot() {
    // The sender says it is done only in `Shared`: nothing wakes the receiver for it. No acks,
    // and the last probe leaves 2.3 s after a first one nobody answered.
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let shared = sent(&cfg, &clock, 1, MS);
    *shared.last_tx.lock().unwrap() = None;
    let ends = clock.mono() + Duration::from_millis(2300);
    let mut net = FakeNet::new(&clock, Vec::new(), Then::Silence);
    net.sending_ends = Some((ends, &shared));
    receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    assert_eq!(clock.mono() - ends, cfg.timeout, "completed {:?} after the last probe", clock.mono() - ends);
    // Waits of one timeout while sending, plus the probe's close: not a tick.
    assert!(net.idles <= 6, "{} wake-ups", net.idles);
}

#[test]
fn a_flood_ends_the_run_after_the_retention_margin() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let shared = sent(&cfg, &clock, 10, 10 * MS);
    let last_tx = clock.mono();
    let mut net = FakeNet::new(&clock, Vec::new(), Then::Flood(MS));
    let sinks = Arc::new(Mutex::new(0u32));
    let counted = sinks.clone();
    let sink: RowSink = Box::new(move |_: &[RawRow], _: &[IntervalRow]| {
        *counted.lock().unwrap() += 1;
        Ok(())
    });
    let totals = receive_loop(&cfg, &mut net, &clock, &shared, Some(sink)).unwrap();
    let took = clock.mono() - last_tx;
    let limit = cfg.timeout + RETAIN_MARGIN;
    assert!(took >= limit && took <= limit + FINALIZE_EVERY + MS, "completed {took:?} after the last probe");
    // Never drained, yet old probes were closed and rows handed out every FINALIZE_EVERY.
    let ticks = (took.as_nanos() / FINALIZE_EVERY.as_nanos()) as u32;
    assert!(*sinks.lock().unwrap() >= ticks, "{} sink calls in {ticks} ticks", sinks.lock().unwrap());
    // Every datagram read, but those that came during the last nap (at most NAP_MAX).
    let (invalid, all) = (totals.invalid, took.as_millis() as u64);
    assert!(invalid <= all && invalid + NAP_MAX.as_millis() as u64 >= all, "{invalid} of {all} read");
    let runs = shared.runs.lock().unwrap();
    assert_eq!(runs.multicast.finalized(), 10);
    assert!(runs.multicast.hosts().is_empty());
}

#[test]
fn an_ack_after_the_timeout_is_late_by_its_kernel_time() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let shared = sent(&cfg, &clock, 2, 10 * MS);
    // Probe 0 answered after 1.005 s (late), probe 1 after 5 ms.
    let script = vec![
        Scripted::Datagram(995 * MS, 0, ack(SESSION, 0, WALL0), addr("10.0.0.2")),
        Scripted::Datagram(Duration::ZERO, 0, ack(SESSION, 1, WALL0 + 10_000_000), addr("10.0.0.2")),
    ];
    let mut net = FakeNet::new(&clock, script, Then::Silence);
    receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    let runs = shared.runs.lock().unwrap();
    let h = &runs.multicast.hosts()[0];
    assert_eq!((h.received, h.late), (1, 1), "{h:?}");
}

#[test]
fn unicast_acks_and_icmp_errors_land_on_their_host() {
    let clock = FakeClock::default();
    let cfg = config(&["10.0.0.2", "10.0.0.3", "10.0.0.9"]);
    let gap = 10 * MS;
    let shared = sent(&cfg, &clock, 20, gap);
    let mut script: Vec<Scripted> = acks(SESSION, 0..20, gap, MS, "10.0.0.2");
    // Host 0 answers its unicast probes; host 1 has no responder; host 2 has no neighbour.
    script.extend(acks(SESSION + 1, 0..20, gap, Duration::ZERO, "10.0.0.2"));
    let err = |kind, by: &str| IcmpError { kind, reporter: Some(by.parse().unwrap()), errno: 0 };
    script.push(Scripted::Icmp(MS, 1, err(IcmpKind::PortUnreachable, "10.0.0.3")));
    script.push(Scripted::Icmp(MS, 1, err(IcmpKind::PortUnreachable, "10.0.0.3")));
    script.push(Scripted::Icmp(MS, 2, err(IcmpKind::HostUnreachable, "10.0.0.1")));
    // An error for a host index that does not exist is ignored.
    script.push(Scripted::Icmp(MS, 7, err(IcmpKind::HostUnreachable, "10.0.0.1")));
    let mut net = FakeNet::new(&clock, script, Then::Silence);
    receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    let runs = shared.runs.lock().unwrap();
    assert_eq!(runs.multicast.hosts()[0].received, 20);
    let [h2, h3, h9] = &runs.unicast[..] else { panic!("three hosts") };
    assert_eq!((h2.run.hosts()[0].received, h2.icmp.total()), (20, 0));
    assert!(h3.run.hosts().is_empty() && h9.run.hosts().is_empty());
    assert_eq!(h2.icmp.most_common(), None, "silence has no kind");
    assert_eq!(h3.icmp.port_unreachable, 2);
    assert_eq!(h3.icmp.most_common(), Some(IcmpKind::PortUnreachable));
    assert_eq!(h3.icmp.reporter, Some(IpAddr::from([10, 0, 0, 3])));
    assert_eq!(h9.icmp.most_common(), Some(IcmpKind::HostUnreachable));
    assert_eq!(h9.icmp.reporter, Some(IpAddr::from([10, 0, 0, 1])));
}

#[test]
fn forged_garbage_and_local_drops_are_counted_apart() {
    let clock = FakeClock::default();
    let mut cfg = config(&["10.0.0.2"]);
    cfg.key = Some(Key::from_secret(b"a secret long enough for a key").unwrap());
    let shared = sent(&cfg, &clock, 2, MS);
    let mut runs = shared.runs.lock().unwrap();
    let mut totals = RecvTotals::default();
    let mut on = |bytes: &[u8], sock: usize, drops: Option<u32>| {
        let rx =
            Received { len: bytes.len(), from: addr("10.0.0.2"), rx_ns: WALL0, ttl: 64, dst: None, local_drops: drops };
        handle(&cfg, &mut runs, &mut totals, bytes, Event::Datagram { sock, rx }, (clock.wall_ns(), 0));
    };
    let unkeyed = ack(SESSION, 0, WALL0);
    on(&unkeyed, 0, Some(3));
    on(b"garbage", 1, Some(2));
    let mut keyed = unkeyed.clone();
    cfg.key.as_ref().unwrap().seal(&mut keyed);
    on(&keyed, 0, Some(4));
    assert_eq!((totals.forged, totals.invalid), (1, 1));
    // Each socket reports its own running count: the total is the sum of the newest of each.
    assert_eq!(totals.local_drops(), 6);
    assert_eq!(runs.multicast.hosts()[0].received, 1);
}

#[test]
fn key_mismatches_are_recorded_per_path_and_source() {
    use crate::run::KeyCounts;
    use crate::wire::{Notice, NoticeReason};
    let clock = FakeClock::default();
    let mut cfg = config(&["10.0.0.2", "10.0.0.3"]);
    let shared = sent(&cfg, &clock, 3, MS);
    let mut runs = shared.runs.lock().unwrap();
    let mut totals = RecvTotals::default();
    let mut on = |cfg: &ProbeConfig, runs: &mut Runs, bytes: &[u8], from: &str| {
        let rx = Received { len: bytes.len(), from: addr(from), rx_ns: WALL0, ttl: 64, dst: None, local_drops: None };
        handle(cfg, runs, &mut totals, bytes, Event::Datagram { sock: 0, rx }, (clock.wall_ns(), 0));
    };
    let notice = |session: u64, seq: u64, reason| {
        let mut b = Vec::new();
        Notice { session, seq, tx_ns: WALL0, responder: 9, reason }.encode_into(&mut b);
        b
    };
    // An unkeyed prober: h2 needs a key on both paths, h3 has another (told on its unicast path).
    on(&cfg, &mut runs, &notice(SESSION, 0, NoticeReason::KeyNeeded), "10.0.0.2");
    on(&cfg, &mut runs, &notice(SESSION + 1, 2, NoticeReason::KeyNeeded), "10.0.0.2");
    on(&cfg, &mut runs, &notice(SESSION + 2, 1, NoticeReason::KeyMismatch), "10.0.0.3");
    // Not about a probe of this run: another session, a probe not sent yet. Counted invalid.
    on(&cfg, &mut runs, &notice(SESSION + 7, 0, NoticeReason::KeyNeeded), "10.0.0.2");
    on(&cfg, &mut runs, &notice(SESSION, 3, NoticeReason::KeyNeeded), "10.0.0.2");
    // A keyed prober: an unkeyed ack to one of its probes is a responder without a key; a
    // keyed ack with a wrong tag is only forged.
    cfg.key = Some(Key::from_secret(b"a secret long enough for a key").unwrap());
    on(&cfg, &mut runs, &ack(SESSION, 1, WALL0), "10.0.0.4");
    let mut wrong = ack(SESSION, 2, WALL0);
    Key::from_secret(b"another").unwrap().seal(&mut wrong);
    on(&cfg, &mut runs, &wrong, "10.0.0.5");
    let mc = &runs.keys;
    assert_eq!(mc.of("10.0.0.2".parse().unwrap()), Some(KeyCounts { key_needed: 1, ..Default::default() }));
    assert_eq!(mc.of("10.0.0.4".parse().unwrap()), Some(KeyCounts { unkeyed_acks: 1, ..Default::default() }));
    assert_eq!(mc.of("10.0.0.5".parse().unwrap()), None);
    assert_eq!(runs.unicast[0].keys.of("10.0.0.2".parse().unwrap()).map(|c| c.key_needed), Some(1));
    assert_eq!(runs.unicast[1].keys.of("10.0.0.3".parse().unwrap()).map(|c| c.other_key), Some(1));
    assert_eq!((totals.invalid, totals.forged), (2, 2));
    assert!(runs.multicast.hosts().is_empty(), "no evidence is an answer");
}

#[test]
fn icmp_counts_pick_the_most_common_kind() {
    let mut c = IcmpCounts::default();
    assert_eq!(c.most_common(), None);
    c.record(IcmpKind::Other { icmp_type: 5, code: 1 }, None);
    assert_eq!(c.most_common(), Some(IcmpKind::Other { icmp_type: 5, code: 1 }));
    c.record(IcmpKind::HostUnreachable, None);
    c.record(IcmpKind::PortUnreachable, None);
    c.record(IcmpKind::PortUnreachable, None);
    assert_eq!((c.total(), c.most_common()), (4, Some(IcmpKind::PortUnreachable)));
    assert_eq!(c.reporter, None);
}

/// The acks of `n` probes sent 1 ms apart by [`sent`], one a millisecond after the last probe:
/// ack k comes (k + 1) ms after it, so every RTT is `n` ms.
fn one_per_ms(n: u64) -> Vec<Scripted> {
    (0..n)
        .map(|seq| {
            Scripted::Datagram(MS, 0, ack(SESSION, seq, WALL0 + (MS * seq as u32).as_nanos() as u64), addr("10.0.0.2"))
        })
        .collect()
}

/// Acks 1 ms apart (1 000/s): the receiver naps and reads what queued, about one wake-up per
/// [`NAP_MAX`] instead of one per ack; every ack counts, on time by its kernel stamp, and the
/// run still ends on the dot.
#[test]
fn a_stream_of_acks_is_read_in_naps() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let n = 200;
    let shared = sent(&cfg, &clock, n, MS);
    let last_tx = clock.mono();
    let script = one_per_ms(n);
    let mut net = FakeNet::new(&clock, script, Then::Silence);
    receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    assert_eq!(clock.mono() - last_tx, cfg.timeout, "completed {:?} after the last probe", clock.mono() - last_tx);
    // 200 acks over 200 ms: naps of 1, 2, 4, 8, then 10 ms.
    assert!(net.naps >= 15 && net.naps <= 30, "{} naps", net.naps);
    assert!(net.waits <= 12, "{} waits: a wake-up per ack?", net.waits);
    let runs = shared.runs.lock().unwrap();
    let h = &runs.multicast.hosts()[0];
    assert_eq!((h.received, h.late, runs.multicast.finalized()), (n, 0, n));
}

/// Acks whose kernel stamps are off this process's clock (30 s ahead: the process runs under
/// libfaketime, set back) are measured by when they are read: then no naps, which would add
/// to their RTT.
#[test]
fn no_naps_while_acks_are_measured_by_their_reading() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let n = 200;
    let shared = sent(&cfg, &clock, n, MS);
    let script = one_per_ms(n);
    let mut net = FakeNet::new(&clock, script, Then::Silence);
    net.stamp_offset_ns = 30_000 * MS.as_nanos() as u64;
    let totals = receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    assert_eq!(net.naps, 0);
    assert_eq!(totals.read_time_arrivals, n);
    let runs = shared.runs.lock().unwrap();
    let h = &runs.multicast.hosts()[0];
    assert_eq!((h.received, h.late), (n, 0));
    // Every RTT is 200 ms, read as it arrives.
    let rtt = runs.multicast.summary(h).rtt.unwrap();
    assert_eq!((rtt.min_ns, rtt.max_ns), (200 * MS.as_nanos() as u64, 200 * MS.as_nanos() as u64), "{rtt:?}");
}

/// The nap doubles while few datagrams queue during it and halves when many do; a nap that
/// finds nothing ends the stream; sparse datagrams never start one.
#[test]
fn naps_follow_the_stream() {
    let mut c = Coalesce::new(true, usize::MAX);
    let ms = |k: u64| Duration::from_millis(k);
    assert_eq!(c.datagram(ms(0)), None, "the first datagram: nothing to say it is a stream");
    assert_eq!(c.datagram(ms(100)), None, "100 ms later: sparse");
    assert_eq!(c.datagram(ms(101)), Some(NAP_MIN), "1 ms later: a stream");
    assert!(c.draining());
    for k in 0..5 {
        assert_eq!(c.datagram(ms(102 + k)), None, "read during the drain");
    }
    assert_eq!(c.drained(), Some(2 * NAP_MIN), "5 queued: a longer nap");
    for _ in 0..3 {
        c.datagram(ms(110));
        c.drained();
    }
    assert_eq!(c.nap, NAP_MAX, "no longer than NAP_MAX");
    for _ in 0..500 {
        c.datagram(ms(120));
    }
    assert_eq!(c.drained(), Some(NAP_MAX / 2), "500 queued: shorter");
    assert_eq!(c.drained(), None, "nothing queued: the stream is over");
    assert!(!c.draining());
    assert_eq!(c.nap, NAP_MIN, "a new stream starts with the shortest nap");
    // Never with --plain (a reply is matched to the newest probe when read), nor with sockets
    // that queue too few datagrams.
    for mut c in [Coalesce::new(false, usize::MAX), Coalesce::new(true, NAP_ROOM_MIN - 1)] {
        c.datagram(ms(0));
        assert_eq!(c.datagram(ms(1)), None);
        assert!(!c.draining());
    }
    // A socket that holds ~400 datagrams (the default 212 KiB rmem_max): halved above 100.
    let c = Coalesce::new(true, 400);
    assert_eq!((c.grow_below, c.shrink_above), (25, 100));
}

/// The wall clock steps (300 ms forward, then back) while acks queue during a nap: those
/// stamped before the step are measured on the clock from before it, those after on the new
/// one, so every RTT is the 200 ms it was, none is below 0 (counted as loss) or a step too long.
#[test]
fn a_step_while_acks_queue_in_a_nap_moves_no_rtt() {
    for by in [300_i64, -300] {
        let clock = FakeClock::default();
        let cfg = config(&[]);
        let n = 200;
        let shared = sent(&cfg, &clock, n, MS);
        let mut net = FakeNet::new(&clock, one_per_ms(n), Then::Silence);
        // 100 ms into the acks: the receiver naps 10 ms at a time by then.
        net.step_at = Some((clock.mono() + 100 * MS + MS / 2, by * 1_000_000));
        receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
        assert!(net.stepped && net.naps >= 10, "{by} ms: {} naps", net.naps);
        let runs = shared.runs.lock().unwrap();
        let h = &runs.multicast.hosts()[0];
        assert_eq!((h.received, h.late, h.outages.len()), (n, 0, 0), "{by} ms");
        let rtt = runs.multicast.summary(h).rtt.unwrap();
        let ms200 = 200 * MS.as_nanos() as u64;
        assert_eq!((rtt.min_ns, rtt.max_ns), (ms200, ms200), "{by} ms: {rtt:?}");
    }
}

/// Which clock an ack's stamp is on, after a step since the last reading.
#[test]
fn a_stamp_is_put_on_the_clock_of_now() {
    let ms = |n: i64| n * 1_000_000;
    // The last reading at 99 ms (monotonic), now at 105 ms; wall = mono + shift.
    let step = |old: i64| Some(RecentStep { old_shift_ns: old, since_ns: ms(99) as u64 });
    let now = |shift: i64| ((ms(105) + shift) as u64, shift);
    let mono = ms(105) as u64;
    // +300 ms: stamped at 99.5 ms before it (on the old clock): moved onto the new one.
    assert_eq!(stamp_now((ms(99) + ms(1) / 2) as u64, now(ms(300)), mono, step(0)), (ms(399) + ms(1) / 2) as u64);
    // Stamped at 102 ms after it: as it is.
    assert_eq!(stamp_now(ms(402) as u64, now(ms(300)), mono, step(0)), ms(402) as u64);
    // -300 ms: stamped at 99.5 ms before it (ahead of now on the new clock): moved back.
    let back = stamp_now((ms(1000) + ms(99) + ms(1) / 2) as u64, now(ms(700)), mono, step(ms(1000)));
    assert_eq!(back, (ms(799) + ms(1) / 2) as u64);
    // A step of 2 ms, shorter than the 6 ms since the last reading: either fits; as it is.
    assert_eq!(stamp_now(ms(103) as u64, now(ms(2)), mono, step(0)), ms(103) as u64);
    // No step: as it is.
    assert_eq!(stamp_now(ms(50) as u64, now(0), mono, None), ms(50) as u64);
}
