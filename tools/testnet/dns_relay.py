#!/usr/bin/env python3
"""A DNS relay for the test network: the client's DNS server in tests of sntp.dns.

Every query it gets is passed to dnsmasq (127.0.0.1:53) and dnsmasq's answer relayed back,
after --delay-ms (a slow server). With --spoof it first races that answer with forgeries, each
giving the liar's address (127.0.0.6): the right ID and question from another address
(127.0.0.10), a wrong ID, a wrong name, a wrong type, and a reply with QR clear from its own.
Loopback only; it prints "ready" once bound and exits after --lifetime seconds.
usage: dns_relay.py --port 5355 [--addr 127.0.0.9] [--delay-ms 3000] [--spoof]
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dnswire  # noqa: E402 - tools/, after the sys.path set-up above

UPSTREAM = ("127.0.0.1", 53)
POISON = "127.0.0.6"  # the liar (+3600 s): a client that takes a forgery would ask it
OTHER = "127.0.0.10"  # the forgeries' other source address


def forgeries(q):
    """(datagram, from the other address?) of each forgery against query q."""
    qid, qname, qtype = dnswire.query_of(q)
    evil = [dnswire.rr(dnswire.QNAME_AT, dnswire.A, dnswire.ipv4(POISON))]
    tail = struct.pack("!HH", qtype, dnswire.IN)
    return [
        (dnswire.reply(q, evil), True),
        (dnswire.reply(q, evil, qid=qid ^ 0x5A5A), False),
        (dnswire.reply(q, evil, question=dnswire.name("3." + qname) + tail), False),
        (dnswire.reply(q, evil, question=dnswire.name(qname) + struct.pack("!HH", 99, 1)), False),
        (dnswire.reply(q, evil, flags=0x0100), False),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.9")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--spoof", action="store_true")
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    if not a.addr.startswith("127."):
        raise SystemExit("dns_relay.py: loopback addresses only")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.addr, a.port))
    s.settimeout(0.5)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((OTHER, a.port))
    print("ready", flush=True)

    def relay(q, peer):
        if a.spoof:
            for d, from_other in forgeries(q):
                (other if from_other else s).sendto(d, peer)
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.bind((a.addr, 0))  # dnsmasq logs the relay's queries as from a.addr
        up.settimeout(5)
        try:
            up.sendto(q, UPSTREAM)
            ans = up.recv(4096)
        except OSError:
            return
        finally:
            up.close()
        time.sleep(a.delay_ms / 1000)
        s.sendto(ans, peer)

    end = time.monotonic() + a.lifetime
    while time.monotonic() < end:
        try:
            q, peer = s.recvfrom(4096)
        except TimeoutError:
            continue
        if dnswire.query_of(q) is not None:
            threading.Thread(target=relay, args=(q, peer), daemon=True).start()


if __name__ == "__main__":
    main()
