#!/usr/bin/env python3
"""Write a few valid mcprobe datagrams (layout: src/wire.rs) as seed inputs.

corpus/decode/ gets whole datagrams; corpus/decode_structured/ gets the same minus the
3-byte magic and version byte (that target adds them back). corpus/responder_step/ gets sequences
of probes in that target's record format (see fuzz_targets/responder_step.rs): in order, repeated,
from another source, keyed and not. corpus/folder/ gets each report folder named on the command
line (`python3 seed_corpus.py DIR...`, folders written by `mcprobe probe --out DIR`) in the folder
target's format (see fuzz_targets/folder.rs). All folders are gitignored.
"""

import csv
import io
import os
import re
import struct
import sys

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


def record(datagram, flags, host, dt=0):
    """One record of the responder_step target: flags bit 0 stamps tx_ns, bit 1 seals."""
    return bytes([len(datagram), flags, host, dt & 0xFF]) + datagram


steps = {}
for mode, label in ((0, "open"), (1, "keyed"), (2, "plain"), (5, "keyed_tight")):
    body = b""
    for seq in (0, 1, 1, 3, 2):  # in order, a repeat, out of order
        body += record(probe(11, seq, 0, 100), 3, 1)
    body += record(probe(11, 4, 0, 100), 3, 2)  # the session from another address
    body += record(probe(12, 0, 0, 100), 3, 2, dt=-80)  # 8 s in the future: stale
    body += record(probe(13, 0, 0, 100), 0, 3)  # unsealed
    steps[label] = bytes([mode]) + body
d = os.path.join(HERE, "corpus", "responder_step")
os.makedirs(d, exist_ok=True)
for name, data in steps.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
print(f"wrote {len(steps)} seeds to corpus/responder_step")


def folder_input(path):
    """A report folder's files in the folder target's format: parts separated by 0xFF."""

    def read(name):
        try:
            with open(os.path.join(path, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    names = ["meta.json", "summary.csv", "intervals.csv", "outages.csv", "report.json"]
    parts = [read(n) for n in names]
    rows = csv.DictReader(io.StringIO(parts[1].decode("utf-8", "replace")))
    for row in rows:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", row.get("responder", "")) or "unnamed"
        tag = f"{name}.{row.get('responder_id', '')[:8]}.{row.get('path', '')}"
        parts.append(read(f"rtt.{tag}.hgrm"))
    return b"\xff".join(parts)


if sys.argv[1:]:
    d = os.path.join(HERE, "corpus", "folder")
    os.makedirs(d, exist_ok=True)
    for i, path in enumerate(sys.argv[1:]):
        with open(os.path.join(d, f"folder_{i}"), "wb") as f:
            f.write(folder_input(path))
    print(f"wrote {len(sys.argv) - 1} seeds to corpus/folder")
