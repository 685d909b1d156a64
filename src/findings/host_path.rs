//! Where along a host's path packets disappeared, from the packet taps: acks that reached this
//! host's interface but never mcprobe's socket ([`AcksDroppedHere`]). Pure: reads the
//! [`Outcome`]'s evidence and says what it proves, with the fix.
//!
//! What the evidence can and cannot say: the tap sits before every netfilter hook, rp_filter
//! and the socket lookup, and after the link (see [`crate::net::tap`]). An ack it saw that the
//! socket never got was dropped inside this host. The socket's full buffer is counted apart
//! (`SO_RXQ_OVFL`) and taken off; what is left is a filter: in practice the firewall. It does
//! not say which rule: `mcprobe doctor --role prober` reads the ruleset for that.

use std::net::IpAddr;

use super::diagnosis::{Advice, Diagnosis, Verdict};
use super::Row;
use crate::run::{AckWatch, Outcome};

/// This host dropped acks that reached its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcksDroppedHere {
    /// Per source address, the acks that reached the interface and not the socket.
    pub from: Vec<(IpAddr, u64)>,
    /// All of them, less those the socket's full buffer dropped.
    pub dropped: u64,
    /// Acks the socket's full buffer dropped (already taken off `dropped`).
    pub socket_buffer: u64,
    /// The port the multicast acks came to, and the hosts' ports after it.
    pub ports: Vec<u16>,
    /// The ports were chosen with `--ack-port`.
    pub chosen: bool,
    /// The responders' port: where the acks come from.
    pub group_port: u16,
}

impl AcksDroppedHere {
    /// What the outcome's ack tap proves, if anything: acks dropped inside this host, beyond
    /// those its socket buffer dropped.
    pub(crate) fn of(o: &Outcome, group_port: u16) -> Option<AcksDroppedHere> {
        let Some(AckWatch::Watched(s)) = &o.ack_watch else { return None };
        if !s.settled {
            return None;
        }
        let from: Vec<(IpAddr, u64)> = s.missing().collect();
        let total: u64 = from.iter().map(|(_, n)| n).sum();
        let dropped = total.saturating_sub(o.local_drops);
        (dropped > 0).then(|| AcksDroppedHere {
            from,
            dropped,
            socket_buffer: total - dropped,
            ports: s.ports.clone(),
            chosen: s.chosen,
            group_port,
        })
    }

    /// Whether acks from `host` were among those dropped.
    pub(crate) fn includes(&self, host: IpAddr) -> bool {
        self.from.iter().any(|(a, _)| *a == host)
    }

    /// The `--ack-port` to use: the one given, else the port after the responders'.
    pub fn suggested_port(&self) -> u16 {
        match self.ports.first() {
            Some(&p) if self.chosen => p,
            _ if self.group_port == u16::MAX => self.group_port - 1,
            _ => self.group_port + 1,
        }
    }

    /// The ports to open for `--ack-port` [`suggested_port`](Self::suggested_port): it, and
    /// one per `--hosts` host after it (their acks pass a stateful firewall anyway, as answers
    /// to the unicast probes; a stateless one needs them).
    pub fn ports_to_open(&self) -> (u16, u16) {
        let first = self.suggested_port();
        (first, first.saturating_add(self.ports.len().saturating_sub(1) as u16))
    }
}

/// Everything the taps said about the host path, for the outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPath {
    /// This host's ack tap: `None` when none was asked for.
    pub acks: Option<AckWatch>,
    /// What it proves: this host dropped acks.
    pub acks_dropped: Option<AcksDroppedHere>,
    /// Responders' hosts that dropped probes before their socket.
    pub probes_dropped: Vec<ProbesDroppedAtHost>,
}

impl HostPath {
    pub(crate) fn of(o: &Outcome, rows: &[Row], group_port: u16) -> HostPath {
        HostPath {
            acks: o.ack_watch.clone(),
            acks_dropped: AcksDroppedHere::of(o, group_port),
            probes_dropped: probes_dropped_at_hosts(rows),
        }
    }
}

/// A responder's host dropped probes of this prober between its interface and its socket
/// (its firewall, rp_filter, a join on another interface), as its tap counted them and its
/// acks told: on whichever path still got acks through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbesDroppedAtHost {
    /// How the reader knows it: its responder's name, else its address.
    pub name: String,
    pub addr: IpAddr,
    /// During this run (the count's growth over the run's acks).
    pub probes: u64,
}

