#!/usr/bin/env python3
"""stall -- the longest event-loop stall while sntp.aio.AsyncService syncs a zone whose DNS
server misbehaves, measured on the unix-port MicroPython.

    make stall          (= .venv/bin/python3 tools/stall.py)

For each case a DNS server on 127.0.0.1 (in this process) serves the four names
0-3.acme.pool.ntp.org, and a reference NTP server (tools/refserver.py) answers on 127.0.0.1.
The service (sntp.dns.Resolver pointed at that DNS server, its default 5 s bound) syncs, while
a 10 ms ticker task runs beside it in the same event loop and records the longest gap between
its ticks, less its own 10 ms: that is the longest the service kept the loop from running.
Cases: the DNS server answers normally, answers every query 3 s late, answers SERVFAIL, never
answers. Printed with the DNS queries and NTP requests each case cost, and written to
results/stall.json. Talks only to 127.0.0.1 (docs/reliability.md "Every wait bounded").
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import dnswire  # noqa: E402 - after the sys.path set-up above
from refserver import RefServer  # noqa: E402

MP = os.path.join(ROOT, ".venv", "bin", "micropython")
TARGET_MS = 20  # the longest stall allowed on the unix port
SLOW_S = 3  # the slow server's delay
CASES = ("normal", "slow", "servfail", "silent")
RUN_FOR_MS = 30_000  # each sync's bound (a silent server: 4 names x 5 s, and the backoff)


class DnsServer:
    """A DNS server on 127.0.0.1 in a thread: every name gets 127.0.0.1 (A; no AAAA record),
    answered as `mode` says. queries: (name, qtype) of every query received."""

    def __init__(self, mode):
        self.mode = mode
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.timers = []  # the slow answers not sent yet
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            got = dnswire.query_of(q)
            if got is None:
                continue
            self.queries.append(got[1:])
            if self.mode == "silent":
                continue
            if self.mode == "servfail":
                self.sock.sendto(dnswire.reply(q, rcode=dnswire.SERVFAIL), peer)
                continue
            out = dnswire.addresses(q, ["127.0.0.1"])
            if self.mode == "slow":
                self.timers.append(threading.Timer(SLOW_S, self.sock.sendto, (out, peer)))
                self.timers[-1].start()
            else:
                self.sock.sendto(out, peer)

    def close(self):
        self.stopping = True
        for t in self.timers:
            t.cancel()
            t.join()
        self.thread.join()
        self.sock.close()


def run_case(mode):
    srv = DnsServer(mode)
    ntp = RefServer(delay_s=0).start()
    try:
        env = dict(os.environ, MICROPYPATH="firmware:tools:.frozen")
        names = ["{}.acme.pool.ntp.org:{}".format(i, ntp.port) for i in range(4)]
        r = subprocess.run(
            [MP, "-m", "stall_probe", "127.0.0.1:{}".format(srv.port), str(RUN_FOR_MS)] + names,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        time.sleep(0.1)
        srv.close()
        ntp.stop()
    lines = r.stdout.strip().splitlines()
    if r.returncode or not lines:
        raise SystemExit("stall: the {} case failed:\n{}{}".format(mode, r.stdout, r.stderr))
    out = json.loads(lines[-1])
    names = {q[0] for q in srv.queries}
    out["dropped"] = sum(out["dropped"].values())
    out["dns_queries"] = len(srv.queries)
    out["names_asked"] = len(names)
    out["ntp_requests"] = len(ntp.requests)
    out["met"] = out["stall_ms"] <= TARGET_MS
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default="results", help="folder for stall.json")
    a = ap.parse_args(argv)
    res = {}
    print("| DNS server | longest stall | target | sync | DNS queries (names) | NTP requests |")
    print("|---|---|---|---|---|---|")
    for mode in CASES:
        c = res[mode] = run_case(mode)
        print(
            "| {} | {} ms | <= {} ms {} | {} in {:.1f} s | {} ({}) | {} |".format(
                mode if mode != "slow" else "slow ({} s)".format(SLOW_S),
                c["stall_ms"],
                TARGET_MS,
                "met" if c["met"] else "NOT MET",
                "synced" if c["ok"] else "no sync",
                c["sync_ms"] / 1000,
                c["dns_queries"],
                c["names_asked"],
                c["ntp_requests"],
            ),
            flush=True,
        )
    os.makedirs(os.path.join(ROOT, a.out), exist_ok=True)
    with open(os.path.join(ROOT, a.out, "stall.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0 if all(c["met"] for c in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
