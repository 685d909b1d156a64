//! What a run found, in types: the layer between the accounting ([`crate::stats`]) and every
//! output ([`crate::output`]'s table, CSV and JSON, and whatever else renders a run).
//!
//! Pure: [`Findings::of`] reads a finished [`Outcome`] and makes every decision an output would
//! otherwise make on its own: which rows there are, which expected host a multicast row belongs
//! to, which responder restarted, the verdict per host, what to check when nothing answered. The
//! outputs only format. Nothing here decides by comparing strings: paths are [`Path`], addresses
//! are `SocketAddr`/`IpAddr`, responders are [`ResponderId`]s.

mod causes;
pub mod diagnosis;
pub mod groups;
pub mod host_path;
pub mod join_leave;
pub(crate) mod querier;
pub(crate) mod shared;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::{KeyCounts, KeyEvidence, Outcome, UNICAST_TTL};
use crate::stats::{Figures, HostStats, Run};

pub use diagnosis::ListedTwice;
pub(crate) use diagnosis::{Diagnosis, Verdict, DEFAULT_THRESHOLD_PCT};
pub use host_path::AcksDroppedHere;
pub(crate) use querier::{QuerierFinding, QuerierSeen, QuerierSilence};
pub(crate) use shared::{KnownCause, SharedFaults, SharedLoss};

/// A responder's identity: random per start, so a restarted responder has a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ResponderId(pub u64);

impl fmt::Display for ResponderId {
    /// 16 hex digits: short enough to read, stable across reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for ResponderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The way a probe travelled to a responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// To the group: what mcprobe is for.
    Multicast,
    /// To one `--hosts` host directly, for comparison.
    Unicast,
}

impl Path {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Path::Multicast => "multicast",
            Path::Unicast => "unicast",
        }
    }
}

/// A responder that answered, as its acks named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responder {
    pub id: ResponderId,
    /// Printable (control characters replaced); may be empty when acks had no room for it.
    pub name: String,
    /// Where its acks came from.
    pub addr: SocketAddr,
}

/// One responder on one path, or an expected host that never answered on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `None` for an expected host that never answered on this path.
    pub responder: Option<Responder>,
    pub path: Path,
    /// With `--hosts`: the host this row belongs to (the unicast target; for multicast, the host
    /// whose address sent the acks or whose unicast acks carried the same responder id).
    pub expected_host: Option<IpAddr>,
    pub figures: Figures,
    /// Routers between prober and responder, from the TTL the probes left with and arrived with.
    pub hops: Option<u8>,
    /// With `--hosts`: the verdict of the host this row belongs to.
    pub verdict: Option<Verdict>,
}

impl Row {
    fn answered(r: Responder, path: Path, figures: Figures, sent_ttl: u32) -> Row {
        let hops = diagnosis::hops(sent_ttl, figures.ttl);
        Row { responder: Some(r), path, expected_host: None, figures, hops, verdict: None }
    }

    fn silent(host: IpAddr, path: Path, sent: u64) -> Row {
        Row {
            responder: None,
            path,
            expected_host: Some(host),
            figures: Figures::silent(sent),
            hops: None,
            verdict: None,
        }
    }

    /// The responder's name, or "" for a silent row.
    pub(crate) fn name(&self) -> &str {
        self.responder.as_ref().map_or("", |r| r.name.as_str())
    }

    /// How a reader knows the responder: its name, else the start of its id in brackets;
    /// `None` for a silent row.
    pub(crate) fn label(&self) -> Option<String> {
        let r = self.responder.as_ref()?;
        Some(if r.name.is_empty() { format!("({})", &r.id.to_string()[..8]) } else { r.name.clone() })
    }

    pub(crate) fn id(&self) -> Option<ResponderId> {
        self.responder.as_ref().map(|r| r.id)
    }

