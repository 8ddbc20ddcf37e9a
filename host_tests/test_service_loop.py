# runs-on: both
# The blocking service loop (service.py) against the fake network and a fake clock whose
# sleep_ms() moves time: hours of service run in milliseconds, on both runtimes.
from fakes import (
    SERVER,
    START,
    TICKS_PERIOD,
    FakeClock,
    FakeNet,
    LoopClock,
    MemStore,
    StepRTC,
    honest,
    rand,
    reply,
)

from sntp import compat, service
from sntp.net import NetError

MINUTE_MS = 60_000  # the loop sleeps at most a minute (the drift is applied a minute at a time)


def make(clock, responder=None, hosts=None, config=None, rtc=True, store=None):
    net = FakeNet(clock, responder or honest(START), hosts)
    svc = service.Service(
        config or {"servers": ["ntp.example"]},
        net=net,
        clock=clock,
        rtc=StepRTC(clock) if rtc is True else rtc or None,
        store=store,
        rand_below=rand,
        timeout_ms=1_000,
    )
    events = []
    svc.subscribe(events.append)
    return svc, net, events


def kinds(events):
    return [e["event"] for e in events]


def test_sync_steps_a_clock_that_is_behind_and_saves_the_state():
    clock = LoopClock(START - 3_000_000)  # 3 s behind the truth
    store = MemStore()
    svc, net, events = make(clock, store=store)
    s = svc.sync()
    assert s["ok"] and s["clock_set"] and s["error"] is None
    assert abs(s["offset_us"] - 3_000_000) <= 1_000
    assert (
        svc.rtc.steps == [s["offset_us"]] and abs(clock.now_us() - (START + clock.mono_us)) < 1000
    )
    assert s["server"] == "ntp.example" and s["servers_tried"] == ["ntp.example"]
    assert len(net.sent) == 1
    assert store.doc["last_sync_unix_s"] is not None and store.doc["fails"] == 0
    assert kinds(events).index("step") < kinds(events).index("clock")


def test_the_summary_names_the_server_whose_measurement_was_used():
    a, b = ("192.0.2.1", 123), ("192.0.2.2", 123)
    slow = honest(START + 1_000, delay_us=80_000, server=a)  # 1 ms off, long round trip
    fast = honest(START, delay_us=10_000, server=b)

    def respond(req, dst, mono):
        return (slow if dst == a else fast)(req, dst, mono)

    clock = LoopClock(START - 3_000_000)  # 3 s: a step that needs two agreeing servers
    hosts = {"a.example": [a], "b.example": [b]}
    svc, _, _ = make(clock, respond, hosts, {"servers": ["a.example", "b.example"]})
    s = svc.sync()
    assert s["clock_set"] and s["servers"] == ["a.example", "b.example"]
    assert s["server"] == "b.example"  # the smaller round trip is the better measurement
    assert abs(s["offset_us"] - 3_000_000) <= 100


def test_without_an_rtc_nothing_is_set_and_the_summary_says_so():
    clock = LoopClock(START - 3_000_000)
    svc, _, events = make(clock, rtc=False)
    s = svc.sync()
    assert s["ok"] and not s["clock_set"] and s["error"] == "not-applied"
    assert clock.now_us() < START + clock.mono_us - 2_000_000  # still behind
    assert [e["applied"] for e in events if e["event"] == "clock"] == [False]


def test_sync_gives_up_after_each_server_once_when_all_are_silent():
    clock = LoopClock(START)
    hosts = {"a.example": [("192.0.2.1", 123)], "b.example": [("192.0.2.2", 123)]}
    svc, net, events = make(
        clock, lambda req, dst, mono: [], hosts, {"servers": ["a.example", "b.example"]}
    )
    s = svc.sync()
    assert not s["ok"] and not s["clock_set"] and s["error"] == "timeout"
    assert s["servers_tried"] == ["a.example", "b.example"]
    assert sorted(d for _, _, d in net.sent) == [("192.0.2.1", 123), ("192.0.2.2", 123)]
    assert kinds(events)[-1] == "backoff"
    assert clock.mono_us < 3_000_000  # two timeouts of 1 s, no waiting for the backoff


