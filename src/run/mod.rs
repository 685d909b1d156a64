//! The result of one probing run, as the prober engine hands it over: pure data, no sockets and
//! no clock. Every consumer of a run (the findings, the report folder, `serve`'s state, `mesh`,
//! `max-rate`) reads these types, so none of them needs to know the engine that made them.

use std::net::IpAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::Run;

mod host_path;
mod keys;
pub use host_path::{AckSightings, AckWatch, Neighbour};
pub use keys::{KeyCounts, KeyEvidence, KeySign};

/// IP TTL of unicast probes: a common initial value, so `UNICAST_TTL − arrival TTL` is the number
/// of routers on the way.
pub(crate) const UNICAST_TTL: u32 = 64;

/// What a run was asked to do, as the reports describe it (the engine's own configuration stays
/// with the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The run's session id: in every probe, and the run id of every report file.
    pub session: u64,
    pub group: IpAddr,
    /// Every group probed (`--groups`), `group` first; probe `k` went to `groups[k % len]`.
    pub groups: Vec<IpAddr>,
    pub port: u16,
    /// The interface named with `--iface`, or the one the route to the group leaves by.
    pub interface: Option<String>,
    /// The interface's address of the group's family, when known.
    pub source: Option<IpAddr>,
    pub ttl: u32,
    /// Probe size in bytes (the plain message's length with `--plain`).
    pub size: usize,
    pub interval: Duration,
    /// Probes asked for.
    pub count: u64,
    pub timeout: Duration,
    pub report_interval: Duration,
    pub keyed: bool,
    /// The course lab's plain protocol.
    pub plain: bool,
    /// `--hosts`, in order.
    pub hosts: Vec<IpAddr>,
}

/// What an ICMP error said about a unicast probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IcmpKind {
    /// The host is up but nothing listens on the port: no responder, or another `--port`.
    PortUnreachable,
    /// No neighbour answered (host down or not on the LAN), or a router could not reach it.
    HostUnreachable,
    /// No route to the host's network.
    NetUnreachable,
    /// A firewall rejected the probe (ICMP "communication administratively prohibited",
    /// ICMPv6 "administratively prohibited", "reject route", "source address failed policy").
    AdminProhibited,
    /// The TTL (hop limit) ran out on the way: a routing loop, or a host too many routers away.
    TimeExceeded,
    /// Any other ICMP error, or a local error reported the same way.
    Other { icmp_type: u8, code: u8 },
}

/// The unicast path to one listed host.
#[derive(Debug)]
pub struct UnicastRun {
    pub host: IpAddr,
    /// Probes actually handed to the kernel, and the acks to them. Probes the kernel refused
    /// are not in it (see `not_sent`), so they never count as network loss.
    pub run: Run,
    /// Probes the kernel refused at once: the host's send queue was full (its neighbour entry
    /// unresolved: the host is down or not on the LAN), or it reported the host unreachable.
    pub not_sent: u64,
    /// ICMP errors about the probes to this host.
    pub icmp: IcmpCounts,
    /// The host is this machine (one of its interface addresses).
    pub is_self: bool,
    /// What says a responder there and this prober do not share a key.
    pub keys: KeyEvidence,
    /// What this machine's neighbour table said of the host at the end (`None`: no entry, as
    /// for a host behind a router, or `ip` could not say): a silent host that answered ARP is
    /// up.
    pub neighbour: Option<Neighbour>,
}

impl UnicastRun {
    /// A host's run with nothing refused, no ICMP error, and not this machine.
    pub(crate) fn new(host: IpAddr, run: Run) -> Self {
        UnicastRun {
            host,
            run,
            not_sent: 0,
            icmp: IcmpCounts::default(),
            is_self: false,
            keys: KeyEvidence::default(),
            neighbour: None,
        }
    }
}

/// ICMP errors about one host's unicast probes, by kind. The kernel rate-limits the errors it
/// sends (about one a second after a burst), so these count errors, not probes: any non-zero
/// count says why that host is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IcmpCounts {
    /// Nothing listens on the port: the host is up but no responder serves this `--port`.
    pub port_unreachable: u64,
    /// No neighbour (host down or not on the LAN), or a router could not reach it.
    pub host_unreachable: u64,
    pub net_unreachable: u64,
    /// A firewall rejects the probes.
    pub admin_prohibited: u64,
    pub time_exceeded: u64,
    pub other: u64,
    /// Who sent the newest error: the host, a router, or this machine itself (failed neighbour
    /// resolution is reported by the prober's own address).
    pub reporter: Option<IpAddr>,
    /// The kind of the newest error.
    pub last: Option<IcmpKind>,
}

