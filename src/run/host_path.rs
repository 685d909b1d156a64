//! What the run saw of the path inside this host: acks at the interface against acks at the
//! sockets (the ack tap), and what the neighbour table said of each listed host. Pure data, read
//! by the findings; the engine and `net` fill it.

use std::net::IpAddr;

/// What the tap saw of the acks, against what the sockets got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckWatch {
    /// No tap: why, in one line.
    NotWatched(String),
    Watched(AckSightings),
}

/// Acks of this run per source address: at an interface, and at a socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSightings {
    /// (source, at the interface, at a socket), by source address.
    pub by_source: Vec<(IpAddr, u64, u64)>,
    /// Frames the tap could not keep up with: its counts are then lower bounds.
    pub tap_drops: u64,
    /// The receiver's last read found its sockets drained, so every ack the tap counted had
    /// its chance; `false` under a flood, when no drop is concluded.
    pub settled: bool,
    /// The ports watched: the multicast socket's first, then each `--hosts` host's.
    pub ports: Vec<u16>,
    /// They were chosen with `--ack-port` (else the kernel picked them).
    pub chosen: bool,
}

impl AckSightings {
    /// Acks that reached an interface and never a socket, per source (only those with some).
    pub fn missing(&self) -> impl Iterator<Item = (IpAddr, u64)> + '_ {
        self.by_source.iter().filter(|(_, i, s)| i > s).map(|&(a, i, s)| (a, i - s))
    }
}

/// What this host's neighbour table (ARP, IPv6 neighbour discovery) says of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbour {
    /// It answered: the host is up and on the link.
    Resolved,
    /// It was asked and never answered (INCOMPLETE, FAILED).
    Unanswered,
}
