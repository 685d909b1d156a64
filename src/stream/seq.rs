//! Sequence numbers of a flow: RTP's 16 bits, or a feed's own 32- or 64-bit counter, extended
//! to 64 bits as RFC 3550 (appendix A.1) extends RTP's, and counted: lost, duplicated,
//! reordered, gaps. Pure; bounded memory (a 4096-number bitmap tells duplicates from late
//! arrivals, whatever the length of the run).

/// How far back duplicates are told apart from late packets; also the largest backward step
/// taken as reordering rather than a restart of the sender's numbering.
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// What a flow's sequence numbers say so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqCounts {
    /// Distinct sequence numbers received.
    pub received: u64,
    /// Numbers from the first to the highest received (summed over restarts).
    pub expected: u64,
    /// Expected and never received (a late arrival takes its number off again).
    pub lost: u64,
    pub duplicates: u64,
    /// Arrived after a higher-numbered packet.
    pub reordered: u64,
    /// Holes in the numbering: runs of numbers never received, however long each (a hole a late
    /// packet fills is none).
    pub gaps: u64,
    /// The most numbers in one hole.
    pub largest_gap: u64,
    /// The numbering restarted (a jump too large to be loss, confirmed by the next packet).
    pub resyncs: u64,
}

/// What one packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next number, or a jump forward over `missing` numbers.
    InOrder {
        missing: u64,
    },
    /// A number not yet seen, lower than the highest.
    Late,
    Duplicate,
    /// Out of any sensible range: held until the next packet says whether the numbering
    /// restarted; not counted.
    Stray,
    /// The numbering restarted here.
    Resync,
}

#[derive(Debug, Clone)]
pub struct SeqTracker {
    bits: u32,
    max_dropout: u64,
    started: bool,
    base: u64,
    max: u64,
    seen: [u64; WORDS],
    /// The number after a stray one: if it comes next, the numbering restarted.
    probation: Option<u64>,
    /// Expected of the sessions before the last restart.
    done_expected: u64,
    /// Numbers missing, in a row, that have left the window (a hole not closed yet).
    run: u64,
    c: SeqCounts,
}

impl SeqTracker {
    /// `bits`: 16 (RTP), 32 or 64. Forward jumps of more than RFC 3550's MAX_DROPOUT (3000)
    /// for 16 bits, 2^24 otherwise, are a restart candidate, not loss.
    pub fn new(bits: u32) -> Self {
        assert!(matches!(bits, 8 | 16 | 32 | 64), "sequence widths are 8, 16, 32 or 64 bits");
        let max_dropout = match bits {
            8 => 100,
            16 => 3000,
            _ => 1 << 24,
        };
        SeqTracker {
            bits,
            max_dropout,
            started: false,
            base: 0,
            max: 0,
            seen: [0; WORDS],
            probation: None,
            done_expected: 0,
            run: 0,
            c: SeqCounts::default(),
        }
    }

