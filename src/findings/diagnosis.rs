//! What is wrong, per expected host: the multicast and the unicast path side by side (as omping
//! shows them), a verdict, and advice. Pure: it reads typed rows and writes conclusions.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{Path, Row};
use crate::prober::UNICAST_TTL;

/// Loss above this percentage marks a path as bad, unless `--max-loss` sets another threshold.
pub const DEFAULT_THRESHOLD_PCT: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::MulticastLost => "multicast-lost",
            Verdict::UnicastLost => "unicast-lost",
            Verdict::Degraded => "degraded",
            Verdict::Unreachable => "unreachable",
        }
    }

    /// What the verdict usually means, for the line under the verdict table.
    pub fn explain(self) -> &'static str {
        match self {
            Verdict::Ok => "",
            Verdict::MulticastLost => {
                "multicast lost but unicast fine: likely IGMP snooping without a querier, a missing join, a firewall or multicast routing"
            }
            Verdict::UnicastLost => "multicast fine but unicast lost: a host firewall, or a responder not on this port",
            Verdict::Degraded => "loss above the threshold on both paths: the host or its link",
            Verdict::Unreachable => "no answer on either path: host down, no responder, or filtered",
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
    pub advice: Advice,
}

impl HostDiagnosis {
    /// The advice in words ("" when the host is ok).
    pub fn advice_text(&self) -> String {
        match self.advice {
            Advice::Usual => self.verdict.explain().to_string(),
            Advice::TtlTooSmall { hops, ttl } => format!(
                "{hops} router{} away but --ttl is {ttl}: the probes expire on the way; try --ttl {}",
                if hops == 1 { "" } else { "s" },
                u32::from(hops) + 1
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
}

impl Diagnosis {
    /// Some host gets unicast but not multicast: the case a documented exit code singles out.
    pub fn multicast_broken(&self) -> bool {
        self.hosts.iter().any(|h| h.verdict == Verdict::MulticastLost)
    }

    /// Hosts whose verdict is not ok.
    pub fn failing(&self) -> usize {
        self.hosts.iter().filter(|h| h.verdict != Verdict::Ok).count()
    }

    /// Expected hosts from which no multicast ack came.
    pub fn missing_on_multicast(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.hosts.iter().filter(|h| h.multicast_received == 0).map(|h| h.host)
    }
}

/// Routers on the way, from a TTL the packet left with and the one it arrived with.
pub fn hops(sent_ttl: u32, arrived: u8) -> Option<u8> {
    (arrived > 0 && u32::from(arrived) <= sent_ttl).then(|| (sent_ttl - u32::from(arrived)) as u8)
}

/// Compares the paths of each expected host. `rows` holds the multicast and unicast rows, each
/// tied to its expected host by `expected_host`; `mc_ttl` is the multicast TTL of the probes.
pub fn diagnose(hosts: &[IpAddr], rows: &[Row], threshold_pct: f64, mc_ttl: u32) -> Diagnosis {
    let mut out = Vec::new();
    for &host in hosts {
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
        let figures = |r: Option<&Row>| r.map_or((0, 100.0), |r| (r.figures.received, r.figures.loss_pct()));
        let ((mc_rcvd, mc_loss), (uc_rcvd, uc_loss)) = (figures(mc), figures(uc));
        let (mc_ok, uc_ok) = (mc_rcvd > 0 && mc_loss <= threshold_pct, uc_rcvd > 0 && uc_loss <= threshold_pct);
        let verdict = match (mc_ok, uc_ok) {
            _ if mc_rcvd == 0 && uc_rcvd == 0 => Verdict::Unreachable,
            (true, true) => Verdict::Ok,
            (false, true) => Verdict::MulticastLost,
            (true, false) => Verdict::UnicastLost,
            (false, false) => Verdict::Degraded,
        };
        let hop_count =
            uc.and_then(|r| hops(UNICAST_TTL, r.figures.ttl)).or_else(|| mc.and_then(|r| hops(mc_ttl, r.figures.ttl)));
        let advice = match hop_count {
            Some(h) if verdict == Verdict::MulticastLost && u32::from(h) >= mc_ttl => {
                Advice::TtlTooSmall { hops: h, ttl: mc_ttl }
            }
            _ => Advice::Usual,
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
        });
    }
    let unexpected = rows
        .iter()
        .filter(|r| r.is_multicast_responder() && r.expected_host.is_none())
        .filter_map(|r| r.responder.as_ref().map(|x| (x.name.clone(), x.addr)))
        .collect();
    Diagnosis { hosts: out, unexpected }
}
