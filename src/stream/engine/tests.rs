use super::*;
use crate::stream::ts::packet as ts_packet;
use crate::stream::SeqField;

const G: &str = "239.1.1.1";
const SRC: &str = "10.77.0.1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, 33];
    b.extend(seq.to_be_bytes());
    b.extend(ts.to_be_bytes());
    b.extend(ssrc.to_be_bytes());
    b.extend(payload);
    b
}

fn engine(format: FormatChoice) -> Engine {
    let mut e = Engine::new(EngineConfig { format, ..EngineConfig::default() }, 0);
    e.watch(ip(G), 5000);
    e
}

fn only(e: &Engine, now: u64) -> StreamSummary {
    let s = e.summaries(now);
    assert_eq!(s.len(), 1, "{s:#?}");
    s[0].clone()
}

#[test]
fn rtp_loss_duplicates_reordering_and_jitter() {
    let mut e = engine(FormatChoice::Auto);
    // 1000 packets/s, 90 kHz timestamps 90 apart; 5 and 6 lost, 9 before 8, 20 twice.
    let mut order: Vec<u16> = (0..30).filter(|s| ![5, 6, 8].contains(s)).collect();
    order.insert(order.iter().position(|&s| s == 9).unwrap() + 1, 8);
    order.insert(order.iter().position(|&s| s == 20).unwrap() + 1, 20);
    for (i, &s) in order.iter().enumerate() {
        e.packet(ip(G), 5000, ip(SRC), 4000, &rtp(s, s as u32 * 90, 7, &[0; 100]), i as u64 * MS);
    }
    let s = only(&e, 40 * MS);
    assert_eq!(s.format.as_deref(), Some("rtp"));
    assert_eq!((s.lost, s.expected, s.duplicates, s.reordered), (Some(2), Some(30), Some(1), Some(1)));
    assert_eq!((s.seq_gaps, s.largest_gap), (Some(1), Some(2)));
    assert_eq!(s.ssrc.as_deref(), Some("00000007"));
    assert!(s.rtp_jitter_ms.unwrap() > 0.0);
    assert_eq!(s.packets, 29);
    assert!(!s.stopped);
    assert_eq!(s.source_changes, 0);
    // A new SSRC: a source change, a new numbering, earlier counts kept.
    e.packet(ip(G), 5000, ip(SRC), 4000, &rtp(5000, 0, 8, &[0; 100]), 41 * MS);
    e.packet(ip(G), 5000, ip(SRC), 4000, &rtp(5001, 90, 8, &[0; 100]), 42 * MS);
    let s = only(&e, 43 * MS);
    assert_eq!((s.source_changes, s.lost, s.expected), (1, Some(2), Some(32)));
}

