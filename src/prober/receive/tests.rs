//! The receiver without sockets: synthetic datagrams and ICMP errors from a scripted source, on a
//! fake clock that the source advances.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Monotonic time in ns since the test began; the wall clock is a fixed offset from it.
#[derive(Default)]
struct FakeClock(AtomicU64);

impl FakeClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn mono(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
    fn wall_ns(&self) -> u64 {
        WALL0 + self.0.load(Ordering::SeqCst)
    }
}

enum Scripted {
    /// After `Duration`, these bytes arrive on socket `usize` from this address.
    Datagram(Duration, usize, Vec<u8>, SocketAddr),
    Icmp(Duration, usize, IcmpError),
}

/// What the source does once its script is played.
enum Then {
    /// Nothing more arrives: an idle tick each call.
    Silence,
    /// Garbage every this often, forever (a stray sender).
    Flood(Duration),
}

struct FakeNet<'c> {
    clock: &'c FakeClock,
    script: VecDeque<Scripted>,
    then: Then,
}

impl AckSource for FakeNet<'_> {
    fn next(&mut self, buf: &mut [u8], _cmsg: &mut [u8]) -> io::Result<Event> {
        // A loop that never ends is a failure, not a hang.
        assert!(self.clock.mono() < Duration::from_secs(3600), "the receive loop never completed");
        let datagram = |clock: &FakeClock, buf: &mut [u8], sock: usize, bytes: &[u8], from: SocketAddr| {
            buf[..bytes.len()].copy_from_slice(bytes);
            let rx = Received { len: bytes.len(), from, rx_ns: clock.wall_ns(), ttl: 64, dst: None, local_drops: None };
            Event::Datagram { sock, rx }
        };
        match self.script.pop_front() {
            Some(Scripted::Datagram(after, sock, bytes, from)) => {
                self.clock.advance(after);
                Ok(datagram(self.clock, buf, sock, &bytes, from))
            }
            Some(Scripted::Icmp(after, host, error)) => {
                self.clock.advance(after);
                Ok(Event::Icmp { host, error })
            }
            None => match self.then {
                Then::Silence => {
                    self.clock.advance(net::READ_TICK);
                    Ok(Event::Idle)
                }
                Then::Flood(gap) => {
                    self.clock.advance(gap);
                    Ok(datagram(self.clock, buf, 0, b"not an ack", addr("10.0.0.99")))
                }
            },
        }
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
    // A datagram within a tick of the last close: nothing to do.
    assert_eq!(end.step(MS, false, None), Step { finalize: false, complete: false });
    // Drained, or a tick under a steady stream: close old probes, but not before sending is done.
    assert_eq!(end.step(2 * MS, true, None), Step { finalize: true, complete: false });
    assert_eq!(end.step(2 * MS + net::READ_TICK, false, None), Step { finalize: true, complete: false });
    // Sending done at 10 s: complete when drained past the timeout...
    let last = Some(Duration::from_secs(10));
    assert!(!end.step(Duration::from_secs(10) + t - MS, true, last).complete);
    assert!(end.step(Duration::from_secs(10) + t, true, last).complete);
    // ... or, with datagrams still coming, past the timeout plus the margin.
    let mut end = EndOfRun::new(t, Duration::ZERO);
    let at = |d: Duration| Duration::from_secs(10) + d;
    assert!(!end.step(at(t + net::READ_TICK), false, last).complete);
    assert!(!end.step(at(t + RETAIN_MARGIN - MS), false, last).complete);
    assert!(end.step(at(t + RETAIN_MARGIN + net::READ_TICK), false, last).complete);
    assert_eq!(end.retain(), t + RETAIN_MARGIN);
}

#[test]
fn a_quiet_run_completes_one_timeout_after_the_last_probe() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let gap = 10 * MS;
    let shared = sent(&cfg, &clock, 50, gap);
    let last_tx = clock.mono();
    let mut net =
        FakeNet { clock: &clock, script: acks(SESSION, 0..50, gap, 100 * MS, "10.0.0.2").into(), then: Then::Silence };
    let totals = receive_loop(&cfg, &mut net, &clock, &shared, None).unwrap();
    let took = clock.mono() - last_tx;
    assert!(took >= cfg.timeout && took <= cfg.timeout + net::READ_TICK, "completed {took:?} after the last probe");
    let runs = shared.runs.lock().unwrap();
    let h = &runs.multicast.hosts()[0];
    assert_eq!((h.received, h.late, runs.multicast.finalized()), (50, 0, 50));
    assert_eq!((totals.invalid, totals.forged, totals.local_drops()), (0, 0, 0));
}

#[test]
fn a_flood_ends_the_run_after_the_retention_margin() {
    let clock = FakeClock::default();
    let cfg = config(&[]);
    let shared = sent(&cfg, &clock, 10, 10 * MS);
    let last_tx = clock.mono();
    let mut net = FakeNet { clock: &clock, script: VecDeque::new(), then: Then::Flood(MS) };
    let sinks = Arc::new(Mutex::new(0u32));
    let counted = sinks.clone();
    let sink: RowSink = Box::new(move |_: &[RawRow], _: &[IntervalRow]| {
        *counted.lock().unwrap() += 1;
        Ok(())
    });
    let totals = receive_loop(&cfg, &mut net, &clock, &shared, Some(sink)).unwrap();
    let took = clock.mono() - last_tx;
    let limit = cfg.timeout + RETAIN_MARGIN;
    assert!(took >= limit && took <= limit + net::READ_TICK + MS, "completed {took:?} after the last probe");
    // Never drained, yet old probes were closed and rows handed out every tick.
    let ticks = (took.as_nanos() / net::READ_TICK.as_nanos()) as u32;
    assert!(*sinks.lock().unwrap() >= ticks, "{} sink calls in {ticks} ticks", sinks.lock().unwrap());
    assert_eq!(totals.invalid, took.as_millis() as u64);
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
    let mut net = FakeNet { clock: &clock, script: script.into(), then: Then::Silence };
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
    let mut net = FakeNet { clock: &clock, script: script.into(), then: Then::Silence };
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
        handle(&cfg, &mut runs, &mut totals, bytes, Event::Datagram { sock, rx }, clock.wall_ns());
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
        handle(cfg, runs, &mut totals, bytes, Event::Datagram { sock: 0, rx }, clock.wall_ns());
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
