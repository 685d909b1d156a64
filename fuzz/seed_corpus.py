#!/usr/bin/env python3
"""Write a few valid mcprobe datagrams (layout: src/wire.rs) as seed inputs.

corpus/decode/ gets whole datagrams; corpus/decode_structured/ gets the same minus the
3-byte magic and version byte (that target adds them back). Both folders are gitignored.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def probe(session, seq, tx_ns, size=30):
    b = b"MCP" + bytes([1, 1, 0]) + struct.pack(">QQQ", session, seq, tx_ns)
    return b + bytes(max(0, size - len(b)))


def ack(session, seq, tx_ns, name=b"", ttl=64, arrival=1):
    flags = 1 if name else 0
    b = b"MCP" + bytes([1, 2, flags])
    b += struct.pack(">QQQQQ", session, seq, tx_ns, 0xDEADBEEF, tx_ns + 50_000)
    b += struct.pack(">IIIIBB", 1234, seq + 1, seq, 0, ttl, arrival)
    if name:
        b += bytes([len(name)]) + name
    return b


seeds = {
    "probe_min": probe(1, 0, 1_700_000_000_000_000_000),
    "probe_64": probe(0x0102030405060708, 42, 1_700_000_000_000_000_000, 64),
    "probe_200": probe(7, 2**64 - 1, 99, 200),
    "ack_noname": ack(0x0102030405060708, 42, 1_700_000_000_000_000_000),
    "ack_name": ack(7, 3, 99, b"host-a.example.org"),
    "ack_utf8": ack(7, 4, 99, "h\u00e9te-\u00e9".encode(), arrival=2),
    "ack_maxname": ack(9, 5, 1, b"n" * 64, ttl=1, arrival=0),
}

for target, strip in (("decode", 0), ("decode_structured", 4)):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data[strip:])
print(f"wrote {len(seeds)} seeds to corpus/decode and corpus/decode_structured")
