#!/usr/bin/env python3
"""mgroups.py - many-group helpers for the group-capacity lab (stdlib only, bounded).

Run inside a lab namespace (`lab.sh exec HOST python3 mgroups.py ...`).

  join  --ifaddr A --first G --count K [--per-socket M] [--port P] [--hold S] [--ramp N --ramp-period S]
        joins K consecutive IPv4 groups from G on the interface of A, M per socket
        (IP_MULTICAST_ALL off, as mcprobe's responder), then for S seconds counts the
        datagrams to port P per group: on the joined sockets (IP_PKTINFO gives the
        destination) and, with --sniff, on an AF_PACKET socket that sees every UDP
        datagram to P reaching the interface, joined or not (flooding shows there).
        Prints one JSON object: joined, join_errors {errno name: count}, first_error_at
        (index of the first group refused), received_groups, received, sniffed_groups,
        sniffed.
  send  --ifaddr A --first G --count K [--each N] [--port P] [--gap S]
        sends N datagrams to each of K groups (round robin), TTL 1, S seconds apart.
  port-max-groups --dev PORT [--max N]
        (in the bridge namespace) sets a bridge port's mcast_max_groups (Linux >= 6.3;
        iproute2 6.1 cannot) when --max is given, then prints the port's
        mcast_n_groups and mcast_max_groups, read back from the kernel.
"""

import argparse
import errno
import ipaddress
import json
import select
import socket
import struct
import sys
import time

IP_MULTICAST_ALL = 49
IP_PKTINFO = 8
ETH_P_IP = 0x0800


def groups(first, count):
    g = ipaddress.IPv4Address(first)
    return [str(g + i) for i in range(count)]


def join(a):
    gs = groups(a.first, a.count)
    socks, errors, first_error_at, joined = [], {}, None, 0
    cur, in_cur = None, 0
    for i, g in enumerate(gs):
        if cur is None or in_cur >= a.per_socket:
            cur = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cur.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            cur.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            cur.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            cur.bind(("0.0.0.0", a.port))
            socks.append(cur)
            in_cur = 0
        mreq = struct.pack("4s4s", socket.inet_aton(g), socket.inet_aton(a.ifaddr))
        if a.ramp and i and i % a.ramp == 0:
            print("joined=%d at=%.3f" % (joined, time.time()), file=sys.stderr, flush=True)
            time.sleep(a.ramp_period)
        try:
            cur.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            joined += 1
            in_cur += 1
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            errors[name] = errors.get(name, 0) + 1
            if first_error_at is None:
                first_error_at = i
            if a.per_socket_on_error:
                # what a responder that works around a per-socket limit would do
                cur = None
    sniff = None
    if a.sniff:
        sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sniff.bind((a.dev, 0))
    print("joined=%d errors=%s" % (joined, errors), file=sys.stderr, flush=True)
    got, sniffed = {}, {}
    end = time.monotonic() + a.hold
    rs = socks + ([sniff] if sniff else [])
    n = 0
    while time.monotonic() < end and n < 10_000_000:
        r, _, _ = select.select(rs, [], [], max(0.0, end - time.monotonic()))
        for s in r:
            n += 1
            if s is sniff:
                pkt = s.recv(2048)
                if len(pkt) < 28 or pkt[9] != 17:
                    continue
                ihl = (pkt[0] & 15) * 4
                dport = struct.unpack("!H", pkt[ihl + 2 : ihl + 4])[0]
                if dport != a.port:
                    continue
                dst = socket.inet_ntoa(pkt[16:20])
                sniffed[dst] = sniffed.get(dst, 0) + 1
                continue
            data, anc, _, _ = s.recvmsg(2048, 256)
            for level, kind, val in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    dst = socket.inet_ntoa(val[8:12])
                    got[dst] = got.get(dst, 0) + 1
    out = {
        "joined": joined,
        "sockets": len(socks),
        "join_errors": errors,
        "first_error_at": first_error_at,
        "received_groups": len(got),
        "received": sum(got.values()),
        "sniffed_groups": len(sniffed),
        "sniffed": sum(sniffed.values()),
        "received_per_group": got if a.verbose else None,
        "sniffed_per_group": sniffed if a.verbose else None,
    }
    print(json.dumps(out))


