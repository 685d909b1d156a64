//! `mcprobe watch`: is the real stream reaching this host, and how well. Joins groups (or reads
//! a capture), and per (group, port, source) reports rate (mean, and the peak over 1 ms:
//! microbursts), inter-arrival gaps and jitter, and what the payload's own numbering says: RTP
//! sequence numbers and RFC 3550 jitter, MPEG-TS continuity counters and RFC 4445's MDI, or a
//! feed's own sequence field (`--seq u32be@0`).
//!
//! - pure, clock-free, tested exactly: [`seq`], [`rtp`], [`ts`], [`mdi`], [`burst`], [`engine`]
//!   (arrival times are inputs), [`packet`] (frames of a capture to UDP datagrams),
//!   [`verdict`] (thresholds);
//! - I/O: [`pcap`] (captures), [`receive`] (sockets, kernel receive timestamps);
//! - [`output`] renders (table, CSV, JSON, HTML); [`command`] drives it all.

pub mod burst;
pub mod engine;
pub mod mdi;
pub mod packet;
pub mod pcap;
pub mod receive;
pub mod rtp;
pub mod seq;
pub mod ts;
pub mod verdict;

use std::fmt;

/// A feed's own sequence number: its width, byte order and offset in the UDP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqField {
    /// 1, 2, 4 or 8 bytes.
    pub bytes: u8,
    pub big_endian: bool,
    pub offset: usize,
}

impl SeqField {
    /// Parses `u32be@0`, `u64le@8`, `u16be@2`, `u8@0`.
    pub fn parse(s: &str) -> Result<SeqField, String> {
        let bad = || format!("'{s}' is not a sequence field: write u32be@0, u64le@8, u16be@2 (type@offset)");
        let (ty, off) = s.trim().split_once('@').ok_or_else(bad)?;
        let offset: usize = off.parse().map_err(|_| bad())?;
        if offset > 9000 {
            return Err(format!("'{s}': offset {offset} is beyond any datagram's payload"));
        }
        let (bytes, big_endian) = match ty.to_ascii_lowercase().as_str() {
            "u8" => (1, true),
            "u16be" => (2, true),
            "u16le" => (2, false),
            "u32be" => (4, true),
            "u32le" => (4, false),
            "u64be" => (8, true),
            "u64le" => (8, false),
            _ => return Err(bad()),
        };
        Ok(SeqField { bytes, big_endian, offset })
    }

    /// The number in `payload`, if it is long enough.
    pub fn read(&self, payload: &[u8]) -> Option<u64> {
        let b = payload.get(self.offset..self.offset + self.bytes as usize)?;
        let mut v = [0u8; 8];
        if self.big_endian {
            v[8 - b.len()..].copy_from_slice(b);
            Some(u64::from_be_bytes(v))
        } else {
            v[..b.len()].copy_from_slice(b);
            Some(u64::from_le_bytes(v))
        }
    }
}

impl fmt::Display for SeqField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match (self.bytes, self.big_endian) {
            (1, _) => "",
            (_, true) => "be",
            (_, false) => "le",
        };
        write!(f, "u{}{end}@{}", self.bytes * 8, self.offset)
    }
}

/// What a stream's payload is, as detected or chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rtp,
    /// MPEG-TS in RTP (RFC 2250).
    RtpTs,
    /// MPEG-TS straight in UDP.
    Ts,
    Seq(SeqField),
    /// No numbering: rate, gaps in time and jitter only.
    Raw,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Rtp => f.write_str("rtp"),
            Format::RtpTs => f.write_str("rtp+ts"),
            Format::Ts => f.write_str("ts"),
            Format::Seq(s) => write!(f, "seq {s}"),
            Format::Raw => f.write_str("raw"),
        }
    }
}

/// `--format`, or `--seq` (which implies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// From each stream's first datagram: RTP (with TS inside or not), TS, else raw.
    Auto,
    Rtp,
    Ts,
    Seq(SeqField),
    Raw,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_fields() {
        let f = SeqField::parse("u32be@0").unwrap();
        assert_eq!(f, SeqField { bytes: 4, big_endian: true, offset: 0 });
        assert_eq!(f.read(&[0, 0, 1, 2, 9]), Some(258));
        let f = SeqField::parse("u64le@8").unwrap();
        let mut p = vec![0u8; 8];
        p.extend(7u64.to_le_bytes());
        assert_eq!(f.read(&p), Some(7));
        assert_eq!(f.read(&p[..15]), None);
        assert_eq!(f.to_string(), "u64le@8");
        assert_eq!(SeqField::parse("u8@3").unwrap().to_string(), "u8@3");
        assert_eq!(SeqField::parse("U16LE@2").unwrap().read(&[0, 0, 1, 1]), Some(257));
        assert!(SeqField::parse("u24be@0").unwrap_err().contains("u32be@0"));
        assert!(SeqField::parse("u32be").is_err());
        assert!(SeqField::parse("u32be@-1").is_err());
        assert!(SeqField::parse("u32be@99999").unwrap_err().contains("beyond"));
    }
}