    /// The address the acks came from, or for a silent row the host's address.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.responder.as_ref().map(|r| r.addr.ip()).or(self.expected_host)
    }

    /// A multicast responder that answered at least once: what "responders" counts.
    pub(crate) fn is_multicast_responder(&self) -> bool {
        self.path == Path::Multicast && self.responder.is_some() && self.figures.received > 0
    }

    /// Report order: by name, then address, then path, then id, so reruns line up.
    fn sort_key(&self) -> (&str, Option<IpAddr>, u16, Path, Option<ResponderId>) {
        let port = self.responder.as_ref().map_or(0, |r| r.addr.port());
        (self.name(), self.ip(), port, self.path, self.id())
    }
}

/// A responder that restarted during the run: one id stopped answering, a new one with the same
/// name and address took over (stats counts both as one responder, under the first id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub name: String,
    pub before: ResponderId,
    pub after: ResponderId,
    /// Last probe the old id answered, first one the new id answered.
    pub last_seq: u64,
    pub first_seq: u64,
    /// Probes nobody answered in between.
    pub unanswered: u64,
}

/// An outage of one responder (see [`crate::stats::Outage`]), with times relative to the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    pub name: String,
    pub id: ResponderId,
    /// Send time of the first unanswered probe, after the first probe of the run.
    pub start: Duration,
    /// Send time of the first probe answered again; `None` when the run ended first.
    pub end: Option<Duration>,
    pub probes_lost: u64,
    pub first_lost_seq: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: Option<u64>,
}

/// Something worth a line under the table, besides the rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Acks of other probe sessions (another prober on the group).
    ForeignAcks(u64),
    /// Datagrams on the prober's port that were not valid acks.
    Invalid(u64),
    /// With a key: acks without a valid tag.
    Forged(u64),
    /// Probes responders received but did not answer (their rate limit): not loss.
    RateLimited(u64),
    /// Acks this host's socket buffer dropped: local, not network loss.
    LocalDrops(u64),
    SendErrors(u64),
    /// Responders with different addresses share a name: a reader cannot tell the rows apart.
    /// Usually hosts that kept a default host name.
    SharedName {
        name: String,
        addrs: Vec<IpAddr>,
    },
    /// One responder answered the unicast probes of two listed hosts: one host listed under
    /// two of its addresses, judged once on multicast.
    ListedTwice(ListedTwice),
    /// Several responders answered from one address: one host running several responders (or
    /// a NAT), which counts once among the hosts.
    SharedAddress {
        addr: IpAddr,
        names: Vec<String>,
    },
    /// The sender did not keep the rate asked: fewer probes, or the same ones over a longer time.
    /// This host's limit, not the network's.
    SenderFellShort(FellShort),
    /// No responder answered at all; what to check.
    NothingAnswered(Silence),
    /// With `--hosts`: no host answered on the group, but every one answered unicast probes:
    /// the hosts' causes (see `causes`) say what fits.
    NoneOnTheGroup,
    /// Several responders lost the same probes more often than chance: a fault upstream of them.
    SharedLoss(SharedLoss),
    /// With shared faults found: the probes a responder lost on its own.
    AloneLoss {
        name: String,
        probes: u64,
    },
    /// Several responders lost probes, but no more of the same ones than chance gives.
    IndependentLoss(Vec<String>),
    /// The losses of this many responders made too many distinct patterns to compare (see
    /// `shared::MAX_SIGNATURES`): whether they share faults is not said.
    SharedLossSkipped {
        responders: usize,
    },
    /// More responder ids answered than the prober tracks ([`crate::stats::MAX_RESPONDERS`]):
    /// the ids beyond it were counted, not tracked. Without `--key`, any host that sees the
    /// probes can answer them with made-up ids.
    ResponderFlood(crate::stats::Untracked),
    /// This host's wall clock stepped while probes were out: their RTTs were measured without
    /// the step, and acks still back before their probe left were left out.
    ClockStepped(crate::stats::ClockSteps),
    /// Of a responder's forward loss, how much its own host dropped (its socket buffer was
    /// full, as its acks reported), how much the network lost, and how much came after its
    /// latest report (either).
    HostDrops {
        name: String,
        path: Path,
        host: u64,
        network: u64,
        unreported: u64,
    },
    /// Acks reached this host's interface but not mcprobe's socket: this host (its firewall)
    /// drops them. Replaces the "nothing answered" and "group mismatch" hints, which it
    /// disproves.
    AcksDroppedHere(AcksDroppedHere),
    /// A responder's host dropped this prober's probes between its interface and its socket.
    ProbesDroppedAtHost(host_path::ProbesDroppedAtHost),
    /// A membership querier heard on the interface.
    Querier(QuerierSeen),
    /// No membership query for longer than the wait: snooping switches will drop the group.
    QuerierSilent(QuerierSilence),
    /// A host said it refuses this prober's probes for their key (or answered keyed probes
    /// without one): the evidence from its address, on every path. When nothing answered at
    /// all, these take the place of [`Note::NothingAnswered`]: the silence is explained.
    KeyMismatch {
        source: IpAddr,
        counts: KeyCounts,
    },
}

