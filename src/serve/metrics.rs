//! The exposition of `mcprobe serve`: renders a [`State`] snapshot through the official
//! `prometheus-client` encoders (Prometheus text 0.0.4, or OpenMetrics 1.0 when asked). Only
//! renders: every figure comes from the state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::state::{Buckets, QuerierState, Series, SeriesKey, State, DIRECTIONS, LATENESS_BUCKETS_S, RTT_BUCKETS_S};
use super::watch::{EntrySnapshot, StreamFigures};
use crate::findings::Verdict;

const VERDICTS: [Verdict; 6] = [
    Verdict::Ok,
    Verdict::MulticastLost,
    Verdict::UnicastLost,
    Verdict::Degraded,
    Verdict::Unreachable,
    Verdict::KeyMismatch,
];

/// What a scrape renders: the probe targets' state and each `[[watch]]` entry's last snapshot.
/// A new one is made whenever either changes (the HTTP side caches one body per `Exposed`).
#[derive(Debug, Clone)]
pub(crate) struct Exposed {
    pub state: Arc<State>,
    pub watch: BTreeMap<String, Arc<EntrySnapshot>>,
}

/// What the probe loops and watch loops last published: a scrape takes the lock only to clone
/// the `Arc`.
#[derive(Debug, Clone)]
pub(crate) struct Published(Arc<Mutex<Arc<Exposed>>>);

impl Published {
    pub(crate) fn new(state: State) -> Self {
        Published(Arc::new(Mutex::new(Arc::new(Exposed { state: Arc::new(state), watch: BTreeMap::new() }))))
    }

    /// The probe targets' state.
    pub(crate) fn set(&self, state: State) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *e = Arc::new(Exposed { state: Arc::new(state), watch: e.watch.clone() });
    }

    /// One watch entry's snapshot (its series appear with the first).
    pub(crate) fn set_watch(&self, name: &str, snapshot: EntrySnapshot) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut watch = e.watch.clone();
        watch.insert(name.to_string(), Arc::new(snapshot));
        *e = Arc::new(Exposed { state: e.state.clone(), watch });
    }

    pub(crate) fn get(&self) -> Arc<Exposed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug)]
struct StateCollector(Published);

/// A registry whose only collector renders the published state.
pub(crate) fn registry(published: Published) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(StateCollector(published)));
    r
}

/// Which exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it (as Prometheus does), else text 0.0.4.
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

pub(crate) fn encode(registry: &Registry, format: Format) -> String {
    let mut out = String::new();
    let r = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
    };
    // Writing into a String cannot fail; an encoder error would be a bug in a label value.
    r.expect("encoding into a String");
    out
}

type Labels = Vec<(&'static str, String)>;

fn series_labels(k: &SeriesKey) -> Labels {
    vec![
        ("target", k.target.clone()),
        ("responder", k.responder.clone()),
        ("address", k.address.to_string()),
        ("path", k.path.as_str().to_string()),
    ]
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_counter::<NoLabelSet, u64, f64>(v, None)?;
    }
    Ok(())
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels, V)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds: &[f64],
    rows: &[(Labels, &Buckets)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, b) in rows {
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(b.sum_s, b.count, &b.pairs(bounds), None)?;
    }
    Ok(())
}

