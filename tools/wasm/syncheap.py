# Does one sync fit in N bytes of free heap, on the 32-bit WebAssembly MicroPython? One try
# of tools/footprint.py's sweep (make footprint), in a fresh runtime each:
#
#   WASM_HEAPSIZE=262144 node host_tests/wasmrun.mjs --run tools/wasm/syncheap.py N
#
# prints "syncheap: N pass" or "syncheap: N fail (why)". The service of tools/wasm/footprint.py
# (the sync core imported, the firmware's own net.Net over a fakesock.World) syncs once and
# runs through a boot's slew, then three syncs an hour apart; then, in one call into the
# runtime, the heap is filled with 16-byte tuples (one GC block each, first fit: the holes
# from the bottom up) until exactly N bytes are free, at the top of the heap in one piece, and
# one Service.sync() runs. It passes when it set the clock and the heap did not grow: this
# port adds a heap area where a board raises MemoryError. This port frees nothing made within
# a call (its gc.collect() waits for the call to end), so N is the free heap a sync needs with
# no collection during it: on a board a collection can free the sync's early garbage for its
# later allocations, and it may need less (never more, for the same fragmentation).
import gc
import sys

SPLIT = 128 * 1024 * 1024  # what gc.mem_free() counts beyond the heap: the largest new area
HOLD = 32_768  # fillers at most (a 512 KB heap's worth)


def free():
    return gc.mem_free() - SPLIT


def main():
    import footprint
    from fakes import NTP_1970

    n = int(sys.argv[1])
    hold = [None] * HOLD
    yield
    clock = footprint.Clock(NTP_1970)
    svc, world = yield from footprint.warmed(clock)  # the drift known, as in its syncs
    svc.clock.advance(3_600_000_000)  # an hour after the last, as footprint.sync() does
    yield
    world.prepare()  # the server's reply built now, not in the heap filled below
    gc.collect()  # (done when this call ends)
    yield
    total = gc.mem_alloc() + gc.mem_free()
    k = (free() - n) // 16 - 8  # a little short: topped up below, one tuple at a time
    if k > HOLD:
        print("syncheap: {} fail (the heap has {} B free: more than HOLD fills)".format(n, free()))
        return
    i = 0
    while i < k:
        hold[i] = (i, i)  # 16 B: one block
        i += 1
    while free() > n and i < HOLD:
        hold[i] = (i, i)
        i += 1
    if free() != n or gc.mem_alloc() + gc.mem_free() != total:
        print(
            "syncheap: {} fail (filled to {} B free, heap grown {} B)".format(
                n, free(), gc.mem_alloc() + gc.mem_free() - total
            )
        )
        return
    own = world.own
    s = svc.sync()
    own = world.own - own
    grown = gc.mem_alloc() + gc.mem_free() - total
    if grown or not s["clock_set"]:
        print(
            "syncheap: {} fail (heap grown {} B, clock set {}; server {} B)".format(
                n, grown, s["clock_set"], own
            )
        )
    else:
        print("syncheap: {} pass (server {} B)".format(n, own))