/// What the sender managed against what was asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FellShort {
    pub sent: u64,
    /// Probes asked for (`--count`, or what `--duration` holds at the rate).
    pub asked: u64,
    pub achieved_per_s: f64,
    pub asked_per_s: f64,
    /// Sending took this long; at the rate asked it would have taken `planned`.
    pub span: Duration,
    pub planned: Duration,
    /// `--duration` ended the run before every probe left.
    pub cut_by_deadline: bool,
}

/// When nothing answered: the settings a reader should compare with the responders'.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub group: SocketAddr,
    pub ttl: u32,
    pub keyed: bool,
}

/// Facts about the run as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub session: u64,
    /// Loss was judged from each responder's first answer (`mesh`), as the judgement said.
    pub from_first_answer: bool,
    pub sent: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
    /// Send lateness versus schedule, p50 and p99 (`None` when no probe left).
    pub lateness_p50: Option<Duration>,
    pub lateness_p99: Option<Duration>,
    pub foreign_acks: u64,
    pub invalid: u64,
    pub forged: u64,
    pub local_drops: u64,
    pub send_errors: u64,
    /// The rate the probes left at: (sent − 1) over the time from the first send to the last;
    /// `None` for fewer than two probes. Set whether or not the sender fell short, so a
    /// benchmark can judge a run by the rate it achieved without asking for every probe's row.
    pub sent_per_s: Option<f64>,
    /// The sender fell short of the rate asked (by more than a tenth).
    pub fell_short: Option<FellShort>,
}

/// Everything reported about a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub run: RunFacts,
    /// Every path's rows in report order.
    pub rows: Vec<Row>,
    pub restarts: Vec<Restart>,
    pub outages: Vec<Outage>,
    /// With `--hosts`: the verdict per expected host.
    pub diagnosis: Option<Diagnosis>,
    pub notes: Vec<Note>,
    /// Which losses several responders share (multicast path).
    pub shared: SharedFaults,
    /// What a querier watch heard ([`Findings::with_querier`]); `None` when none was asked for.
    pub querier: Option<QuerierFinding>,
    /// Where along the hosts' paths packets disappeared, from the packet taps.
    pub host_path: host_path::HostPath,
    /// With `--groups`: which responder reached which group.
    pub groups: Option<groups::GroupsFinding>,
}

/// What the findings need to know besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// Loss above this percentage makes a path bad (`--max-loss`, else the default).
    pub threshold_pct: f64,
    /// Where the probes went, for the hint when nothing answered.
    pub group: SocketAddr,
    pub keyed: bool,
    /// Loss is judged from each responder's first answer on each path, not from the first
    /// probe (`mesh`: hosts start at different times).
    pub from_first_answer: bool,
    /// This host's own responder (`mesh`): its acks come back through multicast loop (the
    /// merged matrix's diagonal); it is not an unexpected responder, nor any peer's.
    pub own: Option<ResponderId>,
}

