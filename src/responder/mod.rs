//! The responder engine: joins the group and answers each valid probe with a unicast ack.
//!
//! It answers nothing else: foreign datagrams, acks and broken probes are counted and dropped. An
//! ack is never larger than the probe that caused it (see [`crate::wire`]), so a responder cannot
//! be used to amplify traffic. The engine reports what happens through [`Event`]s and leaves the
//! printing to its caller. What keeps it safe to leave running for months is in `guard.rs`.
//!
//! The decision about each datagram is a pure step, [`Engine::step`]: datagram, source and
//! timestamps in, the ack's bytes (or none) and counter changes out, with the clock passed in. Unit
//! tests drive it with synthetic datagrams and a fake clock; [`Responder`] only adds the sockets.
//!
//! With a key, a probe is answered only when its tag is valid for where it arrived (the
//! destination address, this responder's port, the source address: see `crate::auth`), it is
//! fresh (its send time within `max_clock_skew` of the responder's clock), new (its (session,
//! sequence) not answered before) and from the address that started its session: a captured
//! probe, replayed from anywhere to anywhere, gets nothing. Without a key anyone can make
//! probes, so none of this would help: an open responder relies on the rate limits and the
//! no-amplification rule (see the README's threat model).
//!
//! A keyed responder that refuses a probe for its key (none, or another) tells the prober with
//! a notice ([`wire::Notice`]), if the probe asks for notices: one per source address a second
//! at most, [`NOTICE_TOTAL_RATE`] a second in all, each spending a token of the total budget
//! too, and never larger than the probe. A notice is a reply nobody authenticated, so these
//! bounds are what keeps it from being a tool: see the threat model.

pub(crate) mod arrivals;
mod guard;
mod heard;
pub(crate) mod join_leave;
pub(crate) mod notice;
mod probe_tap;
pub(crate) mod prober_log;

// The benches and the fuzz target drive these parts of the step directly.
pub use guard::{is_fresh, AllowList, Budget, SeqWindow, SessionTable, DEFAULT_MAX_CLOCK_SKEW_NS};
mod ramp;
pub(crate) use guard::{skew_ns, Notices, RateLimiter, SeqCheck, MAX_CLOCK_SKEW_NS};
pub use ramp::RampSpec;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::auth::{Binding, BoundKeys, Key, ProbeTag};
use crate::net::{self, Iface};
use crate::wire::{self, Ack, Arrival, Message, Notice, NoticeReason, Probe};

/// Notices per second across all sources (bursts of as many), besides one a second per source:
/// enough for a LAN's probers to learn of a key mismatch within a second or two, few enough
/// that forged probes from many addresses draw at most this many unauthenticated replies.
pub const NOTICE_TOTAL_RATE: u32 = 100;
/// Notices per second to one source address, in bursts of one.
const NOTICE_RATE_PER_SOURCE: f64 = 1.0;

#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// The group, or the first of `groups`.
    pub group: IpAddr,
    /// Every group joined (`--groups`), `group` first; one group without it.
    pub groups: Vec<IpAddr>,
    /// Join source-specifically: only datagrams from this source reach the responder.
    pub source: Option<IpAddr>,
    pub port: u16,
    pub iface: Option<Iface>,
    /// Travels in every ack that has room for it.
    pub name: String,
    /// Send acks from this address instead of the group socket (the demo's distinct "hosts").
    pub reply_from: Option<Ipv4Addr>,
    pub rcvbuf: usize,
    /// Probes per second answered per source address; 0 for no limit.
    pub rate_limit: u32,
    /// Acks per second across all sources; 0 for no limit.
    pub total_rate_limit: u32,
    /// With a key: how far a probe's send time may be from this host's clock.
    pub max_clock_skew: Duration,
    pub allow: AllowList,
    /// With a key, only probes keyed with it are answered, and acks are keyed.
    pub key: Option<Key>,
    /// Behave like the course lab's receiver: answer `ack` to any datagram.
    pub plain: bool,
    /// Tap the interfaces for probes that reach this host but not the socket (needs
    /// CAP_NET_RAW; without it, an [`Event::TapUnavailable`]).
    pub tap: bool,
    /// `--churn PERIOD`: leave and rejoin the groups on a schedule, measuring each join's and
    /// leave's delay (see [`join_leave`]).
    pub churn: Option<Duration>,
    /// `--ramp`: join `groups` a step at a time, for `mcprobe max-groups` (see [`ramp`]).
    pub ramp: Option<RampSpec>,
    /// `--ack-trains`: the acks of one batch to one prober go as one UDP GSO train (less CPU
    /// at 100 000+ probes/s; a software path drops a train as one packet).
    pub ack_trains: bool,
}

#[cfg(test)]
impl ResponderConfig {
    /// A responder on `group`, port 24242, without limits, allow list or interface.
    pub(crate) fn for_tests(group: IpAddr, name: &str, key: Option<Key>) -> Self {
        ResponderConfig {
            group,
            groups: vec![group],
            source: None,
            port: 24_242,
            iface: None,
            name: name.into(),
            reply_from: None,
            rcvbuf: 0,
            rate_limit: 0,
            total_rate_limit: 0,
            max_clock_skew: Duration::from_nanos(DEFAULT_MAX_CLOCK_SKEW_NS),
            allow: AllowList::default(),
            key,
            plain: false,
            tap: false,
            churn: None,
            ramp: None,
            ack_trains: false,
        }
    }
}