/// The querier watch of each target: whether it watches, whether queries stopped, and each
/// querier heard (the issue's querier report: address, version, interval, last seen).
fn querier(st: &State, e: &mut DescriptorEncoder) -> std::fmt::Result {
    let (mut watching, mut silent, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    let (mut info, mut interval, mut robustness, mut last, mut queries) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (t, v) in &st.targets {
        let target = vec![("target", t.clone())];
        let QuerierState::Watched { queriers, silent: s, refused: r } = &v.querier else {
            watching.push((target, 0u64));
            continue;
        };
        watching.push((target.clone(), 1));
        silent.push((target.clone(), u64::from(*s)));
        refused.push((target, *r));
        for q in queriers {
            let l = vec![("target", t.clone()), ("querier", q.address.to_string())];
            info.push((l.clone(), vec![("version", q.version.as_str().to_string())]));
            interval.push((l.clone(), q.interval.as_secs_f64()));
            robustness.push((l.clone(), u64::from(q.robustness)));
            last.push((l.clone(), q.last_seen_unix_ns as f64 / 1e9));
            queries.push((l, q.queries));
        }
    }
    gauge(
        e,
        "mcprobe_querier_watching",
        "1 when serve listens for IGMP/MLD membership queries on the target's interface; 0 on loopback or without CAP_NET_RAW, and then no other mcprobe_querier_* series.",
        None,
        &watching,
    )?;
    gauge(
        e,
        "mcprobe_querier_silent",
        "1 when no membership query was heard for longer than --querier-wait (default: the querier's interval + 10 s): snooping switches age the group out (robustness x interval + response time after the last query) and stop forwarding it.",
        None,
        &silent,
    )?;
    let mut m = e.encode_descriptor(
        "mcprobe_querier",
        "Each querier heard, with the protocol version of its latest query (IGMPv1/v2/v3, MLDv1/v2).",
        None,
        MetricType::Info,
    )?;
    for (l, v) in &info {
        m.encode_family(l)?.encode_info(v)?;
    }
    gauge(
        e,
        "mcprobe_querier_interval",
        "The query interval the querier announces (IGMPv3, MLDv2), else the protocol default of 125 s.",
        Some(&Unit::Seconds),
        &interval,
    )?;
    gauge(
        e,
        "mcprobe_querier_robustness",
        "The robustness the querier announces, else the default of 2.",
        None,
        &robustness,
    )?;
    gauge(
        e,
        "mcprobe_querier_last_seen_timestamp",
        "When the querier's latest query was heard (Unix time).",
        Some(&Unit::Seconds),
        &last,
    )?;
    counter(e, "mcprobe_querier_queries", "Membership queries heard from the querier.", &queries)?;
    counter(
        e,
        "mcprobe_querier_refused",
        "Queries from new querier addresses not tracked: 16 are, and one makes room only once silent past its membership timeout. Forged queries on the LAN?",
        &refused,
    )
}

/// The targets with `--groups`: per target the groups probed, per multicast responder the
/// groups it reached in the last window and those it missed, aggregated (a few series per
/// responder however many groups); with `--group-series`, also a series per responder and group
/// while a target's responders x groups stay within `--max-series`. No family at all when no
/// target probes several groups.
fn groups(st: &State, e: &mut DescriptorEncoder) -> std::fmt::Result {
    if !st.targets.values().any(|t| t.has_groups()) {
        return Ok(());
    }
    let (mut probed, mut reached, mut missed, mut capped, mut per_group) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, t) in st.targets.iter().filter(|(_, t)| t.has_groups()) {
        probed.push((vec![("target", name.clone())], t.groups.len() as u64));
        let series: Vec<_> =
            st.series.iter().filter(|(k, _)| k.target == *name && k.path == super::state::Path::Multicast).collect();
        for (k, s) in &series {
            let l = responder_labels(k);
            reached.push((l.clone(), s.groups_reached));
            missed.push((l, s.groups_missed));
        }
        if !st.limits.group_series {
            continue;
        }
        let over = series.len().saturating_mul(t.groups.len()) > st.limits.max_series;
        capped.push((vec![("target", name.clone())], u64::from(over)));
        if over {
            continue;
        }
        for (k, s) in &series {
            for (i, g) in t.groups.iter().enumerate() {
                let bit = s.reached_bits.get(i / 64).is_some_and(|b| b & (1 << (i % 64)) != 0);
                let mut l = responder_labels(k);
                l.push(("group", g.to_string()));
                per_group.push((l, u64::from(bit)));
            }
        }
    }
    gauge(
        e,
        "mcprobe_groups",
        "Groups the target probes in turn (--groups; probe k goes to group k mod N).",
        None,
        &probed,
    )?;
    gauge(
        e,
        "mcprobe_groups_reached",
        "Groups the multicast responder answered in the last window (at least one probe of the group acked on time), out of mcprobe_groups. Aggregated per responder: one series, however many groups.",
        None,
        &reached,
    )?;
    counter(
        e,
        "mcprobe_groups_missed",
        "Groups the multicast responder answered none of the probes of, summed over windows: a (group, window) pair each. A window it answers nothing misses every group; its first window counts only the groups probed after its first answer. Aggregated per responder.",
        &missed,
    )?;
    if !st.limits.group_series {
        return Ok(());
    }
    gauge(
        e,
        "mcprobe_group_series_capped",
        "With --group-series: 1 when the target's responders x groups exceed --max-series, so mcprobe_group_reached is left out for it (the aggregated mcprobe_groups_reached and mcprobe_groups_missed_total remain).",
        None,
        &capped,
    )?;
    gauge(
        e,
        "mcprobe_group_reached",
        "With --group-series, per responder and group: 1 if it answered the group in the last window, else 0; only while the target's responders x groups stay within --max-series.",
        None,
        &per_group,
    )
}

