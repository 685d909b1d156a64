//! What is wrong, per expected host: the multicast and the unicast path side by side (as omping
//! shows them), a verdict, and advice. Pure: it reads typed rows and writes conclusions.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{causes, Path, Row};
use crate::run::IcmpKind;
use crate::run::{KeyCounts, KeyEvidence, Neighbour, UnicastRun, UNICAST_TTL};

/// Loss above this percentage marks a path as bad, unless `--max-loss` sets another threshold.
pub(crate) const DEFAULT_THRESHOLD_PCT: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Multicast within the threshold.
    Ok,
    /// Multicast lost (above the threshold) while unicast works: likely IGMP snooping without a
    /// querier, a missing join, a firewall, or multicast routing.
    MulticastLost,
    /// Multicast works, unicast does not (a host firewall, or the responder is bound elsewhere).
    UnicastLost,
    /// Both paths lose more than the threshold, but both get through.
    Degraded,
    /// Neither path got a single answer.
    Unreachable,
    /// Neither path got an answer, but the host said it refuses the probes for their key (or
    /// answered keyed probes without one): up, and running a responder, with another key.
    KeyMismatch,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::MulticastLost => "multicast-lost",
            Verdict::UnicastLost => "unicast-lost",
            Verdict::Degraded => "degraded",
            Verdict::Unreachable => "unreachable",
            Verdict::KeyMismatch => "key-mismatch",
        }
    }

    /// The verdict in a few words, before a list of candidate causes.
    pub(crate) fn summary(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::MulticastLost => "multicast lost but unicast fine",
            Verdict::UnicastLost => "multicast fine but unicast lost",
            Verdict::Degraded => "loss above the threshold on both paths",
            Verdict::Unreachable => "no answer on either path",
            Verdict::KeyMismatch => "key mismatch",
        }
    }

    /// What the verdict usually means, for the line under the verdict table.
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Verdict::Ok => "",
            Verdict::MulticastLost => {
                "multicast lost but unicast fine: likely IGMP snooping without a querier, a missing join, a firewall or multicast routing"
            }
            Verdict::UnicastLost => "multicast fine but unicast lost: a host firewall, or a responder not on this port",
            Verdict::Degraded => "loss above the threshold on both paths: the host or its link",
            Verdict::Unreachable => "no answer on either path: host down, no responder, or filtered",
            Verdict::KeyMismatch => "key mismatch: a responder there refuses these probes for their key",
        }
    }
}