/// The responders' hosts whose acks reported probes dropped before their socket during this
/// run, one per address (its paths' reports together: the count is per prober address).
pub(crate) fn probes_dropped_at_hosts(rows: &[Row]) -> Vec<ProbesDroppedAtHost> {
    let mut out: Vec<(ProbesDroppedAtHost, u64, u64)> = Vec::new();
    for r in rows {
        let (Some((first, last)), Some(addr)) = (r.figures.filtered_at_host, r.ip()) else { continue };
        match out.iter_mut().find(|(d, ..)| d.addr == addr) {
            Some((_, f, l)) => (*f, *l) = ((*f).min(first), (*l).max(last)),
            None => {
                let name = r.label().unwrap_or_else(|| addr.to_string());
                out.push((ProbesDroppedAtHost { name, addr, probes: 0 }, first, last));
            }
        }
    }
    out.into_iter()
        .map(|(d, first, last)| ProbesDroppedAtHost { probes: last - first, ..d })
        .filter(|d| d.probes > 0)
        .collect()
}

/// Ties the drop to the hosts whose acks this host dropped: their verdict (multicast lost,
/// unreachable …) is about this host's firewall, not the network or the responders.
pub(crate) fn explain_hosts(d: &mut Diagnosis, drops: &AcksDroppedHere) {
    for h in d.hosts.iter_mut().filter(|h| h.verdict != Verdict::Ok && drops.includes(h.host)) {
        h.name(Advice::AcksDroppedHere);
    }
}

/// Names the host's own filtering as why an expected host lost probes.
pub(crate) fn explain_dropped_probes(d: &mut Diagnosis, dropped: &[ProbesDroppedAtHost]) {
    for h in d.hosts.iter_mut().filter(|h| h.verdict != Verdict::Ok) {
        if let Some(p) = dropped.iter().find(|p| p.addr == h.host) {
            let before = h.advice;
            h.name(Advice::ProbesDroppedAtHost { probes: p.probes });
            // Which groups its host drops: the missing ones (a rule on some groups only).
            if matches!(before, Advice::GroupsMissing { .. }) {
                h.others.push(before);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::synthetic;
    use crate::run::AckSightings;

    fn outcome_with(by_source: Vec<(IpAddr, u64, u64)>, settled: bool, local_drops: u64) -> Outcome {
        let mut o = synthetic::outcome(10, 1, &[], &[]);
        o.local_drops = local_drops;
        o.ack_watch = Some(AckWatch::Watched(AckSightings {
            by_source,
            settled,
            ports: vec![41234, 41235],
            ..AckSightings::default()
        }));
        o
    }

    #[test]
    fn acks_at_the_interface_and_not_the_socket_are_this_hosts_drops() {
        let (a, b): (IpAddr, IpAddr) = ("10.77.0.2".parse().unwrap(), "10.77.0.3".parse().unwrap());
        let d = AcksDroppedHere::of(&outcome_with(vec![(a, 20, 0), (b, 20, 20)], true, 0), 24242).unwrap();
        assert_eq!((d.from.clone(), d.dropped, d.socket_buffer), (vec![(a, 20)], 20, 0));
        assert!(d.includes(a) && !d.includes(b));
        // Not chosen: the port after the responders', and one for the host after it.
        assert_eq!((d.suggested_port(), d.ports_to_open()), (24243, (24243, 24244)));
        // The socket buffer's drops are not the firewall's.
        assert_eq!(AcksDroppedHere::of(&outcome_with(vec![(a, 20, 15)], true, 5), 24242), None);
        let d = AcksDroppedHere::of(&outcome_with(vec![(a, 20, 10)], true, 4), 24242).unwrap();
        assert_eq!((d.dropped, d.socket_buffer), (6, 4));
        // Nothing concluded when the receiver never drained its sockets, or nothing is missing.
        assert_eq!(AcksDroppedHere::of(&outcome_with(vec![(a, 20, 0)], false, 0), 24242), None);
        assert_eq!(AcksDroppedHere::of(&outcome_with(vec![(a, 20, 20)], true, 0), 24242), None);
        let mut o = outcome_with(vec![], true, 0);
        o.ack_watch = Some(AckWatch::NotWatched("no CAP_NET_RAW".into()));
        assert_eq!(AcksDroppedHere::of(&o, 24242), None);
    }
}
