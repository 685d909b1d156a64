//! The statistics at their edges, end to end on loopback: a scripted responder, written here from
//! the wire format the README and `src/wire.rs` document (not with mcprobe's own encoder or
//! decoder), answers a real `mcprobe probe` so that each case has figures known in advance; every
//! output (summary.csv, intervals.csv, probes.csv and the JSON) must show them. Plus the real
//! responder's rate limit and its counters.

use crate::common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Probes in the scripted run, 2 ms apart; acks are late after 400 ms.
const N: u64 = 400;

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A probe as the README's wire format lays it out: `MCP`, version 1, type 1, flags, then
/// session, seq and tx_ns, big-endian, from byte 6.
struct Probe {
    session: [u8; 8],
    seq: u64,
    tx_ns: [u8; 8],
}

fn parse_probe(d: &[u8]) -> Option<Probe> {
    if d.len() < 30 || &d[..6] != b"MCP\x01\x01\x00" {
        return None;
    }
    Some(Probe {
        session: d[6..14].try_into().unwrap(),
        seq: u64::from_be_bytes(d[14..22].try_into().unwrap()),
        tx_ns: d[22..30].try_into().unwrap(),
    })
}

/// The counters an ack carries, as a responder keeps them for one session.
#[derive(Clone, Copy, Default)]
struct Counters {
    /// Probes received, the one being answered included.
    received: u32,
    /// Acks sent before this one: this ack's `ack_seq`, from 0.
    acks: u32,
    limited: u32,
}

/// An ack, field by field as documented: header (flags bit 0 = name follows), session, seq,
/// tx_ns (echoed), responder id, rx_ns, dwell_ns, received, ack_seq, limited, ttl, arrival
/// (1 = multicast), then name length and name.
fn encode_ack(p: &Probe, id: u64, name: &str, c: Counters, dwell_ns: u32) -> Vec<u8> {
    let mut b = b"MCP\x01\x02\x01".to_vec();
    b.extend_from_slice(&p.session);
    b.extend_from_slice(&p.seq.to_be_bytes());
    b.extend_from_slice(&p.tx_ns);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&now_ns().to_be_bytes());
    for v in [dwell_ns, c.received, c.acks, c.limited] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[1, 1, name.len() as u8]);
    b.extend_from_slice(name.as_bytes());
    assert_eq!(b.len(), 64 + 1 + name.len());
    b
}

/// What a persona does with one probe.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    /// Never reaches it: not counted.
    Unheard,
    /// Counted, answered, the ack lost on the way back.
    AckLost,
    /// Counted, not answered: over its rate limit.
    Limited,
    Answer,
}

/// One scripted responder. `fate` decides each probe; `answer` adds what the network or a
/// broken responder does beyond that.
struct Persona {
    id: u64,
    name: &'static str,
    fate: fn(u64) -> Fate,
    c: Counters,
    /// An ack held back until the next one is sent.
    stash: Option<Vec<u8>>,
}

/// Acks held back to be sent later (late or reordered), with when to send them.
type Held = Vec<(Instant, Vec<u8>)>;

fn personas() -> Vec<Persona> {
    let p = |id, name, fate| Persona { id, name, fate, c: Counters::default(), stash: None };
    vec![
        p(1, "s-split", |s| match s {
            10..15 => Fate::Unheard,
            30..40 => Fate::AckLost,
            390.. => Fate::Unheard,
            _ => Fate::Answer,
        }),
        p(2, "s-backwards", |s| match s {
            10..15 => Fate::Unheard,
            30..40 => Fate::AckLost,
            390.. => Fate::Unheard,
            _ => Fate::Answer,
        }),
        p(3, "s-copies", |_| Fate::Answer),
        p(4, "s-dupprobe", |s| if (10..15).contains(&s) { Fate::Unheard } else { Fate::Answer }),
        p(5, "s-late", |_| Fate::Answer),
        p(6, "s-reorder", |_| Fate::Answer),
        p(7, "s-dwell", |_| Fate::Answer),
        // The old id of s-phoenix: answers up to 149, then dies.
        p(8, "s-phoenix", |s| if s < 150 { Fate::Answer } else { Fate::Unheard }),
        // Its new id: starts hearing at 190, its acks of 190..200 are lost.
        p(9, "s-phoenix", |s| match s {
            ..190 => Fate::Unheard,
            190..200 => Fate::AckLost,
            _ => Fate::Answer,
        }),
        p(10, "s-limited", |s| if s % 10 == 0 { Fate::Answer } else { Fate::Limited }),
        p(11, "s-names", |_| Fate::Answer),
        p(12, "s-liar", |_| Fate::Answer),
    ]
}

