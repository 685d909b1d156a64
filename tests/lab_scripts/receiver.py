#!/usr/bin/env python3
"""The course lab's multicast receiver (socket_multicast_receiver.py), made testable: it joins the
group, prints what it receives and answers b'ack' to every datagram, as the lab's does. Added:
the group, port and interface as arguments (tests use loopback), a reply address so several
receivers on one machine are told apart, and a bound run time."""
import argparse
import socket
import struct
import time

parser = argparse.ArgumentParser()
parser.add_argument("--group", default="224.3.29.71")
parser.add_argument("--port", type=int, default=10000)
parser.add_argument("--iface", default="127.0.0.1", help="address of the interface to join on")
parser.add_argument("--reply-from", help="send acks from this address instead of the group socket")
parser.add_argument("--seconds", type=float, default=30.0, help="stop after this long")
args = parser.parse_args()

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", args.port))
mreq = struct.pack("4s4s", socket.inet_aton(args.group), socket.inet_aton(args.iface))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
sock.settimeout(0.5)
reply = sock
if args.reply_from:
    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply.bind((args.reply_from, 0))

deadline = time.monotonic() + args.seconds
print("waiting to receive message", flush=True)
while time.monotonic() < deadline:
    try:
        data, address = sock.recvfrom(1024)
    except socket.timeout:
        continue
    print("received {} bytes from {}".format(len(data), address), flush=True)
    print(data, flush=True)
    print("sending acknowledgement to", address, flush=True)
    reply.sendto(b"ack", address)
