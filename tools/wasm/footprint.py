# What the time service allocates on a 32-bit MicroPython (the WebAssembly port, 31-bit small
# ints like ESP32 and RP2040): `make footprint-wasm32`, which runs
#   node host_tests/wasmrun.mjs --run tools/wasm/footprint.py
# and prints the figures; they are also written to results/footprint-wasm32.json (not with
# --print-only, which host_tests/test_longrun.py uses to check that it runs).
#
#   import_bytes    heap resident after `from sntp.service import Service` (the sync core,
#                   compiled from source as mip installs it), read between calls into the
#                   runtime, where gc.collect() works;
#   service_bytes   heap resident with a Service built and synced once (fake network);
#   wake_bytes      bytes allocated per idle wake-up of Service.run() (a minute's sleep with
#                   no request due: the discipline's tick and the policy's schedule);
#   sync_bytes      bytes allocated per Service.sync() (one exchange), with the firmware's own
#                   net.Net and net.Udp over tools/wasm/fakesock.py's World (this port has
#                   no socket module), less what its fake server allocated (World.own);
#   run_sync_bytes  the same for a sync that Service.run() schedules (the headless board's:
#                   no summary dict), with the idle wake-ups around it (0 bytes each);
#   dns_import_bytes  heap resident after `from sntp import dns` (the optional resolver);
#   dns_lookup_bytes  bytes allocated by one sntp.dns lookup (an A and an AAAA question, two
#                   addresses in the A answer) on a fake socket whose answers were built
#                   before, the addresses made as net.Address objects without getaddrinfo
#                   (this port has no socket module): the resolver's own cost.
# Allocation is read within one call: this port frees nothing made within the current call,
# so what gc.mem_alloc() grows by there is what was allocated.
import gc
import json
import sys

WAKES = 1_000  # idle wake-ups measured
SYNCS = 5  # syncs measured, an hour apart
START_US = 1_800_000_000_000_000  # Unix us at the start (2027)
DRIFT_PPB = 20_000  # the board's crystal runs 20 ppm slow
_MASK = (1 << 30) - 1  # the boards' ticks period, less one


class Clock:
    """A board's clock for the service, costing what a board's does: ticks are the port's own
    ticks_add/ticks_diff over small ints (wrapping at 2**30 here); the wall clock (big ints,
    read only when the service asks) runs DRIFT_PPB slow. sleep_ms moves the time; mono_us
    and advance() serve the fake network."""

    def __init__(self, epoch_s):
        import time

        self.epoch_s = epoch_s
        self.wall0 = START_US  # wall us at the start
        self.moved = 0  # us the RTC was adjusted by
        self.ms = 0  # elapsed ms (a small int for 12 days)
        self.us = 0  # and us
        self.tus = 0  # ticks_us: elapsed us, wrapping at 2**30 (a small int, as a board's)
        self.t0 = time.ticks_add(0, -3_600_000)  # ticks_ms wraps an hour in
        self.ticks_add = time.ticks_add
        self.ticks_diff = time.ticks_diff
        self.n = 0
        self.pool = bytes((i * 101 + 37) & 255 for i in range(264))  # the "random" bytes

    @property
    def mono_us(self):
        return self.ms * 1000 + self.us

    def advance(self, us):
        if us <= _MASK:  # a sleep: small ints only (2**30 - us is one)
            d = _MASK - us + 1
            self.tus = self.tus - d if self.tus >= d else self.tus + us
        else:  # the probe's own jumps of an hour
            self.tus = (self.tus + us) & _MASK
        us += self.us
        self.ms += us // 1000
        self.us = us % 1000

    def now_us(self):
        e = self.ms * 1000 + self.us
        return self.wall0 + self.moved + e - e * DRIFT_PPB // 1_000_000_000

    def ticks_ms(self):
        return self.ticks_add(self.t0, self.ms)

    def ticks_us(self):
        return self.tus

    def sleep_ms(self, ms):
        self.advance(ms * 1000)

    def random_bytes(self, n):
        """n bytes, a new bytes object as os.urandom(n) makes (and a slice object)."""
        self.n = (self.n + 1) & 255
        return self.pool[self.n : self.n + n]


