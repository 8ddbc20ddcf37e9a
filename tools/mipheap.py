#!/usr/bin/env python3
"""tools/mipheap.py: the heap a first import of examples/app.py's modules needs on a 32-bit
MicroPython, from source and from the mip packages' .mpy (make mip-heap).

For each route it runs tools/wasm/importheap.py under the WebAssembly MicroPython with a
heap of N bytes (WASM_HEAPSIZE) and bisects N, to STEP bytes, for the smallest heap the
imports fit in without the port growing its heap (on a board, where the heap cannot grow, a
smaller one fails with MemoryError). Prints one line per route, and the runtime's own use
before the imports (asyncio and the test runner's helpers) that the figure includes.

    .venv/bin/python tools/mipheap.py [--json]
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOW, HIGH, STEP = 16 * 1024, 1024 * 1024, 1024  # bytes


def run(route, heapsize):
    """(base, resident, grown) of one import run with that heap."""
    p = subprocess.run(
        ["node", "host_tests/wasmrun.mjs", "--run", "tools/wasm/importheap.py", route],
        cwd=ROOT,
        env=dict(os.environ, WASM_HEAPSIZE=str(heapsize)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"importheap: base (\d+) B, resident (\d+) B, grown (\d+) B", p.stdout)
    if p.returncode != 0 or m is None:
        raise SystemExit("mipheap: {} at {} B: {}".format(route, heapsize, p.stdout + p.stderr))
    return tuple(int(x) for x in m.groups())


def smallest(route):
    """(heap bytes, base, resident): the smallest heap that needs no growth."""
    if run(route, HIGH)[2]:
        raise SystemExit("mipheap: {} does not fit in {} B".format(route, HIGH))
    lo, hi = LOW, HIGH  # lo grows, hi does not
    while hi - lo > STEP:
        mid = (lo + hi) // 2
        if run(route, mid)[2]:
            lo = mid
        else:
            hi = mid
    base, resident, _ = run(route, hi)
    return hi, base, resident


def main(argv):
    res = {}
    for route in ("source", "mpy"):
        heap, base, resident = smallest(route)
        res[route] = {"heap": heap, "base": base, "resident": resident}
    if "--json" in argv:
        print(json.dumps(res))
        return 0
    for route, r in res.items():
        print(
            "first import of sntp.aio and sntp.rtc from {:6}: a heap of {:,} B (resident after:"
            " {:,} B)".format("source" if route == "source" else ".mpy", r["heap"], r["resident"])
        )
    print(
        "32-bit WebAssembly MicroPython; the heap includes {:,} B the runtime held before the"
        " imports; to {:,} B".format(res["source"]["base"], STEP)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
