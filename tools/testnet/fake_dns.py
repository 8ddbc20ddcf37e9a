#!/usr/bin/env python3
"""A tiny upstream DNS stub for dnsmasq (`server=/sub/127.0.0.9#5353`), inside the test network.

It answers every query with one fixed RCODE (default 2, SERVFAIL), or never answers
(--blackhole), so that the client's resolver times out. Loopback only; it exits after --max
queries or --lifetime seconds.
usage: fake_dns.py [--addr 127.0.0.9] [--port 5353] [--rcode 2] [--blackhole]
"""

import argparse
import socket
import struct
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.9")
    ap.add_argument("--port", type=int, default=5353)
    ap.add_argument("--rcode", type=int, default=2)
    ap.add_argument("--blackhole", action="store_true")
    ap.add_argument("--max", type=int, default=10000)
    ap.add_argument("--lifetime", type=float, default=86400)
    a = ap.parse_args()
    if not a.addr.startswith("127."):
        raise SystemExit("fake_dns.py: loopback addresses only")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.addr, a.port))
    s.settimeout(1)
    end = time.monotonic() + a.lifetime
    n = 0
    while time.monotonic() < end and n < a.max:
        try:
            q, peer = s.recvfrom(4096)
        except TimeoutError:
            continue
        n += 1
        if a.blackhole or len(q) < 12:
            continue
        qid, flags = struct.unpack("!HH", q[:4])
        # QR, opcode and RD copied, RA, the rcode; the question section echoed
        rflags = 0x8000 | (flags & 0x7900) | 0x0080 | (a.rcode & 15)
        s.sendto(struct.pack("!HHHHHH", qid, rflags, 1, 0, 0, 0) + q[12:], peer)


if __name__ == "__main__":
    main()
