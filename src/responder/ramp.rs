//! `respond --groups LIST --ramp STEP/PERIOD`: the responder's side of `mcprobe max-groups`. It
//! joins the list's groups `STEP` at a time, every `PERIOD`, in the list's order, and keeps
//! what the search needs for its acks (the memberships record, `crate::wire`): how many it has
//! joined, what its kernel refused, and how many probes of the *canary* (a group it never joins)
//! reached its interface, which only happens when the network floods.
//!
//! The sockets that will hold the memberships are all opened (empty) when the responder binds,
//! one per `net.ipv4.igmp_max_memberships` groups (the kernel's per-socket limit; 20 for
//! IPv6), so the responder's read loop polls a fixed list; a thread joins the groups on
//! duplicates of their descriptors as the ramp goes (a membership belongs to the socket, not the
//! descriptor). A socket the host would not open (`EMFILE`) or a membership it refuses
//! (`ENOBUFS`, `ENOMEM`) is counted as refused, with why: the host's own limit, which the
//! search must not take for the network's. The ramp then tries again once a period.
//!
//! The canary is counted by a packet tap (CAP_NET_RAW): a host's sockets never see a group no
//! socket joined, whatever `IP_MULTICAST_ALL` says. On a NIC that filters multicast by address
//! the tap sees the canary only if the interface is in allmulti mode (`ip link set DEV allmulticast
//! on`); a veth or a bridge port has no such filter.

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::join_leave::{Left, LeftGroups};
use super::ResponderConfig;
use crate::net::tap::{self, Peek, Tap, TapSpec};
use crate::net::{self, Iface};
use crate::wire::{MembershipRefusal, Memberships};

/// How a responder ramps (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RampSpec {
    /// Groups joined at once, and every period after.
    pub step: u32,
    pub period: Duration,
    /// The group it never joins and counts the probes of.
    pub canary: IpAddr,
}

impl RampSpec {
    /// Groups of `total` joined `elapsed` after the start.
    fn due(&self, elapsed: Duration, total: usize) -> usize {
        let periods = elapsed.as_nanos() / self.period.as_nanos().max(1);
        (u128::from(self.step) * (periods + 1)).min(total as u128) as usize
    }
}

/// What the acks tell, shared between the ramp's thread and the engine.
#[derive(Debug)]
pub(crate) struct Shared {
    joined: AtomicU32,
    refused: AtomicU32,
    /// 0 none, else [`refusal_code`].
    refusal: AtomicU8,
    canary: AtomicU64,
    watched: AtomicBool,
    /// Groups joined when the first canary probe came; u32::MAX: none yet.
    flood_at: AtomicU32,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            joined: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            refusal: AtomicU8::new(0),
            canary: AtomicU64::new(0),
            watched: AtomicBool::new(false),
            flood_at: AtomicU32::new(u32::MAX),
        }
    }
}

fn refusal_code(e: &std::io::Error) -> u8 {
    match e.raw_os_error() {
        Some(nix::libc::ENOBUFS) => 1,
        Some(nix::libc::EMFILE | nix::libc::ENFILE) => 2,
        Some(nix::libc::ENOMEM) => 3,
        _ => 255,
    }
}