impl Judgement {
    /// Loss above `threshold_pct` is bad; loss counts from the first probe; no own responder.
    pub fn new(threshold_pct: f64, group: SocketAddr, keyed: bool) -> Self {
        Judgement { threshold_pct, group, keyed, from_first_answer: false, own: None }
    }
}

impl Findings {
    pub fn of(o: &Outcome, j: Judgement) -> Findings {
        let mut rows = path_rows(&o.run, Path::Multicast, o.ttl);
        let mut diagnosis = None;
        if !o.unicast.is_empty() {
            let mut listed_twice = Vec::new();
            // Listed addresses that this host's own responder answered (`mesh`): this host's.
            let mut own_address = Vec::new();
            for u in &o.unicast {
                let mut uc = path_rows(&u.run, Path::Unicast, UNICAST_TTL);
                // This host's own responder answering a peer's address (`mesh`; 127.0.0.2 on lo,
                // an AnyIP route): that peer never answered, and the address is this host's.
                let before = uc.len();
                uc.retain(|r| j.own.is_none() || r.id() != j.own);
                if uc.len() < before {
                    own_address.push(u.host);
                }
                if uc.is_empty() {
                    uc.push(Row::silent(u.host, Path::Unicast, u.run.sent()));
                }
                // A multicast row belongs to this host when it comes from its address or from a
                // responder that answered this host's unicast probes (identity from the payload).
                let ids: Vec<ResponderId> = uc.iter().filter_map(Row::id).collect();
                // The responder that answered this host's unicast probes already belongs to
                // another listed host: one host listed under two of its addresses. It is judged
                // once, as the other: every output shows it once, the note says why.
                let twin = rows
                    .iter()
                    .find(|r| {
                        r.path == Path::Multicast
                            && r.expected_host.is_some()
                            && r.id().is_some_and(|i| ids.contains(&i))
                    })
                    .and_then(|r| Some(ListedTwice { host: u.host, as_host: r.expected_host?, name: r.label()? }));
                if let Some(t) = twin {
                    listed_twice.push(t);
                    continue;
                }
                let mut heard = false;
                for r in rows.iter_mut().filter(|r| r.expected_host.is_none()) {
                    let Some(resp) = &r.responder else { continue };
                    // This host's own responder is no listed host's (`mesh`).
                    if j.own == Some(resp.id) {
                        continue;
                    }
                    if resp.addr.ip() == u.host || ids.contains(&resp.id) {
                        r.expected_host = Some(u.host);
                        heard = true;
                    }
                }
                if !heard {
                    rows.push(Row::silent(u.host, Path::Multicast, o.run.sent()));
                }
                rows.extend(uc.into_iter().map(|r| Row { expected_host: Some(u.host), ..r }));
            }
            let local = &o.local_addrs;
            let hosts: Vec<(IpAddr, diagnosis::Signals)> = o
                .unicast
                .iter()
                .filter(|u| !listed_twice.iter().any(|t| t.host == u.host))
                .map(|u| {
                    let mut s = diagnosis::Signals::of(u, local, &o.keys);
                    s.is_self |= own_address.contains(&u.host);
                    (u.host, s)
                })
                .collect();
            let cx = diagnosis::Context {
                threshold_pct: j.threshold_pct,
                mc_ttl: o.ttl,
                port: j.group.port(),
                local,
                from_first_answer: j.from_first_answer,
                group: j.group.ip(),
                acks_tapped: matches!(&o.ack_watch, Some(crate::run::AckWatch::Watched(s)) if s.settled),
            };
            let mut d = diagnosis::diagnose(&hosts, &rows, cx);
            d.listed_twice = listed_twice;
            let own = |a: &SocketAddr| {
                rows.iter()
                    .any(|r| r.id().is_some() && r.id() == j.own && r.responder.as_ref().is_some_and(|x| x.addr == *a))
            };
            d.unexpected.retain(|(_, a)| !own(a));
            host_path::explain_dropped_probes(&mut d, &host_path::probes_dropped_at_hosts(&rows));
            if let Some(drops) = AcksDroppedHere::of(o, j.group.port()) {
                host_path::explain_hosts(&mut d, &drops);
            }
            for r in &mut rows {
                r.verdict = r.expected_host.and_then(|h| d.hosts.iter().find(|d| d.host == h)).map(|d| d.verdict);
            }
            diagnosis = Some(d);
        }
        rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let restarts = restarts(&o.run);
        let run = RunFacts { from_first_answer: j.from_first_answer, ..run_facts(o) };
        let mut notes = notes(o, &rows, diagnosis.as_ref(), j);
        let mut shared = shared_faults(&o.run, &rows);
        // A loss every responder shares, with this host dropping acks or sending in bursts: the
        // cause is known here, and it is not upstream.
        let known = match (run.local_drops, run.fell_short) {
            (n, _) if n > 0 => Some(shared::KnownCause::LocalDrops(n)),
            (_, Some(_)) => Some(shared::KnownCause::SenderBehind),
            _ => None,
        };
        shared.groups.iter_mut().filter(|g| g.everyone).for_each(|g| g.known = known);
        notes.extend(shared_notes(&shared));
        let host_path = host_path::HostPath::of(o, &rows, j.group.port());
        let rate = if o.settings.interval.is_zero() { 0.0 } else { 1.0 / o.settings.interval.as_secs_f64() };
        let groups = groups::GroupsFinding::of(&o.run, &o.settings.groups, rate);
        Findings {
            run,
            outages: outages(&o.run),
            rows,
            restarts,
            diagnosis,
            notes,
            shared,
            querier: None,
            host_path,
            groups,
        }
    }

