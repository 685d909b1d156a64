//! Membership queries (IGMPv1/v2/v3 for IPv4, MLDv1/v2 for IPv6): decoding them, and the log
//! of the queriers a host heard. This module is pure: bytes in, typed queries out; times are
//! passed in. [`watch`] listens for them on a raw socket. (The layers above have their part each:
//! `findings/querier.rs` judges what was heard, `output/querier.rs` says it, and
//! `commands/querier.rs` starts a watch for a command.)
//!
//! Why it matters: snooping switches keep a port in a group only while its host answers the
//! querier's queries. Without a querier, memberships age out after the group membership
//! interval (robustness × query interval + query response interval, 260 s with the defaults of
//! RFC 3376/3810) and the switch stops forwarding the group to the host.
//!
//! The query interval and robustness are on the wire only in IGMPv3 (QQIC, QRV) and MLDv2;
//! for older versions the protocol defaults are assumed, and the interval actually seen between
//! general queries is kept as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// RFC 3376 §8.2 / RFC 3810 §9.2: the default query interval.
pub(crate) const DEFAULT_QUERY_INTERVAL: Duration = Duration::from_secs(125);
/// RFC 3376 §8.1: the default robustness variable.
pub(crate) const DEFAULT_ROBUSTNESS: u8 = 2;
/// RFC 3376 §8.3: the default query response interval (10 s).
pub(crate) const DEFAULT_RESPONSE: Duration = Duration::from_secs(10);
/// How much longer than the query interval a silence must last before it is reported.
pub(crate) const DEFAULT_MARGIN: Duration = Duration::from_secs(10);
/// Most queriers a log keeps. A LAN has one elected querier and maybe a few candidates; the
/// cap bounds a watch that runs for months under `serve` against forged queries from many
/// source addresses. A new address takes the place of one silent for longer than its
/// membership timeout (it no longer matters to any switch), else it is refused and counted: a
/// querier that keeps querying is never pushed out by a burst of forged ones.
pub(crate) const MAX_QUERIERS: usize = 16;

const IGMP_QUERY: u8 = 0x11;
const MLD_QUERY: u8 = 130;
const IPPROTO_IGMP: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryVersion {
    IgmpV1,
    IgmpV2,
    IgmpV3,
    MldV1,
    MldV2,
}

impl QueryVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            QueryVersion::IgmpV1 => "IGMPv1",
            QueryVersion::IgmpV2 => "IGMPv2",
            QueryVersion::IgmpV3 => "IGMPv3",
            QueryVersion::MldV1 => "MLDv1",
            QueryVersion::MldV2 => "MLDv2",
        }
    }

    /// Whether queries of this version carry the querier's interval and robustness.
    pub(crate) fn announces_interval(self) -> bool {
        matches!(self, QueryVersion::IgmpV3 | QueryVersion::MldV2)
    }
}

/// One membership query, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    /// The querier: the packet's source address (0.0.0.0 for a querier without an address, as a
    /// Linux bridge without an IPv4 address sends).
    pub source: IpAddr,
    pub version: QueryVersion,
    /// `None` for a general query, else the group asked about.
    pub group: Option<IpAddr>,
    /// Maximum response time.
    pub max_response: Duration,
    /// QRV (IGMPv3, MLDv2), when not 0.
    pub robustness: Option<u8>,
    /// QQIC (IGMPv3, MLDv2), when not 0.
    pub interval: Option<Duration>,
}

impl Query {
    pub(crate) fn is_general(&self) -> bool {
        self.group.is_none()
    }

