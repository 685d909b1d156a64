#!/usr/bin/env python3
"""labnet.py - bounded traffic helpers for scripts/lab.sh (stdlib only).

Every mode stops after a fixed count or a timeout, whichever comes first, and
is meant to run inside a lab namespace (`lab.sh exec HOST python3 labnet.py`).

  echo   --bind A --port P [--timeout S] [--count N]     UDP echo server
  ping   --to A --port P [--count N] [--interval S]      UDP RTT client; prints
         sent= recv= min_us= p50_us= p90_us= p99_us= max_us=
  msend  --group G --ifaddr A --port P [--count N]       multicast sender, TTL 1
  mrecv  --group G --ifaddr A --port P [--timeout S] [--expect N]
         multicast receiver; prints `received=N`

The UDP ping exists because iputils ping prints RTTs of 10 ms and more with
only 0.1 ms resolution, too coarse to see a ~50 us emulator cost.
"""

import argparse
import socket
import struct
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo", "ping", "msend", "mrecv"])
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--to")
    ap.add_argument("--group", default="239.77.0.1")
    ap.add_argument("--ifaddr")
    ap.add_argument("--port", type=int, default=47700)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--expect", type=int, default=0)
    a = ap.parse_args()
    count = min(a.count, 100000)  # hard bound on any loop
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    if a.mode == "echo":
        udp.bind((a.bind, a.port))
        end = time.monotonic() + a.timeout
        n = 0
        while n < count and time.monotonic() < end:
            udp.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, peer = udp.recvfrom(2048)
            except socket.timeout:
                break
            udp.sendto(data, peer)
            n += 1
        print("echoed=%d" % n)

    elif a.mode == "ping":
        udp.connect((a.to, a.port))
        udp.settimeout(1.0)
        rtts = []
        for i in range(count):
            t0 = time.perf_counter_ns()
            udp.send(struct.pack("!I", i))
            try:
                while struct.unpack("!I", udp.recv(64)[:4])[0] != i:
                    pass  # a late reply to an earlier probe
                rtts.append(time.perf_counter_ns() - t0)
            except socket.timeout:
                pass
            time.sleep(a.interval)
        rtts.sort()
        q = lambda p: rtts[min(len(rtts) - 1, int(p * len(rtts)))] / 1e3 if rtts else 0
        print(
            "sent=%d recv=%d min_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f"
            % (count, len(rtts), q(0), q(0.5), q(0.9), q(0.99), q(1))
        )

    elif a.mode == "msend":
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.ifaddr))
        for i in range(count):
            udp.sendto(b"lab %d" % i, (a.group, a.port))
            time.sleep(a.interval)
        print("sent=%d" % count)

    elif a.mode == "mrecv":
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind((a.group, a.port))
        mreq = socket.inet_aton(a.group) + socket.inet_aton(a.ifaddr)
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        end = time.monotonic() + a.timeout
        n = 0
        while time.monotonic() < end and (a.expect == 0 or n < a.expect):
            udp.settimeout(max(0.01, end - time.monotonic()))
            try:
                udp.recv(2048)
                n += 1
            except socket.timeout:
                break
        print("received=%d" % n)
        sys.exit(0 if n >= a.expect else 1)


if __name__ == "__main__":
    main()