    fn mask(&self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// The step from the highest number to `raw`, signed, in the counter's own width.
    fn step(&self, raw: u64) -> i64 {
        let d = raw.wrapping_sub(self.max) & self.mask();
        if self.bits == 64 {
            d as i64
        } else if d >= 1 << (self.bits - 1) {
            d as i64 - (1i64 << self.bits)
        } else {
            d as i64
        }
    }

    fn bit(&self, ext: u64) -> bool {
        let i = (ext % WINDOW) as usize;
        self.seen[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, ext: u64) {
        let i = (ext % WINDOW) as usize;
        self.seen[i / 64] |= 1 << (i % 64);
    }

    /// Holes in the window (continuing the run that left it): (holes, the longest).
    fn window_holes(&self) -> (u64, u64) {
        if !self.started {
            return (0, 0);
        }
        let (mut holes, mut longest, mut run) = (0, 0, self.run);
        let from = self.base.max(self.max.saturating_sub(WINDOW - 1));
        // The highest number is always received: every run ends inside the window.
        for x in from..=self.max {
            if self.bit(x) {
                if run > 0 {
                    holes += 1;
                    longest = longest.max(run);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        (holes, longest)
    }

    /// Number `x` leaves the window: a hole closes, or grows.
    fn leave(&mut self, x: u64) {
        if self.bit(x) {
            if self.run > 0 {
                self.c.gaps += 1;
                self.c.largest_gap = self.c.largest_gap.max(self.run);
            }
            self.run = 0;
        } else {
            self.run += 1;
        }
    }

    fn start(&mut self, raw: u64) {
        let (holes, longest) = self.window_holes();
        self.c.gaps += holes;
        self.c.largest_gap = self.c.largest_gap.max(longest);
        self.run = 0;
        self.done_expected += self.session_expected();
        // The extended number starts at the raw one, so a 64-bit feed's numbers read as sent.
        self.base = raw;
        self.max = raw;
        self.seen = [0; WORDS];
        self.set(raw);
        self.started = true;
        self.probation = None;
    }

    fn session_expected(&self) -> u64 {
        if self.started {
            self.max - self.base + 1
        } else {
            0
        }
    }

    /// One packet's sequence number (in the counter's width).
    pub fn arrive(&mut self, raw: u64) -> Arrival {
        let raw = raw & self.mask();
        if !self.started {
            self.start(raw);
            self.c.received += 1;
            return Arrival::InOrder { missing: 0 };
        }
        let step = self.step(raw);
        let ext = self.max as i128 + step as i128;
        if step > 0 && (step as u64) <= self.max_dropout {
            let ext = ext as u64;
            // The numbers that leave the window, before their slots are reused; those jumped
            // over entirely were never received.
            let first = self.base.max((self.max + 1).saturating_sub(WINDOW));
            let last = self.max.min(ext.saturating_sub(WINDOW));
            if ext >= WINDOW {
                for x in first..=last {
                    self.leave(x);
                }
            }
            let skipped = ext.saturating_sub(WINDOW).saturating_sub(self.max);
            self.run += skipped;
            // Clear the bitmap slots the window moves over.
            if step as u64 >= WINDOW {
                self.seen = [0; WORDS];
            } else {
                for e in self.max + 1..ext {
                    let i = (e % WINDOW) as usize;
                    self.seen[i / 64] &= !(1 << (i % 64));
                }
            }
            self.max = ext;
            self.set(ext);
            self.c.received += 1;
            self.probation = None;
            return Arrival::InOrder { missing: step as u64 - 1 };
        }
        if step <= 0 && (-step as u64) < WINDOW && ext >= self.base as i128 {
            let ext = ext as u64;
            self.probation = None;
            if self.bit(ext) {
                self.c.duplicates += 1;
                return Arrival::Duplicate;
            }
            self.set(ext);
            self.c.received += 1;
            self.c.reordered += 1;
            return Arrival::Late;
        }
        // Too far either way: a restart if the next packet follows this one.
        if self.probation == Some(raw) {
            self.c.resyncs += 1;
            // The stray packet before this one opened the new numbering: count both.
            let prev = raw.wrapping_sub(1) & self.mask();
            if prev < raw {
                self.start(prev);
                self.max = raw;
                self.set(raw);
                self.c.received += 2;
            } else {
                self.start(raw);
                self.c.received += 1;
            }
            return Arrival::Resync;
        }
        self.probation = Some(raw.wrapping_add(1) & self.mask());
        Arrival::Stray
    }

    pub fn counts(&self) -> SeqCounts {
        let expected = self.done_expected + self.session_expected();
        let (holes, longest) = self.window_holes();
        SeqCounts {
            expected,
            lost: expected.saturating_sub(self.c.received),
            gaps: self.c.gaps + holes,
            largest_gap: self.c.largest_gap.max(longest),
            ..self.c
        }
    }

    /// The highest extended number received.
    pub fn highest(&self) -> Option<u64> {
        self.started.then_some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bits: u32, seqs: &[u64]) -> (SeqCounts, Vec<Arrival>) {
        let mut t = SeqTracker::new(bits);
        let a = seqs.iter().map(|&s| t.arrive(s)).collect();
        (t.counts(), a)
    }

    #[test]
    fn in_order_loss_duplicates_and_reordering() {
        let (c, a) = run(32, &[10, 11, 13, 12, 12, 17, 18, 11]);
        assert_eq!(
            a,
            vec![
                Arrival::InOrder { missing: 0 },
                Arrival::InOrder { missing: 0 },
                Arrival::InOrder { missing: 1 },
                Arrival::Late,
                Arrival::Duplicate,
                Arrival::InOrder { missing: 3 },
                Arrival::InOrder { missing: 0 },
                Arrival::Duplicate,
            ]
        );
        assert_eq!(
            c,
            SeqCounts {
                received: 6,
                expected: 9,
                lost: 3,
                duplicates: 2,
                reordered: 1,
                // 14-16; 12 came late.
                gaps: 1,
                largest_gap: 3,
                resyncs: 0
            }
        );
    }

    #[test]
    fn holes_are_counted_when_they_leave_the_window_or_at_the_end() {
        let mut t = SeqTracker::new(32);
        // A hole of 5 far behind, one of 2 still in the window, a jump past the whole window.
        for s in (0..10).chain(15..20_000).filter(|s| !(19_990..19_992).contains(s)) {
            t.arrive(s);
        }
        assert_eq!((t.counts().gaps, t.counts().largest_gap), (2, 5));
        t.arrive(30_000);
        let c = t.counts();
        assert_eq!((c.gaps, c.largest_gap, c.lost), (3, 10_000, 5 + 2 + 10_000));
    }

    #[test]
    fn rtp_numbers_wrap_into_32_bits() {
        let seqs: Vec<u64> = (65530..65536).chain(0..5).filter(|s| *s != 2).collect();
        let (c, _) = run(16, &seqs);
        assert_eq!((c.expected, c.received, c.lost, c.gaps), (11, 10, 1, 1));
        let mut t = SeqTracker::new(16);
        for s in 0..70_000u64 {
            t.arrive(s & 0xffff);
        }
        assert_eq!(t.highest(), Some(69_999));
        assert_eq!(t.counts().lost, 0);
    }

    #[test]
    fn a_late_packet_across_the_wrap() {
        let (c, a) = run(16, &[65534, 0, 65535, 1]);
        assert_eq!(a[2], Arrival::Late);
        assert_eq!((c.expected, c.lost, c.reordered), (4, 0, 1));
    }

    #[test]
    fn a_restart_is_not_loss() {
        // The sender restarts from 0 after 5000: two packets in a row confirm it.
        let (c, a) = run(32, &[5000, 5001, 0, 1, 2]);
        assert_eq!(a[2..], [Arrival::Stray, Arrival::Resync, Arrival::InOrder { missing: 0 }]);
        assert_eq!((c.expected, c.received, c.lost, c.resyncs), (5, 5, 0, 1));
        // One stray packet alone changes nothing.
        let (c, _) = run(16, &[100, 101, 40_000, 102]);
        assert_eq!((c.expected, c.lost, c.resyncs), (3, 0, 0));
    }

    #[test]
    fn sixty_four_bits_read_as_sent_and_duplicates_older_than_the_window_are_late() {
        let big = u64::MAX - 2;
        let (c, _) = run(64, &[big, big + 1, big + 2]);
        assert_eq!((c.expected, c.lost), (3, 0));
        let mut t = SeqTracker::new(32);
        for s in 0..10_000 {
            t.arrive(s);
        }
        // Within the window: a duplicate; far behind it: a restart candidate, not counted.
        assert_eq!(t.arrive(9_000), Arrival::Duplicate);
        assert_eq!(t.arrive(10), Arrival::Stray);
        assert_eq!(t.counts().received, 10_000);
    }
}
