//! The responder engine: joins the group and answers each valid probe with a unicast ack.
//!
//! It answers nothing else: foreign datagrams, acks and broken probes are counted and dropped. An
//! ack is never larger than the probe that caused it (see [`crate::wire`]), so a responder cannot
//! be used to amplify traffic. The engine reports what happens through [`Event`]s and leaves the
//! printing to its caller.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::net::{self, Iface};
use crate::wire::{self, Ack, Arrival, Message};

/// Sessions idle this long are forgotten: a prober that comes back is a new session.
const SESSION_IDLE_NS: u64 = 300 * 1_000_000_000;
/// Most sessions tracked at once, so a flood of fake session ids cannot grow memory unbounded.
const MAX_SESSIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct ResponderConfig {
    pub group: Ipv4Addr,
    pub port: u16,
    pub iface: Option<Iface>,
    /// Travels in every ack that has room for it.
    pub name: String,
    /// Send acks from this address instead of the group socket (the demo's distinct "hosts").
    pub reply_from: Option<Ipv4Addr>,
    pub rcvbuf: usize,
}

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

#[derive(Debug)]
struct SessionState {
    received: u64,
    acks_sent: u64,
    limited: u64,
    last_seen_ns: u64,
}

/// A bound, joined responder, ready to [`run`](Responder::run).
pub struct Responder {
    cfg: ResponderConfig,
    sock: UdpSocket,
    reply: Option<UdpSocket>,
    id: u64,
    sessions: HashMap<u64, SessionState>,
    counters: Counters,
}

impl Responder {
    /// Binds and joins. Errors here are the user's to fix (bad interface, port in use).
    pub fn bind(cfg: ResponderConfig) -> Result<Self> {
        let sock = net::responder_socket(cfg.group, cfg.port, cfg.iface.as_ref(), cfg.rcvbuf)?;
        let reply = cfg.reply_from.map(net::reply_socket).transpose()?;
        Ok(Responder {
            cfg,
            sock,
            reply,
            // Random per start: a restarted responder is visibly a new one.
            id: rand::random(),
            sessions: HashMap::new(),
            counters: Counters::default(),
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Answers probes until `stop` is set; returns the counters.
    pub fn run(mut self, stop: &AtomicBool, mut on_event: impl FnMut(&Event)) -> Result<Counters> {
        on_event(&Event::Listening { id: self.id });
        let mut buf = vec![0u8; wire::MAX_PROBE_SIZE + 1];
        let mut cmsg = net::cmsg_buffer();
        while !stop.load(Ordering::Relaxed) {
            let Some(rx) = net::recv(&self.sock, &mut buf, &mut cmsg)? else { continue };
            if let Some(d) = rx.local_drops {
                self.counters.local_drops = d as u64;
            }
            self.handle(&buf[..rx.len.min(buf.len())], rx, &mut on_event);
        }
        Ok(self.counters)
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
        if datagram.len() < wire::ACK_FIXED_LEN {
            self.counters.too_small += 1;
            return;
        }
        let arrival = match rx.dst {
            Some(d) if d.is_multicast() => Arrival::Multicast,
            Some(_) => Arrival::Unicast,
            None => Arrival::Unknown,
        };
        let (state, new_session) = self.session(probe.session, rx.rx_ns);
        state.received += 1;
        state.last_seen_ns = rx.rx_ns;
        let (received, ack_seq, limited) = (state.received, state.acks_sent, state.limited);
        let mut ack = Ack {
            session: probe.session,
            seq: probe.seq,
            tx_ns: probe.tx_ns,
            responder: self.id,
            rx_ns: rx.rx_ns,
            dwell_ns: 0,
            // The wire carries the low 32 bits; the prober restores the rest (wire::unwrap_counter).
            received: received as u32,
            ack_seq: ack_seq as u32,
            limited: limited as u32,
            ttl: rx.ttl,
            arrival,
            name: self.cfg.name.clone(),
        };
        // Transmit time as late as possible: just before encoding and sending.
        ack.dwell_ns = net::now_ns().saturating_sub(rx.rx_ns).min(u32::MAX as u64) as u32;
        let Some(bytes) = ack.encode_within(datagram.len()) else { return };
        let sock = self.reply.as_ref().unwrap_or(&self.sock);
        match sock.send_to(&bytes, rx.from) {
            Ok(_) => {
                self.counters.acks_sent += 1;
                if let Some(s) = self.sessions.get_mut(&probe.session) {
                    s.acks_sent += 1;
                }
            }
            Err(_) => self.counters.send_errors += 1,
        }
        // Told after the first ack left, so "session" means "answered", not just "heard".
        if new_session {
            on_event(&Event::NewSession { session: probe.session, from: rx.from, ttl: rx.ttl, arrival });
        }
    }

    /// The session's state; `true` when it is new (first probe, or forgotten since).
    fn session(&mut self, session: u64, now_ns: u64) -> (&mut SessionState, bool) {
        let new = !self.sessions.contains_key(&session);
        if new {
            self.make_room(now_ns);
            self.counters.sessions += 1;
        }
        let state = self.sessions.entry(session).or_insert(SessionState {
            received: 0,
            acks_sent: 0,
            limited: 0,
            last_seen_ns: now_ns,
        });
        (state, new)
    }

    /// Forgets idle sessions; when still full, the least recently seen one.
    fn make_room(&mut self, now_ns: u64) {
        if self.sessions.len() < MAX_SESSIONS {
            return;
        }
        self.sessions.retain(|_, s| now_ns.saturating_sub(s.last_seen_ns) < SESSION_IDLE_NS);
        if self.sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = self.sessions.iter().min_by_key(|(_, s)| s.last_seen_ns).map(|(k, _)| *k) {
                self.sessions.remove(&oldest);
            }
        }
    }
}
