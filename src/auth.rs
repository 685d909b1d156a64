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

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::wire::{FLAG_AUTH, FLAG_OFFSET, HEADER_LEN, TAG_LEN};

/// A derived 32-byte key. Its `Debug` output never shows it.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

const CONTEXT: &str = "mcprobe 2026-11 probe and ack authentication v1";

impl Key {
    pub fn from_secret(secret: &[u8]) -> Result<Self> {
        if secret.is_empty() {
            bail!("the key is empty");
        }
        Ok(Key(blake3::derive_key(CONTEXT, secret)))
    }

    /// Reads a secret from a file; surrounding whitespace (a trailing newline) is not part of it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("--key-file {}: cannot read", path.display()))?;
        let trimmed = bytes.trim_ascii();
        Key::from_secret(trimmed).with_context(|| format!("--key-file {}", path.display()))
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let hash = blake3::keyed_hash(&self.0, body);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&hash.as_bytes()[..TAG_LEN]);
        tag
    }

    /// Marks an encoded message as keyed and appends its tag.
    pub fn seal(&self, msg: &mut Vec<u8>) {
        if msg.len() < HEADER_LEN {
            return;
        }
        msg[FLAG_OFFSET] |= FLAG_AUTH;
        let tag = self.tag(msg);
        msg.extend_from_slice(&tag);
    }

    /// True when `msg` is keyed and its tag is right for this key.
    pub fn verify(&self, msg: &[u8]) -> bool {
        if msg.len() < HEADER_LEN + TAG_LEN || msg[FLAG_OFFSET] & FLAG_AUTH == 0 {
            return false;
        }
        let (body, tag) = msg.split_at(msg.len() - TAG_LEN);
        // Constant-time comparison: the tag must not leak byte by byte through timing.
        constant_time_eq(&self.tag(body), tag)
    }
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

    #[test]
    fn the_key_is_never_printed() {
        let key = Key::from_secret(b"hunter2").unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("hunter2") && shown.contains("redacted"));
        assert!(Key::from_secret(b"").is_err());
    }
}