/// Checks `--max-clock-skew`: more than 0 (a parser rule) and at most [`MAX_CLOCK_SKEW_NS`].
pub(crate) fn check_max_clock_skew(d: Duration) -> Result<Duration> {
    if d.as_nanos() > MAX_CLOCK_SKEW_NS as u128 {
        anyhow::bail!(
            "--max-clock-skew {}: at most {}s (a longer window lets captured probes be replayed longer); sync the clocks with NTP instead",
            humantime::format_duration(d),
            MAX_CLOCK_SKEW_NS / 1_000_000_000
        );
    }
    Ok(d)
}

/// What a plain responder sends back, as the lab's receiver does.
pub const PLAIN_ACK: &[u8] = b"ack";

/// Counters a responder prints when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub probes: u64,
    pub acks_sent: u64,
    /// Datagrams that are not mcprobe messages at all, or are malformed.
    pub invalid: u64,
    /// Valid mcprobe messages a responder does not answer (acks, other versions).
    pub ignored: u64,
    /// Probes smaller than the smallest ack: answering would amplify, so they are dropped.
    pub too_small: u64,
    pub send_errors: u64,
    pub sessions: u64,
    /// Probes not answered because their source exceeded the rate limit.
    pub limited: u64,
    /// Probes from sources outside the allow list.
    pub denied: u64,
    /// Probes without a valid tag for this responder's key (and for where they arrived).
    pub unauthenticated: u64,
    /// Probes keyed with this key by an earlier mcprobe, whose tags bind no destination: refused.
    pub unbound: u64,
    /// Notices sent to probers about their key (see the module comment).
    pub notices: u64,
    /// Keyed probes sent too long ago or in the future for `max_clock_skew`: a clock out of sync,
    /// or an old capture replayed.
    pub stale: u64,
    /// Keyed probes whose (session, sequence) was answered before, or too far behind the newest.
    pub replayed: u64,
    /// Keyed probes of a session from another address than the one that started it.
    pub wrong_source: u64,
    /// Probes not answered because the whole responder was over its total budget.
    pub over_budget: u64,
    /// Probes the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    pub local_drops: u64,
    /// Probes that reached this host's interface but never the socket, as the tap counted them
    /// (a firewall, rp_filter, a join on another interface).
    pub filtered: u64,
}

/// What the responder tells its caller. The notices about refused probes come at most once per
/// source (again after ten minutes) and one a second in all: see [`Notices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The socket is bound and joined: probes will be answered from now on.
    Listening { id: u64 },
    /// The first probe of a session it had not seen (or had forgotten) was answered.
    /// `join_delay_ns`: when it came by multicast and was not the session's probe 0, so its
    /// prober was already sending, the time from this responder's join to it (RFC 2432's join
    /// delay).
    NewSession { session: u64, from: SocketAddr, ttl: u8, arrival: Arrival, join_delay_ns: Option<u64> },
    /// Probes from `from` fail the key check: its prober has another key, or none, or they are
    /// copies sent elsewhere than their prober sent them.
    BadMac { from: SocketAddr },
    /// Probes from `from` are keyed with this key by an earlier mcprobe, whose tags bind no
    /// destination: refused.
    Unbound { from: SocketAddr },
    /// A keyed probe from `from` was sent `skew_ns` before it arrived (negative: after, by this
    /// host's clock), more than `max_ns` either way: the clocks are out of sync (or it is an old
    /// capture).
    ClockSkew { from: SocketAddr, skew_ns: i64, max_ns: u64 },
    /// A keyed probe of `session`, which `bound` started, came from `from`: a replay or a forged
    /// source.
    WrongSource { from: SocketAddr, session: u64, bound: SocketAddr },
    /// The total budget of `rate` acks per second is used up: probes are being refused (and
    /// counted as rate-limited in later acks).
    OverBudget { rate: u32 },
    /// Probes from `from` reached this host's interface but never the socket: `new` more since
    /// the last line, `total` in all. `cause`: the reverse-path filter's refusal in words, when
    /// routing refuses such packets; else a firewall is the likely cause.
    ProbesFiltered { from: IpAddr, new: u64, total: u64, cause: Option<String> },
    /// Multicast probes for the group arrive on interface `arrive`, but the group was joined on
    /// `joined`: they never reach the socket.
    JoinedElsewhere { arrive: String, joined: String, probes: u64 },
    /// The packet tap could not start (why, in one line): probes filtered on this host go
    /// uncounted.
    TapUnavailable(String),
    /// `--churn`: how the join and leave delays are timed, or a leave or join that failed (one
    /// line each).
    Churn(String),
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered: the step's reply holds the ack.
    Answered,
    /// Not an mcprobe message, or malformed.
    Invalid,
    /// A valid mcprobe message that is not answered (an ack, another version, an answer).
    Ignored,
    Denied,
    /// No valid tag; the reply, if any, is a notice to the prober.
    Unauthenticated,
    /// Keyed by an earlier mcprobe, without binding.
    Unbound,
    TooSmall,
    Stale,
    Replayed,
    WrongSource,
    /// Over the source's rate limit.
    Limited,
    /// Over the whole responder's budget.
    OverBudget,
}

