#!/usr/bin/env python3
"""Capture the fuzz target's seed corpus (tools/fuzz/corpus/): real replies, one file each.

Every request carries the fuzz target's nonce (onwire.FUZZ_NONCE) as its transmit timestamp,
so each reply carries it as its origin and reaches every check of the target, not only the
origin check. Only loopback addresses are ever asked.

    tools/fuzz/capture.py --refserver
        every misbehaving mode of tools/refserver.py (KoDs RATE/DENY/RSTR/XFOO in both forms,
        spoofs, unsynchronized, wrong mode or version, zero timestamps, too far, backwards,
        short, long, duplicate, garbage, empty...), run in this process on 127.0.0.1
    tools/testnet/testnet.sh .venv/bin/python tools/fuzz/capture.py --testnet
        inside the test network (root; docs/testing.md "Real servers on a private test network"):
        chronyd (127.0.0.2), ntpsec (127.0.0.4, .8), ntpsec's real KoD RATE (127.0.0.3, rate
        limited), the liar and zero-timestamp KoD refservers (127.0.0.6, .7)
    tools/fuzz/capture.py --edges
        a few replies built here at the limits the fuzzer would take long to hit by chance:
        a round trip just inside and just past the 1 ms slack, a root distance of exactly
        1.5 s and one unit past it, a server after the 2036 era rollover, a transmit one
        2**-32 s unit before the receive, LI 1, version 3
"""

import argparse
import os
import select
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tools")]

import ntpwire  # noqa: E402

from fuzz.fuzz_replies import T1_UNIX_US, T4_AFTER_US  # noqa: E402
from fuzz.onwire import ERA, FUZZ_NONCE  # noqa: E402

OUT = os.path.join(HERE, "corpus")
REQUEST = bytes([0x23]) + bytes(39) + FUZZ_NONCE  # LI 0, VN 4, mode 3; transmit = the nonce

# name, address, requests, seconds between them. ntpsec at .3 answers the third request
# within its rate limit with a KoD RATE (LI 3, origin = receive = transmit = our nonce).
TESTNET = [
    ("chrony", "127.0.0.2", 2, 0.3),
    ("ntpsec", "127.0.0.4", 1, 0.0),
    ("ntpsec-shm", "127.0.0.8", 1, 0.0),
    ("ntpsec-ratelimited", "127.0.0.3", 6, 0.2),
    ("refserver-liar", "127.0.0.6", 1, 0.0),
    ("refserver-kodzero", "127.0.0.7", 1, 0.0),
]


def ask(addr, port, wait_s):
    """Send the request from a fresh socket; every datagram that comes back within wait_s."""
    if not addr.startswith("127."):
        raise SystemExit("capture: only loopback addresses, not " + addr)
    got = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(REQUEST, (addr, port))
        end = time.monotonic() + wait_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return got
            try:
                got.append(s.recvfrom(2048)[0])
            except OSError:  # ICMP port unreachable
                return got


def save(name, datagrams):
    """Each distinct datagram as NAME.bin, NAME-2.bin, ... (identical copies once)."""
    unique = []
    for data in datagrams:
        if data not in unique:
            unique.append(data)
    for i, data in enumerate(unique):
        path = os.path.join(OUT, "{}{}.bin".format(name, "-%d" % (i + 1) if i else ""))
        with open(path, "wb") as f:
            f.write(data)
        print("{:32} {:3} bytes  {}".format(os.path.basename(path), len(data), data[:4].hex()))


def from_refserver():
    from refserver import MODES, RefServer

    for mode in MODES:
        if mode == "silent":
            continue
        with RefServer(mode=mode, delay_s=0.05) as srv:
            save("refserver-" + mode, ask("127.0.0.1", srv.port, 0.3))


def from_testnet():
    for name, addr, count, gap_s in TESTNET:
        got = []
        for _ in range(count):
            got += ask(addr, 123, 1.0)
            time.sleep(gap_s)
        if not got:
            print("capture: no reply from {} ({})".format(addr, name), file=sys.stderr)
        # the rate-limited server: keep only its KoDs (stratum 0), the rest are ntpsec-*
        if name == "ntpsec-ratelimited":
            got = [d for d in got if len(d) >= 48 and d[1] == 0]
            name = "ntpsec-kod-rate"
        save(name, got)


def edge(rx, tx, li=0, vn=4, root_delay=0x100, root_disp=0x200):
    """A reply to the fuzz target's request: stratum 2, reference 16 s before rx."""
    return ntpwire.reply(
        FUZZ_NONCE, rx, tx, li=li, vn=vn, root_delay=root_delay, root_disp=root_disp
    )


def from_edges():
    rx = ntpwire.ntp_full(T1_UNIX_US + 5_000_000)  # the server 5 s ahead
    trip = T4_AFTER_US * ERA // 1_000_000
    ms = ERA // 1000
    rollover = ntpwire.ntp_full(2_085_978_496 * 1_000_000 + 4_000_000)  # 2036-02-07 06:28:20 UTC
    save("edge-processing-within-slack", [edge(rx, rx + trip + ms // 2)])
    save("edge-processing-past-slack", [edge(rx, rx + trip + ms + ms // 100)])
    save("edge-root-distance-1.5s", [edge(rx, rx + 100, root_delay=0x10000, root_disp=0x10000)])
    save("edge-root-distance-over", [edge(rx, rx + 100, root_disp=0x18001)])
    save("edge-era-1", [edge(rollover, rollover + 100)])
    save("edge-tx-one-unit-before-rx", [edge(rx + 2000, rx + 1999)])
    save("edge-leap-61", [edge(rx, rx + 100, li=1)])
    save("edge-version-3", [edge(rx, rx + 100, vn=3)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--refserver", action="store_true")
    g.add_argument("--testnet", action="store_true")
    g.add_argument("--edges", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.refserver:
        from_refserver()
    elif args.testnet:
        from_testnet()
    else:
        from_edges()


if __name__ == "__main__":
    main()
