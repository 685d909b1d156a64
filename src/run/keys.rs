//! What a prober hears that says a responder and it do not share a key: notices from keyed
//! responders that refused its probes (see `crate::wire`'s "Notices"), and acks without any tag
//! to its keyed probes (a responder without a key answers those as if they were not keyed).
//! Recorded per source address, for the findings to name a key mismatch instead of a silent
//! host. Nothing here is authenticated: it is evidence for a diagnosis, never for the counts.
//! Pure data with no dependency (the receiver translates what it decoded), so it can travel with
//! the run result wherever that lives.

use std::net::IpAddr;

/// One piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySign {
    /// A notice: the responder needs a key, and the probe carried none.
    KeyNeeded,
    /// A notice: the probe's tag does not verify with the responder's key.
    OtherKey,
    /// An ack without a tag to a keyed probe.
    UnkeyedAck,
}

/// Source addresses tracked per path; evidence from more is only counted (`untracked`), so a
/// flood of forged notices from many addresses cannot grow memory.
pub const MAX_SOURCES: usize = 64;

/// The evidence from one source address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Notices "this responder needs a key": the probes carried none.
    pub key_needed: u64,
    /// Notices "the probe's tag does not verify here": another key (or copies sent elsewhere).
    pub other_key: u64,
    /// Acks without a tag to this prober's keyed probes: the responder has no key.
    pub unkeyed_acks: u64,
}

impl KeyCounts {
    pub fn total(&self) -> u64 {
        self.key_needed + self.other_key + self.unkeyed_acks
    }

    pub(crate) fn add(&mut self, other: &KeyCounts) {
        self.key_needed += other.key_needed;
        self.other_key += other.other_key;
        self.unkeyed_acks += other.unkeyed_acks;
    }
}

/// The evidence of one path (the multicast run, or one `--hosts` host's unicast run), by source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEvidence {
    /// In the order first heard; at most [`MAX_SOURCES`].
    by_source: Vec<(IpAddr, KeyCounts)>,
    /// Datagrams of evidence from addresses beyond [`MAX_SOURCES`].
    pub untracked: u64,
}

impl KeyEvidence {
    fn counts(&mut self, from: IpAddr) -> Option<&mut KeyCounts> {
        let from = from.to_canonical();
        match self.by_source.iter().position(|(a, _)| *a == from) {
            Some(i) => Some(&mut self.by_source[i].1),
            None if self.by_source.len() < MAX_SOURCES => {
                self.by_source.push((from, KeyCounts::default()));
                self.by_source.last_mut().map(|(_, c)| c)
            }
            None => {
                self.untracked += 1;
                None
            }
        }
    }

    /// Evidence from `from`.
    pub(crate) fn record(&mut self, from: IpAddr, sign: KeySign) {
        if let Some(c) = self.counts(from) {
            *match sign {
                KeySign::KeyNeeded => &mut c.key_needed,
                KeySign::OtherKey => &mut c.other_key,
                KeySign::UnkeyedAck => &mut c.unkeyed_acks,
            } += 1;
        }
    }

    /// The evidence from `ip`, if any.
    pub fn of(&self, ip: IpAddr) -> Option<KeyCounts> {
        let ip = ip.to_canonical();
        self.by_source.iter().find(|(a, _)| *a == ip).map(|(_, c)| *c)
    }

    /// Every source with its evidence, in the order first heard.
    pub fn sources(&self) -> impl Iterator<Item = (IpAddr, KeyCounts)> + '_ {
        self.by_source.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty() && self.untracked == 0
    }

    /// Adds `other`'s evidence to this one's, source by source (still at most [`MAX_SOURCES`]).
    pub fn merge(&mut self, other: &KeyEvidence) {
        for (ip, c) in other.sources() {
            match self.counts(ip) {
                Some(mine) => mine.add(&c),
                None => self.untracked += c.total() - 1, // `counts` counted one already
            }
        }
        self.untracked += other.untracked;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_kept_per_source_and_bounded() {
        let mut e = KeyEvidence::default();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        e.record(a, KeySign::KeyNeeded);
        e.record("::ffff:10.0.0.2".parse().unwrap(), KeySign::OtherKey);
        e.record(a, KeySign::UnkeyedAck);
        assert_eq!(e.of(a), Some(KeyCounts { key_needed: 1, other_key: 1, unkeyed_acks: 1 }));
        assert_eq!(e.of("10.0.0.3".parse().unwrap()), None);
        for i in 0..1000u32 {
            e.record(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)), KeySign::OtherKey);
        }
        assert_eq!((e.sources().count(), e.untracked), (MAX_SOURCES, 1000 - (MAX_SOURCES as u64 - 1)));
        let mut merged = KeyEvidence::default();
        merged.record(a, KeySign::UnkeyedAck);
        merged.merge(&e);
        assert_eq!(merged.of(a).unwrap().total(), 4);
        let all = |e: &KeyEvidence| e.sources().map(|(_, c)| c.total()).sum::<u64>() + e.untracked;
        assert_eq!(all(&merged), all(&e) + 1, "nothing lost in the merge");
    }
}
