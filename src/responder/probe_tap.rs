//! The responder's packet tap ([`crate::net::tap`]): every probe to the group's port that
//! reaches an interface of this host, before the firewall, rp_filter and the membership check
//! have their say. Its sightings go to [`super::arrivals::Arrivals`], which compares them with
//! what the socket got. A multicast probe arriving on another interface than the one the group
//! was joined on is counted apart: the join is on the wrong interface.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::ResponderConfig;
use crate::net::now_ns;
use crate::net::tap::{self, Peek, Tap, TapSpec};

/// Sightings waiting for the responder to take them (each a run of one source's probes); more
/// are dropped (the tap then counts less, which can only hide a drop, never invent one).
const MAX_PENDING: usize = 1 << 16;

#[derive(Default)]
struct Pending {
    /// (when read, source, probes).
    sightings: VecDeque<(u64, IpAddr, u64)>,
    /// Multicast probes for the group that arrived on another interface (index → count).
    elsewhere: HashMap<u32, u64>,
}

/// A running tap; stops when dropped.
pub(crate) struct ProbeTap {
    pending: Arc<Mutex<Pending>>,
    stop: Arc<AtomicBool>,
    /// Rung with `stop`: the idle tap waits for frames without a stop tick.
    bell: Option<tap::Bell>,
    thread: Option<JoinHandle<()>>,
    /// The interface the group was joined on (0: unknown).
    pub joined: u32,
}

/// The interface a join without `--iface` goes to: the one holding the source address of the
/// route to the group (0 when that cannot be told).
fn default_join_ifindex(group: IpAddr) -> u32 {
    let bind: SocketAddr = if group.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("static");
    let local = UdpSocket::bind(bind).and_then(|s| s.connect((group, 9)).and(s.local_addr()));
    let Ok(local) = local else { return 0 };
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return 0 };
    for a in addrs {
        let ip = a.address.as_ref().and_then(|s| {
            s.as_sockaddr_in().map(|v| IpAddr::V4(v.ip())).or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
        });
        if ip == Some(local.ip()) {
            return nix::net::if_::if_nametoindex(a.interface_name.as_str()).unwrap_or(0);
        }
    }
    0
}

impl ProbeTap {
    /// Starts tapping the probes `cfg`'s socket should get; not those to the groups in `left`
    /// (`--churn` leaves them for a while, `--ramp` has not joined them yet: their probes then
    /// never reach the socket by design).
    pub(crate) fn start(cfg: &ResponderConfig, left: super::join_leave::Left) -> Result<ProbeTap, String> {
        let spec = TapSpec { v6: cfg.group.is_ipv6(), ifindex: 0, ports: vec![(cfg.port, cfg.port)] };
        let mut tap = Tap::open(&spec, "the probes").map_err(|u| u.0)?;
        let joined = cfg.iface.as_ref().map_or_else(|| default_join_ifindex(cfg.group), |i| i.index);
        // Only the joined groups' probes: the socket never sees the others (IP_MULTICAST_ALL
        // off), so counting them would report them as dropped on this host.
        let groups: std::collections::HashSet<IpAddr> = cfg.groups.iter().copied().collect();
        let (source, plain) = (cfg.source, cfg.plain);
        let pending = Arc::new(Mutex::new(Pending::default()));
        // Without a bell (no eventfd), the tap looks at `stop` every tap::TICK instead.
        let bell = tap.bell().ok();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (pending.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("probe-tap".into())
            .spawn(move || {
                // Probes from one source, counted as they come (consecutive ones merged), and
                // those on another interface than the joined one.
                let mut seen: Vec<(IpAddr, u64)> = Vec::new();
                let mut elsewhere: Vec<u32> = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    let read = tap.drain(|frame, f| {
                        let Some(u) = tap::parse(frame) else { return };
                        // What the socket would take: the group (on the joined interface) or
                        // this host's address, from the one source of an SSM join, a probe.
                        if (u.dst.is_multicast() && !groups.contains(&u.dst)) || source.is_some_and(|s| s != u.src) {
                            return;
                        }
                        if u.dst.is_multicast() && left.lock().unwrap_or_else(|e| e.into_inner()).contains(&u.dst) {
                            return;
                        }
                        if !plain && !matches!(tap::peek(u.payload), Some(Peek::Probe { .. })) {
                            return;
                        }
                        if f.multicast && joined != 0 && f.ifindex != joined {
                            elsewhere.push(f.ifindex);
                        } else {
                            match seen.last_mut() {
                                Some((a, n)) if *a == u.src => *n += 1,
                                _ => seen.push((u.src, 1)),
                            }
                        }
                    });
                    let Ok(read) = read else { break };
                    if !seen.is_empty() || !elsewhere.is_empty() {
                        let now = now_ns();
                        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                        let room = MAX_PENDING.saturating_sub(p.sightings.len());
                        p.sightings.extend(seen.drain(..).take(room).map(|(a, n)| (now, a, n)));
                        for i in elsewhere.drain(..) {
                            *p.elsewhere.entry(i).or_default() += 1;
                        }
                    }
                    tap.pause(read);
                }
            })
            .map_err(|e| format!("not watching the probes at the interface: cannot start a thread: {e}"))?;
        Ok(ProbeTap { pending, stop, bell, thread: Some(thread), joined })
    }

    /// The probes the tap read before `cutoff_ns`, (source, count) oldest first, taken.
    pub(crate) fn take_before(&self, cutoff_ns: u64, mut f: impl FnMut(IpAddr, u64)) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while p.sightings.front().is_some_and(|(t, ..)| *t < cutoff_ns) {
            let (_, a, n) = p.sightings.pop_front().expect("checked");
            f(a, n);
        }
    }

    /// Multicast probes that arrived on interfaces other than the joined one, so far.
    pub(crate) fn elsewhere(&self) -> HashMap<u32, u64> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).elsewhere.clone()
    }
}

impl Drop for ProbeTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.bell.iter().for_each(tap::Bell::ring);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
