//! `watch --pcap FILE`: a capture (pcap or pcapng, as tcpdump, Wireshark or dumpcap write them)
//! through the same engine as live datagrams, with the capture's timestamps as arrival times.
//!
//! Read with `pcap-parser` (rusticata): a streaming reader with a fixed buffer, so a capture of
//! any size is read in bounded memory, and it honours pcapng's per-interface timestamp
//! resolution and offset (`if_tsresol`, `if_tsoffset`), which MDI and the 1 ms peaks need.

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use serde::Serialize;

use super::engine::{Engine, EngineConfig, IntervalRow};
use super::packet::{self, Skip};

/// Which datagrams of a capture count: to these groups and ports (all multicast ones when
/// none is given), from this source only (SSM) when given.
#[derive(Debug, Clone, Default)]
pub struct Want {
    pub groups: Vec<(IpAddr, u16)>,
    pub source: Option<IpAddr>,
}

impl Want {
    pub fn accepts(&self, dst: IpAddr, port: u16, src: IpAddr) -> bool {
        let to = if self.groups.is_empty() { dst.is_multicast() } else { self.groups.contains(&(dst, port)) };
        to && self.source.is_none_or(|s| s == src)
    }
}

/// What the capture held besides the datagrams watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PcapStats {
    pub frames: u64,
    pub datagrams: u64,
    /// UDP datagrams to other groups, ports or from other sources.
    pub other_datagrams: u64,
    pub not_udp: u64,
    pub fragments: u64,
    pub truncated: u64,
    /// Frames of a link type this reader does not know, or without a timestamp.
    pub unreadable: u64,
    /// The file ended inside a frame (a capture cut off).
    pub cut_off: bool,
}

/// Reads `path` into a new engine (started at the first datagram watched). `rows` gets the
/// intervals as they close. Returns the engine, the counts and the time of the last frame.
pub fn read(
    path: &Path,
    cfg: EngineConfig,
    want: &Want,
    mut rows: impl FnMut(Vec<IntervalRow>) -> Result<()>,
) -> Result<(Option<Engine>, PcapStats, u64)> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("--pcap {name}: cannot open"))?;
    // Room for the largest frame of a capture (snap length up to 256 KiB) and then some.
    let mut reader = match create_reader(1 << 20, file) {
        Ok(r) => r,
        Err(PcapError::Eof) => bail!("--pcap {name}: the file is empty"),
        Err(_) => bail!("--pcap {name}: not a pcap or pcapng capture"),
    };
    let mut stats = PcapStats::default();
    let mut engine: Option<Engine> = None;
    let mut legacy = (packet::ETHERNET, 1000u64);
    // pcapng: per interface, its link type, time units per second and offset in seconds.
    let mut ifaces: Vec<(u32, u64, i64)> = Vec::new();
    let mut last_ns = 0u64;
    let mut last_progress = None;
    loop {
        let (len, frame_at) = match reader.next() {
            Ok((len, block)) => {
                let frame = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = (h.network.0 as u32, if h.is_nanosecond_precision() { 1 } else { 1000 });
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let ns = b.ts_sec as u64 * 1_000_000_000 + b.ts_usec as u64 * legacy.1;
                        Some((legacy.0, ns, b.data))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        ifaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((idb.linktype.0 as u32, idb.ts_resolution().unwrap_or(0), idb.ts_offset()));
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match ifaces.get(epb.if_id as usize) {
                        Some(&(link, per_s, offset)) if per_s > 0 => {
                            let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                            let ns = (units as u128 * 1_000_000_000 / per_s as u128) as i128
                                + offset as i128 * 1_000_000_000;
                            let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                            Some((link, ns.max(0) as u64, data))
                        }
                        _ => {
                            stats.unreadable += 1;
                            None
                        }
                    },
                    PcapBlockOwned::NG(Block::SimplePacket(_)) => {
                        // No timestamp: useless for rates and gaps.
                        stats.unreadable += 1;
                        None
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                let at = frame.map(|(link, ns, data)| {
                    stats.frames += 1;
                    last_ns = last_ns.max(ns);
                    match packet::udp(link, data) {
                        Ok(u) if want.accepts(u.dst, u.dst_port, u.src) => {
                            stats.datagrams += 1;
                            let e = engine.get_or_insert_with(|| {
                                let mut e = Engine::new(cfg.clone(), ns);
                                for &(g, p) in &want.groups {
                                    e.watch(g, p);
                                }
                                e
                            });
                            e.packet(u.dst, u.dst_port, u.src, u.src_port, u.payload, ns);
                        }
                        Ok(_) => stats.other_datagrams += 1,
                        Err(Skip::NotUdp) => stats.not_udp += 1,
                        Err(Skip::Fragment) => stats.fragments += 1,
                        Err(Skip::Truncated) => stats.truncated += 1,
                        Err(Skip::LinkType) => stats.unreadable += 1,
                    }
                    ns
                });
                (len, at)
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                stats.cut_off = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                reader.refill().map_err(|e| anyhow::anyhow!("--pcap {name}: cannot read: {e:?}"))?;
                continue;
            }
            Err(e) => bail!("--pcap {name}: unreadable after {} frames ({e:?})", stats.frames),
        };
        reader.consume(len);
        if let (Some(e), Some(_)) = (engine.as_mut(), frame_at) {
            // Hand over closed intervals now and then, so they do not pile up.
            if last_progress.is_none_or(|n| stats.datagrams >= n + 4096) {
                last_progress = Some(stats.datagrams);
                let closed = e.take_closed();
                if !closed.is_empty() {
                    rows(closed)?;
                }
            }
        }
    }
    Ok((engine, stats, last_ns))
}

