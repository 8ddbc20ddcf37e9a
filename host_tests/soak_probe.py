# The probe of host_tests/test_soak_real.py, run by the unix-port MicroPython: real UDP
# exchanges with the reference servers that test started on 127.0.0.1, through
# sntp.client.query (one exchange each, cycling through the servers' misbehaving modes) and
# through one long-lived sntp.service.Service (sync() after sync(), waits simulated: see
# WarpClock). Every `every` exchanges it takes the heap in use after gc.collect() and the
# count of open file descriptors. The last line it prints is one JSON object with the counts.
#   micropython host_tests/soak_probe.py SPEC.json
# (a file: the unix port dies with 'FATAL: uncaught NLR' on an argument of 256 bytes or more)
# SPEC: {"plan": [[tag, port, timeout_ms], ...], "n_query": N, "service_ports": [...],
#        "service_timeout_ms": T, "n_service": N, "every": K}
import gc
import json
import os
import sys
import time

from softrtc import SoftRTC

from sntp import client
from sntp.service import Service

GAP_MS = 1_201_000  # simulated time between syncs: 3 an hour, at most 4 requests each


def fds():
    """Open file descriptors of this process (-1 where /proc is not there)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def heap():
    gc.collect()
    return gc.mem_alloc()


class Samples:
    """(exchanges, heap, fds) every `every` exchanges, in a list allocated up front so that
    taking a sample does not itself grow the heap."""

    def __init__(self, n, every):
        self.every = every
        self.flat = [0] * (3 * (n // every + 1))
        self.k = 0

    def maybe(self, done):
        if done % self.every == 0 and 3 * self.k < len(self.flat):
            i = 3 * self.k
            self.flat[i] = done
            self.flat[i + 1] = heap()
            self.flat[i + 2] = fds()
            self.k += 1

    def rows(self):
        return [self.flat[3 * i : 3 * i + 3] for i in range(self.k)]


def bump(counts, tag, reason):
    c = counts.get(tag)
    if c is None:
        c = counts[tag] = {}
    c[reason] = c.get(reason, 0) + 1


def query_part(spec):
    plan = spec["plan"]
    n = spec["n_query"]
    counts = {}  # tag -> {reason: count}
    samples = Samples(n, spec["every"])
    samples.maybe(0)
    for i in range(n):
        tag, port, timeout_ms = plan[i % len(plan)]
        r = client.query("127.0.0.1", port, timeout_ms)
        if r.ok:
            bump(counts, tag, "ok")
        elif r.kiss:
            bump(counts, tag, "kiss " + r.kiss)
        else:
            bump(counts, tag, r.error)
        samples.maybe(i + 1)
    return {"counts": counts, "samples": samples.rows()}


class WarpClock:
    """The board clock for the Service: the unix board's SoftRTC (the host clock plus an
    offset; the host clock is never changed), whose sleep_ms() does not sleep but moves a
    warp added to the ticks, so the policy's floors (15 s, 12 an hour, KoD holds) pass in
    simulated time while every exchange is a real one, timed by the real ticks. The wall
    clock is not warped (the servers serve the real time)."""

    def __init__(self):
        self.rtc = SoftRTC()
        self.epoch_s = self.rtc.epoch_s
        self.warp_ms = 0  # simulated ms slept so far

    def now_us(self):
        return self.rtc.now_us()

    def ticks_ms(self):
        return time.ticks_add(time.ticks_ms(), self.warp_ms)

    def ticks_us(self):
        return time.ticks_add(time.ticks_us(), self.warp_ms * 1000)

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def sleep_ms(self, ms):
        self.warp_ms += ms

    def random_bytes(self, n):
        return self.rtc.random_bytes(n)

    def adjust(self, offset_us):
        return self.rtc.adjust(offset_us)


def service_part(spec):
    n = spec["n_service"]
    clock = WarpClock()
    cfg = {"servers": ["127.0.0.1:{}".format(p) for p in spec["service_ports"]]}
    svc = Service(cfg, clock=clock, rtc=clock, timeout_ms=spec["service_timeout_ms"])
    sends = {}  # address -> sends
    outcomes = {}  # address -> {event or event/reason: count}
    done = [0]
    samples = Samples(n, spec["every"])

    def listen(e):
        kind = e["event"]
        if kind == "send":
            a = e["address"]
            sends[a] = sends.get(a, 0) + 1
            done[0] += 1
        elif kind in ("reply", "kod", "timeout", "reject") and e.get("address"):
            what = kind
            if kind == "kod":
                what = "kod " + e["code"]
            elif kind != "reply":
                what = kind + " " + e["reason"]
            bump(outcomes, e["address"], what)

    svc.subscribe(listen)
    syncs = {}
    samples.maybe(0)
    while done[0] < n:
        before = done[0]
        s = svc.sync()
        bump(syncs, "sync", "ok" if s["clock_set"] else s["error"])
        for k in range(before + 1, done[0] + 1):
            samples.maybe(k)
        clock.sleep_ms(GAP_MS)
    st = svc.status()
    counters = {}
    for srv in st["servers"]:
        counters[srv["server"]] = [srv["sends"], srv["replies"], srv["kods"]]
    return {
        "sends": sends,
        "outcomes": outcomes,
        "syncs": syncs["sync"],
        "counters": counters,
        "kods": st["kods"],
        "samples": samples.rows(),
        "simulated_s": clock.warp_ms // 1000,
    }


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    t0 = time.ticks_ms()
    out = {"query": query_part(spec)}
    t1 = time.ticks_ms()
    out["service"] = service_part(spec)
    t2 = time.ticks_ms()
    out["query_ms"] = time.ticks_diff(t1, t0)
    out["service_ms"] = time.ticks_diff(t2, t1)
    print(json.dumps(out))


main()
