//! Watches an interface for IGMP/MLD membership queries on a raw socket, in a thread of its
//! own, and keeps a [`QuerierLog`]. Used by `probe` and `respond`, and by `serve`, which holds one
//! per target and reads [`QuerierWatch::observation`] once a second.
//!
//! What arrives, measured on Linux 6.18 in the namespace lab: a raw `IPPROTO_IGMP` socket gets
//! every IGMP packet delivered to the host, queries to 224.0.0.1 included, with the IPv4 header;
//! a raw ICMPv6 socket gets MLD queries to ff02::1 (which every interface has joined) without
//! any join, router-alert option or allmulti, and without the IPv6 header. Neither needs to
//! send anything.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::{parse_igmp, parse_mld, QuerierLog, QuerierObservation, Silence};
use crate::net::tap::Bell;
use crate::net::{now_ns, Iface};
use nix::libc;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// The longest the watcher waits without looking at the clock: the silence deadline is wall
/// time (a query's `last_seen` is), so a clock step is noticed within this.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// What the watcher tells as it goes (for live log lines).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QuerierEvent {
    /// A querier not heard before (its first query).
    Heard(crate::querier::Querier),
    /// No query for longer than the wait; said once per silence.
    Silent(Silence),
}

pub(crate) type EventSink = Box<dyn FnMut(QuerierEvent) + Send>;

/// A running watch; stops when dropped.
pub(crate) struct QuerierWatch {
    log: Arc<Mutex<QuerierLog>>,
    stop: Arc<AtomicBool>,
    /// Rung with the stop: the watch waits for a query, its silence deadline or this, with no
    /// tick (it woke 5 times a second for the stop flag: 17-19 µs of CPU per probe at 10/s).
    bell: Bell,
    thread: Option<JoinHandle<()>>,
    started_unix_ns: u64,
    wait: Option<Duration>,
}

/// Why a watch could not start, in one line for the user.
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