/// One datagram as the socket layer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub from: SocketAddr,
    /// Its destination address when known: tells multicast from unicast arrival.
    pub dst: Option<IpAddr>,
    /// IP TTL it arrived with; 0 when unknown.
    pub ttl: u8,
    /// Kernel receive time, ns since the epoch (CLOCK_REALTIME).
    pub rx_ns: u64,
}

/// The decision about one datagram.
#[derive(Debug)]
pub struct Step<'a> {
    pub outcome: Outcome,
    /// Bytes to send back to the datagram's source.
    pub reply: Option<&'a [u8]>,
    /// To tell the caller once the reply (if any) has left.
    pub event: Option<Event>,
}

impl Step<'_> {
    fn drop(outcome: Outcome) -> Self {
        Step { outcome, reply: None, event: None }
    }

    /// The reply is a notice about the prober's key, not an answer.
    pub fn is_notice(&self) -> bool {
        self.reply.is_some() && self.outcome == Outcome::Unauthenticated
    }
}

/// How often the budget notice may repeat while the budget stays exhausted.
const BUDGET_NOTICE_GAP_NS: u64 = 10_000_000_000;

/// The per-source limit and the total budget.
struct Limits {
    per_source: Option<RateLimiter>,
    budget: Option<Budget>,
    total_rate_limit: u32,
    budget_notice_ns: Option<u64>,
}

impl Limits {
    /// Per-source limit, then the total budget (a source over its own limit spends none of it).
    /// What they refuse is counted here and in `limited` of the session, which travels in its
    /// next ack.
    fn admit(&mut self, d: &Datagram<'_>, counters: &mut Counters) -> Result<(), (Outcome, Option<Event>)> {
        if !self.per_source.as_mut().is_none_or(|l| l.allow(d.from.ip(), d.rx_ns)) {
            counters.limited += 1;
            return Err((Outcome::Limited, None));
        }
        if !self.budget.as_mut().is_none_or(|b| b.allow(d.rx_ns)) {
            counters.over_budget += 1;
            let due = self.budget_notice_ns.is_none_or(|t| d.rx_ns.saturating_sub(t) >= BUDGET_NOTICE_GAP_NS);
            let event = due.then(|| {
                self.budget_notice_ns = Some(d.rx_ns);
                Event::OverBudget { rate: self.total_rate_limit }
            });
            return Err((Outcome::OverBudget, event));
        }
        Ok(())
    }
}

/// How often notices may go out: per source, and in all.
struct NoticeLimits {
    per_source: RateLimiter,
    total: Budget,
}

/// The responder's decisions and state, without sockets: see the module comment.
pub struct Engine {
    allow: AllowList,
    key: Option<Key>,
    /// The bound keys of the bindings seen last (see `crate::auth`).
    bound_keys: BoundKeys,
    plain: bool,
    /// The destination a probe is bound to when the socket did not say where it arrived.
    group: IpAddr,
    port: u16,
    max_skew_ns: u64,
    /// The ack being sent: identity (responder id, name) set once, the rest per probe.
    ack: Ack,
    /// The encoded ack, one buffer reused for every probe.
    out: Vec<u8>,
    sessions: SessionTable,
    limits: Limits,
    notice_limits: NoticeLimits,
    bad_mac_notices: Notices,
    unbound_notices: Notices,
    skew_notices: Notices,
    source_notices: Notices,
    counters: Counters,
    /// When the group was joined (CLOCK_REALTIME ns), once the caller says so.
    joined_ns: Option<u64>,
    /// With a packet tap: probes at the interface against probes at the socket, per source.
    arrivals: Option<arrivals::Arrivals>,
    /// Multicast probes at the socket, per source: told in acks (see [`heard`]).
    heard: heard::Heard,
    /// `--churn`: each group's latest join and leave delay, told in acks to its probes.
    join_leave: Option<join_leave::AckFigures>,
    /// `--ramp`: its memberships so far, told in acks (see [`ramp`]).
    ramp: Option<std::sync::Arc<ramp::Shared>>,
}

impl Engine {
    /// `id` is the responder's random id, carried in every ack.
    pub fn new(cfg: &ResponderConfig, id: u64) -> Self {
        Engine {
            allow: cfg.allow.clone(),
            key: cfg.key.clone(),
            bound_keys: BoundKeys::default(),
            plain: cfg.plain,
            group: cfg.group,
            port: cfg.port,
            max_skew_ns: cfg.max_clock_skew.as_nanos().min(u64::MAX as u128) as u64,
            ack: Ack { responder: id, name: cfg.name.clone(), ..Ack::default() },
            out: Vec::with_capacity(wire::ACK_FIXED_LEN + 1 + wire::MAX_NAME_LEN + wire::TAG_LEN),
            sessions: SessionTable::default(),
            limits: Limits {
                per_source: RateLimiter::new(cfg.rate_limit),
                budget: Budget::new(cfg.total_rate_limit),
                total_rate_limit: cfg.total_rate_limit,
                budget_notice_ns: None,
            },
            notice_limits: NoticeLimits {
                per_source: RateLimiter::with_burst(NOTICE_RATE_PER_SOURCE, 1.0),
                total: Budget::new(NOTICE_TOTAL_RATE).expect("a rate above 0"),
            },
            bad_mac_notices: Notices::default(),
            unbound_notices: Notices::default(),
            skew_notices: Notices::default(),
            source_notices: Notices::default(),
            counters: Counters::default(),
            joined_ns: None,
            arrivals: None,
            heard: heard::Heard::default(),
            join_leave: cfg.churn.map(|_| join_leave::AckFigures::new(cfg.groups.len())),
            ramp: None,
        }
    }

