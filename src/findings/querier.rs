//! The querier as a finding: who queried the LAN, how often, and whether the queries stopped
//! long enough for snooping switches to drop the group, with the outages that fit. Pure: reads
//! what a watch heard ([`QuerierObservation`]) and the run's outages.

use std::net::IpAddr;
use std::time::Duration;

use super::causes;
use super::diagnosis::{Advice, QuerierHeard, Verdict};
use super::{Findings, Note, Outage, Path};
use crate::querier::{Querier, QuerierObservation, Silence, DEFAULT_RESPONSE};

/// What the report says about queriers.
#[derive(Debug, Clone, PartialEq)]
pub enum QuerierFinding {
    /// No watch (no CAP_NET_RAW, loopback): why, in one line.
    NotWatched(String),
    Watched {
        /// Every querier heard, the latest last.
        queriers: Vec<QuerierSeen>,
        silence: Option<Box<QuerierSilence>>,
    },
}

/// One querier heard.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerierSeen {
    pub querier: Querier,
    /// How long before the end of the watch its last query came.
    pub last_seen_ago: Duration,
}

/// The queries stopped (or never came) for longer than the wait.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerierSilence {
    pub silence: Silence,
    /// How long snooping switches keep memberships without queries (260 s by default).
    pub membership_timeout: Duration,
    /// Querier that went silent: `None` when none was heard at all.
    pub last_querier: Option<IpAddr>,
    /// Outages that began once memberships would have aged out: (responder, start in the run).
    pub explains: Vec<(String, Duration)>,
    /// With `--hosts`: the expected hosts of those outages, with their start.
    pub hosts: Vec<(IpAddr, Duration)>,
}

impl QuerierFinding {
    /// What `obs` means, next to the run's `outages`.
    pub(crate) fn of(obs: &QuerierObservation, outages: &[Outage]) -> QuerierFinding {
        let mut queriers: Vec<QuerierSeen> = obs
            .log
            .queriers
            .iter()
            .map(|q| QuerierSeen {
                querier: q.clone(),
                last_seen_ago: Duration::from_nanos(obs.end_unix_ns.saturating_sub(q.last_seen_unix_ns)),
            })
            .collect();
        queriers.sort_by_key(|q| q.querier.last_seen_unix_ns);
        let silence = obs.silence().map(|s| {
            let membership_timeout = Duration::from_nanos(
                s.age_out_unix_ns.saturating_sub(s.last.as_ref().map_or(obs.start_unix_ns, |q| q.last_seen_unix_ns)),
            );
            let explains = outages.iter().filter(|o| fits(&s, o)).map(|o| (o.name.clone(), o.start)).collect();
            Box::new(QuerierSilence {
                last_querier: s.last.as_ref().map(|q| q.address),
                silence: s,
                membership_timeout,
                explains,
                hosts: Vec::new(),
            })
        });
        QuerierFinding::Watched { queriers, silence }
    }

    /// The lines it adds under the table.
    fn notes(&self) -> Vec<Note> {
        match self {
            QuerierFinding::NotWatched(_) => Vec::new(),
            QuerierFinding::Watched { queriers, silence, .. } => {
                let mut notes: Vec<Note> = queriers.iter().cloned().map(Note::Querier).collect();
                notes.extend(silence.as_deref().cloned().map(Note::QuerierSilent));
                notes
            }
        }
    }
}

/// Whether outage `o` began once memberships would have aged out in `s`. A switch ages a port
/// out about a membership timeout after the last report; hosts report when queried (or when
/// they join, about when the watch started). Outages from then on, less one response time of
/// slack, fit.
fn fits(s: &Silence, o: &Outage) -> bool {
    let slack = s.last.as_ref().map_or(DEFAULT_RESPONSE, |q| q.max_response);
    o.start_unix_ns >= s.age_out_unix_ns.saturating_sub(slack.as_nanos() as u64)
}

