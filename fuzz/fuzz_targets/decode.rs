//! Fuzz `mcprobe::wire::decode` with arbitrary bytes.
//!
//! Checks: decode never panics; whatever it accepts re-encodes to something that decodes back
//! equal; and an ack re-encoded within the input's length is never longer than the input
//! (the responder's no-amplification rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcprobe::wire::{decode, Message};

fuzz_target!(|data: &[u8]| {
    // Must return Ok or Err for any input, never panic.
    match decode(data) {
        Ok(Message::Ack(a)) => {
            // The input is a valid ack, so the full ack (name included) fits in its length.
            let bytes = a.encode_within(data.len()).expect("a decoded ack must fit its own length");
            assert!(bytes.len() <= data.len(), "amplification: {} bytes from {}", bytes.len(), data.len());
            assert_eq!(decode(&bytes), Ok(Message::Ack(a)));
        }
        Ok(Message::Probe(p)) => {
            // Padding is not part of the message; re-encode at the input's size and compare.
            let bytes = p.encode(data.len());
            assert_eq!(decode(&bytes), Ok(Message::Probe(p)));
        }
        Ok(Message::Notice(n)) => {
            // Later fields are skipped: the known ones re-encode to the first NOTICE_LEN bytes.
            let mut bytes = Vec::new();
            n.encode_into(&mut bytes);
            assert_eq!(decode(&bytes), Ok(Message::Notice(n)));
        }
        Err(_) => {}
    }
});