/// Answers one probe as every persona; returns datagrams to send now, and holds others.
fn answer(ps: &mut [Persona], p: &Probe, held: &mut Held) -> Vec<Vec<u8>> {
    let mut now = Vec::new();
    for persona in ps.iter_mut() {
        let fate = (persona.fate)(p.seq);
        if fate == Fate::Unheard {
            continue;
        }
        persona.c.received += 1;
        if fate == Fate::Limited {
            persona.c.limited += 1;
            continue;
        }
        let (name, s) = (persona.name, p.seq);
        let name = if persona.id == 11 && s % 2 == 1 { "s-nm" } else { name };
        let dwell = if persona.id == 7 && s % 5 == 0 { 1_000_000_000 } else { 1_000 };
        let ack = encode_ack(p, persona.id, name, persona.c, dwell);
        persona.c.acks += 1;
        if fate == Fate::AckLost {
            continue;
        }
        match (persona.id, s) {
            // A copy whose received counter went backwards by 50: a responder bug.
            (2, 200) => {
                let mut bad = persona.c;
                bad.acks -= 1;
                bad.received -= 50;
                now.push(ack);
                now.push(encode_ack(p, persona.id, name, bad, dwell));
            }
            // The network copies every tenth ack byte for byte.
            (3, _) if s % 10 == 0 => {
                now.push(ack.clone());
                now.push(ack);
            }
            // The network duplicates probe 100: counted and answered twice, the second ack lost.
            (4, 100) => {
                now.push(ack);
                persona.c.received += 1;
                persona.c.acks += 1;
            }
            (5, 50..53) => held.push((Instant::now() + Duration::from_millis(600), ack)),
            // The ack of 100 is overtaken by the ack of 101.
            (6, 100) => persona.stash = Some(ack),
            (6, 101) => {
                now.push(ack);
                now.extend(persona.stash.take());
            }
            (12, 120) => {
                // Echoes a tx_ns that was not sent.
                let mut lie = ack;
                lie[29] ^= 1;
                now.push(lie);
            }
            (12, 121) => {
                let mut long = ack;
                long.push(0);
                now.push(long);
            }
            _ => now.push(ack),
        }
    }
    now
}

/// Runs the scripted responders on the test group until probe N−1 was answered and every held
/// ack sent (bounded by PATIENCE).
fn scripted_responder(port: u16) -> std::thread::JoinHandle<()> {
    let group: Ipv4Addr = GROUP.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddrV4::new(group, port).into()).unwrap();
    s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let sock: UdpSocket = s.into();
    std::thread::spawn(move || {
        let mut ps = personas();
        let mut held: Held = Vec::new();
        let mut prober: Option<SocketAddr> = None;
        let mut done = false;
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && !(done && held.is_empty()) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if let Some(p) = parse_probe(&buf[..n]) {
                    prober = Some(from);
                    for d in answer(&mut ps, &p, &mut held) {
                        sock.send_to(&d, from).unwrap();
                    }
                    done |= p.seq == N - 1;
                }
            }
            let now = Instant::now();
            let (due, keep): (Held, Held) = held.drain(..).partition(|(t, _)| *t <= now);
            held = keep;
            for (_, d) in due {
                sock.send_to(&d, prober.unwrap()).unwrap();
            }
        }
    })
}

fn by<'a>(rows: &'a [HashMap<String, String>], col: &str, value: &str) -> Vec<&'a HashMap<String, String>> {
    rows.iter().filter(|r| r[col] == value).collect()
}

