#!/usr/bin/env python3
"""The course lab's multicast sender (socket_multicast_sender.py), made testable: it sends one
message to the group with TTL 1 and prints every reply until 0.2 s pass without one, as the lab's
does. Added: the group, port, interface and message as arguments (tests use loopback)."""
import argparse
import socket
import struct

parser = argparse.ArgumentParser()
parser.add_argument("--group", default="224.3.29.71")
parser.add_argument("--port", type=int, default=10000)
parser.add_argument("--iface", default="127.0.0.1", help="address of the interface to send from")
parser.add_argument("--message", default="very important data")
args = parser.parse_args()

message = args.message.encode()
multicast_group = (args.group, args.port)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.2)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.iface))
try:
    print("sending {!r}".format(message))
    sock.sendto(message, multicast_group)
    while True:
        print("waiting to receive")
        try:
            data, server = sock.recvfrom(16)
        except socket.timeout:
            print("timed out, no more responses")
            break
        print("received {!r} from {}".format(data, server))
finally:
    print("closing socket")
    sock.close()
