//! Optional authentication of probes and acks: a keyed BLAKE3 hash (a MAC) over the whole datagram.
//!
//! A keyed datagram has the `FLAG_AUTH` bit set in its header and ends with a 16-byte tag, the
//! first 16 bytes of `blake3::keyed_hash(key, everything before the tag)`. 128 bits is what
//! truncated HMACs in routing protocols use; forging one by chance is out of reach. The key is
//! derived from the user's secret with `blake3::derive_key`, so any length of secret works and the
//! raw secret is never kept.
//!
//! A tag proves who made a datagram, not who sends it now, nor when: anyone who sees a keyed
//! probe on the LAN (every host sees multicast) can send it again, from any source address. A
//! responder that answered such replays would send an ack to whatever address the copy claims,
//! and every responder on the group would: a fan-out to a third party. So a keyed responder also
//! checks that the probe is fresh (its send time near the responder's clock), answers each
//! (session, sequence) at most once, and answers a session only at the address that started it
//! (see `crate::responder`).
//!
//! Those checks know only the responders that saw the original. A copy sent to another group or
//! port, or to a source-specific (SSM) channel of another source, reaches responders that never
//! did, from any address the sender claims. So a probe's tag also binds what the probe is for
//! ([`Binding`]): the destination address (the group, or the host of a unicast probe) and port
//! it was sent to, and the source address it was sent from. None of them travels in the probe:
//! the prober mixes them into the tag, and the responder mixes in what the datagram itself shows
//! (the destination address the kernel reports with IP_PKTINFO, the port it listens on, the
//! source address), the way TCP's checksum covers a pseudo-header. A copy anywhere else fails
//! like a wrong key. That needs no state, and holds for several groups on one port. The tag is
//! made with a key of the binding ([`BoundKey`]: the binding hashed under a key derived from the
//! secret with a context of its own), so a bound tag is never valid as an unbound one or as an
//! ack's. A prober derives one per path and keeps it; a responder keeps the few it sees most
//! ([`BoundKeys`]), so a steady prober's probe costs one MAC check as before, and a probe for a
//! binding not kept costs one more hash of 34 bytes.
//!
//! Probes of earlier versions carry unbound tags (their `asks` byte lacks [`wire::ASKS_BOUND`]).
//! A responder of this version refuses them, counted and named apart from wrong keys
//! ([`ProbeTag::Unbound`]): answering them would keep the cross-group replay open for as long as
//! any old prober runs. A keyed LAN therefore upgrades its probers and responders together;
//! unkeyed ones are not affected.
//!
//! Acks are not bound. An ack already echoes its probe's session, sequence number and send time
//! under its tag, and the session is random per run and per path: a copy sent to another
//! prober names a session that prober does not have (counted as foreign), and a copy sent to
//! the same prober is a duplicate of an ack it had (counted as one, never as an answer). Only a
//! host that sees the unicast acks can make such copies at all.
//!
//! [`wire::ASKS_BOUND`]: crate::wire

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::wire::{ASKS_BOUND, ASKS_OFFSET, FLAG_AUTH, FLAG_OFFSET, HEADER_LEN, TAG_LEN};

/// The keys derived from one secret: one for acks and earlier versions' probes, one for bound
/// probes. Its `Debug` output never shows them.
#[derive(Clone)]
pub struct Key {
    plain: [u8; 32],
    bound: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

const CONTEXT: &str = "mcprobe 2026-11 probe and ack authentication v1";
const BOUND_CONTEXT: &str = "mcprobe 2026-12 probe authentication bound to destination and source v2";

/// What a probe is for: the destination it was sent to and the source it was sent from. Part of
/// its tag, never of its bytes (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The group (or a unicast probe's host) and the port.
    pub dst: SocketAddr,
    /// The prober's address the probe leaves from.
    pub src: IpAddr,
}

impl Binding {
    /// Bytes of [`encode`](Self::encode).
    const LEN: usize = 34;

