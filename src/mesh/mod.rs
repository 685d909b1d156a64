//! `mcprobe mesh`: every host of a list answers and probes every other one, and reports its row
//! of the N × N matrix. [`command`] runs both engines; this module turns the prober's findings
//! into one row per peer, pure.
//!
//! Denominators: hosts start at different times, so a peer's figures on a path count from its
//! first on-time answer on that path (`sent_after_first`, `lost_after_first` of
//! [`crate::stats::Figures`]). The probes before it were lost forward (nobody listened yet), so
//! they are taken out of the forward loss; return, unknown and late loss are counted as usual. A
//! peer that never answered on a path has no figures there, and its verdict says so.

use std::net::IpAddr;

use serde::Serialize;

use crate::findings::{Findings, Path, ResponderId, Row, Verdict};
use crate::stats::{ns_to_us, Figures, LossSplit};

/// One peer on one path, counted from its first answer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct PathFigures {
    pub sent: u64,
    pub lost: u64,
    /// Counted from its first answer: the probes before it come off the forward loss.
    pub loss: LossSplit,
    pub late: u64,
    pub rtt_p50_ns: Option<u64>,
    pub rtt_p99_ns: Option<u64>,
    /// When the first answer came, after the first probe left.
    pub first_answer_ns: Option<u64>,
}

impl PathFigures {
    pub(crate) fn of(f: &Figures) -> Self {
        PathFigures {
            sent: f.sent_after_first,
            lost: f.lost_after_first,
            loss: f.loss.less_forward(f.sent - f.sent_after_first),
            late: f.late,
            rtt_p50_ns: f.rtt.map(|r| r.p50_ns),
            rtt_p99_ns: f.rtt.map(|r| r.p99_ns),
            first_answer_ns: f.first_ack_ns,
        }
    }

    pub(crate) fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / self.sent as f64
        }
    }
}

/// One peer: its two paths and a verdict.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerRow {
    pub host: IpAddr,
    /// The name in its acks ("" when it never answered).
    pub name: String,
    pub responder: Option<ResponderId>,
    /// `None`: it never answered on this path.
    pub multicast: Option<PathFigures>,
    pub unicast: Option<PathFigures>,
    pub verdict: Verdict,
}

/// The row of each peer, in the order of `peers` (a peer listed twice once), with the verdict
/// the findings gave its host (judged from the first answer on each path: the mesh's judgement
/// says so). This host's own responder is not among the rows (the judgement names it). When a
/// peer restarted, the responder that answered most stands for it.
pub(crate) fn peer_rows(found: &Findings, peers: &[IpAddr]) -> Vec<PeerRow> {
    let best = |host: IpAddr, path: Path| -> Option<&Row> {
        (found.rows.iter())
            .filter(|r| r.path == path && r.expected_host == Some(host) && r.responder.is_some())
            .filter(|r| r.figures.received > 0)
            .max_by_key(|r| r.figures.received)
    };
    let verdict = |host: IpAddr| {
        let d = found.diagnosis.as_ref().and_then(|d| d.hosts.iter().find(|h| h.host == host));
        d.map_or(Verdict::Unreachable, |d| d.verdict)
    };
    // A peer listed twice (one responder under two addresses) has one row, as the findings
    // judge it once (see `ListedTwice`).
    let twice: Vec<IpAddr> =
        found.diagnosis.as_ref().map_or_else(Vec::new, |d| d.listed_twice.iter().map(|t| t.host).collect());
    peers
        .iter()
        .filter(|h| !twice.contains(h))
        .map(|&host| {
            let (mc, uc) = (best(host, Path::Multicast), best(host, Path::Unicast));
            let named = mc.or(uc);
            let (m, u) = (mc.map(|r| PathFigures::of(&r.figures)), uc.map(|r| PathFigures::of(&r.figures)));
            PeerRow {
                host,
                name: named.map_or(String::new(), |r| r.name().to_string()),
                responder: named.and_then(Row::id),
                multicast: m,
                unicast: u,
                verdict: verdict(host),
            }
        })
        .collect()
}

/// One row of `mesh.csv`: this host's view of one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct MeshRow {
    pub host: String,
    pub host_address: String,
    pub peer: String,
    pub peer_name: String,
    pub peer_id: String,
    pub mc_sent: Option<u64>,
    pub mc_lost: Option<u64>,
    pub mc_loss_pct: Option<f64>,
    pub mc_forward_lost: Option<u64>,
    pub mc_forward_host_drops: Option<u64>,
    /// Of the forward losses, those after the peer's latest drop report: its host's or the
    /// network's, not told (empty when it does not report its drops).
    pub mc_forward_unreported: Option<u64>,
    pub mc_return_lost: Option<u64>,
    pub mc_unknown_lost: Option<u64>,
    pub mc_late: Option<u64>,
    pub mc_rtt_p50_us: Option<f64>,
    pub mc_rtt_p99_us: Option<f64>,
    pub mc_first_answer_ms: Option<f64>,
    pub uc_sent: Option<u64>,
    pub uc_lost: Option<u64>,
    pub uc_loss_pct: Option<f64>,
    pub uc_rtt_p50_us: Option<f64>,
    pub verdict: &'static str,
}