impl IcmpCounts {
    pub(crate) fn record(&mut self, kind: IcmpKind, reporter: Option<IpAddr>) {
        *match kind {
            IcmpKind::PortUnreachable => &mut self.port_unreachable,
            IcmpKind::HostUnreachable => &mut self.host_unreachable,
            IcmpKind::NetUnreachable => &mut self.net_unreachable,
            IcmpKind::AdminProhibited => &mut self.admin_prohibited,
            IcmpKind::TimeExceeded => &mut self.time_exceeded,
            IcmpKind::Other { .. } => &mut self.other,
        } += 1;
        self.reporter = reporter.or(self.reporter);
        self.last = Some(kind);
    }

    pub fn total(&self) -> u64 {
        self.port_unreachable
            + self.host_unreachable
            + self.net_unreachable
            + self.admin_prohibited
            + self.time_exceeded
            + self.other
    }

    /// The most frequent kind (the newest one breaks ties); `None` when no error came: silence.
    pub fn most_common(&self) -> Option<IcmpKind> {
        let by_kind = [
            (self.port_unreachable, IcmpKind::PortUnreachable),
            (self.host_unreachable, IcmpKind::HostUnreachable),
            (self.net_unreachable, IcmpKind::NetUnreachable),
            (self.admin_prohibited, IcmpKind::AdminProhibited),
            (self.time_exceeded, IcmpKind::TimeExceeded),
        ];
        let top = by_kind.iter().filter(|(n, _)| *n > 0).max_by_key(|(n, k)| (*n, Some(*k) == self.last));
        match top {
            Some(&(n, k)) if n >= self.other => Some(k),
            _ if self.other > 0 => self.last,
            _ => None,
        }
    }
}

/// A snapshot for the live progress display.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub sent: u64,
    pub total: u64,
    pub responders: usize,
    pub acks: u64,
    pub worst_loss_pct: Option<f64>,
    /// True once the last probe left and the engine waits for late acks.
    pub draining: bool,
}

/// Everything a finished run hands to the reports.
pub struct Outcome {
    /// What was asked of the run.
    pub settings: Settings,
    /// The multicast path.
    pub run: Run,
    /// The unicast path to each listed host (`hosts`).
    pub unicast: Vec<UnicastRun>,
    /// Multicast TTL the probes left with.
    pub ttl: u32,
    /// How late each probe left versus its schedule, in ns.
    pub lateness: Histogram<u64>,
    /// From the first probe leaving to the last one: with the count sent, the rate achieved.
    pub send_span: Duration,
    /// The run was stopped (Ctrl-C) before its last probe.
    pub interrupted: bool,
    pub elapsed: Duration,
    /// Datagrams on the prober's port that were not acks (garbage, stray probes).
    pub invalid: u64,
    /// With a key: acks without a valid tag, dropped.
    pub forged: u64,
    /// Acks the kernel dropped because the socket buffer was full (SO_RXQ_OVFL): this host's
    /// fault, not the network's; already counted as loss above, reported apart so it can be told.
    pub local_drops: u64,
    /// Multicast probes the kernel refused (unicast ones: `UnicastRun::not_sent`).
    pub send_errors: u64,
    /// This machine's addresses (looked up with `--hosts` only): ICMP errors it reported itself
    /// are neighbour failures, and a listed host among them is this machine.
    pub local_addrs: Vec<IpAddr>,
    /// What says a responder on the multicast path and this prober do not share a key (each
    /// unicast path has its own, in [`UnicastRun::keys`]).
    pub keys: KeyEvidence,
    /// The acks seen at this host's interfaces against those its sockets got; `None` when no
    /// tap was asked for (`ProbeConfig::tap_acks`).
    pub ack_watch: Option<AckWatch>,
}

#[cfg(test)]
impl Settings {
    /// The settings of a test run: `count` probes 10 ms apart to the default group, TTL `ttl`.
    pub(crate) fn for_tests(session: u64, ttl: u32, count: u64) -> Self {
        Settings {
            session,
            group: "239.255.42.42".parse().expect("a group"),
            groups: vec!["239.255.42.42".parse().expect("a group")],
            port: 24242,
            interface: None,
            source: None,
            ttl,
            size: 128,
            interval: Duration::from_millis(10),
            count,
            timeout: Duration::from_secs(1),
            report_interval: Duration::from_secs(1),
            keyed: false,
            plain: false,
            hosts: Vec::new(),
        }
    }
}
