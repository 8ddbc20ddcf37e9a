# The clients of the fleet: this project's (the real firmware code) and the baselines.
#
# Every client is driven the same way by the engine: wake(t_ms) is called at the time the
# client last asked for, and returns the next time it wants (or None: never). A request
# goes out through World.send() at one wake; its outcome is handled at a later wake, when
# the reply (or the deadline) comes, so the queue orders sends and replies in time.
#
# SntpClient runs firmware/sntp unchanged: keeper.Keeper (the policy, the discipline
# and the persisted state, bound as in service.py and tools/simdev.py) decides every lookup
# and request, every request is built by exchange.Exchange and every reply is real bytes
# judged by it, and each Correction goes through the Keeper to the clock. The baselines
# are small models of other clients, each with its source.
import struct

import ntpwire
import simdev as sim

from sntp import exchange
from sntp.keeper import Keeper
from sntp.sources import RESOLVE

from .model import DAY_MS, DENY, MIN_MS, NO_BOUND, OK, RATE, Device


def reply_bytes(outcome, req, server_rx_us):
    """The datagram a server sends: an honest stratum-2 reply, or a KoD in ntpd/ntpsec's form
    (LI 3, stratum 0, origin = receive = transmit = the nonce); both built by tools/ntpwire."""
    if outcome is OK:
        return ntpwire.reply(
            req[40:48], ntpwire.ntp64(server_rx_us), ntpwire.ntp64(server_rx_us + 100)
        )
    return ntpwire.kod(req, outcome)