/// Why a host's verdict is what it is, beyond the verdict's usual meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// The verdict's usual meaning ([`Verdict::explain`]).
    Usual,
    /// Multicast lost, and the host is this many routers away while the multicast TTL is too
    /// small to get there.
    TtlTooSmall { hops: u8, ttl: u32 },
    /// The host is the prober's own machine, and nothing answered there.
    ThisHost,
    /// Unicast silent, and the host said ICMP port unreachable: up, but no responder on the port.
    NoResponderOnPort { port: u16 },
    /// Unicast silent, and this machine found no neighbour for the host (ICMP host unreachable
    /// from its own kernel, or probes refused because the address never resolved).
    NoNeighbour,
    /// Unicast silent, and a router or the host said it cannot be reached (ICMP host or network
    /// unreachable), or the TTL ran out on the way.
    Unreachable { kind: IcmpKind, by: Option<IpAddr> },
    /// Unicast silent, and a firewall rejected the probes (ICMP administratively prohibited).
    Rejected { by: Option<IpAddr> },
    /// Unicast silent, and no ICMP error came back either: a firewall that drops, or a host that
    /// is down (some kernels report neither).
    Silence,
    /// Unicast silent, no ICMP error, but the host answered ARP / neighbour discovery: it is up,
    /// and something drops the probes (its firewall, or one on the way) or its responder's
    /// socket never gets them.
    SilentButUp,
    /// Its responder answers unicast on this port but not on the group, and did not say which
    /// group it serves: it may serve another --group (not another --port: it answers unicast on
    /// this one). `everyone`: no host answers on the group. A candidate, never named alone: see
    /// [`super::causes`].
    MaybeOtherGroup { everyone: bool },
    /// Its responder said (in its acks to unicast probes) that it serves another group than
    /// the one probed: a configuration mistake, named for certain.
    OtherGroup { serves: IpAddr, probed: IpAddr },
    /// No multicast ack from anyone, and no packet tap ran here to rule out that this host's
    /// own firewall drops them (a stateful one does not tie them to probes sent to a group).
    AcksMaybeDroppedHere,
    /// Its responder says `probes` multicast probes from this host reached it during the run,
    /// yet none of its acks to them arrived: lost on the way back. `tapped`: this host's packet
    /// tap saw none of them at its interface either (so not this host's firewall).
    AcksLostComingBack { probes: u64, tapped: bool },
    /// Multicast does not reach the host where unicast does: a switch or filter on the way.
    /// `host_tap_clean`: its host's tap ran and saw none of the probes dropped at its
    /// interface, so they never got there.
    NotReaching { host_tap_clean: bool, querier: QuerierHeard },
    /// Its host may drop the multicast probes before its responder (firewall, rp_filter, a join
    /// on another interface): its responder has no packet tap to say.
    HostMayDropProbes,
    /// Multicast got through, but lost more than the threshold where unicast did not.
    MulticastLossy,
    /// With `--groups`: its responder answered on some groups and never on `missing` of the
    /// `of` probed: those groups do not reach it (listed under the table).
    GroupsMissing { missing: u64, of: u64 },
    /// Multicast stopped for the last `probes` of the run while unicast went on: a join
    /// forgotten on the way (snooping) or left; what the querier watch heard says which.
    MulticastStopped { probes: u64, querier: QuerierHeard },
    /// Multicast stopped once the querier fell silent and memberships aged out: the querier
    /// line says when.
    QuerierSilent,
    /// No answer, and this is what the host said about the key (notices, unkeyed acks): see
    /// [`key_mismatch_text`].
    KeyMismatch(KeyCounts),
    /// Its acks reached this host's interface and never mcprobe's socket: this host drops them
    /// (see [`super::AcksDroppedHere`]).
    AcksDroppedHere,
    /// Its own host's tap saw this many of the probes reach its interface and not its
    /// responder's socket (see [`super::host_path::ProbesDroppedAtHost`]).
    ProbesDroppedAtHost { probes: u64 },
}

impl Advice {
    /// Its name in the JSON report's `causes`.
    pub fn kind(self) -> &'static str {
        match self {
            Advice::Usual => "usual",
            Advice::TtlTooSmall { .. } => "ttl-too-small",
            Advice::ThisHost => "this-host",
            Advice::NoResponderOnPort { .. } => "no-responder-on-port",
            Advice::NoNeighbour => "no-neighbour",
            Advice::Unreachable { .. } => "icmp-unreachable",
            Advice::Rejected { .. } => "rejected",
            Advice::Silence => "silence",
            Advice::SilentButUp => "silent-but-up",
            Advice::MaybeOtherGroup { .. } => "maybe-another-group",
            Advice::OtherGroup { .. } => "another-group",
            Advice::AcksMaybeDroppedHere => "maybe-acks-dropped-here",
            Advice::AcksLostComingBack { .. } => "acks-lost-coming-back",
            Advice::NotReaching { .. } => "multicast-not-reaching",
            Advice::HostMayDropProbes => "maybe-probes-dropped-at-host",
            Advice::MulticastLossy => "multicast-lossy",
            Advice::GroupsMissing { .. } => "groups-missing",
            Advice::MulticastStopped { .. } => "multicast-stopped",
            Advice::QuerierSilent => "querier-silent",
            Advice::KeyMismatch(_) => "key-mismatch",
            Advice::AcksDroppedHere => "acks-dropped-here",
            Advice::ProbesDroppedAtHost { .. } => "probes-dropped-at-host",
        }
    }
}

/// What a querier watch heard, as evidence for or against a snooping switch's part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuerierHeard {
    /// No watch ran (or it is not added yet: [`super::Findings::with_querier`]).
    #[default]
    NotWatched,
    /// This querier was heard: a snooping switch learns the joins of hosts that answer it.
    Heard(IpAddr),
    /// None was heard for longer than the wait.
    Silent,
    /// None was heard, but the run was shorter than the wait: too short to tell (queriers
    /// query every 125 s by default).
    NoneYet,
}

