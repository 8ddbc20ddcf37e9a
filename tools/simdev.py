# The simulated-time driver (host only): the real Policy and the real Exchange checks, with
# simulated servers, DNS and clocks, for the scenario tests and the fleet simulator. No I/O,
# no sleep.
#
# Every request is turned into real reply bytes by a simulated server and judged by
# exchange.Exchange exactly as on a device, so a KoD or a liar in a scenario goes through
# the same checks as one on the wire.
import json
import struct

import ntpwire

from sntp import exchange
from sntp.keeper import Keeper
from sntp.schema import Config
from sntp.sources import RESOLVE

_NTP_1970 = ntpwire.NTP_1970_S


class Oscillator:
    """A crystal's frequency error over time, in ppb (+: the clock runs slow), integers only.

    base_ppb: the constant part (a cheap 32 kHz watch crystal: 10-50 ppm; 20 ppm default).
    wander_ppb: a daily temperature swing, as a triangle wave of that amplitude (a room's
    day/night cycle moves a tuning-fork crystal by about 1-3 ppm; 2 ppm default).
    walk_ppb: the largest hourly step of a slow random walk (ageing, drafts), bounded to
    +/- 4 * walk_ppb around the base. rand: callable n -> [0, n) for the walk.
    """

    STEP_MS = 60_000  # integration step: the error is summed a minute at a time

    def __init__(
        self, base_ppb=20_000, wander_ppb=2_000, period_ms=86_400_000, walk_ppb=100, rand=None
    ):
        self.base_ppb = base_ppb
        self.wander_ppb = wander_ppb
        self.period_ms = period_ms
        self.walk_ppb = walk_ppb
        self.rand = rand
        self.walk = 0  # current random-walk part, ppb
        self.walk_hour = 0  # the hour the walk was last stepped
        self.frac = 0  # error not yet whole us, in ppb*ms

    def freq_ppb(self, t_ms):
        phase = t_ms % self.period_ms
        quarter = self.period_ms // 4
        # triangle: 0 -> +A at a quarter, -A at three quarters, back to 0
        if phase < quarter:
            tri = self.wander_ppb * phase // quarter
        elif phase < 3 * quarter:
            tri = self.wander_ppb - 2 * self.wander_ppb * (phase - quarter) // (2 * quarter)
        else:
            tri = -self.wander_ppb + self.wander_ppb * (phase - 3 * quarter) // quarter
        hour = t_ms // 3_600_000
        while self.rand is not None and self.walk_ppb and self.walk_hour < hour:
            self.walk_hour += 1
            self.walk += self.rand(2 * self.walk_ppb + 1) - self.walk_ppb
            bound = 4 * self.walk_ppb
            self.walk = max(-bound, min(bound, self.walk))
        return self.base_ppb + tri + self.walk

    def lag_us(self, t0_ms, t1_ms):
        """How many us the clock falls behind true time from t0 to t1 (negative: gains)."""
        total = self.frac
        t = t0_ms
        while t < t1_ms:
            dt = min(self.STEP_MS, t1_ms - t)
            total += self.freq_ppb(t + dt // 2) * dt
            t += dt
        whole = total // 1_000_000
        self.frac = total - whole * 1_000_000
        return whole


class Addr:
    """A simulated resolved address (the policy only reads .key)."""

    def __init__(self, key):
        self.key = key  # (ip, port)


class Server:
    """A simulated server. mode: 'honest' (offset_us: how wrong it is: a liar), 'silent',
    'kod' (a real KoD with the given code), 'spoof-kod' (a KoD whose origin is not ours)."""

    def __init__(self, mode="honest", code="RATE", offset_us=0, delay_us=20_000):
        self.mode = mode
        self.code = code  # KoD code for mode 'kod'
        self.offset_us = offset_us  # how wrong its clock is
        self.delay_us = delay_us  # round trip
        self.requests = []  # ms of every request received

    def reply(self, req, true_us):
        if self.mode == "silent":
            return None
        if self.mode == "kod" or self.mode == "spoof-kod":
            # ntpsec form: LI 3, stratum 0, origin = rx = tx = nonce (the spoof gets it wrong)
            return ntpwire.kod(req, self.code, origin=None if self.mode == "kod" else b"Z" * 8)
        t2 = true_us + self.offset_us + self.delay_us // 2
        return ntpwire.reply(req[40:48], ntpwire.ntp64(t2), ntpwire.ntp64(t2 + 100))


class World:
    """Servers by (ip, port), DNS by name, and true time: Unix us = t0_us + now_ms * 1000."""

    def __init__(self, t0_us):
        self.t0_us = t0_us  # true Unix us at now_ms == 0
        self.servers = {}  # (ip, port) -> Server
        self.dns = {}  # name -> list of ips, or None for a failing lookup
        self.lookups = []  # (ms, name) of every lookup
        # an off-path attacker: attacker(request, (ip, port), device T1 us, true us) ->
        # (before, after), lists of forged (data, (ip, port)) datagrams that reach the device
        # before and after the real reply (or the timeout); None: no attacker
        self.attacker = None

    def true_us(self, now_ms):
        return self.t0_us + now_ms * 1000

    def resolve(self, name, port, now_ms):
        self.lookups.append((now_ms, name))
        ips = self.dns.get(name)
        if not ips:
            return None
        return [Addr((ip, port)) for ip in ips]


class MemStore:
    """A store in memory (load() -> dict or None, save(dict) -> True): what the flash holds."""

    def __init__(self, doc=None):
        self.doc = doc

    def load(self):
        return self.doc

    def save(self, doc):
        self.doc = json.loads(json.dumps(doc))  # what the flash holds: a copy, as JSON has it
        return True


class Device:
    """One simulated device: the real keeper.Keeper (policy, discipline, persisted state)
    on a simulated clock, with a log of events. It is its own rtc: adjust() moves its error."""

    TIMEOUT_MS = 5_000

    def __init__(
        self,
        world,
        config_dict,
        clock_error_us=0,
        rand=None,
        state=None,
        oscillator=None,
        discipline=False,
        store=None,
    ):
        self.world = world
        self.config = Config.from_dict(config_dict)
        self.clock_error_us = clock_error_us  # device clock minus true time
        self.osc = oscillator  # Oscillator or None (a perfect clock)
        self.discipline = discipline  # slew and drift (Discipline), or whole steps
        self.store = store if store is not None else MemStore(state)
        self.t_ms = 0  # the time the clock error was last brought up to date
        self.errors = []  # (ms, clock error us) at each sample of run(sample_ms=...)
        self.rand = rand  # callable n -> [0, n)
        self.events = []  # every event dict
        self.steps = []  # (ms, offset_us) of every correction
        self.nonce = 0
        self.keeper = None  # while it runs
        self.policy = None
        self.ignored = {}  # reason -> datagrams the exchanges ignored (spoofs, duplicates)

    @property
    def saved(self):
        return self.store.doc

    @property
    def disc(self):
        return self.keeper.disc if self.keeper is not None else None

    def wall_us(self, now_ms):
        return self.world.true_us(now_ms) + self.clock_error_us

    def adjust(self, offset_us):
        self.clock_error_us += offset_us

    def wall_now(self):
        return self.wall_us(self.t_ms)

    def boot(self, now_ms, ask_now=False, wake=False):
        """Start (again) at now_ms; ask_now: a person asked for a sync (tools/sntp sync)."""
        self.advance(now_ms)
        k = Keeper(
            self.config,
            self.rand,
            self.wall_now,
            self,
            self.store,
            self.discipline,
        )
        self.keeper, self.policy = k, k.policy
        k.subscribe(self.events.append)
        k.boot(now_ms, not ask_now, wake)

    def advance(self, now_ms):
        """Bring the clock to now_ms: the oscillator's error, then the discipline's ticks."""
        if now_ms <= self.t_ms:
            return
        if self.osc is not None:
            self.clock_error_us -= self.osc.lag_us(self.t_ms, now_ms)
        self.t_ms = now_ms
        if self.keeper is not None:
            self.keeper.tick(now_ms)

    def reboot(self, now_ms, lose_clock=False, ask_now=False, wake=False):
        """Restart from the persisted state; lose_clock: no RTC, the clock reads 1970 again;
        wake: a wake from deep sleep (the clock ran on)."""
        if wake and self.keeper is not None:
            self.keeper.sleep(self.t_ms)  # a board saves just before its deep sleep
        self.keeper = None  # it was off: the crystal ran alone, no discipline ticks
        self.advance(now_ms)
        if lose_clock:
            self.clock_error_us = -self.world.true_us(now_ms)
        self.boot(now_ms, ask_now, wake)

    def run(self, until_ms, sample_ms=None):
        """Drive the policy until until_ms (exclusive). sample_ms: also record the clock
        error every sample_ms (and tick the discipline there, as a driver's loop would)."""
        k = self.keeper
        next_sample = self.t_ms + sample_ms if sample_ms else None
        while True:
            due = k.policy.next_ms()  # the policy's due time, or an uptime checkpoint
            if (
                next_sample is not None
                and next_sample < until_ms
                and (due is None or next_sample < due)
            ):
                self.advance(next_sample)
                self.errors.append((next_sample, self.clock_error_us))
                next_sample += sample_ms
                continue
            if due is None or due >= until_ms:
                self.advance(until_ms)
                return until_ms
            now = due
            self.advance(now)
            action = k.poll(now)
            if action is None:
                if k.policy.next_ms() == now:
                    raise RuntimeError("policy stalled at {} ms".format(now))
                continue
            if action.kind == RESOLVE:
                src = action.src
                k.resolved(src, self.world.resolve(src.host, src.port, now), now)
            else:
                now = self._query(action.src, action.addr, now)

    def _query(self, src, addr, now):
        self.nonce += 1
        nonce = struct.pack("!II", self.nonce, self.rand(1 << 30) if self.rand else 7)
        t1 = self.wall_us(now)
        ex = exchange.Exchange(addr.key, nonce, t1, _NTP_1970)
        req = ex.request()
        server = self.world.servers.get(addr.key)
        data = None
        if server is not None:
            server.requests.append(now)
            data = server.reply(req, self.world.true_us(now))
        before, after = [], []
        if self.world.attacker is not None:
            before, after = self.world.attacker(req, addr.key, t1, self.world.true_us(now))
        r = None
        for forged, source in before:  # they race the real reply and arrive first
            r = ex.receive(forged, source, t1 + 1_000) if r is None else r
        if data is None:
            done = now + self.TIMEOUT_MS
        else:
            done = now + server.delay_us // 1000
            got = ex.receive(data, addr.key, t1 + server.delay_us + 100)
            r = got if r is None else r
        for forged, source in after:  # late ones: a driver that kept reading would see them
            got = ex.receive(forged, source, t1 + 2 * (done - now) * 1000 + 1_000)
            r = got if r is None else r
        if r is None:
            r = ex.expire()
        for reason, n in ex.ignored.items():
            self.ignored[reason] = self.ignored.get(reason, 0) + n
        self.advance(done)
        corr = self.keeper.result(src, addr, r, done)
        if corr is not None:
            self.steps.append((done, corr.offset_us))
        return done


def sends(events):
    return [e for e in events if e["event"] == "send"]