    /// Destination address, port, source address; addresses as 16 bytes (IPv4 mapped into
    /// IPv6), so one layout serves both families and an IPv4 address and its mapped form bind
    /// alike.
    fn encode(&self) -> [u8; Self::LEN] {
        let v6 = |a: IpAddr| match a.to_canonical() {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        let mut out = [0u8; Self::LEN];
        out[..16].copy_from_slice(&v6(self.dst.ip()));
        out[16..18].copy_from_slice(&self.dst.port().to_be_bytes());
        out[18..].copy_from_slice(&v6(self.src));
        out
    }
}

/// The key that makes and checks the tags of one [`Binding`]'s probes. Its `Debug` output never
/// shows it.
#[derive(Clone)]
pub struct BoundKey([u8; 32]);

impl fmt::Debug for BoundKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundKey(<redacted>)")
    }
}

impl BoundKey {
    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        truncate(blake3::keyed_hash(&self.0, body))
    }

    /// Marks an encoded probe as keyed and bound (its `asks` byte says so, under the tag) and
    /// appends its tag. A probe too short to have an `asks` byte (never answered anyway) gets a
    /// bound tag no responder accepts.
    pub fn seal(&self, msg: &mut Vec<u8>) {
        if msg.len() < HEADER_LEN {
            return;
        }
        msg[FLAG_OFFSET] |= FLAG_AUTH;
        if let Some(asks) = msg.get_mut(ASKS_OFFSET) {
            *asks |= ASKS_BOUND;
        }
        let tag = self.tag(msg);
        msg.extend_from_slice(&tag);
    }
}

/// The bound keys of the bindings a responder saw last, so that a steady prober's probes cost
/// one MAC check each: a prober's multicast and unicast paths are two bindings, a few probers a
/// few more. A binding not kept is derived again (one more hash of 34 bytes) and replaces the
/// oldest.
#[derive(Debug, Default)]
pub struct BoundKeys {
    kept: [Option<(Binding, BoundKey)>; 4],
    next: usize,
}

impl BoundKeys {
    fn get(&mut self, key: &Key, binding: &Binding) -> &BoundKey {
        let i = match self.kept.iter().position(|k| k.as_ref().is_some_and(|(b, _)| b == binding)) {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next = (i + 1) % self.kept.len();
                self.kept[i] = Some((*binding, key.bound_key(binding)));
                i
            }
        };
        &self.kept[i].as_ref().expect("kept just now").1
    }
}

/// What a probe's tag says, checked against the binding the responder sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeTag {
    /// Keyed with this key, for this destination and source.
    Valid,
    /// Not keyed at all.
    Missing,
    /// Keyed with this key by an earlier version, whose tags bind nothing: refused.
    Unbound,
    /// Keyed, but not with this key, or not for this destination and source.
    Invalid,
}

impl Key {
    pub fn from_secret(secret: &[u8]) -> Result<Self> {
        if secret.is_empty() {
            bail!("the key is empty");
        }
        Ok(Key { plain: blake3::derive_key(CONTEXT, secret), bound: blake3::derive_key(BOUND_CONTEXT, secret) })
    }

