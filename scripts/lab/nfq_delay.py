#!/usr/bin/env python3
"""nfq_delay.py - a minimal NFQUEUE delayer for the mcprobe lab (stdlib only).

Used by scripts/lab.sh when the kernel has no `tc netem`.  An iptables rule
(`-j NFQUEUE --queue-num Q`) hands packets to this process; it holds each one
for DELAY +/- JITTER ms (uniform, like netem's default) and then gives the
kernel an NF_ACCEPT verdict, which re-injects the packet where it was queued.

It talks to the kernel over a raw AF_NETLINK / NETLINK_NETFILTER socket, so it
needs no libnetfilter_queue and no third-party Python package.  Only packet
metadata is copied to userspace (NFQNL_COPY_META): a verdict needs the packet
id, never the payload.

Counts: `received` packets queued to us, `released` verdicts sent, `enobufs`
times the kernel could not deliver a packet message to us, plus the lateness
of each release versus its deadline (timer/scheduling error) and the
in-process time per packet (recv -> verdict; sampled with --delay 0 only).  They are
written as `key=value` lines to --stats every second, on SIGUSR1 and at exit.
The cost of the whole NFQUEUE hop (kernel queueing, wake-up, re-injection) is
larger than what this process can see; measure it with `lab.sh calibrate`.

On SIGTERM/SIGINT every held packet is released at once (not dropped), so
clearing a delay never loses packets.
"""

import argparse
import ctypes
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

# --- constants from <linux/netlink.h>, <linux/netfilter/nfnetlink*.h> -------
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_TIMESTAMP = 1, 2, 4
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF
PR_SET_TIMERSLACK = 29


