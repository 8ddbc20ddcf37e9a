#!/usr/bin/env python3
"""Inside the test network: wait until dnsmasq and every NTP server answer as they should.

No request goes to the rate-limited ntpsec address (127.0.0.3) nor to the refservers' KoD
address: for those, only "is port 123 bound" is checked. ntpsec is ready when it serves
stratum 1 with li 0 and a root distance (root delay / 2 + root dispersion) under
--max-root-distance: ntpsec starts with a dispersion of about 8 s that halves every couple
of seconds, and the client rejects a root distance above 1.5 s.
Exit 0 when ready, 1 on timeout (what is not ready on stderr).
usage: wait_ready.py [--timeout S] [--max-root-distance S]
"""

import argparse
import errno
import socket
import struct
import sys
import time


def port_bound(addr, port=123):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, port))
        return False
    except OSError as e:
        return e.errno == errno.EADDRINUSE
    finally:
        s.close()


def ntp_header(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(b"\x23" + bytes(47), (addr, 123))
        d, _ = s.recvfrom(128)
    except OSError:
        return None
    finally:
        s.close()
    if len(d) < 48:
        return None
    delay, disp = struct.unpack("!II", d[4:12])
    return {"li": d[0] >> 6, "stratum": d[1], "root_distance": delay / 131072 + disp / 65536}


def ntp_ok(addr, stratum, max_dist=None):
    h = ntp_header(addr)
    if h is None or h["li"] != 0 or h["stratum"] != stratum:
        return False
    return max_dist is None or h["root_distance"] < max_dist


def dns_ok(name="0.acme.pool.ntp.org"):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(q, ("127.0.0.1", 53))
        r, _ = s.recvfrom(512)
        return r[:2] == b"\x12\x34" and (r[3] & 15) == 0
    except OSError:
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--max-root-distance", type=float, default=1.0)
    a = ap.parse_args()
    checks = {
        "dnsmasq 127.0.0.1:53": dns_ok,
        "chronyd 127.0.0.2 stratum 8": lambda: ntp_ok("127.0.0.2", 8),
        "ntpsec 127.0.0.3 bound": lambda: port_bound("127.0.0.3"),
        "ntpsec 127.0.0.4 stratum 1, root distance < {} s".format(a.max_root_distance): (
            lambda: ntp_ok("127.0.0.4", 1, a.max_root_distance)
        ),
        "ntpsec 127.0.0.8 stratum 1": lambda: ntp_ok("127.0.0.8", 1, a.max_root_distance),
        "refserver 127.0.0.6": lambda: ntp_ok("127.0.0.6", 2),
        "refserver 127.0.0.7 bound": lambda: port_bound("127.0.0.7"),
        "SERVFAIL stub 127.0.0.9:5353": lambda: port_bound("127.0.0.9", 5353),
        "silent stub 127.0.0.9:5354": lambda: port_bound("127.0.0.9", 5354),
    }
    deadline = time.monotonic() + a.timeout
    pending = dict(checks)
    while pending and time.monotonic() < deadline:
        for k in list(pending):
            if pending[k]():
                del pending[k]
        if pending:
            time.sleep(0.1)
    if pending:
        print("wait_ready.py: not ready: " + ", ".join(pending), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
