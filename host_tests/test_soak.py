# runs-on: both
# A year in one device's life, in simulated time (tools/simdev.py: the real Policy,
# Discipline and Exchange checks; simulated servers, DNS and a 20 ppm crystal): syncs, outages
# of hours and days, RATE and DENY kisses (scheduled, and 3% of replies at random), DNS
# failures, a server that leaves the pool, a reboot every 2-6 days (one in five without an
# RTC: the clock reads 1970 again), three crash loops (60 boots, 10 or 40 s apart), and twice
# a state file lost or cut in half, and liars under a second (one 400 ms off for ten days,
# one whose clock walks away 60 ms a day for two weeks). The policy's and the discipline's
# state are persisted across each reboot as service.py does (one JSON text, the
# discipline's inside the policy's).
#
# Asserted over the whole year:
#   S1 the clock is within the accuracy target (100 ms) at every 10-minute sample once it is
#      synced, except during a total outage or after a boot without an RTC, until an hour
#      after the first sync that follows (the clock is not set wrong meanwhile: S5);
#   S2 never two requests to one address within 15 s, never more than 12 in any hour, across
#      reboots (rules 1 and 2), crash loops without an RTC included (the persisted sends are
#      aged by uptime, which needs no clock; their worst hour is printed), except an hour
#      across the loss of the state file (the sends before it are forgotten with it).
#   S3 no request to an address within a day of its DENY, reboots included, unless the state
#      file was lost in between (rule 5); after a RATE, none within 10 minutes, reboots
#      included, on the same terms (requests after a reboot are counted and printed);
#   S4 every send has exactly one outcome (reply, kod, timeout or reject), the servers saw
#      exactly the sends, and each boot's per-server counters match its events;
#   S5 every correction leaves the clock within 128 ms of the truth (so never before the build
#      date, rule 10), and one over a second only ever sets a clock that was invalid;
#   and nothing raises.
# The figures (simulated time, requests, syncs, errors, runtime) are printed on every run.
import json
import time

import simdev as sim
from test_policy import DAY_MS, HOUR_MS, T0, Rng, all_requests, zone_world

from sntp import policy as pol

YEAR_DAYS = 365
SAMPLE_MS = 600_000  # the clock error is sampled every 10 minutes
ACCURACY_US = 100_000  # the configured accuracy_ms (the default), in us
SETTLE_MS = HOUR_MS  # after the first sync that ends an exclusion window
# the limits, as the rules and the README state them (not read from policy.py, so that a
# change there cannot move the bar with it)
FLOOR_MS = 15_000  # rule 1: never two requests to one server within 15 s
HOURLY_CAP = 12  # README: never more than 12 requests in any hour
RATE_MIN_MS = 600_000  # README: after a RATE, that address waits at least 10 minutes
DENY_HOLD_MS = DAY_MS  # README: after a DENY, that address is not used for a day


def ticks():
    """ms for the runtime figure, on either runtime."""
    t = getattr(time, "ticks_ms", None)
    return t() if t is not None else int(time.monotonic() * 1000)


class Flaky(sim.Server):
    """An honest server that, now and then, answers with a RATE kiss or not at all."""

    def __init__(self, rng, rate_per_1000=30, silent_per_1000=30):
        super().__init__()
        self.rng = rng
        self.rate_per_1000 = rate_per_1000
        self.silent_per_1000 = silent_per_1000

    def reply(self, req, true_us):
        if self.mode != "honest":  # a scheduled outage or kiss
            return super().reply(req, true_us)
        r = self.rng.below(1000)
        if r < self.silent_per_1000:
            return None
        if r < self.silent_per_1000 + self.rate_per_1000:
            self.mode = "kod"
            try:
                return super().reply(req, true_us)  # code RATE
            finally:
                self.mode = "honest"
        return super().reply(req, true_us)