class SntpClient(Device):
    """This project's client: the real Keeper (Policy, Discipline) and Exchange (the top).
    It is its own rtc: adjust() moves its clock error."""

    name = "sntp"
    TIMEOUT_MS = sim.Device.TIMEOUT_MS  # the drivers' default (client.DEFAULT_TIMEOUT_MS)
    BOOT_TICKS_MS = 500  # ticks_ms when the program starts after a reset (ESP32: ~0.3-1 s)

    def __init__(self, world, idx, osc, clock_error_us, up_us, down_us, config, rand):
        super().__init__(world, idx, osc, clock_error_us, up_us, down_us)
        self.config = config  # policy.Config, shared by the fleet (read only)
        self.rand = rand  # callable n -> [0, n): the shard's random source
        self.keeper = None  # while powered
        self.store = sim.MemStore()  # what the flash holds
        self.inflight = None  # (source, address, Exchange, reply bytes or None, T4 us)
        self.nonce = 0
        self.mono0 = 0  # the fleet's ms at which this boot's monotonic clock read 0

    def adjust(self, offset_us):
        self.clock_error_us += offset_us

    def wall_now(self):
        return self.wall_us(self.t_ms)

    def advance(self, t_ms):
        """The crystal's error, then the discipline's ticks (as simdev.Device.advance)."""
        if t_ms > self.t_ms:
            self.clock_error_us -= self.lag_us(self.t_ms, t_ms)
            self.t_ms = t_ms
            if self.keeper is not None:
                self.keeper.tick(t_ms - self.mono0)

    def boot(self, t_ms, lose_clock=False, wake=False):
        """Power-on or reset (wake False), a wake from deep sleep (True) or an unknown reset
        cause (None): a new Keeper on what the flash holds. Its monotonic clock starts again
        (ticks_ms restarts at every boot: BOOT_TICKS_MS when the program starts)."""
        self.drift_to(t_ms)  # powered off: the crystal runs alone, no discipline ticks
        if lose_clock:
            self.lose_clock(t_ms)
        self.mono0 = t_ms - self.BOOT_TICKS_MS
        self.keeper = Keeper(self.config, self.rand, self.wall_now, self, self.store)
        self.keeper.boot(self.BOOT_TICKS_MS, wake=wake)
        self.inflight = None
        self.boot_ms = t_ms
        self.first_sync_pending = True
        return self.next_ms()

    def next_ms(self):
        """When the keeper wants poll() next, in the fleet's time (None: never)."""
        n = self.keeper.policy.next_ms()
        return None if n is None else n + self.mono0

    def due(self, t_ms):
        """After boot: 0 when a request is due now (bring the radio up), else ms until one
        is (None: nothing scheduled)."""
        return self.keeper.policy.due(t_ms - self.mono0)

    def power_off(self, t_ms):
        """Everything not persisted is lost; the keeper saved after every action."""
        self.advance(t_ms)
        self.keeper = None
        self.inflight = None

    def before_sleep(self, t_ms):
        """The application's last act before machine.deepsleep(): Service.save(), i.e.
        Keeper.sleep (the drift up to now, the state saved: the wake counts the sleep from
        here), as docs/design.md shows it; a firmware without it only had its saves."""
        self.advance(t_ms)
        sleep = getattr(self.keeper, "sleep", None)
        if sleep is not None:
            sleep(t_ms - self.mono0)

    def sample(self, t_ms):
        self.advance(t_ms)
        return self.clock_error_us

    def bound_us(self, t_ms):
        """The keeper's own error bound now (us, None when it cannot say), from
        Keeper.bound_us on its monotonic clock; NO_BOUND while the firmware has none (the
        simulator never makes one up)."""
        f = getattr(self.keeper, "bound_us", None)
        if f is None:
            return NO_BOUND
        return f(t_ms - self.mono0)

    def wake(self, t_ms):
        k = self.keeper
        self.advance(t_ms)
        m = t_ms - self.mono0  # the keeper's clock: ms since this boot
        if self.inflight is not None:  # the reply came, or the deadline passed
            src, addr, ex, data, t4_us = self.inflight
            self.inflight = None
            r = ex.receive(data, addr.key, t4_us) if data is not None else None
            if r is None:
                r = ex.expire()
            before = self.clock_error_us
            if k.result(src, addr, r, m) is not None:
                if self.synced:
                    self.world.stats.presync(t_ms, before)
                self.synced_now(t_ms)
            return self.next_ms()
        action = k.poll(m)
        if action is None:
            nxt = self.next_ms()
            if nxt is not None and nxt <= t_ms:
                raise RuntimeError("policy stalled at {} ms".format(t_ms))
            return nxt
        if action.kind == RESOLVE:
            src = action.src
            found = self.world.resolve(src.host, t_ms, self)
            servers = self.world.servers
            k.resolved(src, [servers[i].addr for i in found] if found else None, m)
            return max(t_ms, self.next_ms())
        src, addr = action.src, action.addr
        self.nonce += 1
        nonce = struct.pack("!II", self.nonce, self.rand(1 << 30))
        t1 = self.wall_us(t_ms)
        ex = exchange.Exchange(addr.key, nonce, t1, ntpwire.NTP_1970_S)
        req = ex.request()
        sidx = self.world.by_key[addr.key]
        outcome, up, down = self.world.send(self, sidx, t_ms)
        if outcome is None:
            self.inflight = (src, addr, ex, None, 0)
            return t_ms + self.TIMEOUT_MS
        rtt = up + 100 + down  # the server holds the request 100 us
        rx_us = self.true_us(t_ms) + up + self.world.servers[sidx].lie_us(t_ms)
        data = reply_bytes(outcome, req, rx_us)
        self.inflight = (src, addr, ex, data, t1 + rtt)  # T4 = T1 + a ticks difference
        return t_ms + rtt // 1000


class Baseline(Device):
    """A model client: no discipline, the crystal alone between the times it sets the clock.
    Subclasses set name and implement start(t) and outcome(...)."""

    name = "?"
    TIMEOUT_MS = 1_000

    def __init__(self, world, idx, osc, clock_error_us, up_us, down_us, rand):
        super().__init__(world, idx, osc, clock_error_us, up_us, down_us)
        self.rand = rand
        self.pending = None  # (server index, outcome, up us, down us, send ms)
        self.lie_us = 0  # how far off the server of the reply being handled is

    def advance(self, t_ms):
        self.drift_to(t_ms)

    def sample(self, t_ms):
        self.drift_to(t_ms)
        return self.clock_error_us

    def boot(self, t_ms, lose_clock=False, wake=False):
        """Every boot is the first: no state, whatever the reset cause (wake)."""
        self.drift_to(t_ms)
        if lose_clock:
            self.lose_clock(t_ms)
        self.pending = None
        self.boot_ms = t_ms
        self.first_sync_pending = True
        return self.start(t_ms)

    def due(self, t_ms):
        """No such question: the radio comes up at every wake (as the application's loop)."""
        return 0

    def power_off(self, t_ms):
        self.drift_to(t_ms)
        self.pending = None

    def ask(self, sidx, t_ms):
        """Send to server sidx now; wake at the reply or at the deadline."""
        outcome, up, down = self.world.send(self, sidx, t_ms)
        self.pending = (sidx, outcome, up, down, t_ms)
        if outcome is None:
            return t_ms + self.TIMEOUT_MS
        return t_ms + (up + 100 + down) // 1000

    def set_clock(self, t_ms, error_us):
        """The clock is set; error_us: how wrong the set leaves it (the client's method)."""
        self.drift_to(t_ms)
        if self.synced:
            self.world.stats.presync(t_ms, self.clock_error_us)
        self.clock_error_us = error_us + self.lie_us  # a falseticker's error is taken whole
        self.synced_now(t_ms)

    def wake(self, t_ms):
        self.drift_to(t_ms)
        if self.pending is not None:
            sidx, outcome, up, down, sent = self.pending
            self.pending = None
            self.lie_us = self.world.servers[sidx].lie_us(sent)
            return self.outcome(t_ms, sidx, outcome, up, down, sent)
        return self.send(t_ms)

    def lookup(self, name, t_ms):
        """getaddrinfo(name)[0]: the first address, or None when DNS fails."""
        found = self.world.resolve(name, t_ms)
        return found[0] if found else None