def nfq_msg(msg_type, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    """Build one nfnetlink message: nlmsghdr + nfgenmsg + attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue))
    for atype, data in attrs:
        nla = struct.pack("=HH", 4 + len(data), atype) + data
        body += nla + b"\0" * (-len(nla) % 4)
    hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0)
    return hdr + body


def iter_msgs(buf):
    """Yield (type, payload) for each netlink message in a datagram."""
    off = 0
    while off + 16 <= len(buf):
        length, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        yield mtype, buf[off + 16 : off + length]
        off += (length + 3) & ~3


def packet_id(payload):
    """Return the packet id from an NFQNL_MSG_PACKET payload (after nfgenmsg)."""
    off = 4
    while off + 4 <= len(payload):
        alen, atype = struct.unpack_from("=HH", payload, off)
        if alen < 4:
            break
        if atype & NLA_TYPE_MASK == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", payload, off + 4)[0]
        off += (alen + 3) & ~3
    return None


def packet_ts_ns(payload):
    """The packet's kernel receive timestamp (CLOCK_REALTIME, us resolution) from an
    NFQNL_MSG_PACKET payload, or None when the kernel did not stamp it."""
    off = 4
    while off + 4 <= len(payload):
        alen, atype = struct.unpack_from("=HH", payload, off)
        if alen < 4:
            break
        if atype & NLA_TYPE_MASK == NFQA_TIMESTAMP and alen >= 20:
            sec, usec = struct.unpack_from("!QQ", payload, off + 4)
            return sec * 10**9 + usec * 1000
        off += (alen + 3) & ~3
    return None


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100.0 * len(sorted_vals)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0, help="ms")
    ap.add_argument("--jitter", type=float, default=0.0, help="ms, uniform +/-")
    ap.add_argument("--maxlen", type=int, default=65536, help="kernel queue length")
    ap.add_argument(
        "--spin-us", type=float, default=60.0, help="busy-poll this close to a deadline instead of sleeping"
    )
    ap.add_argument("--stats", help="file for key=value statistics")
    ap.add_argument("--ready", help="file that gets our pid once bound to the queue")
    a = ap.parse_args()

    # 1 ns timer slack: the default 50 us slack makes every poll() oversleep.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except Exception:
        pass

    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:  # room for bursts; as root we may exceed rmem_max
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))

    def request(msg_attrs):
        """Send a config request with NLM_F_ACK and fail loudly on an error."""
        s.send(nfq_msg(NFQNL_MSG_CONFIG, a.queue, msg_attrs, NLM_F_REQUEST | NLM_F_ACK))
        for mtype, payload in iter_msgs(s.recv(65536)):
            if mtype == NLMSG_ERROR:
                err = struct.unpack_from("=i", payload)[0]
                if err:
                    sys.exit("nfq_delay: queue %d config failed: %s" % (a.queue, os.strerror(-err)))

    request([(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0))])
    request(
        [
            (NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
            (NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", a.maxlen)),
        ]
    )
    # Only after configuration: a lost packet message should not kill us.
    s.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    s.setblocking(False)

    delay_ns = int(a.delay * 1e6)
    jitter_ns = int(a.jitter * 1e6)
    spin_ns = int(a.spin_us * 1e3)
    held = []  # heap of (deadline_ns, seq, packet_id)
    seq = 0
    st = {"received": 0, "released": 0, "enobufs": 0}
    late = []  # release lateness samples, ns (bounded)
    proc = []  # recv->verdict cost minus hold, ns (bounded)
    MAXS = 200000
    flags = {"stop": False, "dump": False}

    def on_term(_sig, _frm):
        flags["stop"] = True

    def on_usr1(_sig, _frm):
        flags["dump"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)

    def write_stats():
        if not a.stats:
            return
        ls, ps = sorted(late), sorted(proc)
        lines = ["queue=%d" % a.queue, "delay_ms=%g" % a.delay, "jitter_ms=%g" % a.jitter, "held=%d" % len(held)]
        lines += ["%s=%d" % kv for kv in st.items()]
        lines += [
            "late_p50_us=%.1f" % (pct(ls, 50) / 1e3),
            "late_p99_us=%.1f" % (pct(ls, 99) / 1e3),
            "late_max_us=%.1f" % ((ls[-1] if ls else 0) / 1e3),
            "proc_p50_us=%.1f" % (pct(ps, 50) / 1e3),
            "proc_p99_us=%.1f" % (pct(ps, 99) / 1e3),
        ]
        tmp = a.stats + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, a.stats)

    def verdict(pid):
        s.send(nfq_msg(NFQNL_MSG_VERDICT, a.queue, [(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))]))
        st["released"] += 1

    if a.ready:  # tells lab.sh we are bound (and our pid) before it adds the rule
        with open(a.ready, "w") as f:
            f.write("%d\n" % os.getpid())
    next_stats = time.monotonic_ns() + 10**9

    while not flags["stop"]:
        now = time.monotonic_ns()
        # Sleep until the next deadline minus the spin margin (at most 100 ms
        # so that signals and the periodic stats dump are handled promptly).
        # select() takes a microsecond timeout; poll()/epoll() round up to
        # whole milliseconds, which would make every release up to 1 ms late.
        wait_ns = 100_000_000
        if held:
            wait_ns = min(wait_ns, held[0][0] - now - spin_ns)
        select.select([s], [], [], max(0, wait_ns) / 1e9)

        # Drain everything the kernel queued to us.
        while True:
            try:
                buf = s.recv(65536)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: messages were lost
                st["enobufs"] += 1
                continue
            t = time.monotonic_ns()
            real = time.time_ns()
            for mtype, payload in iter_msgs(buf):
                if mtype != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                pid = packet_id(payload)
                if pid is None:
                    continue
                st["received"] += 1
                d = delay_ns
                if jitter_ns:
                    d = max(0, d + random.randint(-jitter_ns, jitter_ns))
                if d == 0:  # pass-through mode: measures the bare hop
                    verdict(pid)
                    if len(proc) < MAXS:
                        proc.append(time.monotonic_ns() - t)
                    continue
                # Held from when the packet reached the queue (its kernel stamp), not from when
                # this process read it: on a VM whose wake-ups are slow the read came 0.2-1 ms
                # later, and every held packet got that much more than the delay asked.
                ts = packet_ts_ns(payload)
                start = t - min(max(0, real - ts), d) if ts else t
                heapq.heappush(held, (start + d, seq, pid))
                seq += 1

        # Release everything that is due.  When the next deadline is closer
        # than the spin margin, the poll() above gets a zero timeout, so the
        # loop busy-polls (still draining new packets) until it is due.
        while held:
            now = time.monotonic_ns()
            if held[0][0] > now:
                break
            deadline, _, pid = heapq.heappop(held)
            verdict(pid)
            if len(late) < MAXS:
                late.append(now - deadline)

        if flags["dump"] or time.monotonic_ns() >= next_stats:
            flags["dump"] = False
            next_stats = time.monotonic_ns() + 10**9
            write_stats()

    # Shutting down: hand every held packet back rather than dropping it.
    s.setblocking(True)
    while held:
        verdict(heapq.heappop(held)[2])
    write_stats()
    print("nfq_delay: queue %d %s" % (a.queue, " ".join("%s=%d" % kv for kv in st.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
