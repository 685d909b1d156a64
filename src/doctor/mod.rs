//! `mcprobe doctor`: what on this host silently breaks multicast, each finding with the
//! command that fixes it.
//!
//! Two halves, as the rest of mcprobe: [`gather`] reads the host (interfaces, routes, sysctls,
//! the firewall's rules, sockets, a querier, the clock) into [`Facts`], and [`checks`] judges
//! them (pure: unit tests feed it facts, no system needed). `commands/doctor.rs` runs them and
//! `output/doctor.rs` prints the report.

pub mod checks;
pub mod firewall;
pub(crate) mod gather;
pub mod iptables;
pub mod nft;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::net::route::Route;

/// The side this host plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Prober,
    Responder,
    Both,
}

impl Role {
    pub fn probes(self) -> bool {
        matches!(self, Role::Prober | Role::Both)
    }

    pub fn responds(self) -> bool {
        matches!(self, Role::Responder | Role::Both)
    }
}

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub iface: String,
    pub group: IpAddr,
    pub port: u16,
    pub role: Role,
    pub ack_port: Option<u16>,
    /// Hosts of the other side, as given.
    pub peers: Vec<IpAddr>,
    pub querier_wait: Duration,
    pub keyed: bool,
}

/// The interface, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceFacts {
    pub name: String,
    pub up: bool,
    /// The link has a carrier (IFF_RUNNING).
    pub running: bool,
    pub multicast: bool,
    pub loopback: bool,
    pub addrs: Vec<IpNet>,
}

/// What the kernel's routing says of one peer's packets arriving on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    pub addr: IpAddr,
    /// Given with `--peer` (else made up from the interface's subnet).
    pub given: bool,
    /// `ip route get LOCAL from PEER iif IFACE`: `Err` with the kernel's reason when refused.
    pub accepted: Result<(), String>,
    /// The interface the route back to it leaves by.
    pub back_via: Option<String>,
}

/// A socket bound to a port this host's mcprobe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub local: SocketAddr,
    /// `comm` and pid of its owner, when found.
    pub owner: Option<(String, u32)>,
}

/// What the querier watch heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerierFacts {
    /// Queries never cross loopback.
    Loopback,
    NotWatched(String),
    /// Queriers heard (address, version).
    Heard(Vec<(IpAddr, String)>),
    /// None in this long.
    Silent(Duration),
}

/// The kernel's clock discipline (adjtimex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockFacts {
    pub synced: bool,
    /// The kernel's estimate of the maximum error, µs.
    pub maxerror_us: i64,
}

/// Everything [`gather`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// `None`: there is no such interface.
    pub iface: Option<IfaceFacts>,
    pub group_route: Result<Route, String>,
    pub rp_filter: Option<u8>,
    pub peers: Vec<PeerFacts>,
    /// The rulesets read, with what they were read from; `Err` when none could be.
    pub firewall: Result<(firewall::Ruleset, Vec<String>), String>,
    /// net.ipv4.ip_local_port_range.
    pub ephemeral: (u16, u16),
    pub igmp_max_memberships: Option<u64>,
    /// Sockets bound to the group's port.
    pub group_port_bound: Vec<Bound>,
    /// Sockets bound to --ack-port.
    pub ack_port_bound: Vec<Bound>,
    pub querier: QuerierFacts,
    pub clock: Option<ClockFacts>,
}

/// The part of the host a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Interface,
    Route,
    ReversePath,
    Firewall,
    Memberships,
    Port,
    Querier,
    Clock,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Interface => "interface",
            Check::Route => "route",
            Check::ReversePath => "rp_filter",
            Check::Firewall => "firewall",
            Check::Memberships => "memberships",
            Check::Port => "port",
            Check::Querier => "querier",
            Check::Clock => "clock",
        }
    }
}

/// Something that breaks multicast here, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub what: String,
    /// Commands (or steps) that fix it, in order.
    pub fix: Vec<String>,
}

/// A line about a check that found nothing, or could not tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub check: Check,
    pub what: String,
}

/// The doctor's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub ok: Vec<Line>,
    pub cannot_tell: Vec<Line>,
}