class CronWeekly(Baseline):
    """Weekly cron at a fixed wall-clock time. Source: an IoT vendor's report to the NTP
    Pool (its ~1,000 thermostats and lighting controllers: 'we are triggering ntp calls on a
    weekly cron with no client side load distribution', Sunday evening at about 19:45, to a
    pool server's IP address hard-coded in the firmware, all within a two-minute window).
    Model: at 19:45:00 each Sunday by the device's own clock (so an invalid clock fires on
    the Sundays of 1970, all together), the job starts within 2 s and sends one request to
    the hard-coded address (server 0), waits 5 s, and sets the clock from the reply with
    round-trip compensation (as ntpdate would); no retry until next week, and a KoD is no
    reply. The story does not say whether the devices also sync at boot: they do not here,
    so a new device waits for its first Sunday."""

    name = "cron-weekly"
    TIMEOUT_MS = 5_000
    WEEK_MS = 7 * 86_400_000
    AT_MS = (6 * 24 + 19) * 3_600_000 + 45 * MIN_MS  # Sunday 19:45 after Monday 00:00

    def start(self, t_ms):
        return self._next_fire(t_ms)

    def _next_fire(self, t_ms):
        wall_ms = self.wall_us(t_ms) // 1000
        # weeks start on Monday 00:00 UTC: 1970-01-05 was one (1970-01-01 was a Thursday)
        since = (wall_ms - 4 * 86_400_000) % self.WEEK_MS
        wait = (self.AT_MS - since) % self.WEEK_MS or self.WEEK_MS
        return t_ms + wait + self.rand(2_000)

    def send(self, t_ms):
        return self.ask(0, t_ms)

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is OK:
            self.set_clock(t_ms, (up - down) // 2)
        return self._next_fire(t_ms + 60_000)


class RetryEverySecond(Baseline):
    """A client that retries every second while it gets no reply. Source: Mills
    et al., the University of Wisconsin incident: 'if the configured time server could not
    be reached ... the code would retry at 1-s intervals'; the address hard-coded in the
    firmware) and D. Plonka, 'Flawed Routers Flood University of Wisconsin Internet Time
    Server' (2003). Model: the hard-coded server 0; a request at boot; no reply within 1 s:
    the next request at once; any reply (a KoD too: it does not read the stratum) ends the
    retries and the next sync is an hour later (the interval after a reply is not given by
    the sources: 1 h assumed). The clock is set to the transmit time, not compensated."""

    name = "retry-1s"
    TIMEOUT_MS = 1_000
    INTERVAL_MS = 3_600_000

    def start(self, t_ms):
        return t_ms + self.rand(1_000)

    def send(self, t_ms):
        return self.ask(0, t_ms)

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is None:
            nxt = sent + 1_000  # once a second, for ever
            # while the server is dead every one of those is a certain timeout: counted in
            # bulk up to the end of the spell instead of one event per second
            later = self.world.retry_every_second(self, sidx, nxt)
            return nxt if later is None else later
        if outcome is OK:
            self.set_clock(t_ms, -down)
        return t_ms + self.INTERVAL_MS


class NtptimeLoop(Baseline):
    """micropython-lib's ntptime in the usual application loop. Sources: micropython-lib
    micropython/net/ntptime (host 'pool.ntp.org', getaddrinfo on every call, a 1 s socket
    timeout, the clock set from the transmit timestamp's whole seconds: the fraction is
    dropped and the round trip ignored; recent versions raise on stratum 0) and the loop of
    countless examples: `while True: try: ntptime.settime(); sleep(3600) except Exception:
    sleep(5)`. So a KoD, a timeout or a DNS failure is retried 5 s later, indefinitely, and
    every call resolves the name again (the pool's DNS rotates its answers)."""

    name = "ntptime-loop"
    TIMEOUT_MS = 1_000
    INTERVAL_MS = 3_600_000
    RETRY_MS = 5_000
    HOST = "pool.ntp.org"

    def start(self, t_ms):
        return t_ms + self.rand(1_000)

    def send(self, t_ms):
        w = self.world
        down_until = w.dns_down_until(t_ms)
        if down_until is not None and down_until - t_ms > 60_000:
            # a lookup every 5 s until the resolver is back: counted at once (each one is
            # a certain failure), not one event each
            return t_ms + self.RETRY_MS * w.bulk_lookups(t_ms, self.RETRY_MS, down_until)
        sidx = self.lookup(self.HOST, t_ms)
        if sidx is None:
            return t_ms + self.RETRY_MS  # OSError from getaddrinfo
        return self.ask(sidx, t_ms)

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is OK:
            server_us = self.true_us(sent) + up
            frac_us = server_us % 1_000_000
            self.set_clock(t_ms, -frac_us - down)  # whole seconds at reception
            return t_ms + self.INTERVAL_MS
        nxt = t_ms + self.RETRY_MS  # timeout (OSError) or KoD (an exception): 5 s
        w = self.world
        dead = w.pool_dead_until(nxt)
        if outcome is None and dead is not None and dead - nxt > 60_000:
            # every address the pool hands out is dead: lookup, request, 1 s timeout, 5 s
            # sleep, again and again until one is back; counted at once
            period = self.TIMEOUT_MS + self.RETRY_MS
            n = w.bulk_requests(self, sidx, nxt, period, dead)
            w.bulk_lookups(nxt, period, nxt + n * period)
            return nxt + n * period
        return nxt


class FixedHourly(Baseline):
    """A fixed hourly interval with no jitter: lwIP's SNTP client with ESP-IDF's defaults
    (lwIP src/apps/sntp/sntp.c and sntp_opts.h; docs/rules.md for the rules it
    misses): one server by name ('pool.ntp.org', looked up before each request, lwIP's
    DNS cache keeping an answer for its 150 s TTL), a start-up delay of 0-5 s, then
    SNTP_UPDATE_DELAY = 1 h after each reply, exactly. No reply within SNTP_RECV_TIMEOUT
    (15 s), a DNS failure or any stratum-0 reply (KoD: SNTP_ERR_KOD, no code read): retry
    after SNTP_RETRY_TIMEOUT, 15 s doubling to 150 s. The clock is set to the transmit
    time without round-trip compensation (SNTP_COMP_ROUNDTRIP off)."""

    name = "fixed-hourly"
    TIMEOUT_MS = 15_000
    INTERVAL_MS = 3_600_000
    RETRY_MIN_MS = 15_000
    RETRY_MAX_MS = 150_000
    DNS_TTL_MS = 150_000
    HOST = "pool.ntp.org"

    def start(self, t_ms):
        self.retry_ms = self.RETRY_MIN_MS
        self.cached = None  # (server index, until ms)
        return t_ms + self.rand(5_000)

    def send(self, t_ms):
        if self.cached is not None and t_ms < self.cached[1]:
            sidx = self.cached[0]
        else:
            sidx = self.lookup(self.HOST, t_ms)
            if sidx is None:
                self.cached = None
                return self._retry(t_ms)
            self.cached = (sidx, t_ms + self.DNS_TTL_MS)
        return self.ask(sidx, t_ms)

    def _retry(self, t_ms):
        wait = self.retry_ms
        self.retry_ms = min(self.RETRY_MAX_MS, self.retry_ms * 2)
        return t_ms + wait

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is OK:
            self.retry_ms = self.RETRY_MIN_MS
            self.set_clock(t_ms, -down)
            return t_ms + self.INTERVAL_MS
        return self._retry(t_ms)


class NtptimeWake(NtptimeLoop):
    """A deep-sleep sensor that calls micropython-lib's ntptime.settime() at every wake (EVERY
    = 1) or at every EVERY-th (the count kept in RTC memory, which deep sleep keeps): one
    lookup of pool.ntp.org, one request, the clock set from the whole seconds of the reply
    (ntptime's way, as NtptimeLoop), no discipline, no retry (a failure raises; the
    application logs it and sleeps again). The radio comes up only on the wakes that call
    it; the first power-on calls it too (the clock reads 1970)."""

    name = "ntptime-wake"
    EVERY = 1

    def __init__(self, *args):
        super().__init__(*args)
        self.wake_n = 0  # wakes since power-on (RTC memory)
        self.calls = False  # this wake calls ntptime

    def start(self, t_ms):
        self.wake_n += 1
        self.calls = (self.wake_n - 1) % self.EVERY == 0
        return t_ms if self.calls else None

    def due(self, t_ms):
        return 0 if self.calls else None

    def send(self, t_ms):
        sidx = self.lookup(self.HOST, t_ms)
        return None if sidx is None else self.ask(sidx, t_ms)

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is OK:
            server_us = self.true_us(sent) + up
            self.set_clock(t_ms, -(server_us % 1_000_000) - down)  # whole seconds
        return None  # one call a wake, whatever came of it


class NtptimeSixthWake(NtptimeWake):
    """The same at every 6th wake: with this scenario's sleeps of 5-60 min (a cycle of about
    33 min on average) that is about 7 calls a day, the traffic the RC sleep clock's target
    allows (8 a day); on a sensor waking every 10 min it is the common hourly sync."""

    name = "ntptime-wake-6"
    EVERY = 6


class Oracle(Baseline):
    """The limit: a client that knows the device's sleep clock (its offset and daily swing,
    model.SleepClock.known_ppb_ms) and its awake crystal exactly, so its clock moves only by
    the noise of each sleep, which nobody can know; it corrects each wake for the sleep just
    ended and needs no radio for it. It syncs perfectly (error 0 after a reply) at the first
    wake at least DAY_MS / K after its last sync (a lost reply: again at the next wake), so
    it sends about K requests a day. Run at several K (ORACLE_KS), its p99 against requests a
    day is the curve a real client is held to (report.oracle_needs)."""

    name = "oracle"
    K = 8  # requests a day

    def __init__(self, *args):
        super().__init__(*args)
        self.next_sync_ms = 0  # the first wake at or after it syncs
        self.calls = False  # this wake syncs

    def drift_to(self, t_ms):
        """The clock as the physics moves it, less all that the oracle knows: the crystal
        awake, the offset and swing of the sleep clock asleep."""
        if t_ms <= self.t_ms:
            return
        t0 = self.t_ms
        lag = self.lag_us(t0, t_ms)
        if self.asleep and self.sleep_clock is not None:
            known = self.sleep_clock.known_ppb_ms(t0, t_ms) / 1_000_000
            self.clock_error_us -= lag - round(known)
        self.t_ms = t_ms

    def start(self, t_ms):
        self.calls = not self.synced or t_ms >= self.next_sync_ms
        return t_ms if self.calls else None

    def due(self, t_ms):
        return 0 if self.calls else None

    def send(self, t_ms):
        return self.ask(self.rand(4), t_ms)

    def outcome(self, t_ms, sidx, outcome, up, down, sent):
        if outcome is OK:
            self.set_clock(t_ms, 0)
            # on a grid of DAY_MS / K from its first sync, so that a late wake does not
            # lengthen the next interval: K a day (while it wakes more often than that)
            self.next_sync_ms = max(self.next_sync_ms, t_ms - DAY_MS // self.K) + DAY_MS // self.K
        return None


ORACLE_KS = (1, 2, 4, 8, 12, 24, 48)  # requests a day: the oracle's curve


def _oracle(k):
    """Oracle at k requests a day, a module-level class (a shard can be pickled)."""
    cls = type(f"Oracle{k}", (Oracle,), {"name": f"oracle-{k}", "K": k, "__module__": __name__})
    globals()[cls.__name__] = cls
    return cls


BASELINES = {c.name: c for c in (CronWeekly, RetryEverySecond, NtptimeLoop, FixedHourly)}
# the deep-sleep scenarios' own clients (Scenario.sleep_clients)
SLEEPERS = {c.name: c for c in (NtptimeWake, NtptimeSixthWake, *map(_oracle, ORACLE_KS))}
MODELS = {**BASELINES, **SLEEPERS}
CLIENTS = ["sntp"] + list(MODELS)
_ = (RATE, DENY)
