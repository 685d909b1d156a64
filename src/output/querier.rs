//! The querier in words and in JSON: renders [`QuerierFinding`]s, decides nothing.

use serde::Serialize;

use crate::findings::{QuerierFinding, QuerierSeen, QuerierSilence};

fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// "querier 10.0.0.254: IGMPv2, query interval 125 s (default: …), robustness 2, last query …".
pub(crate) fn seen_line(q: &QuerierSeen) -> String {
    let x = &q.querier;
    let source = if x.announced { "announced" } else { "protocol default, not on the wire" };
    let seen = x.observed_interval.map_or(String::new(), |d| format!(", {} between the last two", secs(d)));
    format!(
        "querier {}: {}, query interval {} ({source}{seen}), robustness {}, last query {} before the end ({} queries)",
        x.address,
        x.version.as_str(),
        secs(x.interval),
        x.robustness,
        secs(q.last_seen_ago),
        x.queries
    )
}

/// The warning when queries stopped or never came.
pub(crate) fn silence_line(s: &QuerierSilence) -> String {
    let (r, interval) =
        s.silence.last.as_ref().map_or((2, crate::querier::DEFAULT_QUERY_INTERVAL), |q| (q.robustness, q.interval));
    let what = match (&s.last_querier, &s.silence.last) {
        (Some(a), Some(q)) => format!("querier {a} ({}) silent", q.version.as_str()),
        _ => "no membership query (IGMP/MLD) seen".to_string(),
    };
    let mut line = format!(
        "{what} for {} (limit {}): snooping switches age memberships out about {} (robustness {r} × {} + response time) after the last query, then stop forwarding the group to this LAN segment; enable a querier (on the router or switch, or `ip link set BRIDGE type bridge mcast_querier 1`)",
        secs(s.silence.silent_for),
        secs(s.silence.limit),
        secs(s.membership_timeout),
        secs(interval)
    );
    if !s.explains.is_empty() {
        let list: Vec<String> = s.explains.iter().map(|(n, t)| format!("{n} from {:.1} s", t.as_secs_f64())).collect();
        line.push_str(&format!("; this explains the outages of {}", list.join(", ")));
    }
    line
}

#[derive(Serialize)]
pub(crate) struct JsonQuerier {
    address: String,
    version: &'static str,
    interval_s: f64,
    interval_announced: bool,
    observed_interval_s: Option<f64>,
    robustness: u8,
    max_response_s: f64,
    queries: u64,
    last_seen_ago_s: f64,
    last_seen_unix_ns: String,
}

#[derive(Serialize)]
pub(crate) struct JsonSilence {
    silent_for_s: f64,
    limit_s: f64,
    membership_timeout_s: f64,
    last_querier: Option<String>,
    explains_outages_of: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct JsonQuerierWatch {
    watched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_watched_because: Option<String>,
    queriers: Vec<JsonQuerier>,
    silence: Option<JsonSilence>,
}

impl From<&QuerierFinding> for JsonQuerierWatch {
    fn from(f: &QuerierFinding) -> Self {
        match f {
            QuerierFinding::NotWatched(why) => JsonQuerierWatch {
                watched: false,
                not_watched_because: Some(why.clone()),
                queriers: vec![],
                silence: None,
            },
            QuerierFinding::Watched { queriers, silence, .. } => JsonQuerierWatch {
                watched: true,
                not_watched_because: None,
                queriers: queriers
                    .iter()
                    .map(|q| JsonQuerier {
                        address: q.querier.address.to_string(),
                        version: q.querier.version.as_str(),
                        interval_s: q.querier.interval.as_secs_f64(),
                        interval_announced: q.querier.announced,
                        observed_interval_s: q.querier.observed_interval.map(|d| d.as_secs_f64()),
                        robustness: q.querier.robustness,
                        max_response_s: q.querier.max_response.as_secs_f64(),
                        queries: q.querier.queries,
                        last_seen_ago_s: q.last_seen_ago.as_secs_f64(),
                        last_seen_unix_ns: q.querier.last_seen_unix_ns.to_string(),
                    })
                    .collect(),
                silence: silence.as_ref().map(|s| JsonSilence {
                    silent_for_s: s.silence.silent_for.as_secs_f64(),
                    limit_s: s.silence.limit.as_secs_f64(),
                    membership_timeout_s: s.membership_timeout.as_secs_f64(),
                    last_querier: s.last_querier.map(|a| a.to_string()),
                    explains_outages_of: s.explains.iter().map(|(n, _)| n.clone()).collect(),
                }),
            },
        }
    }
}

/// One row of `queriers.csv`: a querier heard during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct QuerierRow {
    pub address: String,
    pub version: &'static str,
    pub interval_s: f64,
    pub interval_announced: bool,
    pub observed_interval_s: Option<f64>,
    pub robustness: u8,
    pub max_response_s: f64,
    pub queries: u64,
    pub first_seen_unix_ns: u64,
    pub last_seen_unix_ns: u64,
}

/// The rows of `queriers.csv`; `None` when there was no watch (then no file is written).
pub(crate) fn csv_rows(f: &QuerierFinding) -> Option<Vec<QuerierRow>> {
    let QuerierFinding::Watched { queriers, .. } = f else { return None };
    Some(
        queriers
            .iter()
            .map(|q| {
                let x = &q.querier;
                QuerierRow {
                    address: x.address.to_string(),
                    version: x.version.as_str(),
                    interval_s: x.interval.as_secs_f64(),
                    interval_announced: x.announced,
                    observed_interval_s: x.observed_interval.map(|d| d.as_secs_f64()),
                    robustness: x.robustness,
                    max_response_s: x.max_response.as_secs_f64(),
                    queries: x.queries,
                    first_seen_unix_ns: x.first_seen_unix_ns,
                    last_seen_unix_ns: x.last_seen_unix_ns,
                }
            })
            .collect(),
    )
}

/// Under the verdict table of `--hosts`: the hosts whose outage the querier silence explains.
pub(crate) fn diagnosis_lines(f: &crate::findings::Findings) -> Vec<String> {
    let (Some(_), Some(QuerierFinding::Watched { silence: Some(s), .. })) = (&f.diagnosis, &f.querier) else {
        return Vec::new();
    };
    s.hosts
        .iter()
        .map(|(host, start)| {
            format!(
                "{host}: outage from {:.1} s, once snooping switches would have aged the membership out: no membership query for {} (see above)",
                start.as_secs_f64(),
                secs(s.silence.silent_for)
            )
        })
        .collect()
}