class BlobStore:
    """The state file as store.JsonStore keeps it: one JSON text; a broken one loads as None."""

    def __init__(self):
        self.blob = None  # the state file's text

    def load(self):
        try:
            return json.loads(self.blob) if self.blob is not None else None
        except ValueError:
            return None

    def save(self, doc):
        self.blob = json.dumps(doc)
        return True


class Persisted(sim.Device):
    """sim.Device whose state survives reboots as service.py keeps it: one JSON text (what
    store.JsonStore writes) holding the policy's state and, under "discipline", the
    discipline's, restored by the same keeper.Keeper as Service.boot()."""

    def __init__(self, *args, **kw):
        super().__init__(*args, store=BlobStore(), **kw)
        self.boots = []  # ms of every boot
        self.boot_at_event = []  # len(self.events) at every boot
        self.after_step = []  # (ms, clock was valid, error us after) of every correction

    def boot(self, now_ms):
        self.advance(now_ms)
        self.boots.append(now_ms)
        self.boot_at_event.append(len(self.events))
        super().boot(now_ms)

    def _query(self, src, addr, now):
        n = len(self.steps)
        error_before = self.clock_error_us
        done = super()._query(src, addr, now)
        if len(self.steps) > n:  # S5: what the clock was, and what it is now
            valid = self.world.true_us(now) + error_before >= self.policy.floor_us
            self.after_step.append((done, valid, self.clock_error_us))
        return done

    def power_off(self, now_ms, down_ms, has_rtc=True):
        """Off at now_ms for down_ms (the crystal runs on, undisciplined, if there is an RTC;
        without one the clock reads 1970 at the next boot), then boot."""
        self.advance(now_ms)
        self.keeper = None  # nothing disciplines the clock while it is off
        self.advance(now_ms + down_ms)
        if not has_rtc:
            self.clock_error_us = -self.world.true_us(now_ms + down_ms)
        self.boot(now_ms + down_ms)