/// What the unicast path's sockets said about an expected host, besides its acks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Signals {
    /// The most frequent ICMP error about the probes to it.
    pub icmp: Option<IcmpKind>,
    /// Who sent the newest ICMP error.
    pub reporter: Option<IpAddr>,
    /// Probes the kernel refused at once (unresolved neighbour).
    pub not_sent: u64,
    /// The host is this machine.
    pub is_self: bool,
    /// What says it has another key than this prober: everything its unicast path heard, and
    /// what the multicast path heard from its address. `None` when nothing did.
    pub key: Option<KeyCounts>,
    /// What the neighbour table said of it.
    pub neighbour: Option<Neighbour>,
}

impl Signals {
    /// `multicast_keys`: the multicast path's key evidence, by source address.
    pub(crate) fn of(u: &UnicastRun, local: &[IpAddr], multicast_keys: &KeyEvidence) -> Self {
        let reporter = u.icmp.reporter;
        let mut key = multicast_keys.of(u.host).unwrap_or_default();
        u.keys.sources().for_each(|(_, c)| key.add(&c));
        Signals {
            icmp: u.icmp.most_common(),
            reporter,
            not_sent: u.not_sent,
            is_self: u.is_self || local.contains(&u.host),
            key: (key.total() > 0).then_some(key),
            neighbour: u.neighbour,
        }
    }

    /// Why the unicast path was silent, from what the kernel said.
    fn advice(&self, port: u16, local: &[IpAddr]) -> Advice {
        let by_self = self.reporter.is_some_and(|r| local.contains(&r));
        match self.icmp {
            _ if self.is_self => Advice::ThisHost,
            Some(IcmpKind::PortUnreachable) => Advice::NoResponderOnPort { port },
            Some(IcmpKind::HostUnreachable) if by_self => Advice::NoNeighbour,
            None if self.not_sent > 0 => Advice::NoNeighbour,
            None if self.neighbour == Some(Neighbour::Unanswered) => Advice::NoNeighbour,
            None if self.neighbour == Some(Neighbour::Resolved) => Advice::SilentButUp,
            Some(IcmpKind::AdminProhibited) => Advice::Rejected { by: self.reporter },
            Some(kind) => Advice::Unreachable { kind, by: self.reporter },
            None => Advice::Silence,
        }
    }
}

/// One expected host's two paths and what they mean.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDiagnosis {
    pub host: IpAddr,
    /// Names of the responders that answered for this host, sorted.
    pub responders: Vec<String>,
    pub multicast_received: u64,
    pub multicast_loss_pct: f64,
    pub unicast_received: u64,
    pub unicast_loss_pct: f64,
    /// Routers between prober and host, from the unicast (or multicast) arrival TTL.
    pub hops: Option<u8>,
    pub verdict: Verdict,
    /// The cause named: the only one the evidence fits, or the likeliest of [`Self::others`].
    pub advice: Advice,
    /// Other causes the evidence does not rule out, likeliest first: when there are any, the
    /// words list them all with `advice` first, never `advice` alone.
    pub others: Vec<Advice>,
}

impl HostDiagnosis {
    /// Names `advice` as the cause, the only one: the evidence proves it.
    pub(crate) fn name(&mut self, advice: Advice) {
        self.advice = advice;
        self.others.clear();
    }