/// The mesh targets' matrix rows: per peer (the name in its acks) and path, the probes charged
/// and those lost by direction, summed over the peer's series (a restart keeps them); and per
/// peer whether it answered in the last window, with the expected peers (`--hosts`) that never
/// answered under their address. The `source` label is this host's own name, so the rows of
/// every host make the N x N matrix in Prometheus. No family at all without a mesh target.
fn mesh(st: &State, e: &mut DescriptorEncoder) -> std::fmt::Result {
    use super::state::Path;
    type PeerPath = (String, String, Path);
    if !st.targets.values().any(|t| t.mesh.is_some()) {
        return Ok(());
    }
    let (mut probes, mut lost, mut up) = (Vec::new(), Vec::new(), Vec::new());
    for (name, t) in &st.targets {
        let Some(m) = &t.mesh else { continue };
        let mut by_path: BTreeMap<PeerPath, (u64, [u64; 3])> = BTreeMap::new();
        let mut answering: BTreeMap<(String, std::net::IpAddr), bool> = BTreeMap::new();
        for (k, s) in st.series.range(super::state::range_of(name)) {
            let v = by_path.entry((name.clone(), k.responder.clone(), k.path)).or_default();
            v.0 += s.probes;
            for (acc, l) in v.1.iter_mut().zip(s.lost) {
                *acc += l;
            }
            *answering.entry((k.responder.clone(), k.address)).or_default() |= !s.is_silent();
        }
        let labels = |peer: &str, path: Path| -> Labels {
            vec![
                ("target", name.clone()),
                ("source", m.source.clone()),
                ("peer", peer.to_string()),
                ("path", path.as_str().to_string()),
            ]
        };
        for ((_, peer, path), (p, l)) in &by_path {
            probes.push((labels(peer, *path), *p));
            for (dir, v) in DIRECTIONS.iter().zip(l) {
                let mut l = labels(peer, *path);
                l.push(("direction", dir.to_string()));
                lost.push((l, *v));
            }
        }
        let peer_labels = |peer: &str, address: std::net::IpAddr, expected: bool| -> Labels {
            vec![
                ("target", name.clone()),
                ("source", m.source.clone()),
                ("peer", peer.to_string()),
                ("address", address.to_string()),
                ("expected", expected.to_string()),
            ]
        };
        for ((peer, address), on) in &answering {
            up.push((peer_labels(peer, *address, m.expected.contains(address)), u64::from(*on)));
        }
        for &a in m.expected.iter().filter(|&&a| !answering.keys().any(|(_, x)| *x == a)) {
            up.push((peer_labels(&a.to_string(), a, true), 0));
        }
    }
    counter(
        e,
        "mcprobe_mesh_probes",
        "Mesh targets: probes this host (source) charged to the peer on the path, from its first on-time ack on; the denominator of the matrix cell (the peer's series summed).",
        &probes,
    )?;
    counter(
        e,
        "mcprobe_mesh_lost",
        "Mesh targets: probes to the peer without an ack, by direction: forward (the probe did not reach the peer: its ingress, or this host's egress), return (its ack did not come back), unknown.",
        &lost,
    )?;
    gauge(
        e,
        "mcprobe_mesh_peer_up",
        "Mesh targets: 1 if the peer answered in the last window, else 0 (silent, until --forget; or expected by --hosts and never heard, then peer is its address). expected: whether --hosts lists it.",
        None,
        &up,
    )
}

/// A multicast responder of a `--groups` target: the series' labels but the path.
fn responder_labels(k: &SeriesKey) -> Labels {
    vec![("target", k.target.clone()), ("responder", k.responder.clone()), ("address", k.address.to_string())]
}

/// Labels of a watched group.
fn group_labels(target: &str, group: std::net::IpAddr, port: u16) -> Labels {
    vec![("target", target.to_string()), ("group", group.to_string()), ("port", port.to_string())]
}