#[test]
fn a_scripted_responder_gets_the_figures_known_in_advance() {
    let port = free_port();
    let script = scripted_responder(port);
    let dir = tempfile::tempdir().unwrap();
    let mut c =
        probe_cmd(port, &["--count", &N.to_string(), "--interval", "2ms", "--timeout", "400ms", "--raw", "--json"]);
    c.arg("--out").arg(dir.path());
    let out = run(c);
    script.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = csv_rows(&dir.path().join("summary.csv"));
    let intervals = csv_rows(&dir.path().join("intervals.csv"));
    let probes = csv_rows(&dir.path().join("probes.csv"));
    let outages = csv_rows(&dir.path().join("outages.csv"));

    // name: received, lost, forward, return, unknown, late, duplicates, reordered, limited
    let expect: [(&str, [u64; 9]); 11] = [
        ("s-split", [375, 25, 5, 10, 10, 0, 0, 0, 0]),
        // The backwards copy is a duplicate, flagged, and moves no loss.
        ("s-backwards", [375, 25, 5, 10, 10, 0, 1, 0, 0]),
        // Byte-for-byte copies: duplicates, and no loss either way.
        ("s-copies", [400, 0, 0, 0, 0, 0, 40, 0, 0]),
        // The documented limit: a duplicated probe whose second ack is lost moves one probe from
        // forward to return loss (the truth is 5 forward, 0 return).
        ("s-dupprobe", [395, 5, 4, 1, 0, 0, 0, 0, 0]),
        ("s-late", [397, 3, 0, 0, 0, 3, 0, 0, 0]),
        // A late ack is not reordered; one overtaken ack is.
        ("s-reorder", [400, 0, 0, 0, 0, 0, 0, 1, 0]),
        ("s-dwell", [400, 0, 0, 0, 0, 0, 0, 0, 0]),
        // One responder, away for probes 150..200: 40 nobody heard (unknown), 10 acks lost.
        ("s-phoenix", [350, 50, 0, 10, 40, 0, 0, 0, 0]),
        // Nine of ten probes limited, the last nine after the newest ack included: no loss.
        ("s-limited", [40, 0, 0, 0, 0, 0, 0, 0, 360]),
        ("s-names", [400, 0, 0, 0, 0, 0, 0, 0, 0]),
        // An ack that lies about tx_ns and one a byte too long are invalid: their probes are
        // return loss.
        ("s-liar", [398, 2, 0, 2, 0, 0, 0, 0, 0]),
    ];
    let cols = [
        "received",
        "lost",
        "forward_lost",
        "return_lost",
        "unknown_lost",
        "late",
        "duplicates",
        "reordered",
        "limited",
    ];
    let json_rows = json["responders"].as_array().unwrap();
    assert_eq!(summary.len(), expect.len(), "one row per responder, the restart included: {summary:?}");
    for (name, figures) in expect {
        let rows = by(&summary, "responder", name);
        assert_eq!(rows.len(), 1, "{name}");
        let row = rows[0];
        let j = json_rows.iter().find(|r| r["responder"] == name).unwrap();
        for (col, want) in cols.iter().zip(figures) {
            assert_eq!(num(row, col), want as f64, "{name} {col}: {row:?}");
            assert_eq!(j[col], want, "{name} {col} in the JSON");
        }
        assert_eq!(num(row, "sent"), N as f64);
        let lost = num(row, "lost");
        let parts: f64 = ["forward_lost", "return_lost", "unknown_lost", "late"].iter().map(|c| num(row, c)).sum();
        assert_eq!(lost, parts, "{name}");
        // intervals.csv and probes.csv count the same probes, under the row's id.
        let id = &row["responder_id"];
        let iv = by(&intervals, "responder_id", id);
        assert_eq!(iv.iter().map(|r| num(r, "sent")).sum::<f64>(), N as f64, "{name} intervals");
        assert_eq!(iv.iter().map(|r| num(r, "received")).sum::<f64>(), figures[0] as f64, "{name} intervals");
        let pr = by(&probes, "responder_id", id);
        assert_eq!(pr.len() as u64, N, "{name} probes.csv");
        assert_eq!(pr.iter().filter(|r| r["status"] == "ok").count() as u64, figures[0], "{name} probes.csv");
    }
    let row = |name| by(&summary, "responder", name)[0];
    assert_eq!(num(row("s-backwards"), "inconsistent_acks"), 1.0);
    assert_eq!(num(row("s-dwell"), "dwell_over_rtt"), 80.0);
    assert_eq!(num(row("s-limited"), "limited_tail"), 9.0);
    assert_eq!(num(row("s-limited"), "outages"), 0.0);
    assert_eq!((num(row("s-phoenix"), "restarts"), num(row("s-phoenix"), "restart_gap_lost")), (1.0, 40.0));
    // Its outage ended when the new id answered (probe 200).
    let o = by(&outages, "responder", "s-phoenix");
    assert_eq!(o.len(), 1);
    assert_eq!((num(o[0], "first_lost_seq"), num(o[0], "probes_lost")), (150.0, 50.0));
    assert!(!o[0]["end_s"].is_empty());
    // The row shows the longest name the id's acks carried.
    assert!(by(&summary, "responder", "s-nm").is_empty());
    // The liar's two acks are the run's only invalid datagrams.
    assert_eq!(json["invalid"], 2);
    // Jitter skips the duplicate copies: recomputed from probes.csv, in seq order (the order
    // the acks arrived in), it matches to the rounding of the RTT column.
    let mut rtts: Vec<(u64, f64)> =
        by(&probes, "responder", "s-copies").iter().map(|r| (r["seq"].parse().unwrap(), num(r, "rtt_us"))).collect();
    rtts.sort_by_key(|r| r.0);
    let mut jitter = 0.0;
    for w in rtts.windows(2) {
        jitter += ((w[1].1 - w[0].1).abs() - jitter) / 16.0;
    }
    let reported = num(row("s-copies"), "jitter_us");
    assert!((jitter - reported).abs() < 0.02, "jitter {reported} µs, recomputed {jitter} µs");
}