    /// Reads a secret from a file; surrounding whitespace (a trailing newline) is not part of it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("--key-file {}: cannot read", path.display()))?;
        let trimmed = bytes.trim_ascii();
        Key::from_secret(trimmed).with_context(|| format!("--key-file {}", path.display()))
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        truncate(blake3::keyed_hash(&self.plain, body))
    }

    /// The key of `binding`'s probes.
    pub fn bound_key(&self, binding: &Binding) -> BoundKey {
        BoundKey(*blake3::keyed_hash(&self.bound, &binding.encode()).as_bytes())
    }

    /// Marks an encoded ack as keyed and appends its tag.
    pub fn seal(&self, msg: &mut Vec<u8>) {
        if msg.len() < HEADER_LEN {
            return;
        }
        msg[FLAG_OFFSET] |= FLAG_AUTH;
        let tag = self.tag(msg);
        msg.extend_from_slice(&tag);
    }

    /// True when `msg` (an ack) is keyed and its tag is right for this key.
    pub fn verify(&self, msg: &[u8]) -> bool {
        if msg.len() < HEADER_LEN + TAG_LEN || msg[FLAG_OFFSET] & FLAG_AUTH == 0 {
            return false;
        }
        let (body, tag) = msg.split_at(msg.len() - TAG_LEN);
        // Constant-time comparison: the tag must not leak byte by byte through timing.
        constant_time_eq(&self.tag(body), tag)
    }

    /// Seals a probe for `binding` (see [`BoundKey::seal`]); a prober keeps the [`BoundKey`]
    /// of each path instead.
    pub fn seal_probe(&self, msg: &mut Vec<u8>, binding: &Binding) {
        self.bound_key(binding).seal(msg);
    }

    /// Checks a probe's tag against the binding the responder sees (see
    /// [`check_probe_kept`](Self::check_probe_kept)).
    pub fn check_probe(&self, msg: &[u8], binding: &Binding) -> ProbeTag {
        self.check_probe_kept(msg, binding, &mut BoundKeys::default())
    }

    /// Checks a probe's tag against the binding the responder sees, with the bound keys kept in
    /// `kept`: one MAC computation, of the kind its `asks` byte claims (a false claim just
    /// fails), plus the bound key's derivation when `kept` lacks it.
    pub fn check_probe_kept(&self, msg: &[u8], binding: &Binding, kept: &mut BoundKeys) -> ProbeTag {
        if msg.len() < HEADER_LEN || msg[FLAG_OFFSET] & FLAG_AUTH == 0 {
            return ProbeTag::Missing;
        }
        if msg.len() < HEADER_LEN + TAG_LEN {
            return ProbeTag::Invalid;
        }
        let (body, tag) = msg.split_at(msg.len() - TAG_LEN);
        if body.get(ASKS_OFFSET).is_some_and(|b| b & ASKS_BOUND != 0) {
            return if constant_time_eq(&kept.get(self, binding).tag(body), tag) {
                ProbeTag::Valid
            } else {
                ProbeTag::Invalid
            };
        }
        if constant_time_eq(&self.tag(body), tag) {
            ProbeTag::Unbound
        } else {
            ProbeTag::Invalid
        }
    }
}

