//! The responder engine: joins the group and answers each valid probe with a unicast ack.
//!
//! It answers nothing else: foreign datagrams, acks and broken probes are counted and dropped. An
//! ack is never larger than the probe that caused it (see [`crate::wire`]), so a responder cannot
//! be used to amplify traffic. The engine reports what happens through [`Event`]s and leaves the
//! printing to its caller. What keeps it safe to leave running for months is in [`guard`].

mod guard;

pub use guard::{AllowList, RateLimiter, SessionTable, MAX_TRACKED};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::auth::Key;
use crate::net::{self, Iface};
use crate::wire::{self, Ack, Arrival, Message};

/// Default per-source limit, probes per second: far above any LAN check, low enough that a
/// responder cannot be driven to use a whole core by one source.
pub const DEFAULT_RATE_LIMIT: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct ResponderConfig {
    pub group: IpAddr,
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
    pub allow: AllowList,
    /// With a key, only probes keyed with it are answered, and acks are keyed.
    pub key: Option<Key>,
    /// Behave like the course lab's receiver: answer `ack` to any datagram.
    pub plain: bool,
}

/// What a plain responder sends back, as the lab's receiver does.
pub const PLAIN_ACK: &[u8] = b"ack";

/// Counters a responder prints when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
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
    /// Probes without a valid tag for this responder's key.
    pub unauthenticated: u64,
    /// Probes the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    pub local_drops: u64,
}

/// What the responder tells its caller.
#[derive(Debug, Clone)]
pub enum Event {
    /// The socket is bound and joined: probes will be answered from now on.
    Listening { id: u64 },
    /// The first probe of a session it had not seen (or had forgotten) was answered.
    NewSession { session: u64, from: SocketAddr, ttl: u8, arrival: Arrival },
}

/// A bound, joined responder, ready to [`run`](Responder::run).
pub struct Responder {
    cfg: ResponderConfig,
    sock: UdpSocket,
    reply: Option<UdpSocket>,
    /// The ack being sent: identity (responder id, name) set once, the rest per probe.
    ack: Ack,
    sessions: SessionTable,
    limiter: Option<RateLimiter>,
    counters: Counters,
}

impl Responder {
    /// Binds and joins. Errors here are the user's to fix (bad interface, port in use).
    pub fn bind(cfg: ResponderConfig) -> Result<Self> {
        let sock = net::responder_socket(cfg.group, cfg.port, cfg.iface.as_ref(), cfg.source, cfg.rcvbuf)?;
        let reply = cfg.reply_from.map(net::reply_socket).transpose()?;
        // Random per start: a restarted responder is visibly a new one.
        let ack = Ack { responder: rand::random(), name: cfg.name.clone(), ..Ack::default() };
        Ok(Responder {
            limiter: RateLimiter::new(cfg.rate_limit),
            cfg,
            sock,
            reply,
            ack,
            sessions: SessionTable::default(),
            counters: Counters::default(),
        })
    }

    pub fn id(&self) -> u64 {
        self.ack.responder
    }

    /// Answers probes until `stop` is set; returns the counters.
    pub fn run(mut self, stop: &AtomicBool, mut on_event: impl FnMut(&Event)) -> Result<Counters> {
        on_event(&Event::Listening { id: self.ack.responder });
        let mut buf = vec![0u8; wire::MAX_PROBE_SIZE + 1];
        let mut cmsg = net::cmsg_buffer();
        while !stop.load(Ordering::Relaxed) {
            let Some(rx) = net::recv(&self.sock, &mut buf, &mut cmsg)? else { continue };
            if let Some(d) = rx.local_drops {
                self.counters.local_drops = d as u64;
            }
            let datagram = &buf[..rx.len.min(buf.len())];
            if self.cfg.plain {
                self.handle_plain(datagram, rx, &mut on_event);
            } else {
                self.handle(datagram, rx, &mut on_event);
            }
        }
        Ok(self.counters)
    }

