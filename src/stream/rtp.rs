//! RTP (RFC 3550): the fixed header, and the interarrival jitter of section 6.4.1 from the
//! packets' RTP timestamps and their arrival times. Pure.

/// The parts of an RTP header the watch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Where the payload starts: after the CSRC list and any header extension.
    pub payload_offset: usize,
    /// Where it ends: before any padding.
    pub payload_end: usize,
}

/// Reads an RTP header: version 2, not RTCP (payload types 72–76 are RTCP's packet types seen
/// through the RTP header), CSRCs, extension and padding within the datagram.
pub fn parse(b: &[u8]) -> Option<RtpHeader> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let payload_type = b[1] & 0x7f;
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let mut off = 12 + 4 * (b[0] & 0x0f) as usize;
    if b[0] & 0x10 != 0 {
        let words = u16::from_be_bytes(b.get(off + 2..off + 4)?.try_into().ok()?) as usize;
        off += 4 + 4 * words;
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end = end.checked_sub(*b.last()? as usize)?;
    }
    if off > end {
        return None;
    }
    Some(RtpHeader {
        payload_type,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload_offset: off,
        payload_end: end,
    })
}

/// The RTP timestamp clock of a static payload type (RFC 3551); dynamic types (96–127) have
/// none: their clock is signalled out of band (SDP), so the caller supplies it.
pub fn static_clock(pt: u8) -> Option<u32> {
    match pt {
        6 => Some(16_000),
        10 | 11 => Some(44_100),
        16 => Some(11_025),
        17 => Some(22_050),
        0..=18 => Some(8_000),
        25..=34 => Some(90_000),
        _ => None,
    }
}

/// RFC 3550 interarrival jitter: for consecutive packets i, j,
/// D(i,j) = (Rj − Ri) − (Sj − Si) in timestamp units, J += (|D| − J) / 16.
#[derive(Debug, Clone, Default)]
pub struct Jitter {
    prev: Option<(u64, u32)>,
    /// In timestamp units.
    j: f64,
}

impl Jitter {
    /// A packet with RTP timestamp `ts` arrived at `arrival_ns`, with a `clock_hz` timestamp
    /// clock.
    pub fn arrive(&mut self, arrival_ns: u64, ts: u32, clock_hz: u32) {
        if let Some((r, s)) = self.prev {
            let dr = (arrival_ns as i128 - r as i128) as f64 * clock_hz as f64 / 1e9;
            let ds = ts.wrapping_sub(s) as i32 as f64;
            self.j += ((dr - ds).abs() - self.j) / 16.0;
        }
        self.prev = Some((arrival_ns, ts));
    }

    /// Starts over (a new SSRC: a new timestamp base).
    pub fn reset(&mut self) {
        *self = Jitter::default();
    }

    /// The jitter in seconds.
    pub fn seconds(&self, clock_hz: u32) -> f64 {
        self.j / clock_hz as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pt: u8, seq: u16, ts: u32, extra: &[u8]) -> Vec<u8> {
        let mut b = vec![0x80, pt];
        b.extend(seq.to_be_bytes());
        b.extend(ts.to_be_bytes());
        b.extend(0x1234_5678u32.to_be_bytes());
        b.extend(extra);
        b
    }

    #[test]
    fn headers_with_csrcs_extension_and_padding() {
        let h = parse(&header(33, 7, 90_000, &[0x47; 188])).unwrap();
        assert_eq!((h.payload_type, h.seq, h.timestamp, h.ssrc), (33, 7, 90_000, 0x1234_5678));
        assert_eq!((h.payload_offset, h.payload_end), (12, 200));
        // Two CSRCs, an extension of one word, 3 bytes of padding.
        let mut b = header(96, 1, 0, &[0; 8]);
        b[0] = 0x80 | 0x10 | 0x20 | 2;
        b.extend([0xbe, 0xde, 0, 1, 9, 9, 9, 9]);
        b.extend([1, 2, 3, 0, 0, 3]);
        let h = parse(&b).unwrap();
        assert_eq!((h.payload_offset, h.payload_end), (28, 31));
        // Not RTP: version 0, RTCP, too short, a header longer than the datagram.
        assert!(parse(&[0x00; 20]).is_none());
        assert!(parse(&header(72, 0, 0, &[])).is_none());
        assert!(parse(&[0x80; 11]).is_none());
        let mut b = header(96, 1, 0, &[]);
        b[0] |= 3;
        assert!(parse(&b).is_none());
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        // 90 kHz; packets 1 ms apart in timestamp (90 units), arriving 1 ms, 2 ms, 1 ms apart.
        let mut j = Jitter::default();
        j.arrive(0, 0, 90_000);
        j.arrive(1_000_000, 90, 90_000);
        assert_eq!(j.seconds(90_000), 0.0);
        j.arrive(3_000_000, 180, 90_000);
        // |D| = 90 units: J = 90/16.
        assert!((j.j - 90.0 / 16.0).abs() < 1e-9);
        j.arrive(4_000_000, 270, 90_000);
        assert!((j.j - 90.0 / 16.0 * 15.0 / 16.0).abs() < 1e-9);
        // Timestamps wrap.
        let mut j = Jitter::default();
        j.arrive(0, u32::MAX - 44, 90_000);
        j.arrive(1_000_000, 45, 90_000);
        assert_eq!(j.j, 0.0);
        assert_eq!(static_clock(33), Some(90_000));
        assert_eq!(static_clock(0), Some(8_000));
        assert_eq!(static_clock(96), None);
    }
}