    /// Every cause the evidence leaves, likeliest first.
    pub fn causes(&self) -> impl Iterator<Item = Advice> + '_ {
        std::iter::once(self.advice).chain(self.others.iter().copied())
    }

    /// The advice in words ("" when the host is ok): the cause, or the candidates in order
    /// with the evidence for each when more than one fits.
    pub fn advice_text(&self) -> String {
        if self.others.is_empty() {
            return self.text_of(self.advice);
        }
        let each: Vec<String> =
            self.causes().enumerate().map(|(i, a)| format!("({}) {}", i + 1, self.text_of(a))).collect();
        format!("{}: one of these, likeliest first: {}", self.verdict.summary(), each.join("; "))
    }

    /// One cause in words, with its evidence.
    pub fn text_of(&self, advice: Advice) -> String {
        let by = |r: Option<IpAddr>| r.map_or(String::new(), |r| format!(" (from {r})"));
        let multicast = if self.verdict == Verdict::UnicastLost && self.others.is_empty() {
            "multicast fine but unicast lost: "
        } else {
            ""
        };
        match advice {
            Advice::Usual => self.verdict.explain().to_string(),
            Advice::TtlTooSmall { hops, ttl } => format!(
                "{hops} router{} away but --ttl is {ttl}: the probes expire on the way; try --ttl {}",
                if hops == 1 { "" } else { "s" },
                u32::from(hops) + 1
            ),
            Advice::ThisHost => {
                "this is the prober's own address: run `mcprobe respond` here too, or leave it out of --hosts".to_string()
            }
            Advice::NoResponderOnPort { port } => format!(
                "{multicast}the host is up and says ICMP port unreachable to port {port}: no responder listens there (none, or one on another --port), or its firewall rejects the probes with that error (nftables' and iptables' `reject` default)"
            ),
            Advice::NoNeighbour if self.multicast_received > 0 => {
                "multicast fine but unicast lost: its multicast acks arrive, so it is up, yet it does not answer ARP/neighbour discovery from this host: its rp_filter drops the requests (its route back to this host leaves by another interface), or a firewall drops ARP".to_string()
            }
            Advice::NoNeighbour => {
                "no answer to ARP/neighbour discovery from this host: the host is down, not on this LAN, or it drops this host's requests (its rp_filter, when its route back to this host leaves by another interface)".to_string()
            }
            Advice::SilentButUp => format!(
                "{}no ICMP error, yet the host answers ARP/neighbour discovery, so it is up: its firewall (or one on the way) drops the probes silently; `mcprobe doctor --role responder` on it, and its responder's log, say which",
                match self.verdict {
                    _ if !self.others.is_empty() => "",
                    Verdict::UnicastLost => "multicast fine but unicast lost, ",
                    _ => "no answer on either path, ",
                }
            ),
            Advice::Unreachable { kind, by: r } => {
                let what = match kind {
                    IcmpKind::TimeExceeded => "the TTL ran out on the way (ICMP time exceeded)",
                    IcmpKind::NetUnreachable => "no route to its network (ICMP network unreachable)",
                    IcmpKind::HostUnreachable => "a router cannot reach it (ICMP host unreachable)",
                    _ => "an ICMP error came back",
                };
                format!("{multicast}{what}{}", by(r))
            }
            Advice::Rejected { by: r } => {
                format!("{multicast}a firewall rejects the probes (ICMP administratively prohibited){}", by(r))
            }
            Advice::MaybeOtherGroup { everyone } => format!(
                "{} another --group than this prober's ({} unicast on this port, so not another --port; {} not say which group {} serve{})",
                if everyone { "the responders serve" } else { "its responder serves" },
                if everyone { "no host answers on the group while every one answers" } else { "it answers" },
                if everyone { "they did" } else { "it did" },
                if everyone { "they" } else { "it" },
                if everyone { "" } else { "s" },
            ),
            Advice::OtherGroup { serves, probed } => format!(
                "its responder serves group {serves}, not {probed} that this prober probes (it says so in its acks to the unicast probes): probe with --group {serves}, or run the responder with --group {probed}"
            ),
            Advice::AcksMaybeDroppedHere => "this host's firewall drops the multicast acks (a stateful one does not tie them to probes sent to a group, while unicast acks pass as replies; no packet tap ran here to rule it out: it needs CAP_NET_RAW): `mcprobe doctor --role prober` reads the ruleset, and --ack-port fixes the port to open".to_string(),
            Advice::AcksLostComingBack { probes, tapped } => {
                let head = format!(
                    "its responder got at least {probes} multicast probes from this host during the run (it says so in its acks to the unicast probes), so multicast reaches it"
                );
                if tapped {
                    format!("{head}, but none of its acks to them reached this host's interface (the packet tap here saw none): a firewall on the way drops them (UDP from its port to this prober's), or its responder cannot send them (its log says)")
                } else {
                    format!("{head}, and its acks to them are lost on the way back: this host's firewall drops them (a stateful one does not tie them to probes sent to a group; no packet tap ran here to tell, it needs CAP_NET_RAW; `mcprobe doctor --role prober`, and --ack-port gives one port to open), or one on the way")
                }
            }
            Advice::NotReaching { host_tap_clean, querier } => {
                let seen = if host_tap_clean { " (its host's packet tap saw none dropped between its interface and its socket)" } else { "" };
                let snooping = match querier {
                    QuerierHeard::Heard(q) => format!(
                        "a snooping switch that never learned its join although querier {q} is heard here (its host does not answer the queries: its firewall drops IGMP, or it joined on another interface)"
                    ),
                    QuerierHeard::Silent => "a snooping switch that forgot its join, with no querier heard here (the querier line)".to_string(),
                    QuerierHeard::NotWatched => "a snooping switch that never learned its join or forgot it (no querier watch ran here to tell: it needs CAP_NET_RAW)".to_string(),
                    QuerierHeard::NoneYet => "a snooping switch that never learned its join or forgot it (no membership query was heard during this run, too short to tell whether the LAN has a querier)".to_string(),
                };
                format!("multicast does not reach it{seen}: {snooping}, or a filter on the way")
            }
            Advice::HostMayDropProbes => "its host drops the probes before its responder (firewall, rp_filter, a join on another interface; its responder has no packet tap to tell: it needs CAP_NET_RAW): `mcprobe doctor --role responder` there says which".to_string(),
            Advice::MulticastLossy => format!(
                "multicast lost {:.2} % where unicast lost {:.2} %: something on the way treats multicast apart (a switch that rate-limits or polices it, Wi-Fi that sends it at its lowest rate, a snooping switch that dropped the group for a while: the outage lines say when)",
                self.multicast_loss_pct, self.unicast_loss_pct
            ),
            Advice::GroupsMissing { missing, of } => format!(
                "its responder answered on {} of the {of} groups and never on {missing} (listed above, every group in groups.csv): those groups do not reach its socket: its responder did not join them (its --groups), its host drops them (its firewall: its responder's log and `mcprobe doctor` there say), or a snooping switch does not forward them; unicast works",
                of - missing
            ),
            Advice::MulticastStopped { probes, querier } => {
                let why = match querier {
                    QuerierHeard::Heard(q) => format!(
                        "querier {q} is heard here, so a snooping switch dropped its join because its host stopped answering the queries (its firewall drops IGMP: `mcprobe doctor --role responder` there) or its responder left the group"
                    ),
                    QuerierHeard::Silent => "no querier is heard here: a snooping switch forgot its join (the querier line), or its responder left the group".to_string(),
                    QuerierHeard::NotWatched => "a snooping switch forgot its join (no querier on the LAN, or its host does not answer the queries: its firewall drops IGMP), or its responder left the group; no querier watch ran here to tell (it needs CAP_NET_RAW)".to_string(),
                    QuerierHeard::NoneYet => "a snooping switch forgot its join (no querier on the LAN, or its host does not answer the queries: its firewall drops IGMP), or its responder left the group; no membership query was heard during this run, too short to tell which".to_string(),
                };
                format!("multicast stopped for the last {probes} probes while unicast went on: {why}")
            }
            Advice::QuerierSilent => "multicast stopped once memberships aged out with no querier on the LAN: the querier line says when; enable the IGMP/MLD querier on the switch or the router".to_string(),
            Advice::KeyMismatch(c) => format!("key mismatch: {}", key_mismatch_text(&c)),
            Advice::ProbesDroppedAtHost { probes } => format!(
                "at least {probes} probes reached its interface but never its responder's socket, as its host counted them: its firewall, rp_filter or a join on another interface drops them, not the network (the responder's log there names which; `mcprobe doctor --role responder` on it)"
            ),
            Advice::AcksDroppedHere => "its acks reach this host's interface but never mcprobe's socket: this host's firewall drops them, not the network nor the responder (the line \"this host's firewall drops the acks\" says how to fix it)".to_string(),
            Advice::Silence if self.multicast_received > 0 => "multicast fine but unicast lost, with no ICMP error: its multicast acks arrive, so it is up, and a firewall drops the unicast probes or their acks silently (its own, or one on the way)".to_string(),
            Advice::Silence => format!(
                "{}no ICMP error either: a firewall that drops, or the host is down",
                match self.verdict {
                    _ if !self.others.is_empty() => "",
                    Verdict::UnicastLost => "multicast fine but unicast lost, and ",
                    _ => "no answer on either path, ",
                }
            ),
        }
    }
}

