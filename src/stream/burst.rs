//! Microbursts: the most packets and bytes that arrived within any window of a fixed length
//! (1 ms), a sliding window over the arrivals, not fixed bins that could cut a burst in two.
//! Pure; it keeps only the arrivals of the last window, capped.

use std::collections::VecDeque;

/// Arrivals kept for one window: 1 ms at 16 million packets/s, far beyond any one host.
const CAP: usize = 16_384;

#[derive(Debug, Clone)]
pub struct Burst {
    window_ns: u64,
    recent: VecDeque<(u64, u32)>,
    pkts: u64,
    bytes: u64,
}

impl Burst {
    pub fn new(window_ns: u64) -> Self {
        Burst { window_ns, recent: VecDeque::new(), pkts: 0, bytes: 0 }
    }

    /// A packet of `bytes` at `t_ns`; returns the packets and bytes in the window (t − w, t].
    pub fn packet(&mut self, t_ns: u64, bytes: u32) -> (u64, u64) {
        while let Some(&(t, b)) = self.recent.front() {
            // Arrival stamps of different sockets may come a little out of order: an older
            // one only ever shortens what is held, never lengthens the window.
            if t + self.window_ns > t_ns && self.recent.len() < CAP {
                break;
            }
            self.recent.pop_front();
            self.pkts -= 1;
            self.bytes -= b as u64;
        }
        self.recent.push_back((t_ns, bytes));
        self.pkts += 1;
        self.bytes += bytes as u64;
        (self.pkts, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_over_a_burst_split_by_a_bin_edge() {
        let mut b = Burst::new(1_000_000);
        // 5 packets from 0.6 ms to 1.4 ms: fixed 1 ms bins would see 3 + 2.
        let peak = (0..5).map(|i| b.packet(600_000 + i * 200_000, 100)).max().unwrap();
        assert_eq!(peak, (5, 500));
        // 1 ms after the 0.6 ms packet it has left the window: (t − 1 ms, t].
        assert_eq!(b.packet(1_600_000, 10), (5, 410));
        assert_eq!(b.packet(10_000_000, 10), (1, 10));
    }
}
