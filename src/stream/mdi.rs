//! Media Delivery Index (RFC 4445): the delay factor (DF) and the media loss rate (MLR) of a
//! stream, per measurement interval. Pure.
//!
//! DF: a virtual buffer fills with each packet's media bytes as it arrives and drains at the
//! media rate MR. With Ti the arrival time of packet i from the interval's start, Si its size
//! and Bi the bytes of the packets before it in the interval:
//! VB(i,pre) = Bi − MR·Ti, VB(i,post) = VB(i,pre) + Si, and
//! DF = [max VB(i,post) − min VB(i,pre)] / MR: how long the buffer must be, in time, to absorb
//! the arrival's jitter. MR is the nominal rate when the caller knows it; otherwise the stream's
//! mean media rate from its first packet to the interval's start (a stream has no DF in its
//! first interval). Not the previous interval's alone: a sender that stalls for a second would
//! make the next second's MR tiny and its DF absurd.
//! MLR: media packets (TS packets) lost or out of order in the interval, per second.

#[derive(Debug, Clone, Default)]
pub struct Mdi {
    /// Media bytes per second: fixed (nominal), or the previous interval's mean.
    nominal: Option<f64>,
    rate: Option<f64>,
    start_ns: u64,
    bytes: u64,
    vb: Option<(f64, f64)>,
    lost: u64,
    /// The stream's first packet, and its media bytes before this interval.
    first_ns: Option<u64>,
    bytes_before: u64,
}

/// One interval's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MdiInterval {
    /// Delay factor in seconds; `None` without a media rate yet, or without packets.
    pub df_s: Option<f64>,
    /// Media packets lost per second.
    pub mlr: f64,
}

impl Mdi {
    /// `nominal`: the stream's media rate in bytes/s, when known.
    pub fn new(nominal: Option<f64>, start_ns: u64) -> Self {
        Mdi { nominal, rate: nominal, start_ns, ..Mdi::default() }
    }

    /// `bytes` of media arrived at `t_ns` (not before the interval's start).
    pub fn packet(&mut self, t_ns: u64, bytes: u64) {
        self.first_ns.get_or_insert(t_ns);
        if let Some(mr) = self.rate {
            let t = t_ns.saturating_sub(self.start_ns) as f64 / 1e9;
            let pre = self.bytes as f64 - mr * t;
            let post = pre + bytes as f64;
            self.vb = Some(match self.vb {
                None => (pre, post),
                Some((lo, hi)) => (lo.min(pre), hi.max(post)),
            });
        }
        self.bytes += bytes;
    }

    /// Media packets found lost (or out of order) in this interval.
    pub fn lost(&mut self, packets: u64) {
        self.lost += packets;
    }

    /// Closes the interval that ends at `end_ns`; the next one starts there.
    pub fn close(&mut self, end_ns: u64) -> MdiInterval {
        let secs = end_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        let df_s = match (self.rate, self.vb) {
            (Some(mr), Some((lo, hi))) if mr > 0.0 => Some((hi - lo) / mr),
            _ => None,
        };
        let mlr = if secs > 0.0 { self.lost as f64 / secs } else { 0.0 };
        let bytes_before = self.bytes_before + self.bytes;
        let mean = self.first_ns.and_then(|f| {
            let span = end_ns.saturating_sub(f) as f64 / 1e9;
            (span > 0.0 && bytes_before > 0).then(|| bytes_before as f64 / span)
        });
        *self = Mdi {
            nominal: self.nominal,
            rate: self.nominal.or(mean),
            start_ns: end_ns,
            first_ns: self.first_ns,
            bytes_before,
            ..Mdi::default()
        };
        MdiInterval { df_s, mlr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_factor_and_loss_rate_by_hand() {
        const MS: u64 = 1_000_000;
        // Nominal 1000 B/s (1 byte per ms); 100-byte packets.
        let mut m = Mdi::new(Some(1000.0), 0);
        // Every 100 ms: the buffer drains exactly what arrives; DF is one packet's worth, 100 ms.
        for i in 0..10 {
            m.packet(i * 100 * MS, 100);
        }
        let r = m.close(1000 * MS);
        assert!((r.df_s.unwrap() - 0.1).abs() < 1e-12, "{r:?}");
        // Two packets at once at 1000 ms, then one at 1300 ms: pre = 0, 100, 200 − 300 = −100;
        // post = 100, 200, 0; DF = (200 − (−100)) / 1000 = 0.3 s. Three TS packets lost.
        m.packet(1000 * MS, 100);
        m.packet(1000 * MS, 100);
        m.packet(1300 * MS, 100);
        m.lost(3);
        let r = m.close(2000 * MS);
        assert!((r.df_s.unwrap() - 0.3).abs() < 1e-12, "{r:?}");
        assert_eq!(r.mlr, 3.0);
        // Without a nominal rate: the mean since the first packet.
        let mut m = Mdi::new(None, 0);
        m.packet(0, 500);
        assert_eq!(m.close(1000 * MS).df_s, None);
        m.packet(1500 * MS, 500);
        let r = m.close(2000 * MS);
        // MR = 500 B/s; pre = 0 − 250 = −250, post = 250: DF = 500 / 500 = 1 s.
        assert!((r.df_s.unwrap() - 1.0).abs() < 1e-12, "{r:?}");
    }
}