/// The whole diagnosis of a run with `--hosts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub hosts: Vec<HostDiagnosis>,
    /// Multicast responders whose address is not among the expected hosts: (name, address).
    pub unexpected: Vec<(String, SocketAddr)>,
    /// Hosts listed twice, judged once: one responder under two of its addresses.
    pub listed_twice: Vec<ListedTwice>,
}

impl Diagnosis {
    /// Some host gets unicast but not multicast: the case a documented exit code singles out.
    pub(crate) fn multicast_broken(&self) -> bool {
        // Acks dropped by this host's firewall: multicast reached the responder, so it is not
        // broken.
        self.hosts.iter().any(|h| {
            h.verdict == Verdict::MulticastLost
                && !matches!(h.advice, Advice::AcksDroppedHere | Advice::AcksLostComingBack { .. })
        })
    }

    /// Hosts whose verdict is not ok.
    pub(crate) fn failing(&self) -> usize {
        self.hosts.iter().filter(|h| h.verdict != Verdict::Ok).count()
    }

    /// Expected hosts from which no multicast ack came.
    pub(crate) fn missing_on_multicast(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.hosts.iter().filter(|h| h.multicast_received == 0).map(|h| h.host)
    }
}

/// What a host's key evidence says, with the evidence and the fix: "it needs a key and these
/// probes carry none (12 notices from it); give this prober the responders' --key". Each kind of
/// evidence it sent is named, most frequent first.
pub(crate) fn key_mismatch_text(c: &KeyCounts) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = [
        (
            c.key_needed,
            "its responder needs a key and these probes carry none",
            plural(c.key_needed, "notice from it", "notices from it"),
            "give this prober the responders' --key (or --key-file)",
        ),
        (
            c.other_key,
            "its responder has another key",
            plural(c.other_key, "notice from it", "notices from it"),
            "use the same --key (or --key-file) on both sides",
        ),
        (
            c.unkeyed_acks,
            "its responder has no key",
            plural(c.unkeyed_acks, "ack from it without a tag, rejected", "acks from it without a tag, rejected"),
            "give `respond` the same --key, or probe without one",
        ),
    ];
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    parts
        .iter()
        .filter(|p| p.0 > 0)
        .map(|(_, what, evidence, fix)| format!("{what} ({evidence}); {fix}"))
        .collect::<Vec<_>>()
        .join("; and ")
}

