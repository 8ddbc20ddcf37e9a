# One first import of the example's modules on a 32-bit MicroPython (the WebAssembly port),
# from source (.py, compiled on the device) or from the packages' .mpy (mpy/sntp/):
#   WASM_HEAPSIZE=N node host_tests/wasmrun.mjs --run tools/wasm/importheap.py source|mpy
# prints "importheap: base B, resident B, grown B": the heap in use before the imports, what
# they leave resident (after gc.collect()), and how much the port added to its heap because
# N bytes were not enough (it grows its heap instead of failing). tools/mipheap.py (make
# mip-heap) finds the smallest N that needs no growth: the heap a first import needs.
# The modules are those of examples/app.py (sntp.aio, sntp.rtc and what they import: the
# sync core but summary), each in its own call into the runtime (the heap is collected
# between calls), in an order where each import loads only that module.
import gc
import sys

# sntp first (its __init__), then each module after the ones it imports
ORDER = (
    "sntp",
    "sntp.compat",
    "sntp.exchange",
    "sntp.timestamp",
    "sntp.net",
    "sntp.schema",
    "sntp.sources",
    "sntp.vote",
    "sntp.state",
    "sntp.policy",
    "sntp.discipline",
    "sntp.keeper",
    "sntp.store",
    "sntp.client",
    "sntp.service",
    "sntp.aio",
    "sntp.rtc",
)


def heap():
    gc.collect()
    return gc.mem_alloc()


def main():
    route = sys.argv[1] if len(sys.argv) > 1 else "source"
    if route not in ("source", "mpy"):
        raise SystemExit("importheap: source or mpy, not {!r}".format(route))
    if route == "mpy":  # the package's compiled files instead of firmware/
        sys.path[:] = ["/repo/mpy" if p == "/repo/firmware" else p for p in sys.path]
    import asyncio  # noqa: F401 - the port's own module: not the package's weight

    yield
    base = heap()
    total = gc.mem_alloc() + gc.mem_free()  # the heap; the port adds to it when it runs out
    for name in ORDER:
        yield
        before = set(sys.modules)
        __import__(name)
        new = sorted(m for m in set(sys.modules) - before if m.startswith("sntp"))
        if new != [name]:
            raise SystemExit("importheap: importing {} loaded {}".format(name, new))
        where = getattr(sys.modules[name], "__file__", "")
        if not where.endswith(".mpy" if route == "mpy" else ".py"):
            raise SystemExit("importheap: {} came from {}".format(name, where))
    yield
    resident = heap() - base
    grown = gc.mem_alloc() + gc.mem_free() - total
    print("importheap: base {} B, resident {} B, grown {} B".format(base, resident, grown))
