//! MPEG transport stream (ISO/IEC 13818-1) as carried in UDP or RTP: 188-byte packets whose
//! 4-bit continuity counter (CC) counts, per PID, the packets carrying payload. A jump in a
//! PID's CC is a continuity error, and its size (mod 16) the TS packets that PID lost. Pure;
//! per stream at most one small record per PID seen (PIDs are 13 bits: bounded).
//!
//! TS over plain UDP has no datagram number, so lost datagrams are inferred: a CC error on a PID
//! says a datagram went missing between the last one that carried that PID and this one. The
//! fewest losses that explain every error are counted (one point stabbing all those spans,
//! greedily, in order), and a loss that cost a PID more TS packets than one datagram holds
//! counts as several datagrams (by the most TS packets a datagram carried). Exact for isolated
//! losses, as long as the lost datagrams carried a PID seen again soon after: a real stream's
//! video PID is in nearly every datagram.

pub const PACKET: usize = 188;
pub const SYNC: u8 = 0x47;
pub const NULL_PID: u16 = 0x1fff;

/// Whether `b` looks like whole TS packets: a sync byte every 188 bytes.
pub fn looks_like_ts(b: &[u8]) -> bool {
    !b.is_empty() && b.len() % PACKET == 0 && b.chunks(PACKET).all(|p| p[0] == SYNC)
}

#[derive(Debug, Clone, Copy)]
struct Pid {
    pid: u16,
    cc: u8,
    /// A repeated packet was seen at this CC already (13818-1 allows one).
    repeated: bool,
    pcr: bool,
    /// The received datagram (its index) that last carried this PID.
    datagram: u64,
}

/// Counts of one transport stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TsCounts {
    pub packets: u64,
    /// CC jumps, one per PID and jump.
    pub cc_errors: u64,
    /// TS packets missing by the CC jumps (each jump mod 16).
    pub lost: u64,
    pub duplicates: u64,
    /// Bytes where a sync byte should be.
    pub sync_errors: u64,
    /// Packets the sender marked in error (transport_error_indicator).
    pub transport_errors: u64,
    /// Datagrams inferred lost (TS over plain UDP; see the module's docs).
    pub lost_datagrams: u64,
}

/// What one datagram's TS packets said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TsDatagram {
    pub packets: u64,
    pub lost: u64,
    pub cc_errors: u64,
    pub lost_datagrams: u64,
}

#[derive(Debug, Clone, Default)]
pub struct TsAnalyzer {
    pids: Vec<Pid>,
    datagrams: u64,
    /// The last loss placed: after the received datagram of this index.
    stab: Option<u64>,
    /// The most TS packets one datagram carried: a full datagram (ffmpeg sends shorter ones at
    /// the end of each PES packet).
    per_datagram: u64,
    c: TsCounts,
}

impl TsAnalyzer {
    /// One datagram's TS payload (the UDP payload, or RTP's).
    pub fn datagram(&mut self, b: &[u8]) -> TsDatagram {
        let d = self.datagrams;
        self.datagrams += 1;
        let mut out = TsDatagram::default();
        // Spans of this datagram's CC errors: (datagram that last carried the PID, TS lost).
        let mut uncovered = false;
        let mut pinned_lost = 0u64;
        for p in b.chunks(PACKET) {
            if p.len() < PACKET || p[0] != SYNC {
                self.c.sync_errors += 1;
                continue;
            }
            out.packets += 1;
            let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
            if p[1] & 0x80 != 0 {
                self.c.transport_errors += 1;
            }
            if pid == NULL_PID {
                continue;
            }
            let afc = (p[3] >> 4) & 3;
            let payload = afc & 1 != 0;
            let cc = p[3] & 0x0f;
            let adaptation = afc & 2 != 0 && p[4] > 0;
            let discontinuity = adaptation && p[5] & 0x80 != 0;
            let pcr = adaptation && p[5] & 0x10 != 0;
            let i = match self.pids.binary_search_by_key(&pid, |s| s.pid) {
                Ok(i) => i,
                Err(i) => {
                    self.pids.insert(i, Pid { pid, cc, repeated: false, pcr, datagram: d });
                    continue;
                }
            };
            let s = &mut self.pids[i];
            s.pcr |= pcr;
            let last = s.datagram;
            s.datagram = d;
            if discontinuity || !payload {
                // Without payload the CC does not move; with the discontinuity flag it may
                // jump: neither is an error.
                s.cc = cc;
                s.repeated = false;
                continue;
            }
            let want = (s.cc + 1) & 0x0f;
            if cc == s.cc && !s.repeated {
                s.repeated = true;
                self.c.duplicates += 1;
                continue;
            }
            s.repeated = false;
            s.cc = cc;
            if cc != want {
                let missing = ((cc + 16 - want) & 0x0f) as u64;
                out.cc_errors += 1;
                out.lost += missing;
                if self.stab.is_none_or(|st| st < last) {
                    uncovered = true;
                }
                if last + 1 == d {
                    pinned_lost += missing;
                }
            }
        }
        self.per_datagram = self.per_datagram.max(out.packets);
        if uncovered {
            out.lost_datagrams = pinned_lost.div_ceil(self.per_datagram.max(1)).max(1);
            self.stab = Some(d.saturating_sub(1));
        }
        self.c.packets += out.packets;
        self.c.cc_errors += out.cc_errors;
        self.c.lost += out.lost;
        self.c.lost_datagrams += out.lost_datagrams;
        out
    }

