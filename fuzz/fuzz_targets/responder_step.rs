//! Fuzz the responder's per-datagram decision, `mcprobe::responder::Engine::step`, over sequences
//! of datagrams (so the session table, replay windows and limits carry state between them).
//!
//! Checks: it never panics; a reply is never larger than its datagram (no amplification); a
//! keyed engine's acks carry a valid tag and each (session, seq) is answered at most once and
//! only to the address that started its session, and its other replies are notices about the
//! key, at most one a second per source; a plain engine only ever replies `ack`.
//!
//! Input: byte 0 chooses the engine (bit 0 keyed, bit 1 plain, bit 2 tight limits); then records
//! of [length, flags, source host, clock offset in ms (i8)] followed by `length` datagram bytes.
//! Record flag bit 0 stamps the datagram's tx_ns near the engine's clock (bytes 22..30, so the
//! freshness check can pass), bit 1 seals it with the engine's key for the group, the port and
//! its source (bit 2 set: for another port, so the tag cannot be valid there).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcprobe::auth::{Binding, Key};
use mcprobe::responder::{AllowList, Datagram, Engine, Outcome, ResponderConfig, PLAIN_ACK};
use mcprobe::wire::{self, Message};

const T0: u64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let mut rest: &[u8] = rest;
    let (keyed, plain, tight) = (mode & 1 != 0 && mode & 2 == 0, mode & 2 != 0, mode & 4 != 0);
    let key = Key::from_secret(b"fuzz").unwrap();
    let cfg = ResponderConfig {
        group: IpAddr::from([239, 255, 42, 42]),
        groups: vec![IpAddr::from([239, 255, 42, 42])],
        source: None,
        port: 24_242,
        iface: None,
        name: "fuzz-node".into(),
        reply_from: None,
        rcvbuf: 0,
        rate_limit: if tight { 3 } else { 0 },
        total_rate_limit: if tight { 5 } else { 0 },
        max_clock_skew: Duration::from_secs(5),
        allow: AllowList::default(),
        key: keyed.then(|| key.clone()),
        plain,
        tap: false,
        churn: None,
        ramp: None,
        ack_trains: false,
    };
    let mut engine = Engine::new(&cfg, 7);
    let mut answered: HashSet<(u64, u64)> = HashSet::new();
    let mut owner: HashMap<u64, SocketAddr> = HashMap::new();
    let mut last_notice: HashMap<IpAddr, u64> = HashMap::new();
    let mut i = 0u64;
    while let [len, flags, host, dt, tail @ ..] = rest {
        let (len, flags, host, dt) = (*len, *flags, *host, *dt);
        let len = (len as usize).min(tail.len());
        let mut bytes = tail[..len].to_vec();
        rest = &tail[len..];
        i += 1;
        let rx_ns = T0 + i * 1_000_000;
        if flags & 1 != 0 && bytes.len() >= 30 {
            let tx = rx_ns.wrapping_add_signed(dt as i8 as i64 * 100_000_000);
            bytes[22..30].copy_from_slice(&tx.to_be_bytes());
        }
        let from = SocketAddr::from(([10, 0, 0, host % 4], 40_000));
        if flags & 2 != 0 {
            let port = if flags & 4 != 0 { 24_243 } else { 24_242 };
            key.seal_probe(&mut bytes, &Binding { dst: SocketAddr::new(cfg.group, port), src: from.ip() });
        }
        let d = Datagram { bytes: &bytes, from, dst: None, ttl: 1, rx_ns };
        let step = engine.step(d, || rx_ns + 1000);
        let notice = step.is_notice();
        let Some(reply) = step.reply else { continue };
        if notice {
            assert!(keyed, "an unkeyed engine sent a notice");
            assert!(reply.len() <= bytes.len(), "amplification: a {}-byte notice for {}", reply.len(), bytes.len());
            assert!(matches!(wire::decode(reply), Ok(Message::Notice(_))), "a notice that is not one");
            let before = last_notice.insert(from.ip(), rx_ns);
            assert!(before.is_none_or(|t| rx_ns - t >= 1_000_000_000), "two notices to {from} within a second");
            engine.notice_sent(true);
            continue;
        }
        assert_eq!(step.outcome, Outcome::Answered);
        assert!(reply.len() <= bytes.len(), "amplification: {} bytes for {}", reply.len(), bytes.len());
        if plain {
            assert_eq!(reply, PLAIN_ACK);
            continue;
        }
        let Ok(Message::Ack(ack)) = wire::decode(reply) else { panic!("a reply that is not an ack") };
        if keyed {
            assert!(key.verify(reply), "a keyed reply without a valid tag");
            assert!(answered.insert((ack.session, ack.seq)), "answered twice: {} {}", ack.session, ack.seq);
            assert_eq!(*owner.entry(ack.session).or_insert(from), from, "answered to another address");
        }
        engine.sent(true);
    }
});
