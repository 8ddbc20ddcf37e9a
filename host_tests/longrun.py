# The 40-day run, the same on every runtime: CPython, the unix-port MicroPython (64-bit) and
# the WebAssembly MicroPython (32-bit: 31-bit small ints, ticks wrapping at 2**30). It must
# give the same decisions on all three, byte for byte: host_tests/test_longrun.py compares
# the digests.
#
# One device runs the real blocking Service (policy, clock discipline, reply checks and
# client all real) for 40 simulated days against the pool zone's 4 servers (fake network,
# replies built by fakes.reply, not by the firmware), with a 20 ppm crystal that wanders
# +/- 2 ppm over each day and walks a little every hour (sim.Oscillator). The run starts
# 19 days before the NTP era rollover (2036-02-07 06:28:16 UTC) and with ticks_ms an hour
# before its 2**30 wrap, so it crosses the era once and the ticks wrap four times. On the
# way, one server answers with RATE kisses for four days, one is silent for four days and
# one is 2 s wrong for four days.
#
# The digest is a SHA-256 over one text line for each event of the service (every send,
# correction, drift estimate...), every request's bytes, every RTC adjustment and every
# wake-up (each sleep_ms and when it began), in the order they happened.
#
#   micropython host_tests/longrun.py         (prints the summary and the digest)
#   node host_tests/wasmrun.mjs --run host_tests/longrun.py
import binascii
import hashlib

from fakes import ERA_ROLLOVER_UNIX, TICKS_PERIOD, FakeNet, LoopClock, MemStore, StepRTC, reply
from simdev import Oscillator  # the simulated-time driver's crystal model (tools/)

from sntp import service

DAYS = 40
DAY_MS = 86_400_000
START = (ERA_ROLLOVER_UNIX - 19 * 86_400 - 1_234) * 1_000_000  # true Unix us at the start
MS0 = TICKS_PERIOD - 3_600_000  # ticks_ms at the start: it wraps an hour in
ZONE = "acme"
# the zone's 4 servers: (their clock's error us, round trip us)
SERVERS = [(0, 20_000), (1_500, 35_000), (-2_000, 12_000), (700, 60_000)]
# server 1 sends RATE kisses, 2 is silent, 3 is 2 s wrong: on these days (from the first)
RATE_DAYS, SILENT_DAYS, LIAR_DAYS = (8, 9, 10, 11), (20, 21, 22, 23), (29, 30, 31, 32)


class Lcg:
    """Deterministic draws, the same on every runtime (31-bit state)."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1_103_515_245 + 12_345) % (1 << 31)
        return self.x * n >> 31


class Digest:
    """SHA-256 over one line per record; counts per kind."""

    def __init__(self):
        self.h = hashlib.sha256()
        self.counts = {}

    def add(self, kind, text):
        self.h.update("{} {}\n".format(kind, text).encode())
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def event(self, e):
        self.add(e["event"], " ".join("{}={!r}".format(k, e[k]) for k in sorted(e)))

    def hex(self):
        return binascii.hexlify(self.h.digest()).decode()


class Crystal(LoopClock):
    """LoopClock whose wall clock runs at the oscillator's rate; every wake-up digested."""

    def __init__(self, osc, digest):
        LoopClock.__init__(self, START - 2_500_000, ms0=MS0)  # 2.5 s behind at power-on
        self.osc = osc
        self.osc_ms = 0  # elapsed ms the oscillator's error was summed up to
        self.digest = digest

    def advance(self, us):
        LoopClock.advance(self, us)
        ms = self.mono_us // 1000
        if ms > self.osc_ms:
            self.wall_us -= self.osc.lag_us(self.osc_ms, ms)
            self.osc_ms = ms

    def sleep_ms(self, ms):
        self.digest.add("wake", "{} {}".format(self.mono_us, ms))
        self.advance(ms * 1000)


class Rtc(StepRTC):
    def __init__(self, clock, digest):
        StepRTC.__init__(self, clock)
        self.digest = digest

    def adjust(self, offset_us):
        self.digest.add("adjust", "{} {}".format(self.clock.mono_us, offset_us))
        self.clock.step(offset_us)


def ip(i):
    return "192.0.2.{}".format(i + 1)


def responder(clock, digest):
    def respond(req, dst, mono_us):
        digest.add("request", "{} {} {}".format(mono_us, dst[0], binascii.hexlify(req).decode()))
        i = int(dst[0].rsplit(".", 1)[1]) - 1
        day = mono_us // (DAY_MS * 1000)
        err_us, delay_us = SERVERS[i]
        if i == 2 and day in SILENT_DAYS:
            return []
        if i == 1 and day in RATE_DAYS:
            kod = reply(req[40:48], 0, 0, li=3, stratum=0, refid=b"RATE", rx=0, tx=0, ref=0)
            return [(delay_us, kod, dst)]
        if i == 3 and day in LIAR_DAYS:
            err_us += 2_000_000
        t2 = START + mono_us + err_us + delay_us // 2
        return [(delay_us, reply(req[40:48], t2, t2 + 100), dst)]

    return respond


def scenario():
    """A generator: one step per simulated day (the WebAssembly runner collects the heap
    between steps); its last value is the summary line."""
    digest = Digest()
    rng = Lcg(12_345)
    clock = Crystal(Oscillator(20_000, 2_000, DAY_MS, 100, rng.below), digest)
    hosts = {"{}.{}.pool.ntp.org".format(i, ZONE): [(ip(i), 123)] for i in range(4)}
    net = FakeNet(clock, responder(clock, digest), hosts)
    svc = service.Service(
        {"zone": ZONE},
        net=net,
        clock=clock,
        rtc=Rtc(clock, digest),
        store=MemStore(),
        rand_below=rng.below,
        timeout_ms=1_000,
    )
    svc.subscribe(digest.event)
    limit_us = (DAYS * DAY_MS + 3_600_000) * 1000  # a schedule lost in time fails, not hangs
    wraps = 0
    for day in range(1, DAYS + 1):
        last = clock.ticks_ms()
        svc.run(until_ms=day * DAY_MS, stop=lambda: clock.mono_us > limit_us)
        wraps += clock.ticks_ms() < last
        yield None
    true_us = START + clock.mono_us
    error_us = clock.now_us() - true_us
    c = digest.counts
    era = (START // 1_000_000 < ERA_ROLLOVER_UNIX) and (true_us // 1_000_000 > ERA_ROLLOVER_UNIX)
    yield (
        "longrun: {} days, era crossed {}, ticks_ms wraps {}: {} sends, {} clock, {} adjust,"
        " {} wake-ups, final error {} us; digest {}".format(
            DAYS,
            era,
            wraps,
            c.get("send", 0),
            c.get("clock", 0),
            c.get("adjust", 0),
            c.get("wake", 0),
            error_us,
            digest.hex(),
        )
    )


def run():
    """The summary line, the whole scenario in one call (CPython, the unix port)."""
    return list(scenario())[-1]


def main():
    """For host_tests/wasmrun.mjs --run: the steps, then the line printed."""
    line = None
    for line in scenario():
        if line is None:
            yield
    print(line)


if __name__ == "__main__":
    print(run())