/// Routers on the way, from a TTL the packet left with and the one it arrived with.
pub(crate) fn hops(sent_ttl: u32, arrived: u8) -> Option<u8> {
    (arrived > 0 && u32::from(arrived) <= sent_ttl).then(|| (sent_ttl - u32::from(arrived)) as u8)
}

/// What [`diagnose`] needs besides the rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Context<'a> {
    pub threshold_pct: f64,
    /// The multicast TTL the probes left with.
    pub mc_ttl: u32,
    /// The port probed, for advice.
    pub port: u16,
    /// This machine's addresses: ICMP errors it reported itself are neighbour failures.
    pub local: &'a [IpAddr],
    /// Judge loss from each responder's first answer on each path (`mesh`).
    pub from_first_answer: bool,
    /// The group probed: a responder that says it serves another is a configuration mistake.
    pub group: IpAddr,
    /// This host's packet tap watched the acks to the end (see [`super::host_path`]).
    pub acks_tapped: bool,
}

/// One responder listed under two addresses (`--hosts 10.0.0.5,10.1.0.5`, two interfaces of one
/// host): its unicast acks to `host` came from the responder whose multicast row is `as_host`'s,
/// so `host` is judged once, as `as_host` (not called silent on multicast), and a note says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTwice {
    pub host: IpAddr,
    pub as_host: IpAddr,
    /// The responder's label, as in the table.
    pub name: String,
}