    pub fn counts(&self) -> TsCounts {
        self.c
    }

    pub fn pids(&self) -> usize {
        self.pids.len()
    }

    /// The PIDs that carried a PCR.
    pub fn pcr_pids(&self) -> Vec<u16> {
        self.pids.iter().filter(|p| p.pcr).map(|p| p.pid).collect()
    }
}

/// A TS packet for tests: `pid`, `cc`, with payload, optionally a PCR.
#[cfg(test)]
pub(crate) fn packet(pid: u16, cc: u8, pcr: bool) -> [u8; PACKET] {
    let mut p = [0xffu8; PACKET];
    p[0] = SYNC;
    p[1] = (pid >> 8) as u8 & 0x1f;
    p[2] = pid as u8;
    if pcr {
        p[3] = 0x30 | (cc & 0x0f);
        p[4] = 7;
        p[5] = 0x10;
    } else {
        p[3] = 0x10 | (cc & 0x0f);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(pkts: &[(u16, u8)]) -> Vec<u8> {
        pkts.iter().flat_map(|&(pid, cc)| packet(pid, cc, pid == 256)).collect()
    }

    #[test]
    fn continuity_errors_count_the_packets_missing() {
        let mut a = TsAnalyzer::default();
        assert!(looks_like_ts(&dgram(&[(256, 0), (257, 0)])));
        assert!(!looks_like_ts(&[0x47; 100]));
        a.datagram(&dgram(&[(256, 0), (256, 1), (257, 0)]));
        // PID 256 skips 2 and 3; 257 skips nothing; a null packet never counts.
        let mut b = dgram(&[(256, 4), (257, 1)]);
        b.extend(packet(NULL_PID, 9, false));
        let r = a.datagram(&b);
        assert_eq!((r.packets, r.cc_errors, r.lost, r.lost_datagrams), (3, 1, 2, 1));
        // A repeated packet is allowed once; wrap from 15 to 0.
        a.datagram(&dgram(&[(256, 5), (256, 5)]));
        let mut cc = 5;
        for _ in 0..12 {
            cc = (cc + 1) & 15;
            a.datagram(&dgram(&[(256, cc)]));
        }
        assert_eq!(cc, 1);
        let c = a.counts();
        assert_eq!((c.cc_errors, c.lost, c.duplicates, c.lost_datagrams), (1, 2, 1, 1));
        assert_eq!(a.pcr_pids(), vec![256]);
        assert_eq!(a.pids(), 2);
    }

    #[test]
    fn packets_without_payload_and_discontinuities_are_not_errors() {
        let mut a = TsAnalyzer::default();
        a.datagram(&packet(300, 3, false));
        let mut p = packet(300, 3, false);
        p[3] = 0x20 | 3; // adaptation only: CC stays
        a.datagram(&p);
        let mut p = packet(300, 9, true);
        p[5] |= 0x80; // discontinuity_indicator
        a.datagram(&p);
        a.datagram(&packet(300, 10, false));
        let mut p = packet(300, 11, false);
        p[1] |= 0x80;
        a.datagram(&p);
        let c = a.counts();
        assert_eq!((c.cc_errors, c.lost, c.transport_errors), (0, 0, 1));
        let mut bad = packet(300, 12, false).to_vec();
        bad[0] = 0;
        a.datagram(&bad);
        assert_eq!(a.counts().sync_errors, 1);
    }

    /// Datagrams of 7 TS packets (video 256 in each, audio 257 now and then): every lost
    /// datagram is counted once, and two in a row as two, though audio reveals its loss later.
    #[test]
    fn lost_datagrams_are_inferred_from_the_spans() {
        let mut all = Vec::new();
        let (mut v, mut au) = (0u8, 0u8);
        for i in 0..40 {
            let mut pk = Vec::new();
            for k in 0..7 {
                if k == 3 && i % 4 == 0 {
                    pk.push((257, au));
                    au = (au + 1) & 15;
                } else {
                    pk.push((256, v));
                    v = (v + 1) & 15;
                }
            }
            all.push(dgram(&pk));
        }
        let mut a = TsAnalyzer::default();
        let dropped = [4, 9, 10, 21, 36];
        for (i, d) in all.iter().enumerate() {
            if !dropped.contains(&i) {
                a.datagram(d);
            }
        }
        let c = a.counts();
        assert_eq!(c.lost_datagrams, 5);
        // 6 video + 1 audio in each of 4, 36; 7 video in 9, 10, 21. The audio packet of 36 is
        // never missed: no audio packet came after it.
        assert_eq!(c.lost, 7 * 5 - 1);
    }
}