    /// The multicast rows of responders that answered.
    pub(crate) fn responders(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.is_multicast_responder())
    }

    /// The distinct addresses multicast responders answered from: the hosts, as opposed to the
    /// responders (two responders on one host are two responders, one host).
    pub(crate) fn hosts_answering(&self) -> usize {
        let mut ips: Vec<IpAddr> = self.responders().filter_map(Row::ip).collect();
        ips.sort_unstable();
        ips.dedup();
        ips.len()
    }

    /// Whether a row of `path` exists for more than one path (the table then shows a PATH column).
    pub(crate) fn has_unicast(&self) -> bool {
        self.rows.iter().any(|r| r.path == Path::Unicast)
    }
}

/// The rows of one path's run, one per responder id, in report order.
fn path_rows(run: &Run, path: Path, sent_ttl: u32) -> Vec<Row> {
    let mut hosts: Vec<&HostStats> = run.hosts().iter().collect();
    hosts.sort_by(|a, b| (&a.name, a.addr, a.responder_id).cmp(&(&b.name, b.addr, b.responder_id)));
    hosts
        .into_iter()
        .map(|h| {
            let who = Responder { id: ResponderId(h.responder_id), name: h.name.clone(), addr: h.addr };
            Row::answered(who, path, run.summary(h), sent_ttl)
        })
        .collect()
}

/// The restarts stats linked on the multicast path.
fn restarts(run: &Run) -> Vec<Restart> {
    run.restarts()
        .map(|(i, r)| Restart {
            name: run.hosts()[i].name.clone(),
            before: ResponderId(r.old_id),
            after: ResponderId(r.new_id),
            last_seq: r.old_last_seq,
            first_seq: r.new_first_seq,
            unanswered: r.gap_probes(),
        })
        .collect()
}