impl MeshRow {
    pub(crate) fn of(me: &str, my_addr: IpAddr, p: &PeerRow) -> Self {
        let (m, u) = (p.multicast, p.unicast);
        let pct = |f: &PathFigures| (f.loss_pct() * 1000.0).round() / 1000.0;
        MeshRow {
            host: me.to_string(),
            host_address: my_addr.to_string(),
            peer: p.host.to_string(),
            peer_name: p.name.clone(),
            peer_id: p.responder.map_or(String::new(), |id| id.to_string()),
            mc_sent: m.map(|f| f.sent),
            mc_lost: m.map(|f| f.lost),
            mc_loss_pct: m.as_ref().map(pct),
            mc_forward_lost: m.map(|f| f.loss.forward),
            mc_forward_host_drops: m.and_then(|f| f.loss.host_drops),
            mc_forward_unreported: m.and_then(|f| f.loss.host_drops.map(|_| f.loss.unreported)),
            mc_return_lost: m.map(|f| f.loss.ret),
            mc_unknown_lost: m.map(|f| f.loss.unknown),
            mc_late: m.map(|f| f.late),
            mc_rtt_p50_us: m.and_then(|f| f.rtt_p50_ns).map(ns_to_us),
            mc_rtt_p99_us: m.and_then(|f| f.rtt_p99_ns).map(ns_to_us),
            mc_first_answer_ms: m.and_then(|f| f.first_answer_ns).map(|ns| (ns as f64 / 1e4).round() / 100.0),
            uc_sent: u.map(|f| f.sent),
            uc_lost: u.map(|f| f.lost),
            uc_loss_pct: u.as_ref().map(pct),
            uc_rtt_p50_us: u.and_then(|f| f.rtt_p50_ns).map(ns_to_us),
            verdict: p.verdict.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic run (real accounting, made-up acks): this host's own responder, a peer that
    /// started 20 probes late, one whose multicast never arrives, and one that never answers.
    #[test]
    fn peer_rows_from_findings() {
        use crate::findings::synthetic::{outcome, Answerer};
        use crate::findings::Judgement;
        let own = Answerer::new(1, "me", "10.0.0.1:24242");
        let late = Answerer { drop_probe: |s| s < 20, ..Answerer::new(2, "late", "10.0.0.2:24242") };
        let uc_only = Answerer::new(3, "nomc", "10.0.0.3:24242");
        let o = outcome(100, 1, &[own, late.clone()], &[("10.0.0.2", vec![late]), ("10.0.0.3", vec![uc_only])]);
        let j = Judgement {
            from_first_answer: true,
            own: Some(ResponderId(1)),
            ..Judgement::new(1.0, "239.255.42.42:24242".parse().unwrap(), false)
        };
        let found = Findings::of(&o, j);
        let peers: Vec<IpAddr> = ["10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().map(|p| p.parse().unwrap()).collect();
        let rows = peer_rows(&found, &peers);
        assert!(found.diagnosis.as_ref().unwrap().unexpected.is_empty(), "its own responder is not a stranger");
        assert_eq!(rows.iter().map(|r| r.host).collect::<Vec<_>>(), peers, "one row per peer, in list order");

        let late = &rows[0];
        assert_eq!(late.name, "late");
        let (m, u) = (late.multicast.unwrap(), late.unicast.unwrap());
        assert_eq!((m.sent, m.lost, m.loss.forward), (80, 0, 0), "counted from its first answer: {m:?}");
        assert_eq!((u.sent, u.lost), (80, 0));
        assert_eq!(late.verdict, Verdict::Ok);

        assert_eq!((rows[1].name.as_str(), rows[1].multicast, rows[1].verdict), ("nomc", None, Verdict::MulticastLost));
        assert_eq!(rows[1].unicast.unwrap().sent, 100);

        assert_eq!((rows[2].name.as_str(), rows[2].multicast, rows[2].unicast), ("", None, None));
        assert_eq!(rows[2].verdict, Verdict::Unreachable);
    }

    #[test]
    fn figures_count_from_the_first_answer() {
        // A peer that started 200 probes late, then lost 3 probes forward and 2 acks on the way back.
        let f = Figures {
            sent: 1000,
            received: 795,
            lost: 205,
            lost_after_first: 5,
            sent_after_first: 800,
            loss: LossSplit { forward: 203, ret: 2, ..LossSplit::default() },
            ..Figures::default()
        };
        let p = PathFigures::of(&f);
        assert_eq!((p.sent, p.lost, p.loss.forward, p.loss.ret), (800, 5, 3, 2));
        assert!((p.loss_pct() - 0.625).abs() < 1e-9);
    }
}