fn truncate(hash: blake3::Hash) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&hash.as_bytes()[..TAG_LEN]);
    tag
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, Message, Probe};

    #[test]
    fn sealed_messages_verify_and_decode() {
        let key = Key::from_secret(b"s3cret").unwrap();
        let mut p = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false }.encode(100 - TAG_LEN);
        key.seal(&mut p);
        assert_eq!(p.len(), 100);
        assert!(key.verify(&p));
        assert_eq!(decode(&p), Ok(Message::Probe(Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false })));
    }

    #[test]
    fn wrong_keys_tampering_and_unkeyed_messages_fail() {
        let key = Key::from_secret(b"s3cret").unwrap();
        let other = Key::from_secret(b"s3cret!").unwrap();
        let plain = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false }.encode(80);
        assert!(!key.verify(&plain));
        let mut sealed = plain.clone();
        key.seal(&mut sealed);
        assert!(!other.verify(&sealed));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(!key.verify(&t), "flipping byte {i} went unnoticed");
        }
        assert!(!key.verify(&sealed[..sealed.len() - 1]));
    }

    fn binding(dst: &str, src: &str) -> Binding {
        Binding { dst: dst.parse().unwrap(), src: src.parse().unwrap() }
    }

    fn bound_probe(key: &Key, b: &Binding) -> Vec<u8> {
        let mut p = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false }.encode(128 - TAG_LEN);
        key.seal_probe(&mut p, b);
        p
    }

    #[test]
    fn a_bound_probe_is_valid_only_where_it_was_sent() {
        let key = Key::from_secret(b"s3cret").unwrap();
        let sent = binding("239.255.42.42:24242", "10.0.0.1");
        let p = bound_probe(&key, &sent);
        assert_eq!(p.len(), 128);
        assert_eq!(key.check_probe(&p, &sent), ProbeTag::Valid);
        assert_eq!(decode(&p), Ok(Message::Probe(Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false })));
        for elsewhere in [
            binding("239.255.42.43:24242", "10.0.0.1"),
            binding("239.255.42.42:24243", "10.0.0.1"),
            binding("239.255.42.42:24242", "10.0.0.2"),
            binding("[ff12::4242]:24242", "10.0.0.1"),
        ] {
            assert_eq!(key.check_probe(&p, &elsewhere), ProbeTag::Invalid, "{elsewhere:?}");
        }
        // An IPv4 address and its IPv4-mapped IPv6 form are one address.
        assert_eq!(key.check_probe(&p, &binding("[::ffff:239.255.42.42]:24242", "::ffff:10.0.0.1")), ProbeTag::Valid);
        // Another key, tampering, clearing the bound bit (claiming an unbound tag): all fail.
        let other = Key::from_secret(b"s3cret!").unwrap();
        assert_eq!(other.check_probe(&p, &sent), ProbeTag::Invalid);
        for i in 0..p.len() {
            let mut t = p.clone();
            t[i] ^= 1;
            assert_ne!(key.check_probe(&t, &sent), ProbeTag::Valid, "flipping byte {i} went unnoticed");
        }
        let mut unbound_claim = p.clone();
        unbound_claim[crate::wire::ASKS_OFFSET] &= !ASKS_BOUND;
        assert_eq!(key.check_probe(&unbound_claim, &sent), ProbeTag::Invalid);
        // A bound probe's tag is not an ack's.
        assert!(!key.verify(&p));
    }

    #[test]
    fn earlier_versions_unbound_probes_and_unkeyed_ones_are_told_apart() {
        let key = Key::from_secret(b"s3cret").unwrap();
        let sent = binding("239.255.42.42:24242", "10.0.0.1");
        // As a version-1 prober seals: zero padding, the ack's kind of tag.
        let mut old = crate::wire::v1::Probe { session: 1, seq: 2, tx_ns: 3 }.encode(128 - TAG_LEN);
        key.seal(&mut old);
        assert_eq!(key.check_probe(&old, &sent), ProbeTag::Unbound);
        let other = Key::from_secret(b"another").unwrap();
        assert_eq!(other.check_probe(&old, &sent), ProbeTag::Invalid);
        let plain = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false }.encode(128);
        assert_eq!(key.check_probe(&plain, &sent), ProbeTag::Missing);
        assert_eq!(key.check_probe(b"MC", &sent), ProbeTag::Missing);
    }

    #[test]
    fn kept_bound_keys_check_as_fresh_ones_do() {
        let key = Key::from_secret(b"s3cret").unwrap();
        let mut kept = BoundKeys::default();
        // Six bindings in turn through a cache of four: every one evicted and derived again.
        let bindings: Vec<Binding> = (1..=6).map(|h| binding("239.255.42.42:24242", &format!("10.0.0.{h}"))).collect();
        for round in 0..3 {
            for (i, b) in bindings.iter().enumerate() {
                let p = bound_probe(&key, b);
                assert_eq!(key.check_probe_kept(&p, b, &mut kept), ProbeTag::Valid, "round {round}, binding {i}");
                let other = &bindings[(i + 1) % bindings.len()];
                assert_eq!(key.check_probe_kept(&p, other, &mut kept), ProbeTag::Invalid, "round {round}, binding {i}");
            }
        }
        // The tag is the bound key's MAC over the datagram, the bound key a MAC of the binding.
        let p = bound_probe(&key, &bindings[0]);
        let bound = blake3::keyed_hash(&key.bound, &bindings[0].encode());
        assert_eq!(p[p.len() - TAG_LEN..], truncate(blake3::keyed_hash(bound.as_bytes(), &p[..p.len() - TAG_LEN])));
        assert_eq!(format!("{:?}", key.bound_key(&bindings[0])), "BoundKey(<redacted>)");
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = Key::from_secret(b"hunter2").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("hunter2") && shown.contains("redacted"));
        assert!(Key::from_secret(b"").is_err());
    }
}
