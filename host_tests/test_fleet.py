# CPython only: the fleet simulator (tools/fleet, `make bench`) checked on itself, and a small
# fleet of this client held to the fleet targets that scale down to a few hundred devices.
import heapq
import random

import simdev as sim
from fleet import engine
from fleet.model import DAY_MS, HOUR_MS, FastOscillator, RateLimit, Server
from fleet.scenarios import SCENARIOS, Scenario

# ---- the simulator itself ------------------------------------------------------------------


def test_clock_model_drifts_as_specified():
    # a constant 20 ppm slow crystal loses exactly 1.728 s a day
    osc = FastOscillator(20_000, 0, walk_ppb=0)
    assert osc.lag_us(0, DAY_MS) == 1_728_000
    # the daily +/-2 ppm triangle adds nothing over a whole period, +A/2 over its first half
    osc = FastOscillator(0, 2_000, walk_ppb=0)
    assert osc.lag_us(0, DAY_MS) == 0
    quarter = DAY_MS // 4
    assert osc.lag_us(DAY_MS, DAY_MS + quarter) == 2_000 * quarter // 2 // 1_000_000
    # and the whole model (base, wander, hourly walk) agrees with sim.Oscillator, the
    # discipline's crystal model that integrates a minute at a time, over 5 days of odd steps
    for base, wander in ((20_000, 2_000), (-13_000, 3_000)):
        a = sim.Oscillator(base, wander, rand=random.Random(5).randrange)
        b = FastOscillator(base, wander, rand=random.Random(5).randrange)
        r = random.Random(1)
        t = la = lb = 0
        while t < 5 * DAY_MS:
            t2 = t + r.randrange(1, 2 * HOUR_MS)
            la += a.lag_us(t, t2)
            lb += b.lag_us(t, t2)
            assert abs(la - lb) <= 100, (t2, la, lb)  # us
            t = t2
        assert abs(la) > 1_000_000  # it did drift: seconds over 5 days


class _Recorder:
    """A stand-in device: wakes at the times it is given, and records what it saw."""

    def __init__(self, name, times, log):
        self.name = name
        self.times = list(times)
        self.log = log
        self.on = True
        self.synced = False

    def wake(self, t_ms):
        self.log.append((t_ms, self.name))
        return self.times.pop(0) if self.times else None


def test_events_run_in_global_time_order():
    sh = engine.Shard(SCENARIOS["steady"](1), "fixed-hourly", 3, 0, 3)
    log = []
    plans = {"a": [5, 5, 40, 100], "b": [3, 50, 60], "c": [7, 8, 9, 10_000]}
    sh.devs = [_Recorder(k, v[1:], log) for k, v in plans.items()]
    sh.heap = [(v[0], k) for k, v in enumerate(plans.values())]
    heapq.heapify(sh.heap)
    sh.run_until(1_000)
    times = [t for t, _ in log]
    assert times == sorted(times)  # one queue, in time order across devices
    for name, plan in plans.items():  # and each device woke exactly when it asked
        assert [t for t, n in log if n == name] == [t for t in plan if t < 1_000]
    assert sh.heap == [(10_000, 2)]  # the rest waits for the next run_until


class _DeadHour(Scenario):
    """Server 0 is dead from 1 h to 2 h; all devices boot at 0 with a valid clock."""

    name = "dead-hour"
    days = 1
    loss = 0.0

    def servers(self):
        out = super().servers()
        out[0].down = [(HOUR_MS, 2 * HOUR_MS)]
        return out

    def boot(self, rng):
        return 0, True


def _per_second(sc, client, n):
    sh = engine.Shard(sc, client, n, 0, n)
    st = sh.run()
    return st, st.per_sec