    /// A packet tap runs: count what reaches the socket against what it sees, and tell the
    /// prober in each ack's extension.
    pub(crate) fn watch_arrivals(&mut self) {
        self.arrivals = Some(arrivals::Arrivals::default());
    }

    /// The tap saw `n` probes from `from` reach the interface.
    pub(crate) fn tap_saw(&mut self, from: IpAddr, n: u64, now_ns: u64) {
        if let Some(a) = &mut self.arrivals {
            a.at_iface(from, n, now_ns);
        }
    }

    /// Compares the tap's count with the socket's; call it right after the socket was drained.
    pub(crate) fn reconcile(&mut self, now_ns: u64) -> Vec<arrivals::Filtered> {
        let found = self.arrivals.as_mut().map_or_else(Vec::new, |a| a.reconcile(now_ns));
        self.counters.filtered += found.iter().map(|f| f.new).sum::<u64>();
        found
    }

    /// The group was joined at `ns` (CLOCK_REALTIME): acks report the join delay from it.
    pub fn joined(&mut self, ns: u64) {
        self.joined_ns = Some(ns);
    }

    pub(crate) fn id(&self) -> u64 {
        self.ack.responder
    }

    #[cfg(test)]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The kernel's count of datagrams dropped for buffer space, as the socket reports it.
    pub(crate) fn set_local_drops(&mut self, drops: u64) {
        if let Some(a) = &mut self.arrivals {
            a.buffer_dropped(drops.saturating_sub(self.counters.local_drops));
        }
        self.counters.local_drops = drops;
    }

