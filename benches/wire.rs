//! Micro-benchmarks of the wire format (`mcprobe::wire`): what one probe or ack costs to encode and
//! decode. These sit on the hot paths of both engines (the prober encodes every probe and decodes
//! every ack; a responder decodes every probe and encodes every ack), so a regression here caps the
//! probe rate a single core can sustain.
//!
//! Run with `cargo bench --bench wire`. Each bench handles one message per iteration: divan shows
//! both messages/s (`ItemsCount`) and bytes/s (`BytesCount`, the datagram's length). Outputs that the real code frees right away (an encoded
//! ack, a decoded ack's name) are dropped inside the timed closure, so their free is counted.

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, black_box_drop, Bencher};
use mcprobe::wire::{self, Ack, Arrival, DecodeError, Message, Probe};

fn main() {
    divan::main();
}

const SESSION: u64 = 0x5eed_0000_c0ff_ee01;
/// A realistic send time: ns since the Unix epoch, late 2023.
const T0: u64 = 1_700_000_000_000_000_000;
/// 20 bytes: a typical fully qualified host name.
const NAME_20: &str = "rack07-node12.lan.io";

fn ack(seq: u64) -> Ack {
    Ack {
        session: SESSION,
        seq,
        tx_ns: T0 + seq * 1_000_000,
        responder: 0x0123_4567_89ab_cdef,
        rx_ns: T0 + seq * 1_000_000 + 120_000,
        dwell_ns: 14_000,
        received: seq as u32 + 1,
        ack_seq: seq as u32,
        limited: 0,
        ttl: 63,
        arrival: Arrival::Multicast,
        ext: None,
        name: NAME_20.to_owned(),
    }
}

/// The prober encodes each probe into one reused buffer before sending it. 64 bytes is the
/// smallest allowed size, 128 the default, 1400 about what fits in a 1500-byte MTU: the gap between
/// them is the cost of zero-filling the padding.
#[divan::bench(args = [64, 128, 1400])]
fn probe_encode_into(bencher: Bencher, size: usize) {
    let mut buf = Vec::with_capacity(size);
    // Fault the buffer's pages in once, as the prober's first send does: left cold, the first
    // iteration's page faults make divan pick one-iteration samples below its timer's precision.
    Probe { session: SESSION, seq: 0, tx_ns: T0, asks_ext: false }.encode_into(size, &mut buf);
    let mut seq = 0u64;
    bencher.counter(BytesCount::new(size)).counter(ItemsCount::new(1u32)).bench_local(|| {
        seq += 1;
        let probe = Probe { session: SESSION, seq, tx_ns: T0 + seq * 1_000_000, asks_ext: false };
        buf.clear();
        black_box(&probe).encode_into(black_box(size), &mut buf);
        black_box(&buf);
    });
}

/// A responder encodes one ack per answered probe, carrying a 20-byte name. The limit is the
/// probe's length: at 64 the name does not fit and is left out (fixed 64-byte ack), at 128 it
/// travels whole (85-byte ack). Each call allocates its Vec, which is freed inside the timing.
#[divan::bench(args = [64, 128])]
fn ack_encode_within(bencher: Bencher, limit: usize) {
    assert_eq!(NAME_20.len(), 20);
    let a = ack(42);
    let expected = if limit >= wire::ACK_FIXED_LEN + 1 + NAME_20.len() { 85 } else { 64 };
    assert_eq!(a.encode_within(limit).map(|b| b.len()), Some(expected));
    bencher.counter(BytesCount::new(expected)).counter(ItemsCount::new(1u32)).bench_local(|| {
        black_box_drop(black_box(&a).encode_within(black_box(limit)));
    });
}

/// A responder decodes every probe it receives (64 bytes here; decoding never reads the padding).
#[divan::bench]
fn decode_probe(bencher: Bencher) {
    let bytes = Probe { session: SESSION, seq: 42, tx_ns: T0, asks_ext: false }.encode(64);
    assert!(matches!(wire::decode(&bytes), Ok(Message::Probe(_))));
    bencher.counter(BytesCount::new(bytes.len())).counter(ItemsCount::new(1u32)).bench_local(|| {
        black_box_drop(wire::decode(black_box(&bytes)));
    });
}

/// The prober decodes every ack: with N responders that is N decodes per probe. The 20-byte name
/// is validated as UTF-8 and copied into a String, which is freed inside the timing.
#[divan::bench]
fn decode_ack_with_name(bencher: Bencher) {
    let bytes = ack(42).encode_within(128).expect("128 bytes fit an ack");
    assert_eq!(wire::decode(&bytes), Ok(Message::Ack(ack(42))));
    bencher.counter(BytesCount::new(bytes.len())).counter(ItemsCount::new(1u32)).bench_local(|| {
        black_box_drop(wire::decode(black_box(&bytes)));
    });
}

/// Foreign traffic on the group or port (64 bytes of pseudo-random garbage) must be rejected
/// cheaply: this is the cost of dropping one such datagram.
#[divan::bench]
fn decode_garbage(bencher: Bencher) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..64)
        .map(|_| {
            // xorshift64: deterministic, no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_eq!(wire::decode(&bytes), Err(DecodeError::BadMagic));
    bencher.counter(BytesCount::new(bytes.len())).counter(ItemsCount::new(1u32)).bench_local(|| {
        black_box_drop(wire::decode(black_box(&bytes)));
    });
}