fn run_facts(o: &Outcome) -> RunFacts {
    let l = &o.lateness;
    let q = |p: f64| (!l.is_empty()).then(|| Duration::from_nanos(l.value_at_quantile(p)));
    RunFacts {
        session: o.run.config().session,
        from_first_answer: false,
        sent: o.run.sent(),
        elapsed: o.elapsed,
        interrupted: o.interrupted,
        lateness_p50: q(0.5),
        lateness_p99: q(0.99),
        foreign_acks: o.run.foreign_acks,
        invalid: o.run.bogus_acks + o.invalid,
        forged: o.forged,
        local_drops: o.local_drops,
        send_errors: o.send_errors,
        sent_per_s: sent_per_s(o.run.sent(), o.send_span),
        fell_short: fell_short(o),
    }
}

/// (sent − 1) probes over the span from the first to the last (pure).
fn sent_per_s(sent: u64, span: Duration) -> Option<f64> {
    (sent >= 2 && !span.is_zero()).then(|| (sent - 1) as f64 / span.as_secs_f64())
}

/// Whether the sender fell behind the rate asked by more than a tenth: it sent fewer probes than
/// asked before --duration ran out, or took longer than planned. Not after Ctrl-C, and not for
/// fewer than 10 probes (too few to measure a rate); a Poisson schedule's gaps average to the
/// interval too.
fn fell_short(o: &Outcome) -> Option<FellShort> {
    let (sent, asked) = (o.run.sent(), o.settings.count);
    if o.interrupted || sent < 10 || o.settings.interval.is_zero() {
        return None;
    }
    let asked_per_s = 1.0 / o.settings.interval.as_secs_f64();
    let span = o.send_span;
    let achieved_per_s = sent_per_s(sent, span).unwrap_or(asked_per_s);
    let planned = o.settings.interval * (asked.saturating_sub(1)).min(u32::MAX as u64) as u32;
    let cut_by_deadline = sent < asked;
    (cut_by_deadline || achieved_per_s < 0.9 * asked_per_s).then_some(FellShort {
        sent,
        asked,
        achieved_per_s: achieved_per_s.min(asked_per_s),
        asked_per_s,
        span,
        planned,
        cut_by_deadline,
    })
}

/// Every outage of the multicast path, in report order.
fn outages(run: &Run) -> Vec<Outage> {
    let t0 = run.start_ns().unwrap_or(0);
    let since = |ns: u64| Duration::from_nanos(ns.saturating_sub(t0));
    let mut hosts: Vec<&HostStats> = run.hosts().iter().collect();
    hosts.sort_by(|a, b| (&a.name, a.addr, a.responder_id).cmp(&(&b.name, b.addr, b.responder_id)));
    let mut out = Vec::new();
    for h in hosts {
        for o in &h.outages {
            out.push(Outage {
                name: h.name.clone(),
                id: ResponderId(h.responder_id),
                start: since(o.start_unix_ns),
                end: o.end_unix_ns.map(since),
                probes_lost: o.probes_lost,
                first_lost_seq: o.first_lost_seq,
                start_unix_ns: o.start_unix_ns,
                end_unix_ns: o.end_unix_ns,
            });
        }
    }
    out
}