impl Findings {
    /// Adds what a querier watch heard (or why there was none) to the findings.
    pub(crate) fn with_querier(mut self, watch: Result<QuerierObservation, String>) -> Findings {
        let mut q = match watch {
            Ok(obs) => QuerierFinding::of(&obs, &self.outages),
            Err(why) => QuerierFinding::NotWatched(why),
        };
        // The diagnosis names hosts: the outages' responders to their expected hosts, by id.
        if let QuerierFinding::Watched { silence: Some(s), .. } = &mut q {
            for o in self.outages.iter().filter(|o| fits(&s.silence, o)) {
                let host = self.rows.iter().find(|r| r.path == Path::Multicast && r.id() == Some(o.id));
                if let Some(h) = host.and_then(|r| r.expected_host) {
                    s.hosts.push((h, o.start));
                }
            }
        }
        // The diagnosis's causes that depend on a querier: a host whose outage the silence
        // explains is named; the others' snooping candidate says what was heard.
        let heard = match &q {
            QuerierFinding::NotWatched(_) => QuerierHeard::NotWatched,
            QuerierFinding::Watched { silence: Some(_), .. } => QuerierHeard::Silent,
            // Nothing heard yet, and not for longer than the wait: too soon to say.
            QuerierFinding::Watched { queriers, .. } => {
                queriers.last().map_or(QuerierHeard::NoneYet, |q| QuerierHeard::Heard(q.querier.address))
            }
        };
        let explained: Vec<IpAddr> = match &q {
            QuerierFinding::Watched { silence: Some(s), .. } => s.hosts.iter().map(|(h, _)| *h).collect(),
            _ => Vec::new(),
        };
        for h in self.diagnosis.iter_mut().flat_map(|d| d.hosts.iter_mut()) {
            if h.verdict == Verdict::MulticastLost && causes::unproven(h.advice) && explained.contains(&h.host) {
                h.name(Advice::QuerierSilent);
            } else {
                causes::with_querier(std::slice::from_mut(&mut h.advice), heard);
                causes::with_querier(&mut h.others, heard);
            }
        }
        self.notes.extend(q.notes());
        self.querier = Some(q);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::ResponderId;
    use crate::querier::{parse_igmp, Query, QueryVersion};

    const S: u64 = 1_000_000_000;

    fn outage(name: &str, start_s: u64) -> Outage {
        Outage {
            name: name.into(),
            id: ResponderId(1),
            start: Duration::from_secs(start_s),
            end: None,
            probes_lost: 100,
            first_lost_seq: start_s,
            start_unix_ns: start_s * S,
            end_unix_ns: None,
        }
    }

    fn v2_query() -> Query {
        Query {
            source: "10.0.0.254".parse().unwrap(),
            version: QueryVersion::IgmpV2,
            group: None,
            max_response: Duration::from_secs(10),
            robustness: None,
            interval: None,
        }
    }

    #[test]
    fn a_querier_that_keeps_querying_is_listed_without_warning() {
        let mut obs = QuerierObservation { end_unix_ns: 300 * S, ..Default::default() };
        for t in (0..300).step_by(125) {
            obs.log.record(&v2_query(), t * S);
        }
        let f = QuerierFinding::of(&obs, &[outage("h2", 100)]);
        let QuerierFinding::Watched { queriers, silence, .. } = f else { panic!("watched") };
        assert_eq!(silence, None);
        assert_eq!(queriers.len(), 1);
        assert_eq!(queriers[0].last_seen_ago, Duration::from_secs(50));
        assert_eq!(queriers[0].querier.observed_interval, Some(Duration::from_secs(125)));
    }

    #[test]
    fn a_silent_lan_explains_the_outages_after_the_membership_timeout() {
        // The querier stopped at 20 s: memberships age out at 20 + 2 × 125 + 10 = 280 s.
        let mut obs = QuerierObservation { end_unix_ns: 600 * S, ..Default::default() };
        obs.log.record(&v2_query(), 20 * S);
        let f = QuerierFinding::of(&obs, &[outage("h2", 100), outage("h3", 281), outage("h4", 275)]);
        let QuerierFinding::Watched { silence: Some(s), .. } = f else { panic!("a silence") };
        assert_eq!(s.silence.silent_for, Duration::from_secs(580));
        assert_eq!(s.membership_timeout, Duration::from_secs(260));
        assert_eq!(s.last_querier, Some("10.0.0.254".parse().unwrap()));
        let names: Vec<&str> = s.explains.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["h3", "h4"]);
    }

    #[test]
    fn no_querier_at_all_is_a_silence_from_the_start() {
        let obs = QuerierObservation {
            start_unix_ns: 5 * S,
            end_unix_ns: 9 * S,
            wait: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let QuerierFinding::Watched { silence: Some(s), .. } = QuerierFinding::of(&obs, &[]) else { panic!() };
        assert_eq!((s.last_querier, s.silence.silent_for), (None, Duration::from_secs(4)));
        // A v3 querier that announced 2 s is not silent 1 s after its query.
        let mut obs = QuerierObservation { end_unix_ns: 3 * S, ..Default::default() };
        let hex = "46c00024000040000102041300000000e000000194040000110aecf30000000002020000";
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        obs.log.record(&parse_igmp(&bytes).unwrap(), 2 * S);
        assert!(matches!(QuerierFinding::of(&obs, &[]), QuerierFinding::Watched { silence: None, .. }));
    }
}