class Rtc:
    def __init__(self, clock):
        self.clock = clock

    def adjust(self, offset_us):
        self.clock.moved += offset_us  # a small int: a board's RTC adapter has its own costs


class Store:
    def load(self):
        return None

    def save(self, doc):
        return True


def idle(svc, clock):
    """Bytes allocated per wake-up over WAKES idle minutes of Service.run (no request due)."""
    start = clock.ms
    a = gc.mem_alloc()
    svc.run(until_ms=svc.now_ms() + WAKES * 60_000)
    total = gc.mem_alloc() - a
    assert (clock.ms - start) // 60_000 == WAKES, clock.ms - start
    return total // WAKES


def dns_lookup():
    """A generator: the resident heap of `from sntp import dns`, then the bytes one lookup
    allocates (see the top), each step a call into the runtime."""
    base = heap()
    from sntp import dns
    from sntp.net import Address

    yield
    resident = heap() - base
    import dnswire

    host = "0.acme.pool.ntp.org"
    qa, qaaaa = 0x1234, 0xBEEF
    dns.random_below = lambda n: qa if n == 65536 else (qaaaa - qa - 1) & 0xFFFF
    server = ("192.0.2.53", 53)
    answers = (
        dnswire.addresses(dns.question(host, dnswire.A, qa), ["192.0.2.7", "192.0.2.8"]),
        dnswire.reply(dns.question(host, dnswire.AAAA, qaaaa)),
    )

    class Sock:
        def __init__(self):
            self.left = [(answers[0], server), (answers[1], server)]

        def bind_random(self):
            return 50000

        def send(self, data, sockaddr):
            pass

        def recv(self, timeout_ms):
            return self.left.pop() if self.left else None

        def close(self):
            pass

    class Resolver(dns.Resolver):
        def udp(self, family, size=None):
            return Sock()

        def address(self, ip, port):
            return [Address(2, (ip, port), (ip, port))]

    res = Resolver(server, 1_000, True)
    got = res.resolve(host, 123)  # the first: any one-time cost
    yield
    a = gc.mem_alloc()
    got = res.resolve(host, 123)
    used = gc.mem_alloc() - a
    assert [x.key for x in got] == [("192.0.2.7", 123), ("192.0.2.8", 123)], got
    yield (resident, used)


def heap():
    gc.collect()
    return gc.mem_alloc()


def service(clock):
    """(Service, World): the sync core's Service with the firmware's own net.Net, over a
    fakesock.World whose one server is honest (shared with tools/wasm/syncalloc.py)."""
    import fakesock
    from fakes import honest

    from sntp.net import Net
    from sntp.service import Service

    world = fakesock.World(clock, honest(START_US))
    world.install()
    svc = Service(
        {"servers": ["ntp.example"], "poll_min_s": 86_400, "poll_max_s": 86_400},
        net=Net(),
        clock=clock,
        rtc=Rtc(clock),
        store=Store(),
        rand_below=lambda n: n // 3,
        timeout_ms=1_000,
    )
    return svc, world


def warmed(clock):
    """Steps (yield from): a service synced once, its slew and a boot's checkpoints done,
    then synced three times an hour apart, so that the drift is known; (svc, world)."""
    svc, world = service(clock)
    svc.sync()
    svc.run(until_ms=svc.now_ms() + 1_000_000)
    yield
    for _ in range(3):
        sync(svc, world)
        yield
    return svc, world


def sync(svc, world):
    """(bytes, summary) of one Service.sync() an hour after the last: what it allocated,
    less what the fake server did (World.own). Call it at the start of a call into the
    runtime: nothing made in the call is freed before it returns."""
    svc.clock.advance(3_600_000_000)  # an hour apart: the discipline learns the drift
    own = world.own
    a = gc.mem_alloc()
    s = svc.sync()
    return gc.mem_alloc() - a - (world.own - own), s