def test_a_baseline_really_retries_every_second():
    # dead server: the retries are counted in bulk (one per second per device)
    st, per_sec = _per_second(_DeadHour(), "retry-1s", 20)
    spell = per_sec[3_600 + 5 : 7_200 - 5]
    assert min(spell) == max(spell) == 20, (min(spell), max(spell))
    assert st.dead_arrivals >= 20 * 3_590
    after = per_sec[7_200 + 5 : 7_200 + 3_000]
    assert sum(after) == 0  # answered at once when it is back: hourly again

    # a live server whose replies are all lost: the same, one event per request
    class Lossy(_DeadHour):
        loss = 1.0

        def servers(self):
            return Scenario.servers(self)

    st, per_sec = _per_second(Lossy(), "retry-1s", 20)
    assert st.dead_arrivals == 0
    assert st.sent >= 20 * (DAY_MS // 1_000) - 40  # every second of the day, every device
    assert sum(per_sec) == 0  # all lost on the way (loss 1.0): nothing arrives

    # and the well-behaved baseline does not: lwIP backs off to 150 s
    st, per_sec = _per_second(_DeadHour(), "fixed-hourly", 20)
    assert sum(per_sec[3_600:7_200]) <= 20 * (3_600 // 150 + 5)


def test_ntpd_style_rate_limit():
    lim = RateLimit()  # ntpd defaults: 8 s average, burst 8, minimum 2 s
    mon = {}
    assert [lim.limited(mon, 0, t * 1_000) for t in range(0, 5)] == [False] + [True] * 4
    mon = {}
    assert not any(lim.limited(mon, 0, t * 8_000) for t in range(100))  # one per 8 s is fine
    mon = {}
    every_4s = [lim.limited(mon, 0, t * 4_000) for t in range(40)]
    assert not any(every_4s[:10]) and all(every_4s[20:])  # a burst, then limited for good


def test_server_schedule():
    s = Server("10.0.0.1", down=[(10, 20)], gone_ms=100)
    assert [s.dead(t) for t in (9, 10, 19, 20, 99, 100, 10**9)] == [
        False,
        True,
        True,
        False,
        False,
        True,
        True,
    ]


class _OneRateLimitedServer(Scenario):
    """This client with one configured server that allows one request an hour per client
    (a leaky bucket of two) and answers RATE beyond that; the devices boot at once."""

    name = "one-server-rate"
    days = 2
    loss = 0.0
    sntp_config = {"servers": ["ntp.acme.example"]}

    def servers(self):
        out = super().servers()
        out[0].limit = RateLimit(head_ms=3_600_000, burst=2, min_gap_ms=2_000)
        return out

    def dns(self, name, t_ms, rng):
        return [0] if name == "ntp.acme.example" else None

    def boot(self, rng):
        return rng.randrange(60_000), True

    @property
    def window(self):
        return (0, self.duration_ms)


def test_rate_kiss_makes_this_client_wait():
    # one server polled every 17 min at first (poll_min 1024 s): it soon gets RATE, and the
    # next request to it waits at least twice the poll interval (ignoring RATE would make it
    # a failed round, retried 30 s later)
    st = engine.Shard(_OneRateLimitedServer(), "sntp", 50, 0, 50).run()
    assert st.rate_devices == 50
    assert min(st.rate_ratios) >= 1.5, min(st.rate_ratios)  # jitter: 2 x interval / 1.25


def test_a_forked_scenario_counts_what_a_whole_run_counts():
    # the engine runs the common first week once and forks the scenarios from a copy of it:
    # the figures must be those of a run from scratch (and a scenario measured from before
    # the fork point, such as a shortened steady run, must not be forked at all)
    from fleet import report

    def figs(names, days=None):
        stats, _ = engine.run(names, "sntp", 40, seed=5, days=days, procs=1, quiet=True)
        return {k: report.figures(k, v) for k, v in stats.items()}

    alone = figs(["outage"])["outage"]
    forked = figs(["outage", "leaves-pool"])["outage"]
    assert engine.fork_plan([SCENARIOS[n]() for n in ("outage", "leaves-pool")])
    assert alone["requests_per_device_day"] > 0 and alone == forked
    short = {"steady": 9}
    assert not engine.forkable(SCENARIOS["steady"](9), engine.EVENT_MS)
    alone = figs(["steady"], short)["steady"]
    assert figs(["steady", "outage", "leaves-pool"], short)["steady"] == alone


# ---- a small fleet of this client, against the targets that scale down -----------------------

_SMALL = {}


def small_fleet():
    """300 devices of this client: steady (10 days), outage, KoD, a server leaving."""
    if not _SMALL:
        names = ["steady", "outage", "kod", "leaves-pool"]
        stats, info = engine.run(
            names, "sntp", 300, seed=3, days={"steady": 10}, procs=1, quiet=True
        )
        from fleet import report

        _SMALL.update({k: report.figures(k, v) for k, v in stats.items()})
    return _SMALL


def test_small_fleet_steady_state():
    f = small_fleet()["steady"]
    print("fleet of 300, steady, days 3-10:", {k: f[k] for k in sorted(f) if "run" not in k})
    assert f["err_p99_ms"] <= 100  # within the accuracy target (p99), met
    assert f["first_sync_never"] == 0 and f["first_sync_max_s"] <= 65  # 0-60 s start-up
    assert f["requests_per_device_day"] <= 2  # at the default accuracy (100 ms)


def test_small_fleet_dead_servers():
    fs = small_fleet()
    assert fs["leaves-pool"]["dead_per_address_device_day"] <= 30
    assert fs["outage"]["dead_per_address_device_day"] <= 30


def test_small_fleet_kiss_of_death():
    f = small_fleet()["kod"]
    assert f["deny_devices"] > 0 and f["after_deny_max"] == 0  # nothing after DENY for a day
    assert f["rate_devices"] > 0  # RATE was sent to this client
    # RATE: the next request to that address waited at least twice the gap before the
    # kissed one, on every device (rule 5)
    assert f["rate_gap_ratio_min"] >= 2
    assert f["after_rate_per_device"] <= 2  # requests to it in the day after the first RATE