/// The `[[watch]]` entries' streams (docs/src/watch.md names and defines each metric); no
/// family at all when serve watches nothing.
fn watch(entries: &BTreeMap<String, Arc<EntrySnapshot>>, e: &mut DescriptorEncoder) -> std::fmt::Result {
    if entries.is_empty() {
        return Ok(());
    }
    let rows = |f: &dyn Fn(&StreamFigures) -> Option<u64>| -> Vec<(Labels, u64)> {
        let mut out = Vec::new();
        for (t, snap) in entries {
            for ((g, p, src), s) in &snap.streams {
                if let Some(v) = f(s) {
                    let mut l = group_labels(t, *g, *p);
                    l.push(("source", src.to_string()));
                    out.push((l, v));
                }
            }
        }
        out
    };
    let gauges = |f: &dyn Fn(&StreamFigures) -> Option<f64>| -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for (t, snap) in entries {
            for ((g, p, src), s) in &snap.streams {
                if let Some(v) = f(s) {
                    let mut l = group_labels(t, *g, *p);
                    l.push(("source", src.to_string()));
                    out.push((l, v));
                }
            }
        }
        out
    };
    counter(
        e,
        "mcprobe_watch_packets",
        "Datagrams received, per stream (source \"other\": every source beyond the caps, summed).",
        &rows(&|s| Some(s.packets)),
    )?;
    counter(e, "mcprobe_watch_bytes", "UDP payload bytes received.", &rows(&|s| Some(s.bytes)))?;
    counter(
        e,
        "mcprobe_watch_lost",
        "Datagrams lost by the stream's own numbering (RTP, the --seq field; inferred from the continuity counters for MPEG-TS over UDP). None for raw streams.",
        &rows(&|s| s.lost),
    )?;
    counter(e, "mcprobe_watch_duplicates", "Duplicate datagrams (RTP, --seq).", &rows(&|s| s.duplicates))?;
    counter(
        e,
        "mcprobe_watch_reordered",
        "Datagrams that arrived after a higher-numbered one (RTP, --seq).",
        &rows(&|s| s.reordered),
    )?;
    counter(
        e,
        "mcprobe_watch_ts_lost",
        "MPEG-TS packets lost by the continuity counters; its rate is RFC 4445's media loss rate (MLR).",
        &rows(&|s| s.ts_lost),
    )?;
    counter(e, "mcprobe_watch_cc_errors", "MPEG-TS continuity-counter errors.", &rows(&|s| s.cc_errors))?;
    counter(
        e,
        "mcprobe_watch_source_changes",
        "New SSRCs (RTP) or source ports (other formats) after the first.",
        &rows(&|s| s.source_changes),
    )?;
    gauge(
        e,
        "mcprobe_watch_peak_1ms_bytes_per_second",
        "The most UDP payload bytes within any 1 ms of the last second, per second (microbursts; x 8 for bits/s).",
        None,
        &gauges(&|s| s.peak_1ms_bytes_per_s),
    )?;
    gauge(
        e,
        "mcprobe_watch_max_gap",
        "The longest time between two datagrams in the last second (its silence, when none came).",
        Some(&Unit::Seconds),
        &gauges(&|s| s.max_gap_s),
    )?;
    gauge(
        e,
        "mcprobe_watch_rtp_jitter",
        "RFC 3550 interarrival jitter from the RTP timestamps.",
        Some(&Unit::Seconds),
        &gauges(&|s| s.rtp_jitter_s),
    )?;
    gauge(
        e,
        "mcprobe_watch_mdi_df",
        "RFC 4445 delay factor of the last second: the buffer, in time, its arrivals' jitter needs.",
        Some(&Unit::Seconds),
        &gauges(&|s| s.df_s),
    )?;
    let (mut silence, mut drops) = (Vec::new(), Vec::new());
    for (t, snap) in entries {
        for ((g, p), f) in &snap.groups {
            silence.push((group_labels(t, *g, *p), f.silence_s));
            if let Some(d) = f.local_drops {
                drops.push((group_labels(t, *g, *p), d));
            }
        }
    }
    gauge(
        e,
        "mcprobe_watch_group_silence",
        "Time since any datagram reached the watched group (since serve started, when none did). McprobeStreamStopped fires above 5 s.",
        Some(&Unit::Seconds),
        &silence,
    )?;
    counter(
        e,
        "mcprobe_watch_local_drops",
        "Datagrams this host's kernel dropped on the group's socket (its buffer was full): this host's fault, not the network's.",
        &drops,
    )
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let exposed = self.0.get();
        let st = &exposed.state;
        let per_series = |f: &dyn Fn(&Series) -> u64| -> Vec<(Labels, u64)> {
            st.series.iter().map(|(k, s)| (series_labels(k), f(s))).collect()
        };
        let per_target = |f: &dyn Fn(&super::state::Target) -> u64| -> Vec<(Labels, u64)> {
            st.targets.iter().map(|(t, v)| (vec![("target", t.clone())], f(v))).collect()
        };
        let mut sent = Vec::new();
        for (t, v) in &st.targets {
            sent.push((vec![("target", t.clone()), ("path", "multicast".to_string())], v.multicast_sent));
            if v.unicast_sent > 0 {
                sent.push((vec![("target", t.clone()), ("path", "unicast".to_string())], v.unicast_sent));
            }
        }
        counter(
            &mut e,
            "mcprobe_probes_sent",
            "Probes sent, per target and path (unicast: to every --hosts host; with --mesh, to the window's sample of the peers).",
            &sent,
        )?;
        counter(
            &mut e,
            "mcprobe_responder_probes",
            "Probes charged to a responder: from its first on-time ack on, then every probe of its path. The denominator of its loss ratio.",
            &per_series(&|s| s.probes),
        )?;
        counter(&mut e, "mcprobe_acks", "Acks received within the timeout.", &per_series(&|s| s.acks))?;
        let mut lost = Vec::new();
        for (k, s) in &st.series {
            for (dir, v) in DIRECTIONS.iter().zip(s.lost) {
                let mut l = series_labels(k);
                l.push(("direction", dir.to_string()));
                lost.push((l, v));
            }
        }
        counter(
            &mut e,
            "mcprobe_lost",
            "Probes without an ack, by direction: forward (probe lost), return (ack lost), unknown (the responder's counters do not tell, or it was silent).",
            &lost,
        )?;
        counter(
            &mut e,
            "mcprobe_host_drops",
            "Of the forward losses, probes the responder's own host dropped (its socket buffer was full, as its acks report); the rest, less mcprobe_forward_untold, is the network's. 0 from responders that do not report it.",
            &per_series(&|s| s.host_drops),
        )?;
        counter(
            &mut e,
            "mcprobe_forward_untold",
            "Of the forward losses, probes lost after the responder's latest report of its drops (only some acks carry it): its host's or the network's, not yet told.",
            &per_series(&|s| s.forward_untold),
        )?;
        counter(
            &mut e,
            "mcprobe_late_acks",
            "Acks that came after the timeout. Their probes are counted here only: not as acks, and not as lost in any direction.",
            &per_series(&|s| s.late),
        )?;
        counter(
            &mut e,
            "mcprobe_duplicate_acks",
            "Second and later copies of an ack.",
            &per_series(&|s| s.duplicates),
        )?;
        counter(
            &mut e,
            "mcprobe_reordered_acks",
            "Acks that arrived after an ack of a later probe.",
            &per_series(&|s| s.reordered),
        )?;
        counter(
            &mut e,
            "mcprobe_rate_limited",
            "Probes the responder received but did not answer (its rate limit): not loss.",
            &per_series(&|s| s.limited),
        )?;
        counter(
            &mut e,
            "mcprobe_outages",
            "Stretches of at least --outage-min unanswered probes after an answer, across windows: a responder that stops is one outage, however many windows it stays silent.",
            &per_series(&|s| s.outages),
        )?;
        counter(
            &mut e,
            "mcprobe_responder_restarts",
            "Times the responder came back with a new id (same name and address).",
            &per_series(&|s| s.restarts),
        )?;
        let rtt: Vec<(Labels, &Buckets)> = st.series.iter().map(|(k, s)| (series_labels(k), &s.rtt)).collect();
        histogram(&mut e, "mcprobe_rtt", "Round-trip time of on-time acks.", &RTT_BUCKETS_S, &rtt)?;
        let net: Vec<(Labels, &Buckets)> = st.series.iter().map(|(k, s)| (series_labels(k), &s.net_rtt)).collect();
        histogram(
            &mut e,
            "mcprobe_net_rtt",
            "Round-trip time less the responder's dwell (its receive-to-send time).",
            &RTT_BUCKETS_S,
            &net,
        )?;
        let last: Vec<(Labels, f64)> = st.series.iter().map(|(k, s)| (series_labels(k), s.last_ack_unix_s)).collect();
        gauge(
            &mut e,
            "mcprobe_last_ack_timestamp",
            "When the responder last answered (Unix time, from the send time of its newest acked probe).",
            Some(&Unit::Seconds),
            &last,
        )?;
        gauge(
            &mut e,
            "mcprobe_responders",
            "Multicast responders that answered in the last finished window.",
            None,
            &per_target(&|t| t.responders),
        )?;
        let mut verdicts = Vec::new();
        let mut up = Vec::new();
        for (t, v) in &st.targets {
            for h in &v.hosts {
                for verdict in VERDICTS {
                    let l = vec![
                        ("target", t.clone()),
                        ("host", h.host.to_string()),
                        ("verdict", verdict.as_str().to_string()),
                    ];
                    verdicts.push((l, u64::from(h.verdict == verdict)));
                }
                for (path, is_up) in [("multicast", h.multicast_up), ("unicast", h.unicast_up)] {
                    let l = vec![("target", t.clone()), ("host", h.host.to_string()), ("path", path.to_string())];
                    up.push((l, u64::from(is_up)));
                }
            }
        }
        gauge(
            &mut e,
            "mcprobe_host_verdict",
            "Per expected host (--hosts), 1 for its verdict in the last window, 0 for the others.",
            None,
            &verdicts,
        )?;
        gauge(
            &mut e,
            "mcprobe_host_path_up",
            "Per expected host and path, 1 if it answered in the last window.",
            None,
            &up,
        )?;
        counter(
            &mut e,
            "mcprobe_local_drops",
            "Acks the prober's own kernel dropped (socket buffer full): this host's fault, not the network's.",
            &per_target(&|t| t.local_drops),
        )?;
        counter(&mut e, "mcprobe_send_errors", "Probes the kernel refused to send.", &per_target(&|t| t.send_errors))?;
        counter(&mut e, "mcprobe_windows", "Probe windows finished and folded in.", &per_target(&|t| t.windows))?;
        counter(
            &mut e,
            "mcprobe_window_overruns",
            "Windows that overran --window: the one before still waited for its late acks when this one was due (it started late), or the sender could not send all its probes in time. Windows never overlap their sending.",
            &per_target(&|t| t.overruns),
        )?;
        counter(
            &mut e,
            "mcprobe_responders_refused",
            "New responder series not tracked because the target has --max-series already.",
            &per_target(&|t| t.refused),
        )?;
        let late: Vec<(Labels, &Buckets)> =
            st.targets.iter().map(|(t, v)| (vec![("target", t.clone())], &v.lateness)).collect();
        histogram(
            &mut e,
            "mcprobe_send_lateness",
            "How late each multicast probe left versus its schedule.",
            &LATENESS_BUCKETS_S,
            &late,
        )?;
        querier(st, &mut e)?;
        groups(st, &mut e)?;
        mesh(st, &mut e)?;
        watch(&exposed.watch, &mut e)?;
        let info = e.encode_descriptor("mcprobe_build", "The running mcprobe's version.", None, MetricType::Info)?;
        let mut info = info;
        info.encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{Limits, Path, Series, SeriesKey, State};
    use super::*;

    fn one_series() -> State {
        let mut st = State::new(Limits { max_series: 10, forget_s: 600.0, group_series: false }, ["lan".to_string()]);
        let mut s = Series::default();
        (s.probes, s.acks, s.lost) = (10, 4, [3, 2, 1]);
        // 1 RTT in the first bucket (≤ 10 µs), 3 in the third (≤ 50 µs), 0 above 1 s.
        s.rtt = Buckets { counts: vec![1, 0, 3], count: 4, sum_s: 0.000_13 };
        let key = SeriesKey {
            target: "lan".into(),
            responder: "r\"1".into(),
            address: "10.0.0.1".parse().unwrap(),
            path: Path::Multicast,
        };
        st.series.insert(key, s);
        st
    }

    #[test]
    fn renders_cumulative_buckets_loss_by_direction_and_escaped_labels() {
        let r = registry(Published::new(one_series()));
        let text = encode(&r, Format::Prometheus);
        let labels = r#"target="lan",responder="r\"1",address="10.0.0.1",path="multicast""#;
        for line in [
            format!("mcprobe_rtt_seconds_bucket{{{labels},le=\"1e-05\"}} 1"),
            format!("mcprobe_rtt_seconds_bucket{{{labels},le=\"2e-05\"}} 1"),
            format!("mcprobe_rtt_seconds_bucket{{{labels},le=\"5e-05\"}} 4"),
            format!("mcprobe_rtt_seconds_bucket{{{labels},le=\"1\"}} 4"),
            format!("mcprobe_rtt_seconds_bucket{{{labels},le=\"+Inf\"}} 4"),
            format!("mcprobe_rtt_seconds_count{{{labels}}} 4"),
            format!("mcprobe_lost_total{{{labels},direction=\"return\"}} 2"),
            format!("mcprobe_responder_probes_total{{{labels}}} 10"),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
        let om = encode(&r, Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n") && om.contains("# UNIT mcprobe_rtt_seconds seconds"));
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }

    #[test]
    fn renders_the_querier_of_a_watched_target_and_only_watching_0_for_another() {
        use crate::querier::{QuerierLog, Query, QueryVersion};
        let mut st = State::new(
            Limits { max_series: 10, forget_s: 600.0, group_series: false },
            ["lan".to_string(), "lo".to_string()],
        );
        let mut log = QuerierLog::default();
        let q = Query::general("10.0.0.254", QueryVersion::IgmpV2, None, std::time::Duration::from_secs(10));
        log.record(&q, 1_700_000_000_500_000_000);
        log.record(&q, 1_700_000_125_500_000_000);
        let lan = st.targets.get_mut("lan").unwrap();
        lan.querier = QuerierState::Watched { queriers: log.queriers, silent: true, refused: 0 };
        let text = encode(&registry(Published::new(st)), Format::Prometheus);
        let q = r#"target="lan",querier="10.0.0.254""#;
        for line in [
            r#"mcprobe_querier_watching{target="lan"} 1"#.to_string(),
            r#"mcprobe_querier_watching{target="lo"} 0"#.to_string(),
            r#"mcprobe_querier_silent{target="lan"} 1"#.to_string(),
            format!("mcprobe_querier_info{{{q},version=\"IGMPv2\"}} 1"),
            format!("mcprobe_querier_interval_seconds{{{q}}} 125.0"),
            format!("mcprobe_querier_robustness{{{q}}} 2"),
            format!("mcprobe_querier_last_seen_timestamp_seconds{{{q}}} 1700000125.5"),
            format!("mcprobe_querier_queries_total{{{q}}} 2"),
            r#"mcprobe_querier_refused_total{target="lan"} 0"#.to_string(),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        // A target without a watch has no querier figures that could read as "no querier".
        assert!(!text.contains(r#"mcprobe_querier_silent{target="lo"}"#), "{text}");
    }

    /// A watch entry's snapshot: an RTP stream carrying MPEG-TS (every figure), a `--seq` feed
    /// (no TS figures, no RTP jitter), the group's `other` sources, and a silent group whose
    /// socket reported drops.
    fn watched() -> Published {
        use super::super::watch::{GroupFigures, Source};
        let p = Published::new(one_series());
        let g = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let rtp_ts = StreamFigures {
            packets: 9000,
            bytes: 11_844_000,
            lost: Some(12),
            duplicates: Some(1),
            reordered: Some(2),
            ts_lost: Some(84),
            cc_errors: Some(12),
            source_changes: Some(0),
            peak_1ms_bytes_per_s: Some(1_316_000.0),
            max_gap_s: Some(0.0125),
            rtp_jitter_s: Some(0.000_25),
            df_s: Some(0.004),
        };
        let seq = StreamFigures {
            packets: 600,
            bytes: 28_800,
            lost: Some(4),
            duplicates: Some(0),
            reordered: Some(0),
            source_changes: Some(1),
            peak_1ms_bytes_per_s: Some(48_000.0),
            max_gap_s: Some(0.002),
            ..StreamFigures::default()
        };
        let other = StreamFigures { packets: 5, bytes: 50, ..StreamFigures::default() };
        let snap = EntrySnapshot {
            streams: vec![
                ((g("239.1.1.1"), 5000, Source::Addr(g("10.0.0.9"))), rtp_ts),
                ((g("239.1.1.1"), 5000, Source::Other), other),
                ((g("239.9.9.9"), 30001, Source::Addr(g("10.0.0.5"))), seq),
            ],
            groups: vec![
                ((g("239.1.1.1"), 5000), GroupFigures { silence_s: 0.004, local_drops: Some(0) }),
                ((g("239.1.1.2"), 5000), GroupFigures { silence_s: 42.5, local_drops: Some(3) }),
                ((g("239.9.9.9"), 30001), GroupFigures { silence_s: 0.25, local_drops: None }),
            ],
        };
        p.set_watch("iptv", snap);
        p
    }

    #[test]
    fn renders_watch_streams_with_only_the_figures_their_format_has() {
        let text = encode(&registry(watched()), Format::Prometheus);
        let tv = r#"target="iptv",group="239.1.1.1",port="5000",source="10.0.0.9""#;
        let md = r#"target="iptv",group="239.9.9.9",port="30001",source="10.0.0.5""#;
        for line in [
            format!("mcprobe_watch_packets_total{{{tv}}} 9000"),
            format!("mcprobe_watch_lost_total{{{tv}}} 12"),
            format!("mcprobe_watch_ts_lost_total{{{tv}}} 84"),
            format!("mcprobe_watch_mdi_df_seconds{{{tv}}} 0.004"),
            format!("mcprobe_watch_lost_total{{{md}}} 4"),
            r#"mcprobe_watch_packets_total{target="iptv",group="239.1.1.1",port="5000",source="other"} 5"#.into(),
            r#"mcprobe_watch_group_silence_seconds{target="iptv",group="239.1.1.2",port="5000"} 42.5"#.into(),
            r#"mcprobe_watch_local_drops_total{target="iptv",group="239.1.1.2",port="5000"} 3"#.into(),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        for absent in [
            format!("mcprobe_watch_ts_lost_total{{{md}}}"),
            format!("mcprobe_watch_rtp_jitter_seconds{{{md}}}"),
            r#"mcprobe_watch_lost_total{target="iptv",group="239.1.1.1",port="5000",source="other"}"#.into(),
            r#"mcprobe_watch_local_drops_total{target="iptv",group="239.9.9.9""#.into(),
        ] {
            assert!(!text.contains(&absent), "{absent} in\n{text}");
        }
        // No watch entry: no watch family at all.
        let plain = encode(&registry(Published::new(one_series())), Format::Prometheus);
        assert!(!plain.contains("mcprobe_watch_"));
    }

    /// A `--groups` target of 4 groups beside a plain one: responders "a" (every group) and
    /// "b" (missing 239.1.0.2), the unicast path without group figures; `group_series` and
    /// `max_series` as given.
    fn grouped(group_series: bool, max_series: usize) -> State {
        let limits = Limits { max_series, forget_s: 600.0, group_series };
        let mut st = State::new(limits, ["iptv".to_string(), "lan".to_string()]);
        let g = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        st.set_groups("iptv", &[g("239.1.0.0"), g("239.1.0.1"), g("239.1.0.2"), g("239.1.0.3")]);
        st.set_groups("lan", &[g("239.255.42.42")]);
        for (name, addr, reached, missed, bits, path) in [
            ("a", "10.0.0.1", 4, 0, 0b1111, Path::Multicast),
            ("b", "10.0.0.2", 3, 7, 0b1011, Path::Multicast),
            ("b", "10.0.0.2", 0, 0, 0, Path::Unicast),
        ] {
            let mut s = Series::default();
            (s.probes, s.acks, s.groups_reached, s.groups_missed) = (40, 40 - missed, reached, missed);
            s.reached_bits = if group_series { vec![bits] } else { Vec::new() };
            let key = SeriesKey { target: "iptv".into(), responder: name.into(), address: g(addr), path };
            st.series.insert(key, s);
        }
        st
    }

    #[test]
    fn groups_are_aggregated_per_responder_unless_group_series_fit_in_max_series() {
        let text = encode(&registry(Published::new(grouped(false, 10))), Format::Prometheus);
        let (a, b) =
            (r#"target="iptv",responder="a",address="10.0.0.1""#, r#"target="iptv",responder="b",address="10.0.0.2""#);
        for line in [
            r#"mcprobe_groups{target="iptv"} 4"#.to_string(),
            format!("mcprobe_groups_reached{{{a}}} 4"),
            format!("mcprobe_groups_reached{{{b}}} 3"),
            format!("mcprobe_groups_missed_total{{{a}}} 0"),
            format!("mcprobe_groups_missed_total{{{b}}} 7"),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        // One series per responder (the unicast path has no groups), none per group, none for
        // the target of one group.
        assert_eq!(text.lines().filter(|l| l.starts_with("mcprobe_groups_reached{")).count(), 2, "{text}");
        for absent in ["mcprobe_group_reached", "mcprobe_group_series_capped", r#"mcprobe_groups{target="lan"}"#] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        // --group-series within --max-series: 2 responders x 4 groups = 8 <= 10.
        let text = encode(&registry(Published::new(grouped(true, 10))), Format::Prometheus);
        assert!(text.contains(r#"mcprobe_group_series_capped{target="iptv"} 0"#), "{text}");
        let per_group: Vec<&str> = text.lines().filter(|l| l.starts_with("mcprobe_group_reached{")).collect();
        assert_eq!(per_group.len(), 8, "{text}");
        for line in [
            format!("mcprobe_group_reached{{{b},group=\"239.1.0.2\"}} 0"),
            format!("mcprobe_group_reached{{{b},group=\"239.1.0.3\"}} 1"),
            format!("mcprobe_group_reached{{{a},group=\"239.1.0.2\"}} 1"),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        // Beyond it (8 > 7): capped, the aggregated series only.
        let text = encode(&registry(Published::new(grouped(true, 7))), Format::Prometheus);
        assert!(text.contains(r#"mcprobe_group_series_capped{target="iptv"} 1"#), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("mcprobe_group_reached{")), "{text}");
        assert!(text.contains(&format!("mcprobe_groups_missed_total{{{b}}} 7")), "{text}");
        // No --groups target at all: no group family.
        let plain = encode(&registry(Published::new(one_series())), Format::Prometheus);
        assert!(!plain.contains("mcprobe_group"), "{plain}");
    }

    /// The whole exposition as Prometheus reads it, pinned: a renamed metric, a changed HELP or
    /// label shows as a diff (review with `cargo insta review`).
    #[test]
    fn the_exposition() {
        let r = registry(Published::new(one_series()));
        insta::assert_snapshot!("exposition_prometheus", encode(&r, Format::Prometheus));
        insta::assert_snapshot!("exposition_openmetrics", encode(&r, Format::OpenMetrics));
        let r = registry(watched());
        insta::assert_snapshot!("exposition_watch_prometheus", encode(&r, Format::Prometheus));
        insta::assert_snapshot!("exposition_watch_openmetrics", encode(&r, Format::OpenMetrics));
        let r = registry(Published::new(grouped(true, 10)));
        insta::assert_snapshot!("exposition_groups_prometheus", encode(&r, Format::Prometheus));
    }

    /// The matrix row of a mesh host: per peer and path, probes and losses by direction summed
    /// over the peer's series; whether each peer answered, and an expected peer never heard
    /// under its address.
    #[test]
    fn a_mesh_target_renders_its_row_of_the_matrix() {
        let mut st = one_series();
        assert!(!encode(&registry(Published::new(st.clone())), Format::Prometheus).contains("mcprobe_mesh"));
        st.set_mesh("lan", "h1", &["10.0.0.1".parse().unwrap(), "10.0.0.7".parse().unwrap()]);
        let mut s = Series::default();
        (s.probes, s.lost) = (20, [1, 0, 0]);
        let key = SeriesKey {
            target: "lan".into(),
            responder: "r\"1".into(),
            address: "10.0.0.1".parse().unwrap(),
            path: Path::Unicast,
        };
        st.series.insert(key, s);
        let text = encode(&registry(Published::new(st)), Format::Prometheus);
        let row = r#"target="lan",source="h1",peer="r\"1""#;
        for line in [
            format!("mcprobe_mesh_probes_total{{{row},path=\"multicast\"}} 10"),
            format!("mcprobe_mesh_probes_total{{{row},path=\"unicast\"}} 20"),
            format!("mcprobe_mesh_lost_total{{{row},path=\"multicast\",direction=\"forward\"}} 3"),
            format!("mcprobe_mesh_lost_total{{{row},path=\"multicast\",direction=\"unknown\"}} 1"),
            format!("mcprobe_mesh_lost_total{{{row},path=\"unicast\",direction=\"forward\"}} 1"),
            format!("mcprobe_mesh_peer_up{{{row},address=\"10.0.0.1\",expected=\"true\"}} 1"),
            r#"mcprobe_mesh_peer_up{target="lan",source="h1",peer="10.0.0.7",address="10.0.0.7",expected="true"} 0"#
                .to_string(),
        ] {
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
    }
}
