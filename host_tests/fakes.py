# A fake clock and a fake network for the host tests, on CPython and on the unix-port MicroPython.
#
# The fakes are independent oracles: they build replies with the host tools' NTP code
# (tools/ntpwire.py), not with the firmware's, so a bug there cannot hide.
import json
import os

import ntpwire

from sntp.net import Address, NetError

NTP_1970 = ntpwire.NTP_1970_S
NTP_2000 = ntpwire.NTP_2000_S
ntp64 = ntpwire.ntp64  # Unix us -> 64-bit wire timestamp

TICKS_PERIOD = 1 << 30
ERA_ROLLOVER_UNIX = 2085978496  # 2036-02-07 06:28:16 UTC: NTP seconds wrap to 0
BUILD_2026_UNIX = 1795219200  # 2026-11-21


class FakeClock:
    """Wall clock (us since the port epoch) and wrapping ticks, moved only by advance()/step()."""

    def __init__(self, start_unix_us, epoch_s=NTP_1970, ticks_start=TICKS_PERIOD - 500_000):
        self.epoch_s = epoch_s  # s from 1900 to the port epoch
        # wall time in us since the port epoch
        self.wall_us = start_unix_us - (epoch_s - NTP_1970) * 1_000_000
        self.mono_us = 0  # elapsed real time
        self.ticks0 = ticks_start  # default: half a second before ticks_us wraps
        self._rand = 0

    def now_us(self):
        return self.wall_us + self.mono_us

    def ticks_us(self):
        return (self.ticks0 + self.mono_us) % TICKS_PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + TICKS_PERIOD // 2) % TICKS_PERIOD) - TICKS_PERIOD // 2

    def advance(self, us):
        self.mono_us += us

    def step(self, us):
        """The wall clock jumps (a user sets the RTC); real time does not move."""
        self.wall_us += us

    def random_bytes(self, n):
        self._rand += 1
        return bytes((self._rand * 37 + i * 101) % 256 for i in range(n))


def reply(
    origin,
    t2_unix_us,
    t3_unix_us,
    rx=None,
    tx=None,
    ref=None,
    extra=b"",
    **fields,
):
    """A server reply built field by field (fields: ntpwire.reply's li, vn, mode, stratum,
    poll, precision, root_delay, root_disp, refid). rx/tx/ref override the timestamps."""
    rx = ntp64(t2_unix_us) if rx is None else rx
    tx = ntp64(t3_unix_us) if tx is None else tx
    if ref is None:
        ref = ntp64(t2_unix_us - 16_000_000)
    return ntpwire.reply(origin, rx, tx, ref, **fields) + extra


SERVER = ("192.0.2.1", 123)  # TEST-NET-1: never reached, the fake network is in memory


class FakeNet:
    """Resolver table and an in-memory UDP world driven by the fake clock.

    responder(request_bytes, dst_key, unix_us_at_server) -> list of (delay_us, data, src_key)
    """

    def __init__(self, clock, responder, hosts=None):
        self.clock = clock
        self.responder = responder
        self.hosts = hosts if hosts is not None else {"ntp.example": [SERVER]}
        self.sent = []  # (mono_us, data, dst_key)
        self.sockets = 0  # sockets opened
        self.bound_ports = []

    def resolve(self, host, port):
        if host not in self.hosts:
            raise NetError("resolve", "cannot resolve {}: not found".format(host))
        return [
            Address(2, (ip, p if p else port), (ip, p if p else port))
            for ip, p in self.hosts[host]
        ]

    def udp(self, family):
        self.sockets += 1
        return FakeUdp(self)