class Year:
    """The scenario: a world, a device, and a timeline of what happens to them."""

    def __init__(self, seed=2027):
        self.rng = Rng(seed)
        self.seed = seed
        self.w = zone_world()
        self.addr = ["10.0.0.{}".format(i + 1) for i in range(4)]  # name i's address
        for i in range(4):
            self.w.servers[(self.addr[i], 123)] = Flaky(Rng(seed + 10 + i))
        osc = sim.Oscillator(20_000, 2_000, rand=Rng(seed + 1).below)
        self.d = Persisted(
            self.w,
            {"zone": "acme"},
            clock_error_us=-T0,  # the first boot: the clock reads 1970
            rand=Rng(seed + 2).below,
            oscillator=osc,
            discipline=True,
        )
        self.events = []  # (ms, callable) the timeline
        self.blind = [(0, 0)]  # (from, to) ms: windows excluded from S1 (to: its end)
        self.reboots = 0
        self.lost_clock = 0
        self.crash_loops_without_rtc = []  # (from, to) ms: their worst hour is printed
        self.state_losses = []  # ms of the boots whose state file was lost or broken

    def at(self, ms, fn):
        self.events.append((ms, len(self.events), fn))  # in order of planning at equal times

    def server(self, i):
        """The server that name i.acme.pool.ntp.org resolves to."""
        return self.w.servers[(self.addr[i], 123)]

    def outage(self, start, length, servers=(0, 1, 2, 3), mode="silent", code="RATE", blind=None):
        """Servers (by name index) in another mode from start for length; blind: no server
        left that gives the time (default: all four are out)."""
        hit = []

        def begin():
            hit[:] = [self.server(i) for i in servers]
            for s in hit:
                s.mode, s.code = mode, code

        def end():
            for s in hit:
                s.mode = "honest"

        self.at(start, begin)
        self.at(start + length, end)
        if blind or (blind is None and len(servers) == 4):
            self.blind.append((start, start + length))

    def lie(self, start, days, i, offset_us):
        """Server i's clock is offset_us(k) off on the k-th day from start, for days."""
        for k in range(days + 1):

            def fn(k=k):
                self.server(i).offset_us = offset_us(k) if k < days else 0

            self.at(start + k * DAY_MS, fn)

    def dns_outage(self, start, length, names=(0, 1, 2, 3)):
        saved = {}

        def begin():
            for i in names:
                name = "{}.acme.pool.ntp.org".format(i)
                saved[name] = self.w.dns[name]
                self.w.dns[name] = None

        def end():
            for name, ips in saved.items():
                self.w.dns[name] = ips

        self.at(start, begin)
        self.at(start + length, end)
        if len(names) == 4:
            self.blind.append((start, start + length))

    def plan(self):
        day = DAY_MS
        self.outage(20 * day + 3 * HOUR_MS, 6 * HOUR_MS)  # hours without any server
        self.outage(60 * day, 3 * day)  # days without any server
        self.crash_loop(61 * day, False, 40_000)  # and a crash loop in the middle of it
        self.outage(100 * day, 10 * day, servers=(2,), mode="kod", code="RATE")
        # the others silent for a while: the device keeps asking, and only the RATE server
        # answers (it must wait out its RATE gap each time)
        self.outage(105 * day, 6 * HOUR_MS, servers=(0, 1, 3), blind=True)
        # and a boot without an RTC whose state file is broken: a fresh device, asking often
        self.at(105 * day + 60_000, self._reboot(60_000, False, "corrupt"))
        self.outage(140 * day, 2 * day, servers=(1,), mode="kod", code="DENY")
        # a crash loop without an RTC: every boot asks every server (an invalid clock needs
        # them all), so the first meets the DENY, and no later boot may ask that address
        self.crash_loop(140 * day + 2 * HOUR_MS, False, 40_000)
        self.dns_outage(180 * day, 12 * HOUR_MS)  # the resolver down for half a day
        self.dns_outage(200 * day, 5 * day, names=(3,))
        self.outage(240 * day, 10 * day, servers=(0,))
        self.outage(300 * day, 2 * day, mode="kod", code="RATE")  # every server: RATE

        def leave_pool():  # server 3 leaves the pool for good; DNS gives a new one
            self.server(3).mode = "silent"
            self.addr[3] = "10.0.0.14"
            self.w.dns["3.acme.pool.ntp.org"] = [self.addr[3]]
            self.w.servers[(self.addr[3], 123)] = Flaky(Rng(self.seed + 14))

        self.at(270 * day, leave_pool)
        # liars under a second: server 2 is 400 ms off for ten days; then server 0's clock
        # walks away 60 ms a day for two weeks (to 840 ms), and is put right
        self.lie(210 * day, 10, 2, lambda k: 400_000)
        self.lie(280 * day, 15, 0, lambda k: 60_000 * k)

        def deny_for_good():  # server 1 denies us from here on (its DNS still names it)
            self.server(1).mode = "kod"
            self.server(1).code = "DENY"

        self.at(330 * day, deny_for_good)
        self.outage(332 * day, 12 * HOUR_MS, servers=(0, 2, 3), blind=True)  # only the DENY
        self.at(332 * day + 60_000, self._reboot(60_000, False, "lost"))
        # a reboot every 2 to 6 days, at any time of day; one in five without an RTC
        t = 0
        while True:
            t += 2 * day + self.rng.below(4 * day)
            if t >= YEAR_DAYS * day:
                break
            has_rtc = self.rng.below(5) != 0
            down = self.rng.below(600_000)  # off for up to 10 minutes
            self.at(t, self._reboot(down, has_rtc))
        self.crash_loop(150 * day, True, 10_000)

    def crash_loop(self, start, has_rtc, every_ms, boots=60):
        """A boot every every_ms, 60 times (each off for 2 s)."""
        if not has_rtc:
            self.crash_loops_without_rtc.append((start, start + boots * every_ms))
        for k in range(boots):
            self.at(start + k * every_ms, self._reboot(2_000, has_rtc))

    def _reboot(self, down, has_rtc, state=None):
        """A reboot; state 'lost': the state file is gone, 'corrupt': half of it is."""

        def fn():
            now = self.d.t_ms
            self.check_counters()
            self.reboots += 1
            if not has_rtc:
                self.lost_clock += 1
                self.blind.append((now, now + down))
            if state is not None:
                self.state_losses.append(now)
            if state == "lost":
                self.d.store.blob = None
            elif state == "corrupt":
                self.d.store.blob = self.d.store.blob[: len(self.d.store.blob) // 2]
            self.d.power_off(now, down, has_rtc)

        return fn

    def check_counters(self):
        """S4 for the boot that is ending: its per-server counters match its events."""
        d = self.d
        evs = d.events[d.boot_at_event[-1] :]
        for src in d.policy.sources:
            label = src.label

            def count(kind, label=label):
                return len([e for e in evs if e["event"] == kind and e.get("server") == label])

            assert src.sends == count("send"), label
            assert src.replies == count("reply"), label
            assert src.kods == count("kod"), label
        assert d.policy.kods == len([e for e in evs if e["event"] == "kod"])

    def run(self):
        d = self.d
        d.boot(0)
        self.events.sort()
        for when, _, fn in self.events:
            d.run(when, sample_ms=SAMPLE_MS)
            fn()
        d.run(YEAR_DAYS * DAY_MS, sample_ms=SAMPLE_MS)
        self.check_counters()


def windows_of_blindness(y):
    """S1's exclusions: each blind window, until SETTLE_MS after the first sync that ends
    after it. Returns a sorted list of (from, to)."""
    steps = [t for t, _ in y.d.steps]
    out = []
    for a, b in y.blind:
        after = [t for t in steps if t >= b]
        end = (after[0] if after else y.d.t_ms) + SETTLE_MS
        out.append((a, end))
    out.sort()
    return out


def test_a_simulated_year_with_outages_kisses_dns_failures_and_reboots():
    started = ticks()
    y = Year()
    y.plan()
    y.run()
    elapsed_ms = ticks() - started
    d, w = y.d, y.w
    events = d.events

    # S2: the floors and the hourly cap, across every reboot
    for key, s in w.servers.items():
        for a, b in zip(s.requests, s.requests[1:]):
            assert b - a >= FLOOR_MS, "S2: {} asked {} ms apart".format(key, b - a)
    reqs = all_requests(w)
    loops = [(a - HOUR_MS, b + HOUR_MS) for a, b in y.crash_loops_without_rtc]
    worst_loop_hour = 0
    for i, a in enumerate(reqs):
        if any(lo <= a < hi for lo, hi in loops):
            n = len([t for t in reqs[i:] if t < a + HOUR_MS])
            worst_loop_hour = max(worst_loop_hour, n)
    for i in range(len(reqs) - HOURLY_CAP):
        a, b = reqs[i], reqs[i + HOURLY_CAP]
        if any(a <= t <= b for t in y.state_losses):
            continue  # the sends before a lost or cut state file are forgotten with it
        if b - a < HOUR_MS:
            raise AssertionError("S2: {} requests within {} ms".format(HOURLY_CAP + 1, b - a))
    per_day = [0] * YEAR_DAYS
    for t in reqs:
        per_day[t // DAY_MS] += 1
    assert max(per_day) <= HOURLY_CAP * 24

    # S3: nothing to an address within a day of its DENY
    by_text = {pol.key_text(k): s for k, s in w.servers.items()}
    denies = [e for e in events if e["event"] == "kod" and e["code"] == "DENY"]
    assert len(denies) >= 2
    for e in denies:
        s = by_text[e["address"]]
        later = [t for t in s.requests if e["t_ms"] < t < e["t_ms"] + DENY_HOLD_MS]
        lost = [t for t in y.state_losses if e["t_ms"] < t]  # a device without its state
        later = [t for t in later if not lost or t < lost[0]]  # cannot remember the DENY
        assert later == [], (e, later[:3])

    # S3: after a RATE kiss, that address waits at least RATE_MIN_MS (10 min), reboots
    # included (those are counted and printed), unless the state file was lost in between
    rates = [e for e in events if e["event"] == "kod" and e["code"] == "RATE"]
    across_reboot = 0
    for e in rates:
        s = by_text[e["address"]]
        later = [t for t in s.requests if e["t_ms"] < t < e["t_ms"] + DAY_MS]
        if not later:
            continue
        if any(e["t_ms"] < b <= later[0] for b in d.boots):
            across_reboot += 1
        if not [t for t in y.state_losses if e["t_ms"] < t <= later[0]]:
            assert later[0] - e["t_ms"] >= RATE_MIN_MS, (e, later[0])

    # S4: every send has one outcome; the servers saw exactly the sends
    sends = [e for e in events if e["event"] == "send"]
    outcomes = [e for e in events if e["event"] in ("reply", "kod", "timeout", "reject")]
    outcomes = [e for e in outcomes if e.get("address") is not None]  # not before-build-date
    assert len(sends) == len(outcomes) == len(reqs)
    for key, s in w.servers.items():
        mine = [e for e in sends if e["address"] == pol.key_text(key)]
        assert len(mine) == len(s.requests), key
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == len(d.steps)
    kinds = {}
    for e in events:
        kinds[e["event"]] = kinds.get(e["event"], 0) + 1

    # S1: the clock within the target whenever synced, outside the blind windows
    blind = windows_of_blindness(y)
    first = d.steps[0][0]
    errs = []
    worst = (0, 0)
    for t, err in d.errors:
        if t < first or any(a <= t < b for a, b in blind):
            continue
        errs.append(abs(err))
        if abs(err) > worst[1]:
            worst = (t, abs(err))
    errs.sort()
    assert len(errs) > 0.8 * len(d.errors), (len(errs), len(d.errors))
    assert worst[1] <= ACCURACY_US, "clock {} ms off on day {}".format(
        worst[1] // 1000, worst[0] // DAY_MS
    )
    # S5: every correction leaves the clock right (a slew: within the step threshold, 128 ms),
    # so it is never set wrong nor before the build date; a correction over a second only for
    # a clock that was not valid (the first boot, each boot without an RTC)
    assert len(d.after_step) == len(d.steps)
    for (t, valid, err), (_, offset) in zip(d.after_step, d.steps):
        assert abs(err) <= 128_000 + 1_000, (t, err)
        assert valid or abs(offset) > 1_000_000  # an invalid clock is always set
        assert abs(offset) <= 1_000_000 or not valid, (t, offset)  # a valid one never jumps

    rate = len(rates)
    print(
        "soak: {} simulated days, {} requests ({:.1f}/day, at most {} in a day), {} syncs, "
        "{} reboots ({} without an RTC), {} RATE ({} asked again after a reboot within a "
        "day) and {} DENY kisses, {} DNS lookups "
        "({} failed), clock error max {} ms p99 {} ms over {} samples, drift {} ppb; "
        "crash loops without an RTC: at most {} requests in an hour; "
        "runtime {:.2f} s".format(
            YEAR_DAYS,
            len(reqs),
            len(reqs) / YEAR_DAYS,
            max(per_day),
            len(d.steps),
            y.reboots,
            y.lost_clock,
            rate,
            across_reboot,
            len(denies),
            len(w.lookups),
            len([e for e in events if e["event"] == "resolve" and not e["ok"]]),
            worst[1] // 1000,
            errs[len(errs) * 99 // 100] // 1000,
            len(errs),
            d.disc.drift_ppb,
            worst_loop_hour,
            elapsed_ms / 1000,
        )
    )
