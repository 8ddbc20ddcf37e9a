# runs-on: both
# Wraparounds and boundaries, through the blocking Service on a fake clock
# whose sleep moves time, so days of service run in milliseconds, on both runtimes:
#   ticks_ms wrapping at 2**30 ms (about 12.4 days on the boards):
#     the schedule runs on Service.loop_ms(), ticks_ms extended with ticks_diff;
#   the NTP era rollover (2036-02-07 06:28:16 UTC, rule 9) and the Unix 2**31 s (2038)
#     crossed while running, with T1 on one side and T2/T3 on the other;
#   ports with a 2000 epoch (ESP32);
#   a clock set back or forward under the running client (a user setting the RTC);
#   the build-date floor (rule 10): never applied, even by a majority.
import os

from fakes import (
    BUILD_2026_UNIX,
    ERA_ROLLOVER_UNIX,
    NTP_1970,
    NTP_2000,
    START,
    TICKS_PERIOD,
    FakeNet,
    LoopClock,
    MemStore,
    StepRTC,
    honest,
)

from sntp import aio, service

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
UNIX_2000_S = 946_684_800  # 2000-01-01, where a 2000-epoch port's clock starts
UNIX_2038_S = 1 << 31  # 2038-01-19 03:14:08: a signed 32-bit Unix time overflows
EPOCHS = {"1970": NTP_1970, "2000": NTP_2000}


def rand(n):
    return n // 3  # deterministic: every jitter is a twelfth of the wait


def make(clock, responder, names=("ntp.example",), poll_s=64, cls=service.Service, store=None):
    """A Service polling names every poll_s (+1/12 jitter) on the fake clock and network."""
    hosts = {n: [("192.0.2.{}".format(i + 1), 123)] for i, n in enumerate(names)}
    svc = cls(
        {"servers": list(names), "poll_min_s": poll_s, "poll_max_s": poll_s},
        net=FakeNet(clock, responder, hosts),
        clock=clock,
        rtc=StepRTC(clock),
        store=store if store is not None else MemStore(),
        rand_below=rand,
        timeout_ms=1_000,
    )
    events = []
    svc.subscribe(events.append)
    return svc, events


def every(true_start_us, delay_us=20_000):
    """Honest servers (every address make() gives) whose clocks read true time, which is
    true_start_us at the start plus the elapsed time."""
    answer = honest(true_start_us, delay_us)

    def respond(req, dst, mono):
        return [(d, data, dst) for d, data, _ in answer(req, dst, mono)]

    return respond


def run(svc, until_ms):
    """svc.run(until_ms), stopped also by the fake clock's own elapsed time, so that a
    schedule that loses track of time fails its test instead of running forever."""
    clock = svc.clock
    return svc.run(until_ms=until_ms, stop=lambda: clock.mono_us > (until_ms + HOUR_MS) * 1000)