/// Compares the paths of each expected host. `rows` holds the multicast and unicast rows, each
/// tied to its expected host by `expected_host`; `hosts` what the sockets said about each.
pub(crate) fn diagnose(hosts: &[(IpAddr, Signals)], rows: &[Row], cx: Context) -> Diagnosis {
    let Context { threshold_pct, mc_ttl, port, local, from_first_answer, group, acks_tapped } = cx;
    let nobody_on_the_group = !rows.iter().any(Row::is_multicast_responder);
    let mut out = Vec::new();
    for &(host, signals) in hosts {
        let of = |path: Path| rows.iter().filter(move |r| r.path == path && r.expected_host == Some(host));
        // A host may run several responders; its multicast figure is its best one (the question
        // is whether multicast reaches the host at all), and all their names are listed.
        let mc = of(Path::Multicast).max_by_key(|r| r.figures.received);
        let uc = of(Path::Unicast).max_by_key(|r| r.figures.received);
        let mut names: Vec<String> = of(Path::Multicast)
            .chain(of(Path::Unicast))
            .map(|r| r.name().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort_unstable();
        names.dedup();
        let loss = |r: &Row| if from_first_answer { r.figures.loss_after_first_pct() } else { r.figures.loss_pct() };
        let figures = |r: Option<&Row>| r.map_or((0, 100.0), |r| (r.figures.received, loss(r)));
        let ((mc_rcvd, mc_loss), (uc_rcvd, uc_loss)) = (figures(mc), figures(uc));
        // A group that never reached the host fails it, however little of the run it is (one
        // group of 1000 is 0.1 % of the probes, and all of that channel).
        let groups_missing = mc.and_then(|r| r.figures.groups_missing).is_some_and(|(m, _)| m > 0);
        let (mc_ok, uc_ok) =
            (mc_rcvd > 0 && mc_loss <= threshold_pct && !groups_missing, uc_rcvd > 0 && uc_loss <= threshold_pct);
        let verdict = match (mc_ok, uc_ok) {
            // Silent, but it said why: not down, not filtered.
            _ if mc_rcvd == 0 && uc_rcvd == 0 && signals.key.is_some() => Verdict::KeyMismatch,
            _ if mc_rcvd == 0 && uc_rcvd == 0 => Verdict::Unreachable,
            (true, true) => Verdict::Ok,
            (false, true) => Verdict::MulticastLost,
            (true, false) => Verdict::UnicastLost,
            (false, false) => Verdict::Degraded,
        };
        let hop_count =
            uc.and_then(|r| hops(UNICAST_TTL, r.figures.ttl)).or_else(|| mc.and_then(|r| hops(mc_ttl, r.figures.ttl)));
        let advice = match (verdict, hop_count) {
            (Verdict::KeyMismatch, _) => Advice::KeyMismatch(signals.key.unwrap_or_default()),
            (Verdict::MulticastLost, Some(h)) if u32::from(h) >= mc_ttl => Advice::TtlTooSmall { hops: h, ttl: mc_ttl },
            // The unicast path said nothing: the kernel may know why.
            (Verdict::Unreachable | Verdict::UnicastLost, _) if uc_rcvd == 0 => signals.advice(port, local),
            _ => Advice::Usual,
        };
        let (advice, others) = if causes::undecided(verdict, advice) {
            let served_group = of(Path::Unicast).chain(of(Path::Multicast)).find_map(|r| r.figures.served_group);
            let multicast_heard =
                of(Path::Unicast).find_map(|r| r.figures.multicast_heard).map(|(first, last)| last - first);
            let host_tap = of(Path::Unicast).chain(of(Path::Multicast)).find_map(|r| r.figures.filtered_at_host);
            let sent = mc.map_or(0, |r| r.figures.sent);
            causes::multicast_lost(&causes::Evidence {
                multicast_received: mc_rcvd,
                sent,
                trailing_lost: mc.and_then(|r| r.figures.last_seq).map_or(0, |l| sent.saturating_sub(l + 1)),
                served_group,
                multicast_heard,
                probed_group: group,
                nobody_on_the_group,
                acks_tapped,
                host_tap_clean: host_tap.map(|(first, last)| first == last),
                missing_groups: mc.and_then(|r| r.figures.groups_missing),
            })
        } else {
            (advice, Vec::new())
        };
        out.push(HostDiagnosis {
            host,
            responders: names,
            multicast_received: mc_rcvd,
            multicast_loss_pct: mc_loss,
            unicast_received: uc_rcvd,
            unicast_loss_pct: uc_loss,
            hops: hop_count,
            verdict,
            advice,
            others,
        });
    }
    let unexpected = rows
        .iter()
        .filter(|r| r.is_multicast_responder() && r.expected_host.is_none())
        .filter_map(|r| r.responder.as_ref().map(|x| (x.name.clone(), x.addr)))
        .collect();
    Diagnosis { hosts: out, unexpected, listed_twice: Vec::new() }
}