#[test]
fn ts_over_udp_and_over_rtp_and_mdi() {
    let mut e = engine(FormatChoice::Auto);
    let dgram = |cc: u8| -> Vec<u8> {
        (0..7).flat_map(|k| ts_packet(256, cc.wrapping_mul(7).wrapping_add(k), k == 0)).collect()
    };
    // 100 datagrams per second for 3 s; datagram 150 lost (7 TS packets).
    for i in 0..300u64 {
        if i != 150 {
            e.packet(ip(G), 5000, ip(SRC), 4000, &dgram(i as u8), i * 10 * MS);
        }
    }
    e.advance(3000 * MS);
    let s = only(&e, 3000 * MS);
    assert_eq!(s.format.as_deref(), Some("ts"));
    assert_eq!((s.ts_packets, s.cc_errors, s.ts_lost, s.lost), (Some(299 * 7), Some(1), Some(7), Some(1)));
    assert_eq!(s.pcr_pids.as_deref(), Some("256"));
    let rows = e.take_closed();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().map(|r| r.lost).collect::<Vec<_>>(), [Some(0), Some(1), Some(0)]);
    assert_eq!(rows[1].mlr, Some(7.0));
    // MR is the mean since the first packet. Second 1 drains at 100 datagrams/s: VB(pre) is 0,
    // then one datagram short after the hole, VB(post) one datagram at most: DF = 2 datagrams'
    // time, 20 ms. Second 2 drains at 99.5/s while 100 arrive: VB(pre) climbs to 0.495 datagram
    // by the last one, VB(post) to 1.495: DF = 1.495 / 99.5 s.
    assert_eq!(rows[0].df_ms, None);
    assert!((rows[1].df_ms.unwrap() - 20.0).abs() < 1e-6, "{:?}", rows[1]);
    assert!((rows[2].df_ms.unwrap() - 1.495 / 99.5 * 1e3).abs() < 1e-6, "{:?}", rows[2]);
    assert_eq!(s.mlr_max, Some(7.0));
    assert_eq!(s.max_gap_ms, Some(20.0));

    let mut e = engine(FormatChoice::Auto);
    for i in 0..20u16 {
        if i != 4 {
            e.packet(ip(G), 5000, ip(SRC), 4000, &rtp(i, i as u32 * 900, 1, &dgram(i as u8)), i as u64 * 10 * MS);
        }
    }
    let s = only(&e, 200 * MS);
    assert_eq!(s.format.as_deref(), Some("rtp+ts"));
    assert_eq!((s.lost, s.ts_lost, s.cc_errors), (Some(1), Some(7), Some(1)));
}

#[test]
fn a_feed_sequence_field_and_raw_streams() {
    let f = SeqField::parse("u64le@8").unwrap();
    let mut e = engine(FormatChoice::Seq(f));
    let msg = |n: u64| -> Vec<u8> { [vec![0xaa; 8], n.to_le_bytes().to_vec(), vec![0; 20]].concat() };
    for (i, n) in [1u64, 2, 3, 7, 5, 8, 8, 9].iter().enumerate() {
        e.packet(ip(G), 5000, ip(SRC), 4000, &msg(*n), i as u64 * MS);
    }
    e.packet(ip(G), 5000, ip(SRC), 4000, &[1, 2, 3], 9 * MS);
    let s = only(&e, 10 * MS);
    assert_eq!(s.format.as_deref(), Some("seq u64le@8"));
    // Holes: 4 and 6 (5 came late).
    assert_eq!((s.lost, s.duplicates, s.reordered, s.seq_gaps, s.malformed), (Some(2), Some(1), Some(1), Some(2), 1));

    // Raw: 4 packets 10 ms apart, then 300 ms of silence, then one: one gap in time.
    let mut e = engine(FormatChoice::Auto);
    for t in [0, 10, 20, 30, 330] {
        e.packet(ip(G), 5000, ip(SRC), 4000, b"hello", t * MS);
    }
    let s = only(&e, 331 * MS);
    assert_eq!(s.format.as_deref(), Some("raw"));
    assert_eq!((s.lost, s.time_gaps, s.max_gap_ms), (None, 1, Some(300.0)));
    assert!((s.pps.unwrap() - 4.0 / 0.33).abs() < 1e-9);
    assert!(!s.stopped);
    let s = only(&e, 600 * MS);
    assert!(s.stopped && (s.silence_s - 0.27).abs() < 1e-9, "{s:?}");
    // Another source port on a non-RTP stream: a source change.
    e.packet(ip(G), 5000, ip(SRC), 4001, b"hello", 700 * MS);
    assert_eq!(only(&e, 700 * MS).source_changes, 1);
}