def send_ms(svc):
    return [t // 1000 for t, _, _ in svc.net.sent]


def gaps(ts):
    return [b - a for a, b in zip(ts, ts[1:])]


def interval_ok(gap_ms, poll_s):
    """One poll interval: poll_s plus its jitter (at most a quarter), plus an exchange."""
    lo = poll_s * 1000
    return lo <= gap_ms <= lo + lo // 4 + 1_100


def exact_gap_ms(poll_s, exchange_ms=20):
    """The gap between two polls with rand() above: the interval, its jitter, one exchange."""
    ms = poll_s * 1000
    return ms + rand(ms // 4 + 1) + exchange_ms


def on_time(gap_list, poll_s):
    """Every gap is the interval to within 5 ms: not late by a lost ticks step, not early."""
    return all(abs(g - exact_gap_ms(poll_s)) <= 5 for g in gap_list)


def error_us(clock, true_start_us):
    """The device clock minus true time, in Unix us (the clock may count from 2000)."""
    unix = clock.now_us() + (clock.epoch_s - NTP_1970) * 1_000_000
    return unix - (true_start_us + clock.mono_us)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


# ---- (a) ticks_ms wrapping -------------------------------------------------------------------


def test_polls_keep_their_interval_across_the_ticks_ms_wrap():
    # 5-minute polls (the hourly cap of 12 stays out of the way), ticks_ms wraps 20 min in
    clock = LoopClock(START, ms0=TICKS_PERIOD - 20 * MIN_MS)
    svc, events = make(clock, every(START), poll_s=300)
    svc.sync()
    run(svc, 50 * MIN_MS)
    sent = send_ms(svc)
    assert len(sent) == 10, sent  # 50 minutes of 5 min 25 s polls
    assert on_time(gaps(sent), 300), gaps(sent)  # not late, not at once
    ticks = [(clock.ms0 + t) % TICKS_PERIOD for t in sent]
    assert [a for a, b in zip(ticks, ticks[1:]) if b < a], ticks  # and one pair straddles it
    assert [e["t_ms"] for e in events] == sorted(e["t_ms"] for e in events)
    assert abs(error_us(clock, START)) < 1_000


def test_a_four_hour_wait_that_spans_the_wrap_ends_on_time():
    clock = LoopClock(START, ms0=TICKS_PERIOD - 2 * HOUR_MS)  # wraps halfway through the wait
    svc, events = make(clock, every(START), poll_s=4 * 3600)
    svc.sync()
    run(svc, 6 * HOUR_MS)
    sent = send_ms(svc)
    assert len(sent) == 2 and on_time(gaps(sent), 4 * 3600), sent


def test_thirty_days_cross_the_wrap_twice_on_schedule():
    clock = LoopClock(START, ms0=TICKS_PERIOD - HOUR_MS)
    svc, events = make(clock, every(START), poll_s=4 * 3600)
    svc.sync()
    end = run(svc, 30 * DAY_MS)
    assert end >= 30 * DAY_MS > 2 * TICKS_PERIOD  # the monotonic ms went past two wraps
    sent = send_ms(svc)
    assert on_time(gaps(sent), 4 * 3600), gaps(sent)
    assert len(sent) == 30 * DAY_MS // exact_gap_ms(4 * 3600) + 1
    assert abs(error_us(clock, START)) < 1_000


def test_the_asyncio_service_keeps_the_schedule_across_the_wrap():
    import asyncio

    clock = LoopClock(START, ms0=TICKS_PERIOD - 3 * MIN_MS)

    saved = aio.sleep_ms
    aio.sleep_ms = clock.aio_sleep_ms
    try:
        svc, events = make(clock, every(START), cls=aio.AsyncService)
        asyncio.run(svc.sync())
        asyncio.run(svc.run(until_ms=10 * MIN_MS, stop=lambda: clock.mono_us > HOUR_MS * 1000))
    finally:
        aio.sleep_ms = saved
    sent = send_ms(svc)
    assert len(sent) >= 7 and on_time(gaps(sent), 64), gaps(sent)


# Names that hold a ticks value; the functions and constants are not values.
_TICKS_FUNCS = ("ticks_ms", "ticks_us", "ticks_cpu", "ticks_diff", "ticks_add")
_OPS = ("+", "-", "<", ">", "<=", ">=", "%", "//", "+=", "-=")  # == is wrap-safe


def _tokens(code):
    """Identifiers (with their dots, and '()' kept on a call without arguments) and
    operators, crudely: enough to see what stands next to a ticks value."""
    out = []
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c.isalpha() or c == "_":
            j = i
            while j < n and (code[j].isalpha() or code[j].isdigit() or code[j] in "_."):
                j += 1
            if code[j : j + 2] == "()":
                j += 2
            out.append(code[i:j])
            i = j
        elif c in "+-<>=%/":
            j = i + 1
            while j < n and code[j] in "=/<>":
                j += 1
            out.append(code[i:j])
            i = j
        elif c == " ":
            i += 1
        else:
            out.append(c)
            i += 1
    return out


def _is_ticks_value(tok):
    last = tok.split(".")[-1]
    if last.endswith("()"):
        return last[:-2] in ("ticks_ms", "ticks_us", "ticks_cpu")
    return "ticks" in last and last not in _TICKS_FUNCS and last.upper() != last


def raw_ticks_arithmetic(path):
    """(line number, line) of every ticks value next to +, -, a comparison or %."""
    found = []
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        code = line.split("#")[0]
        toks = _tokens(code)
        for k, tok in enumerate(toks):
            if not _is_ticks_value(tok):
                continue
            prev = toks[k - 1] if k else ""
            nxt = toks[k + 1] if k + 1 < len(toks) else ""
            if prev in _OPS or nxt in _OPS:
                found.append((n, line.strip()))
    return found


def _here():
    return __file__.rpartition("/")[0] or "."


def test_no_raw_arithmetic_or_comparison_on_ticks_values():
    # Deadlines go through ticks_diff/ticks_add only (the house style). compat.py is the shim
    # that implements the wrap itself; a name holding ticks must contain 'ticks' to be seen.
    root = _here() + "/.."
    files = []
    for folder in ("firmware/sntp", "boards/common", "boards/unix"):
        try:
            names = sorted(os.listdir(root + "/" + folder))
        except OSError:
            continue
        files += [root + "/" + folder + "/" + n for n in names if n.endswith(".py")]
    files = [f for f in files if not f.endswith("sntp/compat.py")]
    assert len(files) > 10
    found = []
    for path in files:
        found += [(path.split("/..")[-1], n, line) for n, line in raw_ticks_arithmetic(path)]
    assert found == [], found
    # the scanner itself sees what it should
    assert _tokens("a = ticks_ms() - t0") == ["a", "=", "ticks_ms()", "-", "t0"]
    assert _is_ticks_value("self.sent_ticks") and not _is_ticks_value("compat.ticks_diff")


# ---- (b), (c) the NTP era and 2038, crossed while running; (d) the 2000 epoch ------------


def crossing(boundary_s, epoch_s):
    """Five minutes before boundary_s to ten after, polling a local server every 2 min."""
    start = boundary_s * 1_000_000 - 5 * MIN_MS * 1000
    clock = LoopClock(start - 3_000_000, epoch_s=epoch_s)  # the device starts 3 s behind
    svc, events = make(clock, every(start), poll_s=120)
    s = svc.sync()
    assert s["clock_set"] and abs(s["offset_us"] - 3_000_000) < 1_000, s
    run(svc, 15 * MIN_MS)
    true_at_send = [start + t * 1000 for t in send_ms(svc)]
    boundary_us = boundary_s * 1_000_000
    assert [t for t in true_at_send if t < boundary_us] and [
        t for t in true_at_send if t > boundary_us
    ]  # replies on both sides
    replies = of(events, "reply")
    assert len(replies) == len(true_at_send) >= 7
    assert all(abs(e["offset_us"]) < 1_000 for e in replies[1:]), replies
    assert of(events, "reject") == [] and of(events, "disagree") == []
    assert all(abs(x) < 1_000 for x in svc.rtc.steps[1:])
    assert abs(error_us(clock, start)) < 1_000


def straddle(boundary_s, epoch_s):
    """T1 2 s before boundary_s on the device's clock, T2/T3 1 s after it on the server's."""
    true_us = boundary_s * 1_000_000 + 1_000_000
    clock = LoopClock(true_us - 3_000_000, epoch_s=epoch_s)
    svc, events = make(clock, every(true_us))
    s = svc.sync()
    assert s["clock_set"] and abs(s["offset_us"] - 3_000_000) < 1_000, s
    assert abs(error_us(clock, true_us)) < 1_000


def test_the_ntp_era_rollover_while_running_on_both_epochs():
    for epoch_s in EPOCHS.values():
        crossing(ERA_ROLLOVER_UNIX, epoch_s)
        straddle(ERA_ROLLOVER_UNIX, epoch_s)


def test_unix_2038_while_running_on_both_epochs():
    for epoch_s in EPOCHS.values():
        crossing(UNIX_2038_S, epoch_s)
        straddle(UNIX_2038_S, epoch_s)


def test_a_2000_epoch_port_judges_validity_in_unix_time():
    # valid: 2027 on a clock that counts from 2000 (local seconds are 30 years fewer)
    clock = LoopClock(START, epoch_s=NTP_2000)
    assert clock.now_us() == START - UNIX_2000_S * 1_000_000
    svc, events = make(clock, every(START))
    svc.boot()
    assert of(events, "start")[0]["clock_valid"] is True
    # invalid: the ESP32's RTC after a power loss reads 2000-01-01, local time 0
    clock = LoopClock(UNIX_2000_S * 1_000_000, epoch_s=NTP_2000)
    assert clock.now_us() == 0
    svc, events = make(clock, every(START))
    svc.boot()
    assert of(events, "start")[0]["clock_valid"] is False
    s = svc.sync()
    assert s["clock_set"] and abs(error_us(clock, START)) < 1_000
    assert abs(clock.now_us() - (START - UNIX_2000_S * 1_000_000 + clock.mono_us)) < 1_000


# ---- (e) a clock set back and forward under the running client -------------------------------


def test_the_user_sets_the_clock_back_and_forward_while_it_runs():
    # one server (it alone may correct), then three (a step needs two agreeing): the schedule
    # runs on monotonic ticks and does not notice; the next sync puts the clock right
    for names in (("a.example",), ("a.example", "b.example", "c.example")):
        clock = LoopClock(START)
        svc, events = make(clock, every(START), names=names, poll_s=900)  # under the hourly cap
        svc.sync()
        last_time = svc.time_us()
        for k, how in enumerate(("back 3 h", "forward 5 h", "back to 1970")):
            run(svc, (k + 1) * 20 * MIN_MS)
            assert abs(error_us(clock, START)) < 1_000, (names, how)
            if how == "back 3 h":
                jump = -3 * HOUR_MS * 1000
            elif how == "forward 5 h":
                jump = 5 * HOUR_MS * 1000
            else:
                jump = -(clock.now_us() - 10_000_000)  # 1970-01-01 00:00:10: invalid
            clock.step(jump)
            if jump < 0:  # set back: the time API holds still, it never runs backwards
                assert svc.time_us() >= last_time, (names, how)
            n = len(svc.rtc.steps)
            run(svc, (k + 1) * 20 * MIN_MS + 17 * MIN_MS)  # one interval later
            assert abs(error_us(clock, START)) < 1_000, (names, how)  # the next sync fixed it
            assert abs(svc.rtc.steps[n] + jump) < 1_000, (names, how)  # by undoing the jump
            now = svc.time_us()
            if jump < 0:  # and the step that undid it moved it forward again
                assert now >= last_time, (names, how)
            last_time = now
        # the schedule did not notice: rounds an interval apart, no burst, no long gap
        rounds = [e["t_ms"] for e in of(events, "step")]
        assert len(rounds) >= 5 and all(interval_ok(g, 900) for g in gaps(rounds)), gaps(rounds)
        assert len(svc.net.sent) <= len(rounds) + 3 * (len(names) - 1)
        assert of(events, "backoff") == []
        assert abs(svc.keeper.disc.drift_ppb) < 1_000, (
            svc.keeper.disc.drift_ppb
        )  # the jumps are not drift
        assert [e["t_ms"] for e in events] == sorted(e["t_ms"] for e in events)


def test_a_reboot_after_the_clock_was_set_back_or_forward_does_not_postpone_the_sync():
    # The next poll is saved as a wall time (so that it survives a reboot). Set back 3 h or
    # 30 h (still after the build date), it looks that much further away; set forward, it
    # looks overdue. Either way the reboot waits no longer than one jittered interval (or the
    # 30-minute start-up window of a valid clock), and that first sync puts the clock right.
    for jump_h in (-3, -30, 5):
        clock = LoopClock(START)
        store = MemStore()
        svc, events = make(clock, every(START), poll_s=900, store=store)
        svc.sync()
        run(svc, 5 * MIN_MS)
        clock.step(jump_h * HOUR_MS * 1000)
        svc, events = make(clock, every(START), poll_s=900, store=store)  # the reboot
        svc.boot()
        wait_ms = of(events, "start")[0]["wait_ms"]
        assert wait_ms <= max(900_000 + 900_000 // 4, 1_800_000), (jump_h, wait_ms)
        run(svc, wait_ms + MIN_MS)
        assert len(of(events, "send")) == 1 and abs(error_us(clock, START)) < 1_000, jump_h


# ---- (f) the build-date floor ------------------------------------------------------------------


FLOOR_NAMES = ("s0.example", "s1.example", "s2.example", "s3.example")


def floor_servers(server_unix_us, device_unix_us, epoch_s, names=FLOOR_NAMES):
    """Servers agreeing on server_unix_us (then running on), a device at device_unix_us."""
    clock = LoopClock(device_unix_us, epoch_s=epoch_s)
    svc, events = make(clock, every(server_unix_us), names=names, poll_s=1024)
    return svc, events, clock


def test_a_majority_before_the_build_date_is_never_applied():
    day_before = (BUILD_2026_UNIX - 86_400) * 1_000_000
    for epoch_name, epoch_s in EPOCHS.items():
        device = 0 if epoch_name == "1970" else UNIX_2000_S * 1_000_000  # invalid clocks
        svc, events, clock = floor_servers(day_before, device, epoch_s)
        s = svc.sync()
        assert not s["clock_set"] and svc.rtc.steps == [], (epoch_name, s)
        assert s["servers_tried"] == list(FLOOR_NAMES)
        assert len(of(events, "reply")) == 4  # four agreeing replies: a majority, refused
        rejects = [e["reason"] for e in of(events, "reject")]
        assert rejects and set(rejects) == {"before-build-date"}, (epoch_name, rejects)
        run(svc, 12 * HOUR_MS)
        assert svc.rtc.steps == [] and of(events, "step") == [], epoch_name
        assert error_us(clock, day_before) == device - day_before


def test_the_floor_is_exact_for_a_valid_clock_near_the_build_date():
    # a valid clock 0.3 s past the build date; the servers agree it is 0.5 s ahead: the
    # correction (under 1 s, so one server would do) would land 0.2 s before the floor
    build_us = BUILD_2026_UNIX * 1_000_000
    for epoch_s in EPOCHS.values():
        svc, events, clock = floor_servers(build_us - 200_000, build_us + 300_000, epoch_s)
        s = svc.sync()
        assert not s["clock_set"] and svc.rtc.steps == [] and svc.keeper.disc.pending_us == 0, s
        assert {e["reason"] for e in of(events, "reject")} == {"before-build-date"}
        # the same servers 0.4 s later than that: 0.2 s past the floor, taken (and slewed)
        svc, events, clock = floor_servers(build_us + 200_000, build_us + 300_000, epoch_s)
        s = svc.sync()
        assert s["ok"] and abs(s["offset_us"] + 100_000) < 1_000 and of(events, "reject") == []