    /// Records whether the reply of the last step could be sent.
    pub fn sent(&mut self, ok: bool) {
        if ok {
            self.counters.acks_sent += 1;
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// Records whether a notice (a step's reply that [`Step::is_notice`]) could be sent.
    pub fn notice_sent(&mut self, ok: bool) {
        if ok {
            self.counters.notices += 1;
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// Decides about one datagram. `now_ns` is read once, just before an ack is encoded (its
    /// dwell time); a test passes a fake clock.
    pub fn step(&mut self, d: Datagram<'_>, now_ns: impl FnOnce() -> u64) -> Step<'_> {
        // What the tap counts, counted here the same way: every datagram in plain mode, else
        // every probe, whatever becomes of it.
        if let Some(a) = &mut self.arrivals {
            if self.plain || matches!(crate::net::tap::peek(d.bytes), Some(crate::net::tap::Peek::Probe { .. })) {
                a.at_socket(d.from.ip(), d.rx_ns);
            }
        }
        if self.plain {
            self.step_plain(d)
        } else {
            self.step_probe(d, now_ns)
        }
    }

    /// The lab's receiver: any datagram of at least 3 bytes gets `ack` (shorter ones would make
    /// the reply larger than the request). Allow list and rate limits still apply. Each new
    /// source address is reported like a new session.
    fn step_plain(&mut self, d: Datagram<'_>) -> Step<'_> {
        self.counters.probes += 1;
        if !self.allow.allows(d.from.ip()) {
            self.counters.denied += 1;
            return Step::drop(Outcome::Denied);
        }
        if d.bytes.len() < PLAIN_ACK.len() {
            self.counters.too_small += 1;
            return Step::drop(Outcome::TooSmall);
        }
        // Never answer an answer: another responder's `ack`, or anything sent from the group's
        // port (where responders answer from), so two plain responders cannot be set ping-ponging
        // by one forged datagram.
        if d.bytes == PLAIN_ACK || d.from.port() == self.port {
            self.counters.ignored += 1;
            return Step::drop(Outcome::Ignored);
        }
        if let Err((outcome, event)) = self.limits.admit(&d, &mut self.counters) {
            return Step { outcome, reply: None, event };
        }
        let source = net::source_key(&d.from);
        let (_, new_source) = self.sessions.get(source, d.from, d.rx_ns);
        let event = new_source.then(|| {
            self.counters.sessions += 1;
            let arrival = if d.dst.is_some_and(|a| a.is_multicast()) { Arrival::Multicast } else { Arrival::Unicast };
            Event::NewSession { session: source, from: d.from, ttl: d.ttl, arrival, join_delay_ns: None }
        });
        Step { outcome: Outcome::Answered, reply: Some(PLAIN_ACK), event }
    }

    fn step_probe(&mut self, d: Datagram<'_>, now_ns: impl FnOnce() -> u64) -> Step<'_> {
        let probe = match wire::decode(d.bytes) {
            Ok(Message::Probe(p)) => p,
            Ok(_) | Err(wire::DecodeError::Version(_)) => {
                self.counters.ignored += 1;
                return Step::drop(Outcome::Ignored);
            }
            Err(_) => {
                self.counters.invalid += 1;
                return Step::drop(Outcome::Invalid);
            }
        };
        self.counters.probes += 1;
        if !self.allow.allows(d.from.ip()) {
            self.counters.denied += 1;
            return Step::drop(Outcome::Denied);
        }
        let tag_len = if self.key.is_some() { wire::TAG_LEN } else { 0 };
        if let Some(key) = &self.key {
            // Where the datagram itself says it went: its destination address (the group, or
            // this host for a unicast probe), this port, and its source.
            let binding = Binding { dst: SocketAddr::new(d.dst.unwrap_or(self.group), self.port), src: d.from.ip() };
            let reason = match key.check_probe_kept(d.bytes, &binding, &mut self.bound_keys) {
                ProbeTag::Valid => None,
                ProbeTag::Missing => Some(NoticeReason::KeyNeeded),
                ProbeTag::Invalid => Some(NoticeReason::KeyMismatch),
                ProbeTag::Unbound => {
                    self.counters.unbound += 1;
                    let event =
                        self.unbound_notices.due(d.from.ip(), d.rx_ns).then_some(Event::Unbound { from: d.from });
                    return Step { outcome: Outcome::Unbound, reply: None, event };
                }
            };
            if let Some(reason) = reason {
                self.counters.unauthenticated += 1;
                let event = self.bad_mac_notices.due(d.from.ip(), d.rx_ns).then_some(Event::BadMac { from: d.from });
                let reply = self.notice(&d, &probe, reason);
                return Step { outcome: Outcome::Unauthenticated, reply, event };
            }
        }
        if d.bytes.len() < wire::ACK_FIXED_LEN + tag_len {
            self.counters.too_small += 1;
            return Step::drop(Outcome::TooSmall);
        }
        let keyed = self.key.is_some();
        // Checked before the session is looked up: a stale probe neither starts nor touches one.
        if keyed && !is_fresh(probe.tx_ns, d.rx_ns, self.max_skew_ns) {
            self.counters.stale += 1;
            let event = self.skew_notices.due(d.from.ip(), d.rx_ns).then(|| Event::ClockSkew {
                from: d.from,
                skew_ns: skew_ns(probe.tx_ns, d.rx_ns),
                max_ns: self.max_skew_ns,
            });
            return Step { outcome: Outcome::Stale, reply: None, event };
        }
        let arrival = match d.dst {
            Some(a) if a.is_multicast() => Arrival::Multicast,
            Some(_) => Arrival::Unicast,
            None => Arrival::Unknown,
        };
        let (state, new_session) = self.sessions.get(probe.session, d.from, d.rx_ns);
        // One lookup for both: a session from another address only has its idle time refreshed.
        if let Some(bound) = state.source.filter(|b| keyed && *b != d.from) {
            self.counters.wrong_source += 1;
            let event = self.source_notices.due(d.from.ip(), d.rx_ns).then_some(Event::WrongSource {
                from: d.from,
                session: probe.session,
                bound,
            });
            return Step { outcome: Outcome::WrongSource, reply: None, event };
        }
        // A replay is not a probe received: the session's counts stay those of the prober's
        // probes, and it spends no rate-limit token.
        if keyed && state.seqs.check(probe.seq) != SeqCheck::New {
            self.counters.replayed += 1;
            return Step::drop(Outcome::Replayed);
        }
        if new_session {
            self.counters.sessions += 1;
            if arrival == Arrival::Multicast {
                state.join_delay_ns = self.joined_ns.map(|j| d.rx_ns.saturating_sub(j));
            }
        }
        state.note_arrival(probe.seq, self.counters.local_drops);
        state.received += 1;
        if arrival == Arrival::Multicast {
            self.heard.multicast(d.from.ip(), d.rx_ns);
        }
        let join_leave = group_delays(&mut self.join_leave, arrival, d.dst, (d.rx_ns, probe.seq));
        if let (Some(f), Some(_), true) = (self.join_leave.as_mut(), join_leave, probe.asks_ext) {
            let name = if self.ack.name.is_empty() { 0 } else { 1 + self.ack.name.len().min(wire::MAX_NAME_LEN) };
            f.check_room(d.bytes.len() - tag_len, name);
        }
        if let Err((outcome, event)) = self.limits.admit(&d, &mut self.counters) {
            // Counted per session, and the count travels in the next ack, so the prober reports
            // these as rate-limited rather than as network loss.
            state.limited += 1;
            return Step { outcome, reply: None, event };
        }
        // One ack, refilled for every probe: the per-probe path allocates nothing.
        let ack = &mut self.ack;
        ack.session = probe.session;
        ack.seq = probe.seq;
        ack.tx_ns = probe.tx_ns;
        ack.rx_ns = d.rx_ns;
        // The wire carries the low 32 bits; the prober restores the rest (wire::unwrap_counter).
        ack.received = state.received as u32;
        ack.ack_seq = state.acks_sent as u32;
        ack.limited = state.limited as u32;
        ack.ttl = d.ttl;
        ack.arrival = arrival;
        ack.ext = probe.asks_ext.then(|| wire::AckExt {
            host_drops: state.host_drops.min(u32::MAX as u64) as u32,
            join_delay_ns: state.join_delay_ns,
            member_ns: self.joined_ns.map(|j| d.rx_ns.saturating_sub(j)),
            filtered: self.arrivals.as_ref().map(|a| a.filtered(d.from.ip()).min(u64::from(u32::MAX - 1)) as u32),
            heard: self.heard.of(d.from.ip()).map(|n| n.min(u64::from(u32::MAX - 1)) as u32),
            // Told where the prober cannot know it: a unicast probe says nothing of the group.
            // And with the join/leave record, which is about the probe's group; a ramping
            // responder (never churning: see `config::check_churn`) tells it in every ack, its
            // memberships record goes with it.
            group: if arrival == Arrival::Unicast || self.ramp.is_some() {
                Some(self.group)
            } else {
                join_leave.map(|(g, _)| g)
            },
            join_leave: join_leave.map(|(_, f)| f),
            memberships: self.ramp.as_ref().map(|r| r.memberships()),
        });
        // The ack's number is used even if sending fails, so the prober counts a failed send as
        // a lost ack (return loss) rather than losing track of it.
        state.acks_sent += 1;
        // Transmit time as late as possible: just before encoding and sending.
        ack.dwell_ns = now_ns().saturating_sub(d.rx_ns).min(u32::MAX as u64) as u32;
        if !ack.encode_within_into(d.bytes.len() - tag_len, &mut self.out) {
            return Step::drop(Outcome::TooSmall); // unreachable: the size was checked above
        }
        if let Some(key) = &self.key {
            key.seal(&mut self.out);
        }
        // Told after the first ack left, so "session" means "answered", not just "heard".
        let event = new_session.then(|| Event::NewSession {
            session: probe.session,
            from: d.from,
            ttl: d.ttl,
            arrival,
            join_delay_ns: state.join_delay_ns.filter(|_| probe.seq > 0),
        });
        Step { outcome: Outcome::Answered, reply: Some(&self.out), event }
    }

    /// The notice for a probe refused for its key, when the probe asks for one, has room for
    /// it, and the limits allow: one per source a second, the notices' own total, then a token
    /// of the whole budget, in that order (a notice refused by an earlier limit spends none of
    /// the later ones).
    fn notice(&mut self, d: &Datagram<'_>, probe: &Probe, reason: NoticeReason) -> Option<&[u8]> {
        if !wire::asks_notice(d.bytes) || d.bytes.len() < wire::NOTICE_LEN {
            return None;
        }
        let due = self.notice_limits.per_source.allow(d.from.ip(), d.rx_ns)
            && self.notice_limits.total.allow(d.rx_ns)
            && self.limits.budget.as_mut().is_none_or(|b| b.allow(d.rx_ns));
        if !due {
            return None;
        }
        let n = Notice {
            session: probe.session,
            seq: probe.seq,
            tx_ns: probe.tx_ns,
            responder: self.ack.responder,
            reason,
        };
        n.encode_into(&mut self.out);
        Some(&self.out)
    }
}

/// A bound, joined responder, ready to [`run`](Responder::run): the engine and its sockets.
pub(crate) struct Responder {
    /// One socket, or with `--groups` one per group (or per block of memberships) and one for
    /// unicast (see [`net::responder_sockets`]); acks leave by the first.
    socks: Vec<UdpSocket>,
    reply: Option<UdpSocket>,
    engine: Engine,
    /// The packet tap, or why it could not start (told as the first event after `Listening`).
    tap: Option<Result<probe_tap::ProbeTap, String>>,
    /// `--churn`: the schedule and the delays' measurement, and how they are timed when not at
    /// the interface (told after `Listening`).
    churn: Option<(join_leave::Churn, Option<String>)>,
    cfg: ResponderConfig,
    /// `--ramp`: the thread joining the groups, stopped when the responder is dropped.
    ramp: Option<ramp::Ramp>,
}

/// The sockets holding the memberships: every group joined now, or with `--ramp` empty ones
/// the ramp fills (see [`ramp`]).
fn open_sockets(cfg: &ResponderConfig) -> Result<(Vec<UdpSocket>, Option<ramp::Ramp>)> {
    match cfg.ramp {
        Some(spec) => ramp::start(cfg, spec).map(|(s, r)| (s, Some(r))),
        None => Ok((net::responder_sockets(&cfg.groups, cfg.port, cfg.iface.as_ref(), cfg.source, cfg.rcvbuf)?, None)),
    }
}

impl Responder {
    /// Binds and joins. Errors here are the user's to fix (bad interface, port in use).
    pub(crate) fn bind(cfg: ResponderConfig) -> Result<Self> {
        // Read before the join, so that no probe can arrive before it (a few µs of socket set-up
        // are counted in the join delay).
        // The join/leave tap starts first: it times the first joins' reports too.
        let mut churn = cfg.churn.map(|period| join_leave::Churn::start(&cfg, period));
        let joining_ns = net::now_ns();
        let (socks, ramp) = open_sockets(&cfg)?;
        if let Some((c, _)) = &mut churn {
            c.joined_all(joining_ns);
        }
        let reply = cfg.reply_from.map(net::reply_socket).transpose()?;
        // Random per start: a restarted responder is visibly a new one.
        let mut engine = Engine::new(&cfg, rand::random());
        engine.ramp = ramp.as_ref().map(|r| r.shared.clone());
        engine.joined(joining_ns);
        // Groups whose probes never reach the socket by design: those --churn has left, or
        // those --ramp has not joined (the two do not go together).
        let left = match (&churn, &ramp) {
            (Some((c, _)), _) => c.left(),
            (None, Some(r)) => r.not_joined.clone(),
            (None, None) => Default::default(),
        };
        let tap = cfg.tap.then(|| probe_tap::ProbeTap::start(&cfg, left));
        if let Some(Ok(_)) = &tap {
            engine.watch_arrivals();
        }
        Ok(Responder { socks, reply, engine, tap, churn, cfg, ramp })
    }

    /// How many sockets the responder reads (see [`net::responder_sockets`]).
    pub(crate) fn sockets(&self) -> usize {
        self.socks.len()
    }

    /// Answers probes until `stop` is set; returns the counters.
    ///
    /// Reads every datagram already queued in one system call and sends their acks in one
    /// (see [`net::RecvBatch`]): at low rates a batch is one probe, so nothing changes; at high
    /// rates the per-datagram system calls were what the responder could not keep up with. An
    /// ack's dwell time is stamped when it is encoded, so in a batch of several the later ones'
    /// processing (well under a µs each) is not in the dwell of the earlier ones.
    pub(crate) fn run(mut self, stop: &AtomicBool, mut on_event: impl FnMut(&Event)) -> Result<Counters> {
        on_event(&Event::Listening { id: self.engine.id() });
        if let Some(why) = self.ramp.as_mut().and_then(|r| r.unwatched.take()) {
            on_event(&Event::TapUnavailable(why));
        }
        let tap = match self.tap.take() {
            Some(Ok(t)) => Some(t),
            Some(Err(why)) => {
                on_event(&Event::TapUnavailable(why));
                None
            }
            None => None,
        };
        let mut watch = tap.map(|t| HostPath::new(t, &self.cfg));
        let mut rx = net::RecvBatch::new(wire::MAX_PROBE_SIZE + 1);
        // An ack is never larger than its probe. Each its own packet, as probes are (no UDP GSO):
        // a segmented train of acks crosses a software bridge, a virtual NIC, nftables or netem
        // as one packet, so one drop there lost several consecutive acks at once: with 1 %
        // return loss at 20 000/s the prober counted 55 outages of 3-7 probes where independent
        // loss makes none (results/limits-2026-12-03.md).
        // `--ack-trains` asks for them anyway, for rates a responder cannot answer otherwise on
        // a small machine (each ack alone: ~140 000/s here; trains: ~200 000/s).
        let mut tx = if self.cfg.ack_trains {
            net::SendBatch::new(wire::MAX_PROBE_SIZE)
        } else {
            net::SendBatch::unsegmented(wire::MAX_PROBE_SIZE)
        };
        let mut events = Vec::new();
        let Responder { socks, reply, engine, churn, .. } = &mut self;
        if let Some(note) = churn.as_mut().and_then(|(_, n)| n.take()) {
            on_event(&Event::Churn(note));
        }
        let out = reply.as_ref().unwrap_or(&socks[0]);
        // The kernel's drop count is per socket: the engine gets their sum.
        let mut drops = Drops { per_socket: vec![0; socks.len()], total: 0 };
        let mut ready = Vec::with_capacity(socks.len());
        let mut set = if socks.len() > 1 { Some(net::ReadySet::new(socks)?) } else { None };
        let mut timeout = net::ReadTimeout::default();
        while !stop.load(Ordering::Relaxed) {
            // Until the next probe or the next duty: the tap's comparison, `--churn`'s schedule,
            // and at most STOP_TICK for the stop flag (nothing can wake the read for it).
            let wait = next_wait(watch.as_ref(), churn.as_ref().map(|(c, _)| c));
            // One socket: a blocking read with its timeout, one system call. Several: a wait
            // on all of them (epoll), then each ready one drained.
            ready.clear();
            match set.as_mut() {
                None => {
                    timeout.arm(&socks[0], wait)?;
                    ready.push(0)
                }
                Some(set) => set.wait(&mut ready, wait)?,
            }
            let mut drained = true;
            for &i in &ready {
                let n = rx.recv(&socks[i])?;
                drained &= n < net::batch::BATCH;
                answer_batch(engine, &rx, n, (&mut drops, i), &mut tx, out, &mut events);
            }
            // Only right after the sockets were drained: see `arrivals`.
            if let Some(w) = watch.as_mut().filter(|_| drained) {
                w.look(engine, &mut events);
            }
            churn_tick(churn, socks, engine, &mut events);
            // Told after the acks left, as before batching.
            for ev in events.drain(..) {
                on_event(&ev);
            }
        }
        Ok(self.engine.counters)
    }
}

/// How long the responder's read may wait: until the tap's next comparison or `--churn`'s next
/// step, and at most [`net::STOP_TICK`].
fn next_wait(watch: Option<&HostPath>, churn: Option<&join_leave::Churn>) -> Duration {
    let mut wait = net::STOP_TICK;
    if let Some(w) = watch {
        let due = w.last_ns.saturating_add(LOOK_EVERY_NS);
        wait = wait.min(Duration::from_nanos(due.saturating_sub(net::now_ns())));
    }
    if let Some(at) = churn.and_then(join_leave::Churn::next_due) {
        wait = wait.min(at.saturating_duration_since(std::time::Instant::now()));
    }
    wait
}

/// `--churn`: a multicast probe to `dst` arrived at `rx_ns`; the group's latest join and leave
/// delay for its ack, with the group.
fn group_delays(
    figures: &mut Option<join_leave::AckFigures>,
    arrival: Arrival,
    dst: Option<IpAddr>,
    (rx_ns, seq): (u64, u64),
) -> Option<(IpAddr, wire::GroupDelays)> {
    let (figures, group) = (figures.as_mut()?, dst.filter(|_| arrival == Arrival::Multicast)?);
    figures.arrived(group, rx_ns, seq);
    figures.of(group).map(|f| (group, f))
}

/// `--churn`: the schedule's due leaves and joins, and the latest delays into the engine.
fn churn_tick(
    churn: &mut Option<(join_leave::Churn, Option<String>)>,
    socks: &[UdpSocket],
    engine: &mut Engine,
    events: &mut Vec<Event>,
) {
    if let (Some((c, _)), Some(figures)) = (churn.as_mut(), engine.join_leave.as_mut()) {
        events.extend(c.tick(socks, figures).map(Event::Churn));
    }
}

/// The kernel's count of datagrams each socket dropped (SO_RXQ_OVFL), and their sum, kept as
/// they change: with a socket per group, summing them per datagram would be a thousand additions.
struct Drops {
    per_socket: Vec<u64>,
    total: u64,
}

/// Answers the `n` datagrams of one read on socket `i` and sends their acks in one system call.
fn answer_batch(
    engine: &mut Engine,
    rx: &net::RecvBatch,
    n: usize,
    (drops, i): (&mut Drops, usize),
    tx: &mut net::SendBatch,
    out: &UdpSocket,
    events: &mut Vec<Event>,
) {
    for k in 0..n {
        let (bytes, r) = rx.get(k);
        if let Some(d) = r.local_drops.map(u64::from) {
            // The count only grows (a counter that wrapped is taken as it is).
            drops.total = drops.total - drops.per_socket[i] + d;
            drops.per_socket[i] = d;
            engine.set_local_drops(drops.total);
        }
        let datagram = Datagram { bytes, from: r.from, dst: r.dst, ttl: r.ttl, rx_ns: r.rx_ns };
        let step = engine.step(datagram, net::now_ns);
        // A notice goes alone and at once: they are rare (one a second per source), and the
        // batch's counts could not tell a failed notice from a failed ack.
        if step.is_notice() {
            let ok = step.reply.is_some_and(|bytes| out.send_to(bytes, r.from).is_ok());
            events.extend(step.event);
            engine.notice_sent(ok);
            continue;
        }
        // A batch has a slot per datagram, each as large as a probe, so every ack fits; were
        // one not to, it goes alone.
        let alone = step.reply.filter(|bytes| !tx.push(bytes, r.from)).map(|bytes| out.send_to(bytes, r.from).is_ok());
        events.extend(step.event);
        if let Some(ok) = alone {
            engine.sent(ok);
        }
    }
    if !tx.is_empty() {
        let (sent, failed) = tx.flush(out);
        (0..sent).for_each(|_| engine.sent(true));
        (0..failed).for_each(|_| engine.sent(false));
    }
}

/// How often the tap's count is compared with the socket's.
const LOOK_EVERY_NS: u64 = 1_000_000_000;
/// A sighting this recent may not have reached the socket yet when it was drained: the next
/// comparison takes it.
const SETTLE_NS: u64 = 5_000_000;

/// The responder's side of the host path: its tap, and the lines it has to tell.
struct HostPath {
    tap: probe_tap::ProbeTap,
    last_ns: u64,
    notices: Notices,
    /// Interfaces already named as getting the group without the join.
    elsewhere_told: Vec<u32>,
    /// Where probes should arrive: the joined interface's name and this host's address on it.
    iif: Option<String>,
    local: Option<IpAddr>,
}

impl HostPath {
    fn new(tap: probe_tap::ProbeTap, cfg: &ResponderConfig) -> Self {
        let iif = cfg
            .iface
            .as_ref()
            .map(|i| i.name.clone())
            .or_else(|| nix::net::if_::if_indextoname(tap.joined).ok().and_then(|n| n.into_string().ok()));
        let local = cfg.iface.as_ref().and_then(|i| i.source_for(cfg.group));
        HostPath { tap, last_ns: 0, notices: Notices::default(), elsewhere_told: Vec::new(), iif, local }
    }

    /// Once a second: the tap's sightings into the engine, the comparison, and a line per
    /// source newly found dropped here (at most one per source every ten minutes).
    fn look(&mut self, engine: &mut Engine, events: &mut Vec<Event>) {
        let now = net::now_ns();
        if now.saturating_sub(self.last_ns) < LOOK_EVERY_NS {
            return;
        }
        self.last_ns = now;
        self.tap.take_before(now.saturating_sub(SETTLE_NS), |from, n| engine.tap_saw(from, n, now));
        for f in engine.reconcile(now) {
            if self.notices.due(f.from, now) {
                let cause = match (&self.iif, self.local) {
                    (Some(iif), Some(local)) if f.from.is_ipv4() => {
                        crate::net::route::reverse_path_refuses(local, f.from, iif).map(|r| r.describe())
                    }
                    _ => None,
                };
                events.push(Event::ProbesFiltered { from: f.from, new: f.new, total: f.total, cause });
            }
        }
        let joined = self.iif.clone().unwrap_or_else(|| "the default interface".into());
        for (ifindex, probes) in self.tap.elsewhere() {
            if !self.elsewhere_told.contains(&ifindex) {
                self.elsewhere_told.push(ifindex);
                let arrive = nix::net::if_::if_indextoname(ifindex)
                    .ok()
                    .and_then(|n| n.into_string().ok())
                    .unwrap_or_else(|| format!("interface {ifindex}"));
                events.push(Event::JoinedElsewhere { arrive, joined: joined.clone(), probes });
            }
        }
    }
}

#[cfg(test)]
mod tests;
