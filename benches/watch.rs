//! Micro-benchmarks of the watch's engine (`mcprobe::stream::engine::Engine`): what one datagram
//! costs, by payload format and by the number of streams followed. The receive thread does this
//! work for every datagram, so it bounds streams × packet rate per core (the end-to-end figure,
//! sockets included, is scripts/watch-bench.sh's).
//!
//! Each timed iteration feeds a batch of datagrams round-robin over the streams, 1 316-byte
//! payloads (7 TS packets, ffmpeg's `pkt_size=1316`), arrival times advancing as a 100 000/s
//! aggregate would, so intervals close at their real pace (their cost is included). The engine
//! is warmed with one batch first: every stream already exists.

use std::net::{IpAddr, Ipv4Addr};

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use mcprobe::stream::engine::{Engine, EngineConfig};
use mcprobe::stream::{FormatChoice, SeqField};

fn main() {
    divan::main();
}

const BATCH: u64 = 10_000;
/// Aggregate arrival spacing: 100 000 datagrams/s.
const GAP_NS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fmt {
    Raw,
    Seq,
    Rtp,
    RtpTs,
    Ts,
}

fn payload(fmt: Fmt, n: u64) -> Vec<u8> {
    let ts: Vec<u8> = (0..7u64)
        .flat_map(|k| {
            let mut p = [0xffu8; 188];
            p[0] = 0x47;
            p[1] = 0x01;
            p[2] = 0x00;
            p[3] = 0x10 | ((n * 7 + k) % 16) as u8;
            p
        })
        .collect();
    let rtp = |body: &[u8]| -> Vec<u8> {
        let mut b = vec![0x80, 33];
        b.extend((n as u16).to_be_bytes());
        b.extend(((n * 900) as u32).to_be_bytes());
        b.extend(7u32.to_be_bytes());
        b.extend(body);
        b
    };
    match fmt {
        Fmt::Raw => vec![0; 1316],
        Fmt::Seq => [(n as u32).to_be_bytes().to_vec(), vec![0; 1312]].concat(),
        Fmt::Rtp => rtp(&[0; 1304]),
        Fmt::RtpTs => rtp(&ts),
        Fmt::Ts => ts,
    }
}

/// Sets datagram `n`'s numbers in `buf` (made by `payload(fmt, 0)`): the RTP sequence number and
/// timestamp, the TS continuity counters, the feed's sequence field. Cheaper than the kernel's
/// copy into the socket buffer, and it keeps the payload in cache, as a received one is.
fn number(fmt: Fmt, buf: &mut [u8], n: u64) {
    let ts_at = match fmt {
        Fmt::Rtp | Fmt::RtpTs => {
            buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            buf[4..8].copy_from_slice(&((n * 900) as u32).to_be_bytes());
            (fmt == Fmt::RtpTs).then_some(12)
        }
        Fmt::Seq => {
            buf[..4].copy_from_slice(&(n as u32).to_be_bytes());
            None
        }
        Fmt::Ts => Some(0),
        Fmt::Raw => None,
    };
    if let Some(at) = ts_at {
        for k in 0..7 {
            buf[at + k * 188 + 3] = 0x10 | ((n * 7 + k as u64) % 16) as u8;
        }
    }
}

#[divan::bench(args = [(Fmt::Raw, 1), (Fmt::Seq, 1), (Fmt::Rtp, 1), (Fmt::RtpTs, 1), (Fmt::Ts, 1),
    (Fmt::RtpTs, 100), (Fmt::RtpTs, 1000), (Fmt::Seq, 1000)])]
fn datagram(b: Bencher, (fmt, streams): (Fmt, u64)) {
    let format = match fmt {
        Fmt::Seq => FormatChoice::Seq(SeqField::parse("u32be@0").unwrap()),
        _ => FormatChoice::Auto,
    };
    let mut e = Engine::new(EngineConfig { format, ..EngineConfig::default() }, 0);
    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let per_stream = BATCH / streams;
    let mut buf = payload(fmt, 0);
    let groups: Vec<IpAddr> = (0..streams).map(|s| IpAddr::V4(Ipv4Addr::from(0xef01_0000 + s as u32))).collect();
    let (mut t, mut n) = (0u64, 0u64);
    let mut feed = |e: &mut Engine| {
        for _ in 0..per_stream {
            for g in &groups {
                number(fmt, &mut buf, n);
                t += GAP_NS;
                e.packet(*g, 5000, src, 4000, &buf, t);
            }
            n += 1;
        }
        black_box(e.take_closed());
    };
    feed(&mut e);
    b.counter(ItemsCount::new(per_stream * streams)).bench_local(|| feed(&mut e));
    if std::env::var_os("WATCH_BENCH_DEBUG").is_some() {
        let s = &e.summaries(u64::MAX / 2)[0];
        eprintln!("{fmt:?} {streams}: {:?} lost {:?} ts_lost {:?} packets {}", s.format, s.lost, s.ts_lost, s.packets);
    }
}