fn notes(o: &Outcome, rows: &[Row], d: Option<&Diagnosis>, j: Judgement) -> Vec<Note> {
    let mut notes = Vec::new();
    let f = run_facts(o);
    let counts = [
        (f.foreign_acks, Note::ForeignAcks as fn(u64) -> Note),
        (f.invalid, Note::Invalid),
        (f.forged, Note::Forged),
        (rows.iter().filter(|r| r.path == Path::Multicast).map(|r| r.figures.limited).sum(), Note::RateLimited),
        (f.local_drops, Note::LocalDrops),
        (f.send_errors, Note::SendErrors),
    ];
    notes.extend(counts.into_iter().filter(|(n, _)| *n > 0).map(|(n, note)| note(n)));
    notes.extend(f.fell_short.map(Note::SenderFellShort));
    notes.extend(untracked(o).map(Note::ResponderFlood));
    notes.extend(clock_steps(o).map(Note::ClockStepped));
    notes.extend(o.run.name_clashes().into_iter().map(|(name, addrs)| Note::SharedName { name, addrs }));
    notes.extend(shared_addresses(rows).into_iter().map(|(addr, names)| Note::SharedAddress { addr, names }));
    notes.extend(d.into_iter().flat_map(|d| d.listed_twice.iter().cloned().map(Note::ListedTwice)));
    notes.extend(host_path::probes_dropped_at_hosts(rows).into_iter().map(Note::ProbesDroppedAtHost));
    notes.extend(rows.iter().filter_map(|r| {
        let loss = &r.figures.loss;
        let (host, network) = (loss.host_drops?, loss.network_forward()?);
        (host + loss.unreported > 0).then_some(())?;
        Some(Note::HostDrops { name: r.label()?, path: r.path, host, network, unreported: loss.unreported })
    }));
    let answered = rows.iter().any(Row::is_multicast_responder);
    // Acks that reached this host and were dropped here prove the responders answered: the
    // hints below about settings that differ would send the reader the wrong way.
    if let Some(drops) = AcksDroppedHere::of(o, j.group.port()) {
        notes.push(Note::AcksDroppedHere(drops));
        return notes;
    }
    let keys = key_mismatches(o);
    match d {
        Some(d) if !answered && !d.hosts.is_empty() && d.hosts.iter().all(|h| h.unicast_received > 0) => {
            notes.push(Note::NoneOnTheGroup)
        }
        _ if !answered && f.sent > 0 && keys.is_empty() => {
            notes.push(Note::NothingAnswered(Silence { group: j.group, ttl: o.ttl, keyed: j.keyed }))
        }
        _ => {}
    }
    notes.extend(keys);
    notes
}

/// Acks measured across a step of this host's wall clock, on every path together.
fn clock_steps(o: &Outcome) -> Option<crate::stats::ClockSteps> {
    let mut all = crate::stats::ClockSteps::default();
    for c in std::iter::once(&o.run).chain(o.unicast.iter().map(|u| &u.run)).map(|r| r.clock_steps) {
        all.corrected += c.corrected;
        all.excluded += c.excluded;
        if c.largest_ns.unsigned_abs() > all.largest_ns.unsigned_abs() {
            all.largest_ns = c.largest_ns;
        }
    }
    (all.corrected + all.excluded > 0).then_some(all)
}

/// The acks of responder ids beyond the bound, on every path of the run together.
fn untracked(o: &Outcome) -> Option<crate::stats::Untracked> {
    let mut all: Option<crate::stats::Untracked> = None;
    for u in std::iter::once(&o.run).chain(o.unicast.iter().map(|u| &u.run)).filter_map(|r| r.untracked()) {
        let a = all.get_or_insert_with(Default::default);
        a.acks += u.acks;
        a.ids += u.ids;
        a.ids_at_least |= u.ids_at_least;
        for ip in &u.from {
            if a.from.len() < 4 && !a.from.contains(ip) {
                a.from.push(*ip);
            }
        }
    }
    all
}

/// Addresses several multicast responders answered from, with their names.
fn shared_addresses(rows: &[Row]) -> Vec<(IpAddr, Vec<String>)> {
    let mut by_ip: std::collections::BTreeMap<IpAddr, Vec<String>> = Default::default();
    for r in rows.iter().filter(|r| r.is_multicast_responder()) {
        if let (Some(ip), Some(label)) = (r.ip(), r.label()) {
            by_ip.entry(ip).or_default().push(label);
        }
    }
    by_ip.into_iter().filter(|(_, names)| names.len() > 1).collect()
}