impl Shared {
    pub(crate) fn memberships(&self) -> Memberships {
        let refusal = match self.refusal.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(MembershipRefusal::SocketLimit),
            2 => Some(MembershipRefusal::Files),
            3 => Some(MembershipRefusal::Memory),
            _ => Some(MembershipRefusal::Other),
        };
        let canary = self.watched.load(Ordering::Relaxed).then(|| {
            // u32::MAX says "not watched" on the wire.
            self.canary.load(Ordering::Relaxed).min(u64::from(u32::MAX - 1)) as u32
        });
        let flood_at = self.flood_at.load(Ordering::Relaxed);
        Memberships {
            joined: self.joined.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            refusal,
            canary,
            flood_at: (flood_at != u32::MAX).then_some(flood_at),
        }
    }

    fn refuse(&self, e: &std::io::Error) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let _ = self.refusal.compare_exchange(0, refusal_code(e), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The running ramp: stops its thread when dropped.
pub(crate) struct Ramp {
    pub(crate) shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Why the canary is not watched, to tell once.
    pub(crate) unwatched: Option<String>,
    /// The groups not joined (yet, or refused): for the probe tap, as `--churn`'s left ones.
    pub(crate) not_joined: Left,
}

impl Drop for Ramp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Memberships one socket may hold: `net.ipv4.igmp_max_memberships` for IPv4 (20 when it
/// cannot be read), 20 for IPv6 (whose limit is the socket's option memory).
fn per_socket(v6: bool) -> usize {
    if v6 {
        return 20;
    }
    std::fs::read_to_string("/proc/sys/net/ipv4/igmp_max_memberships")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(20)
}

/// Opens the sockets (empty, bound), joins the first step and starts the ramp. The sockets are
/// the responder's to read; the ramp keeps duplicates to join on.
pub(crate) fn start(cfg: &ResponderConfig, spec: RampSpec) -> Result<(Vec<UdpSocket>, Ramp)> {
    let v6 = cfg.group.is_ipv6();
    let per = per_socket(v6);
    let wanted = cfg.groups.len().div_ceil(per);
    let shared = Arc::new(Shared::default());
    let mut socks = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        match net::bound_responder_socket(v6, cfg.port, cfg.rcvbuf) {
            Ok(s) => socks.push(UdpSocket::from(s)),
            // Out of descriptors: the groups of the sockets not opened are refused as the ramp
            // reaches them. Anything else (the port in use) is the user's to fix.
            Err(e) if !socks.is_empty() && e.root_cause().downcast_ref::<std::io::Error>().is_some_and(is_files) => {
                break
            }
            Err(e) => return Err(e),
        }
    }
    for s in &socks {
        s.set_read_timeout(Some(net::STOP_TICK))?;
    }
    let dups = socks
        .iter()
        .map(UdpSocket::try_clone)
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot duplicate a socket")?;
    // Every group is "left" until joined: the probe tap must not count its probes as dropped
    // by this host (the socket never sees a group it has not joined).
    let not_joined = LeftGroups::of(cfg.groups.iter().copied());
    let shared_left = not_joined.shared();
    let mut joiner = Joiner {
        dups,
        per,
        groups: cfg.groups.clone(),
        iface: cfg.iface.clone(),
        source: cfg.source,
        joined: 0,
        not_joined,
    };
    joiner.join_upto(spec.step as usize, &shared)?;
    let (tap, unwatched) = match Tap::open(
        &TapSpec { v6, ifindex: cfg.iface.as_ref().map_or(0, |i| i.index), ports: vec![(cfg.port, cfg.port)] },
        "the canary",
    ) {
        Ok(t) => {
            shared.watched.store(true, Ordering::Relaxed);
            (Some(t), None)
        }
        Err(u) => (None, Some(u.0)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (sh, st) = (shared.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("ramp".into())
        .spawn(move || ramp_loop(joiner, spec, tap, &sh, &st))
        .context("cannot start the ramp's thread")?;
    Ok((socks, Ramp { shared, stop, thread: Some(thread), unwatched, not_joined: shared_left }))
}

fn is_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE))
}

struct Joiner {
    dups: Vec<UdpSocket>,
    per: usize,
    groups: Vec<IpAddr>,
    iface: Option<Iface>,
    source: Option<IpAddr>,
    joined: usize,
    /// The groups the probe tap leaves out: not joined yet, refused, or joined too recently.
    not_joined: LeftGroups,
}

impl Joiner {
    /// Joins groups up to `target` (of the list) in order; stops at the first refusal, which it
    /// counts. The outer error is the user's (a family mismatch), as at bind.
    fn join_upto(&mut self, target: usize, shared: &Shared) -> Result<()> {
        while self.joined < target.min(self.groups.len()) {
            let group = self.groups[self.joined];
            let result = match self.dups.get(self.joined / self.per) {
                Some(s) => net::join_group(&socket2::SockRef::from(s), group, self.iface.as_ref(), self.source)?,
                None => Err(std::io::Error::from_raw_os_error(nix::libc::EMFILE)),
            };
            if let Err(e) = result {
                shared.refuse(&e);
                return Ok(());
            }
            self.joined += 1;
            shared.joined.store(self.joined as u32, Ordering::Relaxed);
            self.not_joined.joined(group, Instant::now());
        }
        Ok(())
    }
}

fn ramp_loop(mut joiner: Joiner, spec: RampSpec, mut tap: Option<Tap>, shared: &Shared, stop: &AtomicBool) {
    let start = Instant::now();
    let mut period = 0u128;
    while !stop.load(Ordering::Relaxed) {
        if let Some(t) = tap.as_mut() {
            let mut seen = 0u64;
            let read = t.drain(|frame, f| {
                let Some(u) = tap::parse(frame) else { return };
                if f.multicast && u.dst == spec.canary && matches!(tap::peek(u.payload), Some(Peek::Probe { .. })) {
                    seen += 1;
                }
            });
            if seen > 0 {
                let joined = shared.joined.load(Ordering::Relaxed);
                let _ = shared.flood_at.compare_exchange(u32::MAX, joined, Ordering::Relaxed, Ordering::Relaxed);
            }
            shared.canary.fetch_add(seen, Ordering::Relaxed);
            if read.is_err() {
                tap = None;
            }
        }
        // Joins after the tap is read: a canary frame waiting in the tap came while the groups
        // joined so far were all there were. The other way round, a thread the machine stalled
        // for several periods joined their groups at once first and put the flood that many
        // groups late (63 for 58 that fit, with four busy loops beside the lab).
        let now = start.elapsed();
        let p = now.as_nanos() / spec.period.as_nanos().max(1);
        if p > period {
            period = p;
            // A refusal here is counted; a user error cannot happen after the first step.
            let _ = joiner.join_upto(spec.due(now, joiner.groups.len()), shared);
        }
        joiner.not_joined.due(Instant::now());
        std::thread::sleep(tap::POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_and_the_shared_figures() {
        let spec = RampSpec { step: 5, period: Duration::from_secs(1), canary: "239.9.0.99".parse().unwrap() };
        assert_eq!(spec.due(Duration::ZERO, 12), 5);
        assert_eq!(spec.due(Duration::from_millis(1500), 12), 10);
        assert_eq!(spec.due(Duration::from_secs(9), 12), 12);
        let s = Shared::default();
        assert_eq!(s.memberships(), Memberships { joined: 0, refused: 0, refusal: None, canary: None, flood_at: None });
        s.refuse(&std::io::Error::from_raw_os_error(nix::libc::ENOBUFS));
        s.refuse(&std::io::Error::from_raw_os_error(nix::libc::EMFILE));
        s.watched.store(true, Ordering::Relaxed);
        s.canary.store(u64::MAX, Ordering::Relaxed);
        let m = s.memberships();
        assert_eq!((m.refused, m.refusal, m.canary), (2, Some(MembershipRefusal::SocketLimit), Some(u32::MAX - 1)));
    }
}
