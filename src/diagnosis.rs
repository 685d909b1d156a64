//! What is wrong, per expected host: the multicast and the unicast path side by side (as omping
//! shows them), a verdict, and advice. Pure: it reads summary rows and writes conclusions.

use std::net::IpAddr;

use serde::Serialize;

use crate::report::HostSummary;

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

    fn explain(self) -> &'static str {
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

/// One expected host's two paths and what they mean.
#[derive(Debug, Clone, Serialize)]
pub struct HostDiagnosis {
    pub host: IpAddr,
    /// Names of the responders that answered from this address.
    pub responder: String,
    pub multicast_received: u64,
    pub multicast_loss_pct: f64,
    pub unicast_received: u64,
    pub unicast_loss_pct: f64,
    /// Routers between prober and host, from the unicast (or multicast) arrival TTL.
    pub hops: Option<u8>,
    pub verdict: Verdict,
    pub advice: String,
}

/// The whole diagnosis of a run with `--hosts`.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub hosts: Vec<HostDiagnosis>,
    /// Multicast responders whose address is not among the expected hosts.
    pub unexpected: Vec<String>,
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
}

/// Routers on the way, from a TTL the packet left with and the one it arrived with.
pub fn hops(sent_ttl: u32, arrived: u8) -> Option<u8> {
    (arrived > 0 && u32::from(arrived) <= sent_ttl).then(|| (sent_ttl - u32::from(arrived)) as u8)
}

/// Compares the paths of each expected host. `rows` holds the multicast and unicast rows
/// (`path` tells them apart), each tied to its expected host by `expected_host`; `mc_ttl` is the
/// multicast TTL the probes left with.
pub fn diagnose(hosts: &[IpAddr], rows: &[HostSummary], threshold_pct: f64, mc_ttl: u32) -> Diagnosis {
    let mut out = Vec::new();
    for &host in hosts {
        let key = host.to_string();
        let of = |path: &'static str| {
            let key = key.clone();
            rows.iter().filter(move |r| r.path == path && r.expected_host.as_deref() == Some(key.as_str()))
        };
        // A host may run several responders; its multicast figure is its best one (the question
        // is whether multicast reaches the host at all), and all their names are listed.
        let mc = of("multicast").max_by_key(|r| r.received);
        let uc = of("unicast").max_by_key(|r| r.received);
        let mut names: Vec<&str> =
            of("multicast").chain(of("unicast")).map(|r| r.responder.as_str()).filter(|n| !n.is_empty()).collect();
        names.sort_unstable();
        names.dedup();
        let (mc_rcvd, mc_loss) = mc.map_or((0, 100.0), |r| (r.received, r.loss_pct));
        let (uc_rcvd, uc_loss) = uc.map_or((0, 100.0), |r| (r.received, r.loss_pct));
        let (mc_ok, uc_ok) = (mc_rcvd > 0 && mc_loss <= threshold_pct, uc_rcvd > 0 && uc_loss <= threshold_pct);
        let verdict = match (mc_ok, uc_ok) {
            _ if mc_rcvd == 0 && uc_rcvd == 0 => Verdict::Unreachable,
            (true, true) => Verdict::Ok,
            (false, true) => Verdict::MulticastLost,
            (true, false) => Verdict::UnicastLost,
            (false, false) => Verdict::Degraded,
        };
        let hop_count =
            uc.and_then(|r| hops(crate::prober::UNICAST_TTL, r.ttl)).or_else(|| mc.and_then(|r| hops(mc_ttl, r.ttl)));
        let mut advice = verdict.explain().to_string();
        if verdict == Verdict::MulticastLost {
            if let Some(h) = hop_count.filter(|&h| u32::from(h) >= mc_ttl) {
                advice = format!(
                    "{h} router{} away but --ttl is {mc_ttl}: the probes expire on the way; try --ttl {}",
                    if h == 1 { "" } else { "s" },
                    u32::from(h) + 1
                );
            }
        }
        out.push(HostDiagnosis {
            host,
            responder: names.join(" "),
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
        .filter(|r| r.path == "multicast" && r.received > 0 && r.expected_host.is_none())
        .map(|r| format!("{} ({})", r.responder, r.address))
        .collect();
    Diagnosis { hosts: out, unexpected }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &'static str, addr: &str, received: u64, loss_pct: f64, ttl: u8) -> HostSummary {
        HostSummary {
            path,
            expected_host: (addr != "10.0.0.9").then(|| addr.to_string()),
            address: format!("{addr}:24242"),
            responder: format!("r-{addr}"),
            received,
            loss_pct,
            ttl,
            ..HostSummary::default()
        }
    }

    #[test]
    fn verdicts_compare_the_paths() {
        let hosts: Vec<IpAddr> =
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"].iter().map(|a| a.parse().unwrap()).collect();
        let rows = vec![
            row("multicast", "10.0.0.1", 100, 0.0, 1),
            row("unicast", "10.0.0.1", 100, 0.0, 64),
            row("unicast", "10.0.0.2", 100, 0.0, 62), // two routers away, no multicast
            row("multicast", "10.0.0.3", 60, 40.0, 1),
            row("unicast", "10.0.0.3", 70, 30.0, 64),
            row("multicast", "10.0.0.4", 100, 0.0, 1),
            row("multicast", "10.0.0.9", 100, 0.0, 1), // not expected
        ];
        let d = diagnose(&hosts, &rows, 1.0, 1);
        let v: Vec<Verdict> = d.hosts.iter().map(|h| h.verdict).collect();
        use Verdict::*;
        assert_eq!(v, [Ok, MulticastLost, Degraded, UnicastLost, Unreachable]);
        assert_eq!(d.hosts[1].hops, Some(2));
        assert!(d.hosts[1].advice.contains("try --ttl 3"), "{}", d.hosts[1].advice);
        assert_eq!(d.hosts[0].hops, Some(0));
        assert_eq!(d.unexpected, ["r-10.0.0.9 (10.0.0.9:24242)"]);
        assert!(d.multicast_broken());
        assert_eq!(d.failing(), 4);
    }
}