#[test]
fn rate_limited_probes_are_neither_loss_nor_outages() {
    let port = free_port();
    let r = Responder::start_with(port, "limited", &["--rate-limit", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = probe_cmd(port, &["--rate", "1000", "--count", "2000", "--timeout", "500ms", "--json"]);
    c.arg("--out").arg(dir.path());
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let closing = r.stop();
    // The responder's own count of what it limited is the ground truth.
    let limited: u64 = closing
        .split(", ")
        .find_map(|part| part.strip_suffix(" rate-limited"))
        .and_then(|n| n.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rate-limited count in {closing:?}"));
    let row = &csv_rows(&dir.path().join("summary.csv"))[0];
    assert_eq!(num(row, "limited"), limited as f64, "{row:?}");
    assert!(limited > 1500, "a limit of 100/s against 1000/s limits most probes: {limited}");
    assert_eq!((num(row, "lost"), num(row, "outages")), (0.0, 0.0), "{row:?}");
    assert_eq!(num(row, "received") + num(row, "limited"), 2000.0);
    assert!(csv_rows(&dir.path().join("outages.csv")).is_empty());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["responders"][0]["lost"], 0);
    assert_eq!(json["responders"][0]["limited"], limited);
}

#[test]
fn the_responder_counts_from_one_and_numbers_acks_from_zero_and_ignores_short_probes() {
    let port = free_port();
    let r = Responder::start(port, "counter");
    let sock = loopback_multicast_sender();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let group = SocketAddrV4::new(GROUP.parse().unwrap(), port);
    let probe = |seq: u64, len: usize| {
        let mut b = b"MCP\x01\x01\x00".to_vec();
        b.extend_from_slice(&0x5eed_u64.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&now_ns().to_be_bytes());
        b.resize(len, 0);
        b
    };
    // 63 bytes: too small for an ack, so neither answered nor counted. Then 64 and 128 bytes.
    sock.send_to(&probe(0, 63), group).unwrap();
    sock.send_to(&probe(1, 64), group).unwrap();
    sock.send_to(&probe(2, 128), group).unwrap();
    let mut buf = [0u8; 256];
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        acks.push(buf[..n].to_vec());
    }
    let field = |a: &[u8], at: usize| u32::from_be_bytes(a[at..at + 4].try_into().unwrap());
    let seq = |a: &[u8]| u64::from_be_bytes(a[14..22].try_into().unwrap());
    // The ack of the 64-byte probe: its fixed part only, no room for the name.
    assert_eq!((seq(&acks[0]), acks[0].len(), acks[0][5]), (1, 64, 0));
    // received includes the probe answered; ack_seq counts from 0.
    assert_eq!((field(&acks[0], 50), field(&acks[0], 54), field(&acks[0], 58)), (1, 0, 0));
    assert_eq!(seq(&acks[1]), 2);
    assert_eq!((field(&acks[1], 50), field(&acks[1], 54)), (2, 1));
    // The 128-byte probe's ack carries the name, and its length is exact.
    assert_eq!((acks[1][5], acks[1][64] as usize, acks[1].len()), (1, 7, 64 + 1 + 7));
    assert_eq!(&acks[1][65..], b"counter");
    let closing = r.stop();
    assert!(closing.contains("1 probes too small to answer"), "{closing}");
}
