# runs-on: both
# The idle path in small ints: on 32-bit ports (ESP32, RP2040, the WebAssembly port of make
# test-wasm) an int of 2**30 or more is a heap object, and the service's idle wake-up (a
# minute's sleep, the discipline's tick) runs all day. With a 20 ppm drift known, the drift
# of a minute is 1.2e9 ppb*ms: the tick must split it. Its sum stays exact on every runtime;
# on MicroPython nothing is allocated (gc.mem_alloc() with the collector off).
import gc
import sys

from sntp.discipline import Discipline

MICROPYTHON = sys.implementation.name == "micropython"


def ticks(drift_ppb, step_ms, n, now=0):
    d = Discipline(100)
    d.drift_ppb = drift_ppb
    d.tick(now)
    total = 0
    if MICROPYTHON:
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()  # type: ignore[attr-defined]
    for _ in range(n):
        now += step_ms
        total += d.tick(now)
    grew = gc.mem_alloc() - before if MICROPYTHON else 0  # type: ignore[attr-defined]
    gc.enable()
    return d, total, grew


def test_a_day_of_idle_minutes_with_a_known_drift_allocates_nothing_and_loses_no_us():
    for drift in (20_000, -20_000, 500_000, -500_000, 1, -1, 0):
        d, total, grew = ticks(drift, 60_000, 1_440)
        assert total * 1_000_000 + d.frac == drift * 60_000 * 1_440, (drift, total, d.frac)
        assert abs(d.frac) < 1_000_000 and (d.frac == 0 or (d.frac > 0) == (drift > 0))
        assert grew == 0, (drift, grew)


def test_uneven_ticks_sum_to_the_drift_of_the_whole_time():
    # a loop that wakes late, early and after a sync: the sum is the same
    for drift in (20_000, -123_457):
        d = Discipline(100)
        d.drift_ppb = drift
        now, total = 0, 0
        d.tick(now)
        for step in (1, 999, 1_000, 1_001, 59_999, 60_000, 3_600_001, 7, 86_400_000):
            now += step
            total += d.tick(now)
        assert total * 1_000_000 + d.frac == drift * now, (drift, total, d.frac)
