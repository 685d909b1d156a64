//! Like `decode`, but every input gets a valid header first, so the fuzzer spends its time on
//! message bodies instead of rediscovering b"MCP" and the version byte.
//! Input layout: byte 0 = message type, byte 1 = flags, the rest = body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcprobe::wire::{decode, Message, MAGIC, VERSION};

fuzz_target!(|data: &[u8]| {
    let [kind, flags, body @ ..] = data else { return };
    let mut buf = Vec::with_capacity(6 + body.len());
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[VERSION, *kind, *flags]);
    buf.extend_from_slice(body);

    // Same checks as the `decode` target, on the prefixed datagram.
    match decode(&buf) {
        Ok(Message::Ack(a)) => {
            let bytes = a.encode_within(buf.len()).expect("a decoded ack must fit its own length");
            assert!(bytes.len() <= buf.len(), "amplification: {} bytes from {}", bytes.len(), buf.len());
            assert_eq!(decode(&bytes), Ok(Message::Ack(a)));
        }
        Ok(Message::Probe(p)) => {
            let bytes = p.encode(buf.len());
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