def send(a):
    gs = groups(a.first, a.count)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.ifaddr))
    sent = 0
    for k in range(min(a.each, 1000)):
        for g in gs:
            s.sendto(b"mgroups %d" % k, (g, a.port))
            sent += 1
        time.sleep(a.gap)
    print(json.dumps({"sent": sent, "groups": len(gs)}))


# rtnetlink, for port-max-groups (values from linux/if_link.h and linux/rtnetlink.h)
RTM_GETLINK, RTM_SETLINK = 18, 19
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_PROTINFO, NLA_F_NESTED = 12, 0x8000
IFLA_BRPORT_MCAST_N_GROUPS, IFLA_BRPORT_MCAST_MAX_GROUPS = 41, 42
AF_BRIDGE = 7


def nla(kind, payload):
    n = 4 + len(payload)
    return struct.pack("HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def nlas(buf):
    while len(buf) >= 4:
        n, kind = struct.unpack("HH", buf[:4])
        if n < 4:
            return
        yield kind & 0x3FFF, buf[4:n]
        buf = buf[(n + 3) & ~3 :]


def netlink(msg_type, flags, body):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    s.bind((0, 0))
    s.send(struct.pack("IHHII", 16 + len(body), msg_type, flags, 1, 0) + body)
    out = []
    for _ in range(10000):
        data = s.recv(65536)
        while len(data) >= 16:
            n, kind = struct.unpack("IH", data[:6])
            if kind == NLMSG_DONE:
                return out
            if kind == NLMSG_ERROR:
                err = struct.unpack("i", data[16:20])[0]
                if err:
                    raise OSError(-err, "netlink: " + errno.errorcode.get(-err, str(-err)))
                return out
            out.append(data[16:n])
            data = data[(n + 3) & ~3 :]
    return out


def port_max_groups(a):
    idx = socket.if_nametoindex(a.dev)
    ifinfo = struct.pack("BxHiII", AF_BRIDGE, 0, idx, 0, 0)
    if a.max is not None:
        attr = nla(IFLA_BRPORT_MCAST_MAX_GROUPS, struct.pack("I", a.max))
        netlink(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ifinfo + nla(IFLA_PROTINFO | NLA_F_NESTED, attr))
    found = {}
    for msg in netlink(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, struct.pack("BxHiII", AF_BRIDGE, 0, 0, 0, 0)):
        if struct.unpack("i", msg[4:8])[0] != idx:
            continue
        for kind, val in nlas(msg[16:]):
            if kind == IFLA_PROTINFO:
                for k2, v2 in nlas(val):
                    if k2 == IFLA_BRPORT_MCAST_N_GROUPS:
                        found["mcast_n_groups"] = struct.unpack("I", v2[:4])[0]
                    elif k2 == IFLA_BRPORT_MCAST_MAX_GROUPS:
                        found["mcast_max_groups"] = struct.unpack("I", v2[:4])[0]
    print(json.dumps({"dev": a.dev, **found}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["join", "send", "port-max-groups"])
    ap.add_argument("--ifaddr")
    ap.add_argument("--max", type=int)
    ap.add_argument("--dev", default="veth0")
    ap.add_argument("--first", default="239.9.0.1")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--per-socket", type=int, default=20)
    ap.add_argument("--per-socket-on-error", action="store_true")
    ap.add_argument("--port", type=int, default=47900)
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--sniff", action="store_true")
    ap.add_argument("--ramp", type=int, default=0, help="join this many groups, then wait --ramp-period")
    ap.add_argument("--ramp-period", type=float, default=1.0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--each", type=int, default=3)
    ap.add_argument("--gap", type=float, default=0.2)
    a = ap.parse_args()
    if a.count > 70000:
        sys.exit("--count at most 70000")
    a.hold = min(a.hold, 600.0)
    if a.mode == "port-max-groups":
        port_max_groups(a)
    elif a.ifaddr is None:
        sys.exit("--ifaddr is required")
    else:
        join(a) if a.mode == "join" else send(a)


if __name__ == "__main__":
    main()