def scheduled(svc, world):
    """Bytes allocated by Service.run() until a minute after the next request the schedule
    sends (the headless board's sync: no summary; the idle wake-ups before it allocate
    nothing), less what the fake server did."""
    until_ms = svc.now_ms() + svc.due() + 60_000  # the next request and a minute after it
    own, sent = world.own, world.sent
    a = gc.mem_alloc()
    svc.run(until_ms=until_ms)
    used = gc.mem_alloc() - a - (world.own - own)
    assert world.sent == sent + 1, (sent, world.sent)
    return used


def main():
    # each yield ends a call into the runtime: the heap is collected before the next step
    yield
    base = heap()
    from sntp.service import Service  # noqa: F401 - the import measured

    yield
    import_bytes = heap() - base
    import fakesock  # noqa: F401 - the fakes: not part of the figure below
    from fakes import NTP_1970, honest  # noqa: F401

    yield
    clock = Clock(NTP_1970)
    base = heap()
    svc, world = service(clock)
    ok = svc.sync()["clock_set"]
    # any slew of that correction done, and the uptime checkpoints of a boot (15 s to 16 min)
    svc.run(until_ms=svc.now_ms() + 1_000_000)
    yield
    service_bytes = heap() - base
    wake = [idle(svc, clock)]  # the drift not known yet
    yield
    sync_bytes = []
    for _ in range(SYNCS):
        used, s = sync(svc, world)
        sync_bytes.append(used)
        ok = ok and s["ok"]
        yield
    run_sync_bytes = scheduled(svc, world)
    yield
    svc.run(until_ms=svc.now_ms() + 600_000)  # the last slew done
    yield
    steps = dns_lookup()
    dns_bytes = next(steps)
    while dns_bytes is None:  # a step per call, the last one gives the figures
        yield
        dns_bytes = next(steps)
    wake.append(idle(svc, clock))  # with the drift known
    drift = svc.keeper.disc.drift_ppb
    assert ok and world.sent == 2 + SYNCS, (ok, world.sent)  # no request while idle
    doc = {
        "runtime": "micropython-wasm32",
        "version": sys.version,
        "sys_maxsize": sys.maxsize,
        "import_bytes": import_bytes,
        "service_bytes": service_bytes,
        "wake_bytes": wake[0],
        "wake_bytes_drift_known": wake[1],
        "drift_ppb": drift,
        "wakes": WAKES,
        "sync_bytes": sum(sync_bytes) // SYNCS,
        "syncs": sync_bytes,
        "run_sync_bytes": run_sync_bytes,
        "dns_import_bytes": dns_bytes[0],
        "dns_lookup_bytes": dns_bytes[1],
    }
    print("footprint-wasm32 ({}, sys.maxsize {}):".format(sys.version, sys.maxsize))
    print("  resident after importing the sync core: {} bytes".format(import_bytes))
    print("  resident with a service built and synced: {} bytes".format(service_bytes))
    print(
        "  allocated per idle wake-up: {} bytes; with the drift known ({} ppb): {} bytes"
        " ({} wake-ups each)".format(wake[0], drift, wake[1], WAKES)
    )
    print(
        "  allocated per sync: {} bytes (each of {}: {})".format(
            doc["sync_bytes"], SYNCS, sync_bytes
        )
    )
    print("  allocated by a scheduled sync in run(): {} bytes".format(run_sync_bytes))
    print(
        "  sntp.dns: resident {} bytes; allocated per lookup (A and AAAA): {} bytes".format(
            dns_bytes[0], dns_bytes[1]
        )
    )
    if sys.maxsize != (1 << 31) - 1 or "--print-only" in sys.argv:
        return  # not the 32-bit runtime (or a check): the figures are printed, not saved
    try:
        import os

        os.mkdir("results")
    except OSError:
        pass
    with open("results/footprint-wasm32.json", "w") as f:
        f.write(json.dumps(doc) + "\n")