class FakeUdp:
    def __init__(self, net):
        self.net = net
        self.pending = []  # (arrival mono_us, data, src_key)
        self.closed = False

    def bind_random(self):
        port = 49152 + len(self.net.bound_ports) * 7919 % 16384
        self.net.bound_ports.append(port)
        return port

    def send(self, data, sockaddr):
        clock = self.net.clock
        self.net.sent.append((clock.mono_us, bytes(data), sockaddr))
        server_unix_us = clock.mono_us  # the responder adds its own notion of true time
        for delay_us, out, src in self.net.responder(bytes(data), sockaddr, server_unix_us):
            self.pending.append((clock.mono_us + delay_us, out, src))
        self.pending.sort(key=lambda p: p[0])

    def recv(self, timeout_ms):
        clock = self.net.clock
        deadline = clock.mono_us + max(0, timeout_ms) * 1000
        if self.pending and self.pending[0][0] <= deadline:
            at, data, src = self.pending.pop(0)
            if at > clock.mono_us:
                clock.advance(at - clock.mono_us)
            return data, src
        clock.advance(deadline - clock.mono_us)
        return None

    def close(self):
        self.closed = True


def honest(true_start_unix_us, delay_us=20_000, server=SERVER, **fields):
    """A responder whose clock reads true time: true_start_unix_us + elapsed real time.

    The reply leaves half a delay after the request and arrives a full delay after it;
    the server spends 100 us between receive and transmit.
    """

    def respond(req, dst, mono_us):
        t2 = true_start_unix_us + mono_us + delay_us // 2
        t3 = t2 + 100
        return [(delay_us + 100, reply(req[40:48], t2, t3, **fields), server)]

    return respond


BUILD = (__file__.rpartition("/")[0] or ".") + "/../build"


def fresh_path(folder, name):
    """build/FOLDER/NAME with no file (nor its .tmp) there: a clean place for a state file."""
    for d in (BUILD, BUILD + "/" + folder):
        try:
            os.mkdir(d)
        except OSError:
            pass
    path = BUILD + "/" + folder + "/" + name
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return path


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read_json(path):
    with open(path) as f:
        return json.load(f)


# Tests written as generators that yield where the heap is read next (by name).
STEPPED = {}


def stepped(gen_fn):
    """A test that is a generator, yielding before each heap reading: run whole here. The
    WebAssembly runner (host_tests/wasmrun.mjs) runs each step in a call of its own into the
    runtime, as that port's gc.collect() frees nothing made within the current call."""

    def test():
        for _ in gen_fn():
            pass

    STEPPED[gen_fn.__name__] = gen_fn
    return test


# ---- the service loop's clock, rtc and store ----------------------------------------------
START = 1_800_000_000_000_000  # true Unix us at the start (2027, after the build date)


class LoopClock(FakeClock):
    """FakeClock plus the loop's needs: wrapping ms ticks and a sleep that advances time."""

    def __init__(self, start_unix_us, ms0=TICKS_PERIOD - 2_000, **kw):
        FakeClock.__init__(self, start_unix_us, **kw)
        self.ms0 = ms0  # ticks_ms at the start: wraps 2 s in
        self.slept = []  # every sleep_ms argument

    def ticks_ms(self):
        return (self.ms0 + self.mono_us // 1000) % TICKS_PERIOD

    def sleep_ms(self, ms):
        self.slept.append(ms)
        self.advance(ms * 1000)

    async def aio_sleep_ms(self, ms):
        """A stand-in for aio.sleep_ms: this clock moves instead of real time passing."""
        import asyncio

        self.advance(max(0, ms) * 1000)
        await asyncio.sleep(0)


class StepRTC:
    """An rtc that steps the fake wall clock, as machine.RTC would step the board's."""

    def __init__(self, clock):
        self.clock = clock
        self.steps = []  # offset_us of every adjust()

    def adjust(self, offset_us):
        self.steps.append(offset_us)
        self.clock.step(offset_us)


class MemStore:
    def __init__(self, doc=None, fail=False):
        self.doc = doc  # the saved dict
        self.saves = 0
        self.fail = fail
        self.warning = None

    def load(self):
        return self.doc

    def save(self, doc):
        self.saves += 1
        if self.fail:
            self.warning = "disk full"
            return False
        self.doc = json.loads(json.dumps(doc))  # a copy, as a file holds it
        return True


def rand(n):
    return n // 3  # deterministic: a third of each random range