#[test]
fn microbursts_peak_over_one_millisecond() {
    let mut e = engine(FormatChoice::Raw);
    // Bursts of 50 packets of 1000 bytes within 0.5 ms, every 10 ms: 100 k/s at the peak,
    // 5 k/s on average.
    for b in 0..100u64 {
        for k in 0..50u64 {
            e.packet(ip(G), 5000, ip(SRC), 4000, &[0; 1000], b * 10 * MS + k * 10_000);
        }
    }
    let s = only(&e, 1000 * MS);
    assert_eq!(s.peak_1ms_pps, Some(50_000.0));
    assert_eq!(s.peak_1ms_mbps, Some(400.0));
    assert!((s.pps.unwrap() - 4999.0 / 0.99049).abs() < 1.0, "{:?}", s.pps);
}

#[test]
fn silent_groups_intervals_and_the_stream_cap() {
    let mut e = Engine::new(EngineConfig { max_streams: 2, ..EngineConfig::default() }, 1_000 * MS);
    e.watch(ip(G), 5000);
    e.watch(ip("239.1.1.2"), 5000);
    for (i, src) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        e.packet(ip(G), 5000, ip(src), 1, b"x", 1_000 * MS + i as u64);
    }
    assert_eq!(e.untracked, 1);
    let s = e.summaries(3_500 * MS);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].label(), "239.1.1.1:5000 from 10.0.0.1");
    assert_eq!((s[2].label(), s[2].packets, s[2].stopped, s[2].silence_s), ("239.1.1.2:5000".into(), 0, true, 2.5));
    e.advance(3_500 * MS);
    let rows = e.take_closed();
    assert_eq!(rows.len(), 4);
    // The second interval of a stream that went silent: its gap is the silence to its end.
    assert_eq!(rows[2].max_gap_ms, Some(2000.0));
    assert_eq!(rows[2].t_s, 1.0);
}

#[test]
fn timelines_halve_instead_of_growing() {
    let mut e = engine(FormatChoice::Raw);
    let n = TIMELINE_POINTS as u64 * 2 + 10;
    for i in 0..n {
        e.packet(ip(G), 5000, ip(SRC), 1, &[0; 10], i * 1000 * MS + 1);
    }
    let t = e.timelines();
    let pts = &t[0].1;
    assert!(pts.len() <= TIMELINE_POINTS, "{}", pts.len());
    assert_eq!(pts.iter().map(|p| p.packets).sum::<u64>(), n - 1);
    assert_eq!(pts[0].width_s, 4.0);
}

/// `serve`'s way: no timeline and no closed rows, the last second per stream; silent streams
/// forgotten (and a returning one starts again).
#[test]
fn without_intervals_only_the_last_second_is_kept_and_silent_streams_are_forgotten() {
    let cfg = EngineConfig { keep_intervals: false, format: FormatChoice::Raw, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, 0);
    for i in 0..3000u64 {
        e.packet(ip(G), 5000, ip(SRC), 1, &[0; 10], i * MS);
        if i < 500 {
            e.packet(ip(G), 5000, ip("10.0.0.9"), 1, &[0; 10], i * MS);
        }
    }
    e.advance(3_000 * MS);
    assert!(e.take_closed().is_empty());
    assert!(e.timelines().iter().all(|(_, t)| t.is_empty()));
    let mut at = e.streams_at(3_000 * MS);
    at.sort_by_key(|s| s.0);
    let last: Vec<(u64, f64)> = at.iter().map(|(_, _, r)| (r.unwrap().packets, r.unwrap().t_s)).collect();
    assert_eq!(last, [(0, 2.0), (1000, 2.0)], "the last closed second, [2 s, 3 s)");
    assert_eq!(
        e.forget_silent(3_000 * MS, 2_000 * MS),
        [StreamKey { group: ip(G), port: 5000, source: ip("10.0.0.9") }]
    );
    assert_eq!(e.streams_at(3_000 * MS).len(), 1);
    e.packet(ip(G), 5000, ip("10.0.0.9"), 1, &[0; 10], 3_001 * MS);
    let back = e.streams_at(3_001 * MS).into_iter().find(|s| s.0.source == ip("10.0.0.9")).unwrap();
    assert_eq!(back.1.packets, 1, "it starts again");
}