def test_kod_ends_the_sync_without_touching_the_clock():
    def kod(req, dst, mono):
        return [(5_000, reply(req[40:48], 0, 0, stratum=0, refid=b"RATE", rx=0, tx=0), SERVER)]

    clock = LoopClock(START - 3_000_000)
    svc, net, events = make(clock, kod)
    s = svc.sync()
    assert not s["clock_set"] and s["error"] == "kiss" and s["kiss"] == "RATE"
    assert svc.rtc.steps == [] and len(net.sent) == 1
    assert "kod" in kinds(events)


def test_a_failed_lookup_is_reported_to_the_policy():
    clock = LoopClock(START)
    svc, net, events = make(clock, config={"servers": ["nowhere.example"]})
    s = svc.sync()
    assert s["error"] == "resolve" and "nowhere.example" in s["detail"] and net.sent == []
    bad = [e for e in events if e["event"] == "resolve"]
    assert len(bad) == 1 and bad[0]["ok"] is False and "nowhere.example" in bad[0]["detail"]


def test_no_servers_is_idle_and_sync_returns_at_once():
    clock = LoopClock(START)
    svc, net, events = make(clock, config={"servers": []})
    s = svc.sync()
    assert s["error"] == "no-servers" and not s["ok"] and net.sent == [] and clock.slept == []
    assert "idle" in kinds(events)


def test_a_failing_store_is_an_event_not_a_crash():
    clock = LoopClock(START - 3_000_000)
    store = MemStore(fail=True)
    svc, _, events = make(clock, store=store)
    s = svc.sync()
    assert s["clock_set"] and store.saves >= 2
    assert [e["detail"] for e in events if e["event"] == "store"][0] == "disk full"


def test_hours_of_service_keep_the_floors_and_sleep_in_bounded_slices():
    clock = LoopClock(START - 3_000_000)
    svc, net, events = make(clock)
    end = svc.run(until_ms=6 * 3_600_000)
    assert end >= 6 * 3_600_000
    sends = [t for t, _, _ in net.sent]
    assert 2 <= len(sends) <= 20
    for a, b in zip(sends, sends[1:]):
        assert b - a >= 15_000_000  # rule 1
    assert max(clock.slept) <= MINUTE_MS and min(clock.slept) > 0
    # the first round steps the 3 s; later ones find next to nothing, which is slewed
    assert abs(svc.rtc.steps[0] - 3_000_000) <= 1_000
    assert all(abs(x) <= 1_000 for x in svc.rtc.steps[1:])
    assert abs(clock.now_us() - (START + clock.mono_us)) < 1_000
    t = [e["t_ms"] for e in events]
    assert t == sorted(t)  # now_ms never ran backwards across the ticks_ms wrap


def test_the_first_request_waits_for_the_startup_delay():
    clock = LoopClock(START)
    svc, net, events = make(clock)
    svc.run(until_ms=1_000)
    assert net.sent == [] and kinds(events)[0] == "start" and events[0]["wait_ms"] > 1_000


def test_run_stops_when_stop_says_so():
    clock = LoopClock(START)
    svc, _, _ = make(clock)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    svc.run(stop=stop)
    assert len(calls) == 4 and clock.mono_us <= 3 * MINUTE_MS * 1000