impl QuerierWatch {
    /// Starts watching `iface` (every interface when `None`) for queries of `v6`'s family
    /// (MLD for IPv6, else IGMP). `wait` overrides the silence limit (else the querier's
    /// interval + 10 s, 135 s before any querier is heard).
    pub(crate) fn start(
        iface: Option<&Iface>,
        v6: bool,
        wait: Option<Duration>,
        mut events: Option<EventSink>,
    ) -> Result<QuerierWatch, Unavailable> {
        let sock = raw_socket(iface, v6).map_err(|e| {
            let what = if v6 { "MLD" } else { "IGMP" };
            Unavailable(match e.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "not watching for {what} queries: a raw socket needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on mcprobe)"
                ),
                _ => format!("not watching for {what} queries: cannot open a raw socket: {e}"),
            })
        })?;
        let bell = Bell::new().map_err(|e| Unavailable(format!("not watching for queries: {e}")))?;
        let log = Arc::new(Mutex::new(QuerierLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let started_unix_ns = now_ns();
        let (log_t, stop_t, bell_t) = (log.clone(), stop.clone(), bell.clone());
        let thread = std::thread::Builder::new()
            .name("querier-watch".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                let mut said_silent = false;
                while !stop_t.load(Ordering::Relaxed) {
                    // Without events nothing is told as it goes: only a query or the bell wakes.
                    let silent_after = (events.is_some() && !said_silent).then(|| {
                        log_t.lock().unwrap_or_else(|e| e.into_inner()).silent_after_unix_ns(started_unix_ns, wait)
                    });
                    wait_for(&sock, &bell_t, until_silent(silent_after, now_ns()));
                    if stop_t.load(Ordering::Relaxed) {
                        break;
                    }
                    let got = sock.recv_from(&mut buf);
                    let now = now_ns();
                    let mut log = log_t.lock().unwrap_or_else(|e| e.into_inner());
                    let mut heard = None;
                    if let Ok((n, from)) = got {
                        let parsed = match from {
                            SocketAddr::V6(a) => parse_mld(*a.ip(), &buf[..n]),
                            SocketAddr::V4(_) => parse_igmp(&buf[..n]),
                        };
                        match parsed {
                            Ok(q) => {
                                let new = !log.queriers.iter().any(|x| x.address == q.source);
                                log.record(&q, now);
                                said_silent = false;
                                if new {
                                    heard = log.queriers.iter().find(|x| x.address == q.source).cloned();
                                }
                            }
                            Err(_) => log.ignored += 1,
                        }
                    }
                    let silence = log.silence(started_unix_ns, now, wait).filter(|_| !said_silent);
                    // Events are told without the lock: a slow stderr never holds up a reader.
                    drop(log);
                    let Some(ev) = events.as_mut() else { continue };
                    if let Some(h) = heard {
                        ev(QuerierEvent::Heard(h));
                    }
                    if let Some(s) = silence {
                        said_silent = true;
                        ev(QuerierEvent::Silent(s));
                    }
                }
            })
            .map_err(|e| Unavailable(format!("not watching for queries: cannot start a thread: {e}")))?;
        Ok(QuerierWatch { log, stop, bell, thread: Some(thread), started_unix_ns, wait })
    }

    /// What was heard so far, up to now.
    pub(crate) fn observation(&self) -> QuerierObservation {
        QuerierObservation {
            log: self.log.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            start_unix_ns: self.started_unix_ns,
            end_unix_ns: now_ns(),
            wait: self.wait,
        }
    }

    /// Stops the watch and returns what was heard.
    pub(crate) fn finish(mut self) -> QuerierObservation {
        self.halt();
        self.observation()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.bell.ring();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for QuerierWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How long to wait (pure) when the silence would be said at `silent_after` (unix ns; `None`:
/// nothing to say), at `now`: just past that moment ([`QuerierLog::silence`] wants strictly
/// longer than the limit), at most [`LONGEST_WAIT`].
fn until_silent(silent_after: Option<u64>, now: u64) -> Duration {
    silent_after.map_or(LONGEST_WAIT, |at| {
        (Duration::from_nanos(at.saturating_sub(now)) + Duration::from_millis(1)).min(LONGEST_WAIT)
    })
}

/// Waits up to `timeout` for a packet on `sock` or the ring of `bell`. An error or EINTR just
/// ends the wait early: the loop reads without blocking and comes back.
fn wait_for(sock: &UdpSocket, bell: &Bell, timeout: Duration) {
    let pollfd = |fd: i32| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let mut fds = [pollfd(sock.as_raw_fd()), pollfd(bell.fd())];
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: two valid pollfds for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

/// A raw IGMP or ICMPv6 socket on `iface`, as a `UdpSocket` only for its plain `recv_from`
/// (any datagram socket works with it), non-blocking: the watch waits in [`wait_for`].
fn raw_socket(iface: Option<&Iface>, v6: bool) -> io::Result<UdpSocket> {
    let (domain, proto) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::from(2)) };
    let sock = Socket::new(domain, Type::RAW, Some(proto))?;
    if let Some(i) = iface {
        sock.bind_device(Some(i.name.as_bytes()))?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Whether watching `iface` can tell anything: queries never cross loopback.
pub(crate) fn worth_watching(iface: Option<&Iface>) -> bool {
    iface.is_none_or(|i| i.name != "lo")
}

/// Starts watching for membership queries of `group`'s family on `iface`, with a live line when
/// a querier is first heard (unless `quiet`) and when queries stop. Without CAP_NET_RAW, says so
/// in one line and carries on (`Some(Err(why))`). `None` on loopback, where no query ever comes.
/// `target` names `serve`'s target in the lines (several may watch one interface); "" for none.
pub(crate) fn start(
    iface: &Option<Iface>,
    group: IpAddr,
    wait: Option<Duration>,
    quiet: bool,
    target: &str,
) -> Option<Result<QuerierWatch, String>> {
    if !worth_watching(iface.as_ref()) {
        return None;
    }
    let who = if target.is_empty() { String::new() } else { format!("target {target}: ") };
    let see = if target.is_empty() { "see the report" } else { "mcprobe_querier_silent is 1" };
    let events: EventSink = Box::new({
        let who = who.clone();
        move |ev| match ev {
            QuerierEvent::Heard(q) if !quiet => {
                let default = if q.announced { "" } else { " (default)" };
                let (v, secs) = (q.version.as_str(), q.interval.as_secs());
                eprintln!("{who}querier {} heard: {v}, interval {secs} s{default}", q.address)
            }
            QuerierEvent::Heard(_) => {}
            QuerierEvent::Silent(s) => {
                let secs = s.silent_for.as_secs_f64();
                eprintln!(
                    "mcprobe: {who}no IGMP/MLD membership query for {secs:.1} s: snooping switches will stop forwarding the group ({see})"
                )
            }
        }
    });
    let watch = QuerierWatch::start(iface.as_ref(), group.is_ipv6(), wait, Some(events)).map_err(|u| u.0);
    if let Err(why) = &watch {
        eprintln!("mcprobe: {who}{why}");
    }
    Some(watch)
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn the_watch_sleeps_until_just_past_the_silence_or_at_most_the_longest_wait() {
        const S: u64 = 1_000_000_000;
        // Silent after 135 s from a start at 0: at 130 s it waits 5 s and 1 ms.
        assert_eq!(until_silent(Some(135 * S), 130 * S), Duration::from_millis(5_001));
        // Already past (said at the next look): 1 ms.
        assert_eq!(until_silent(Some(135 * S), 140 * S), Duration::from_millis(1));
        // Far away, or nothing to say: the longest wait.
        assert_eq!(until_silent(Some(135 * S), 0), LONGEST_WAIT);
        assert_eq!(until_silent(None, 0), LONGEST_WAIT);
    }
}