/// The key evidence of every path, one note per source address, in the order first heard.
fn key_mismatches(o: &Outcome) -> Vec<Note> {
    let mut all = KeyEvidence::default();
    all.merge(&o.keys);
    o.unicast.iter().for_each(|u| all.merge(&u.keys));
    all.sources().map(|(source, counts)| Note::KeyMismatch { source, counts }).collect()
}

/// Which probes the multicast responders lost together. A restarted responder is one row (stats
/// links its ids), present from its first answer to the end of the run.
fn shared_faults(run: &Run, rows: &[Row]) -> SharedFaults {
    // Only probes the table counts as lost may be shared: a responder that rate-limited some
    // probes left them unanswered too, and which of its unanswered probes were limited is not
    // known probe by probe, so it is left out rather than counted wrong.
    let sets: Vec<shared::LossSet> = rows
        .iter()
        .filter(|r| r.is_multicast_responder() && r.figures.limited == 0)
        .filter_map(|r| {
            let id = r.id()?;
            let h = run.hosts().iter().find(|h| h.responder_id == id.0)?;
            Some(shared::LossSet {
                name: r.label()?,
                first_seq: r.figures.first_seq?,
                end_seq: run.sent().min(h.lost.complete_until()),
                lost: h.lost.ranges(),
            })
        })
        .collect();
    shared::analyse(&sets)
}

fn shared_notes(s: &SharedFaults) -> Vec<Note> {
    let mut notes: Vec<Note> = s.groups.iter().cloned().map(Note::SharedLoss).collect();
    if !s.groups.is_empty() {
        notes.extend(s.alone.iter().map(|(name, probes)| Note::AloneLoss { name: name.clone(), probes: *probes }));
    } else if s.alone.len() > 1 {
        notes.push(Note::IndependentLoss(s.alone.iter().map(|(n, _)| n.clone()).collect()));
    }
    notes.extend(s.skipped.map(|responders| Note::SharedLossSkipped { responders }));
    notes
}

/// A threshold the run did not meet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Miss {
    /// A responder lost more than `--max-loss`.
    Loss { name: String, addr: SocketAddr, loss_pct: f64, max_pct: f64 },
    /// Fewer than `--min-responders` answered.
    TooFew { answered: usize, min: usize },
    /// Responders answered from fewer than `--min-hosts` addresses.
    TooFewHosts { hosts: usize, min: usize },
    /// No responder answered at all.
    NobodyAnswered,
}

/// The thresholds a run is judged by (`--max-loss`, `--min-responders`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Thresholds {
    pub max_loss_pct: Option<f64>,
    pub min_responders: Option<usize>,
    pub min_hosts: Option<usize>,
}

impl Findings {
    /// The thresholds missed. They judge the multicast path's responders; expected hosts that
    /// never answered are the diagnosis's to judge. A run in which nothing answered misses
    /// (like ping without a reply).
    pub(crate) fn misses(&self, t: Thresholds) -> Vec<Miss> {
        let mut misses = Vec::new();
        if let Some(max) = t.max_loss_pct {
            for r in self.responders().filter(|r| r.figures.loss_pct() > max) {
                let (name, addr) = r.responder.as_ref().map(|x| (x.name.clone(), x.addr)).expect("a responder row");
                misses.push(Miss::Loss { name, addr, loss_pct: r.figures.loss_pct(), max_pct: max });
            }
        }
        let answered = self.responders().count();
        if let Some(min) = t.min_responders.filter(|&m| answered < m) {
            misses.push(Miss::TooFew { answered, min });
        }
        let hosts = self.hosts_answering();
        if let Some(min) = t.min_hosts.filter(|&m| hosts < m) {
            misses.push(Miss::TooFewHosts { hosts, min });
        }
        if answered == 0 && self.run.sent > 0 {
            misses.push(Miss::NobodyAnswered);
        }
        misses
    }
}

#[cfg(test)]
pub(crate) mod synthetic;
#[cfg(test)]
mod tests;