/// Writes a classic pcap file of Ethernet frames (µs timestamps): tests and examples make
/// captures with it whose every value is known.
pub fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    let mut b: Vec<u8> = Vec::new();
    b.extend(0xa1b2_c3d4u32.to_le_bytes());
    b.extend(2u16.to_le_bytes());
    b.extend(4u16.to_le_bytes());
    b.extend([0; 8]);
    b.extend(65535u32.to_le_bytes());
    b.extend(packet::ETHERNET.to_le_bytes());
    for (ns, f) in frames {
        b.extend(((ns / 1_000_000_000) as u32).to_le_bytes());
        b.extend(((ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        b.extend((f.len() as u32).to_le_bytes());
        b.extend((f.len() as u32).to_le_bytes());
        b.extend(f);
    }
    std::fs::write(path, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_written_capture_reads_back_with_its_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let (s, g) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(239, 1, 1, 1));
        let t0 = 1_700_000_000_000_000_000u64;
        let mut frames: Vec<(u64, Vec<u8>)> = (0..10u32)
            .map(|i| (t0 + i as u64 * 1_000_000, packet::ethernet_udp4(s, 9, g, 5000, &i.to_be_bytes())))
            .collect();
        frames.push((t0 + 20_000_000, packet::ethernet_udp4(s, 9, Ipv4Addr::new(10, 77, 0, 2), 5000, b"unicast")));
        let mut cut = frames[0].1.clone();
        cut.truncate(30);
        frames.push((t0 + 21_000_000, cut));
        write_pcap(&path, &frames).unwrap();
        let seq = super::super::SeqField::parse("u32be@0").unwrap();
        let cfg = EngineConfig { format: super::super::FormatChoice::Seq(seq), ..Default::default() };
        let mut n_rows = 0;
        let (e, stats, last) = read(&path, cfg, &Want::default(), |r| {
            n_rows += r.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(n_rows, 0);
        assert_eq!((stats.frames, stats.datagrams, stats.other_datagrams, stats.truncated), (12, 10, 1, 1));
        assert_eq!(last, t0 + 21_000_000);
        let s = &e.unwrap().summaries(last)[0];
        assert_eq!((s.packets, s.lost, s.max_gap_ms), (10, Some(0), Some(1.0)));
        assert_eq!(s.first_s, Some(0.0));
        // Not a capture at all.
        std::fs::write(&path, b"hello, this is not a capture at all, not even close").unwrap();
        let e = read(&path, EngineConfig::default(), &Want::default(), |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("not a pcap or pcapng"), "{e}");
    }
}