    /// The lab's receiver: any datagram of at least 3 bytes gets `ack` (shorter ones would make
    /// the reply larger than the request). Allow list and rate limit still apply. Each new source
    /// address is reported like a new session.
    fn handle_plain(&mut self, datagram: &[u8], rx: net::Received, on_event: &mut impl FnMut(&Event)) {
        self.counters.probes += 1;
        if !self.cfg.allow.allows(rx.from.ip()) {
            self.counters.denied += 1;
            return;
        }
        if datagram.len() < PLAIN_ACK.len() {
            self.counters.too_small += 1;
            return;
        }
        // Never answer an answer: another responder's `ack`, or anything sent from the group's
        // port (where responders answer from), so two plain responders cannot be set ping-ponging
        // by one forged datagram.
        if datagram == PLAIN_ACK || rx.from.port() == self.cfg.port {
            self.counters.ignored += 1;
            return;
        }
        if !self.limiter.as_mut().is_none_or(|l| l.allow(rx.from.ip(), rx.rx_ns)) {
            self.counters.limited += 1;
            return;
        }
        let source = net::source_key(&rx.from);
        let (_, new_source) = self.sessions.get(source, rx.rx_ns);
        let sock = self.reply.as_ref().unwrap_or(&self.sock);
        match sock.send_to(PLAIN_ACK, rx.from) {
            Ok(_) => self.counters.acks_sent += 1,
            Err(_) => self.counters.send_errors += 1,
        }
        if new_source {
            self.counters.sessions += 1;
            let arrival = if rx.dst.is_some_and(|d| d.is_multicast()) { Arrival::Multicast } else { Arrival::Unicast };
            on_event(&Event::NewSession { session: source, from: rx.from, ttl: rx.ttl, arrival });
        }
    }

    fn handle(&mut self, datagram: &[u8], rx: net::Received, on_event: &mut impl FnMut(&Event)) {
        let probe = match wire::decode(datagram) {
            Ok(Message::Probe(p)) => p,
            Ok(_) => {
                self.counters.ignored += 1;
                return;
            }
            Err(wire::DecodeError::Version(_)) => {
                self.counters.ignored += 1;
                return;
            }
            Err(_) => {
                self.counters.invalid += 1;
                return;
            }
        };
        self.counters.probes += 1;
        if !self.cfg.allow.allows(rx.from.ip()) {
            self.counters.denied += 1;
            return;
        }
        let tag_len = if self.cfg.key.is_some() { wire::TAG_LEN } else { 0 };
        if let Some(key) = &self.cfg.key {
            if !key.verify(datagram) {
                self.counters.unauthenticated += 1;
                return;
            }
        }
        if datagram.len() < wire::ACK_FIXED_LEN + tag_len {
            self.counters.too_small += 1;
            return;
        }
        let arrival = match rx.dst {
            Some(d) if d.is_multicast() => Arrival::Multicast,
            Some(_) => Arrival::Unicast,
            None => Arrival::Unknown,
        };
        let allowed = self.limiter.as_mut().is_none_or(|l| l.allow(rx.from.ip(), rx.rx_ns));
        let (state, new_session) = self.sessions.get(probe.session, rx.rx_ns);
        if new_session {
            self.counters.sessions += 1;
        }
        state.received += 1;
        if !allowed {
            // Counted per session, and the count travels in the next ack, so the prober reports
            // these as rate-limited rather than as network loss.
            state.limited += 1;
            self.counters.limited += 1;
            return;
        }
        // One ack, refilled for every probe: the per-probe path allocates no name.
        let ack = &mut self.ack;
        ack.session = probe.session;
        ack.seq = probe.seq;
        ack.tx_ns = probe.tx_ns;
        ack.rx_ns = rx.rx_ns;
        // The wire carries the low 32 bits; the prober restores the rest (wire::unwrap_counter).
        ack.received = state.received as u32;
        ack.ack_seq = state.acks_sent as u32;
        ack.limited = state.limited as u32;
        ack.ttl = rx.ttl;
        ack.arrival = arrival;
        // Transmit time as late as possible: just before encoding and sending.
        ack.dwell_ns = net::now_ns().saturating_sub(rx.rx_ns).min(u32::MAX as u64) as u32;
        let Some(mut bytes) = ack.encode_within(datagram.len() - tag_len) else { return };
        if let Some(key) = &self.cfg.key {
            key.seal(&mut bytes);
        }
        let sock = self.reply.as_ref().unwrap_or(&self.sock);
        // The ack's number is used even if sending fails, so the prober counts a failed send as
        // a lost ack (return loss) rather than losing track of it.
        state.acks_sent += 1;
        match sock.send_to(&bytes, rx.from) {
            Ok(_) => self.counters.acks_sent += 1,
            Err(_) => self.counters.send_errors += 1,
        }
        // Told after the first ack left, so "session" means "answered", not just "heard".
        if new_session {
            on_event(&Event::NewSession { session: probe.session, from: rx.from, ttl: rx.ttl, arrival });
        }
    }
}