    /// A general query from `source`; `interval` announced with robustness 2 (as IGMPv3 and
    /// MLDv2 do), or neither (as the older versions).
    #[cfg(test)]
    pub(crate) fn general(
        source: &str,
        version: QueryVersion,
        interval: Option<Duration>,
        max_response: Duration,
    ) -> Self {
        Query {
            source: source.parse().expect("an address"),
            version,
            group: None,
            max_response,
            robustness: interval.map(|_| 2),
            interval,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAQuery {
    /// Too short, a bad header, or a bad checksum.
    Malformed,
    /// A valid IGMP/ICMPv6 message of another type (reports, leaves, neighbour discovery).
    OtherType,
}

/// IGMPv3 and MLDv2 codes above 127 (32767 for MLDv2's maximum response code) are floating
/// point: a 3-bit exponent and a 4-bit (MLDv2 response: 12-bit) mantissa (RFC 3376 §4.1.1, RFC 3810 §5.1.3).
fn float_code(code: u32, mant_bits: u32, exp_bits: u32, threshold: u32) -> u32 {
    if code < threshold {
        return code;
    }
    let mant = code & ((1 << mant_bits) - 1);
    let exp = (code >> mant_bits) & ((1 << exp_bits) - 1);
    (mant | (1 << mant_bits)) << (exp + 3)
}

fn checksum_ok(data: &[u8]) -> bool {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Decodes an IGMP membership query from a whole IPv4 packet (header included, as a raw
/// `IPPROTO_IGMP` socket returns it).
pub(crate) fn parse_igmp(packet: &[u8]) -> Result<Query, NotAQuery> {
    let ihl = usize::from(packet.first().ok_or(NotAQuery::Malformed)? & 0x0f) * 4;
    if packet[0] >> 4 != 4 || ihl < 20 || packet.len() < ihl + 8 || packet[9] != IPPROTO_IGMP {
        return Err(NotAQuery::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    // Kernels differ on whether raw sockets see the total length in host or network order, or
    // the payload length; the datagram's own length is what counts.
    let end = if total >= ihl + 8 && total <= packet.len() { total } else { packet.len() };
    let source = IpAddr::V4(Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]));
    let igmp = &packet[ihl..end];
    if igmp[0] != IGMP_QUERY {
        return Err(NotAQuery::OtherType);
    }
    if !checksum_ok(igmp) {
        return Err(NotAQuery::Malformed);
    }
    let code = u32::from(igmp[1]);
    let group = Ipv4Addr::new(igmp[4], igmp[5], igmp[6], igmp[7]);
    let group = (!group.is_unspecified()).then_some(IpAddr::V4(group));
    let tenths = |t: u32| Duration::from_millis(u64::from(t) * 100);
    // RFC 3376 §7.1: an 8-byte query is v1 when its code is 0, else v2; 12 bytes or more is v3.
    match igmp.len() {
        8 if code == 0 => Ok(Query {
            source,
            version: QueryVersion::IgmpV1,
            group,
            max_response: DEFAULT_RESPONSE,
            robustness: None,
            interval: None,
        }),
        8 => Ok(Query {
            source,
            version: QueryVersion::IgmpV2,
            group,
            max_response: tenths(code),
            robustness: None,
            interval: None,
        }),
        n if n >= 12 => {
            let qrv = igmp[8] & 0x07;
            let qqic = float_code(u32::from(igmp[9]), 4, 3, 128);
            Ok(Query {
                source,
                version: QueryVersion::IgmpV3,
                group,
                max_response: tenths(float_code(code, 4, 3, 128)),
                robustness: (qrv != 0).then_some(qrv),
                interval: (qqic != 0).then(|| Duration::from_secs(u64::from(qqic))),
            })
        }
        _ => Err(NotAQuery::Malformed),
    }
}

/// Decodes an MLD query from an ICMPv6 message (what a raw ICMPv6 socket returns: no IPv6
/// header; the kernel checked the checksum) sent by `source`.
pub(crate) fn parse_mld(source: Ipv6Addr, icmp: &[u8]) -> Result<Query, NotAQuery> {
    if icmp.len() < 24 {
        return Err(if icmp.first().is_some_and(|&t| t != MLD_QUERY) {
            NotAQuery::OtherType
        } else {
            NotAQuery::Malformed
        });
    }
    if icmp[0] != MLD_QUERY {
        return Err(NotAQuery::OtherType);
    }
    let code = u32::from(u16::from_be_bytes([icmp[4], icmp[5]]));
    let mut g = [0u8; 16];
    g.copy_from_slice(&icmp[8..24]);
    let group = Ipv6Addr::from(g);
    let group = (!group.is_unspecified()).then_some(IpAddr::V6(group));
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    // RFC 3810 §8.1: 24 bytes is MLDv1, 28 or more is MLDv2.
    match icmp.len() {
        24 => Ok(Query {
            source: IpAddr::V6(source),
            version: QueryVersion::MldV1,
            group,
            max_response: ms(code),
            robustness: None,
            interval: None,
        }),
        n if n >= 28 => {
            let qrv = icmp[24] & 0x07;
            let qqic = float_code(u32::from(icmp[25]), 4, 3, 128);
            Ok(Query {
                source: IpAddr::V6(source),
                version: QueryVersion::MldV2,
                group,
                max_response: ms(float_code(code, 12, 3, 32768)),
                robustness: (qrv != 0).then_some(qrv),
                interval: (qqic != 0).then(|| Duration::from_secs(u64::from(qqic))),
            })
        }
        _ => Err(NotAQuery::Malformed),
    }
}

/// One querier heard on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Querier {
    pub address: IpAddr,
    /// The version of its latest query.
    pub version: QueryVersion,
    /// The interval it announced, else the protocol default.
    pub interval: Duration,
    pub robustness: u8,
    /// The maximum response time of its latest general query.
    pub max_response: Duration,
    /// Whether `interval` and `robustness` came from the wire (IGMPv3/MLDv2).
    pub announced: bool,
    /// The time between its last two general queries.
    pub observed_interval: Option<Duration>,
    pub queries: u64,
    pub first_seen_unix_ns: u64,
    pub last_seen_unix_ns: u64,
    last_general_unix_ns: Option<u64>,
}

impl Querier {
    /// How long snooping switches keep a membership without another query: robustness ×
    /// interval + response time (RFC 3376 §8.4, 260 s with the defaults).
    pub(crate) fn membership_timeout(&self) -> Duration {
        self.interval * u32::from(self.robustness) + self.max_response
    }
}

/// Every querier heard while watching one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuerierLog {
    /// By address, in the order first heard; at most [`MAX_QUERIERS`].
    pub queriers: Vec<Querier>,
    /// Datagrams on the raw sockets that were not valid queries (reports, other ICMPv6).
    pub ignored: u64,
    /// Queries from a new address while the log held [`MAX_QUERIERS`] live queriers.
    pub refused: u64,
}

impl QuerierLog {
    /// Records a query heard at `at_unix_ns`.
    pub(crate) fn record(&mut self, q: &Query, at_unix_ns: u64) {
        let i = match self.queriers.iter().position(|x| x.address == q.source) {
            Some(i) => i,
            None => {
                if self.queriers.len() >= MAX_QUERIERS {
                    let aged_out = |x: &Querier| {
                        u128::from(at_unix_ns.saturating_sub(x.last_seen_unix_ns)) > x.membership_timeout().as_nanos()
                    };
                    let Some(i) = self.queriers.iter().position(aged_out) else {
                        self.refused += 1;
                        return;
                    };
                    self.queriers.remove(i);
                }
                self.queriers.push(Querier {
                    address: q.source,
                    version: q.version,
                    interval: DEFAULT_QUERY_INTERVAL,
                    robustness: DEFAULT_ROBUSTNESS,
                    max_response: DEFAULT_RESPONSE,
                    announced: false,
                    observed_interval: None,
                    queries: 0,
                    first_seen_unix_ns: at_unix_ns,
                    last_seen_unix_ns: at_unix_ns,
                    last_general_unix_ns: None,
                });
                self.queriers.len() - 1
            }
        };
        let x = &mut self.queriers[i];
        x.queries += 1;
        x.version = q.version;
        x.last_seen_unix_ns = x.last_seen_unix_ns.max(at_unix_ns);
        x.announced = q.version.announces_interval();
        x.interval = q.interval.filter(|_| x.announced).unwrap_or(DEFAULT_QUERY_INTERVAL);
        x.robustness = q.robustness.filter(|_| x.announced).unwrap_or(DEFAULT_ROBUSTNESS);
        if q.is_general() {
            x.max_response = q.max_response;
            if let Some(prev) = x.last_general_unix_ns {
                x.observed_interval = Some(Duration::from_nanos(at_unix_ns.saturating_sub(prev)));
            }
            x.last_general_unix_ns = Some(at_unix_ns);
        }
    }

    /// The querier heard last, if any.
    pub(crate) fn latest(&self) -> Option<&Querier> {
        self.queriers.iter().max_by_key(|q| q.last_seen_unix_ns)
    }
}

/// What a watch heard, from its start to `end_unix_ns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuerierObservation {
    pub log: QuerierLog,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// `--querier-wait`: the silence that is reported; `None` for the querier's interval + 10 s.
    pub wait: Option<Duration>,
}

/// No query for longer than the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Since the last query, or since the watch started when none was heard.
    pub silent_for: Duration,
    /// The silence that counts as one.
    pub limit: Duration,
    /// The querier heard last, if any.
    pub last: Option<Querier>,
    /// When snooping switches are expected to have aged the memberships out: the last query (or
    /// the start of the watch, about when the host joined) plus the membership timeout.
    pub age_out_unix_ns: u64,
}

impl QuerierLog {
    /// Whether, at `now_unix_ns`, the queries stopped for longer than `wait` (else the last
    /// querier's interval + [`DEFAULT_MARGIN`]; the default interval + margin before any).
    pub(crate) fn silence(&self, start_unix_ns: u64, now_unix_ns: u64, wait: Option<Duration>) -> Option<Silence> {
        let last = self.latest().cloned();
        let since = last.as_ref().map_or(start_unix_ns, |q| q.last_seen_unix_ns);
        let silent_for = Duration::from_nanos(now_unix_ns.saturating_sub(since));
        let limit = self.silence_limit(wait);
        let timeout = last.as_ref().map_or(
            DEFAULT_QUERY_INTERVAL * u32::from(DEFAULT_ROBUSTNESS) + DEFAULT_RESPONSE,
            Querier::membership_timeout,
        );
        let age_out_unix_ns = since.saturating_add(timeout.as_nanos() as u64);
        (silent_for > limit).then_some(Silence { silent_for, limit, last, age_out_unix_ns })
    }
}

impl QuerierLog {
    /// How long queries may stop before [`QuerierLog::silence`] says so.
    fn silence_limit(&self, wait: Option<Duration>) -> Duration {
        wait.unwrap_or_else(|| self.latest().map_or(DEFAULT_QUERY_INTERVAL, |q| q.interval) + DEFAULT_MARGIN)
    }

    /// The first moment (unix ns) at which [`QuerierLog::silence`] would say the queries
    /// stopped, if none comes before: the watch sleeps until then instead of ticking.
    pub(crate) fn silent_after_unix_ns(&self, start_unix_ns: u64, wait: Option<Duration>) -> u64 {
        let since = self.latest().map_or(start_unix_ns, |q| q.last_seen_unix_ns);
        since.saturating_add(self.silence_limit(wait).as_nanos() as u64)
    }
}

impl QuerierObservation {
    /// The silence at the end of the watch, if any.
    pub(crate) fn silence(&self) -> Option<Silence> {
        self.log.silence(self.start_unix_ns, self.end_unix_ns, self.wait)
    }
}

pub(crate) mod watch;

#[cfg(test)]
mod tests;