def test_now_ms_counts_on_across_the_ticks_wrap_and_the_rebase():
    # now_ms() is ticks_ms extended by ticks_diff: it goes on across the wrap of ticks_ms, and
    # across the loop's rebase (its small count taken back by 2**28 before it reaches 2**29)
    class Ticks:
        epoch_s = FakeClock(START).epoch_s
        t = TICKS_PERIOD - 10

        def ticks_ms(self):
            return self.t

        def ticks_diff(self, a, b):
            return ((a - b + TICKS_PERIOD // 2) % TICKS_PERIOD) - TICKS_PERIOD // 2

    clock = Ticks()
    svc = service.Service({}, net=FakeNet(clock, lambda *a: []), clock=clock)
    assert svc.now_ms() == 0
    total = 0
    for step in (5, 10, 1_000, (1 << 29) - 1, 7, (1 << 29) - 1, 3):
        clock.t = (clock.t + step) % TICKS_PERIOD
        total += step
        assert svc.now_ms() == total
        assert svc.loop_ms() < 1 << 30  # what the loop computes with stays a small int
    assert svc.policy.base_ms >= 1 << 28  # it was taken back


def test_resolve_errors_never_escape():
    class BrokenNet(FakeNet):
        def resolve(self, host, port):
            raise NetError("resolve", "cannot resolve {}: timed out".format(host))

    clock = LoopClock(START)
    net = BrokenNet(clock, honest(START))
    svc = service.Service({"servers": ["ntp.example"]}, net=net, clock=clock, rand_below=rand)
    s = svc.sync()
    assert s["error"] == "resolve" and "timed out" in s["detail"]


def test_compat_sleep_ms_really_sleeps_integer_ms():
    t0 = compat.ticks_ms()
    compat.sleep_ms(30)
    waited = compat.ticks_diff(compat.ticks_ms(), t0)
    assert 25 <= waited < 1_000, waited


def test_a_small_offset_is_slewed_by_the_loop_and_the_time_api_never_runs_back():
    clock = LoopClock(START - 50_000)  # 50 ms behind: a slew, not a step
    store = MemStore()
    svc, net, events = make(clock, store=store)
    s = svc.sync()
    assert s["ok"] and svc.rtc.steps == []  # nothing stepped
    assert [e for e in events if e["event"] == "clock"][0]["how"] == "slew"
    last = svc.time_us()
    seen = []
    end = svc.now_ms() + 200_000
    while svc.now_ms() < end:  # the loop's ticks apply the slew, 500 us a second at most
        svc.run(until_ms=svc.now_ms() + 1_000)
        now = svc.time_us()
        assert now >= last
        last = now
        seen.append(sum(svc.rtc.steps))
    assert abs(sum(svc.rtc.steps) - 50_000) <= 1_000
    assert max(abs(x) for x in svc.rtc.steps) <= 1_000  # bounded per tick (1 s slices)
    assert abs(clock.now_us() - (START + clock.mono_us)) < 2_000
    # the discipline's state rides with the policy's in the store
    saved = store.doc["discipline"]
    now = svc.keeper.disc.state(saved["at_us"])
    assert now["awake_ms"] >= saved["awake_ms"]  # the awake time counts on between saves
    now["awake_ms"] = saved["awake_ms"]
    assert saved == now and saved["v"] == 1
    assert 0 <= svc.wall_us() - saved["at_us"] < 200_000_000  # dated by the clock


def test_an_absurd_stored_drift_is_not_applied():
    clock = LoopClock(START)
    store = MemStore({"v": 1, "discipline": {"v": 1, "drift_ppb": 10_000_000_000}})
    svc, net, events = make(clock, store=store)
    svc.boot()
    assert svc.keeper.disc.drift_ppb == 0
    svc.run(until_ms=600_000)
    assert abs(clock.now_us() - (START + clock.mono_us)) < 2_000  # no 10,000 ppm drift


class RefusingRTC:
    """A board RTC that refuses every write with False (sntp.rtc.BoardRTC's contract)."""

    def __init__(self):
        self.error = "RTC refused the write"
        self.calls = 0

    def adjust(self, offset_us):
        self.calls += 1
        return False


def test_an_rtc_that_refuses_is_reported_not_counted_as_set():
    clock = LoopClock(START - 3_000_000)
    svc, net, events = make(clock, rtc=RefusingRTC())
    s = svc.sync()
    assert svc.rtc.calls == 1 and not s["clock_set"]
    clock_events = [e for e in events if e["event"] == "clock"]
    assert clock_events[0]["applied"] is False and "refused" in clock_events[0]["detail"]
