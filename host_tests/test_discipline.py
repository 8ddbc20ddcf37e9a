# runs-on: both
# Clock discipline (firmware/sntp/discipline.py) alone and under simulated time with an
# oscillator model. The 30-day figures are printed: max and p99 |error|, requests per day.
import simdev as sim
from test_policy import DAY_MS, T0, Rng, all_requests, check_invariants, zone_world

from sntp import discipline as dsc
from sntp.keeper import Keeper
from sntp.schema import Config

MS = 1000
# The discipline's limits as its design states them (not read from discipline.py)
MAX_SLEW_PPM = 500  # a slew runs at most 500 us a second (adjtime's rate)
MAX_DRIFT_PPB = 500_000  # no crystal is 500 ppm off: a larger estimate is garbage
DRIFT_SAMPLES = 5  # the estimate is the median of the last five measurements


def simulate(days, base_ppb=20_000, wander_ppb=2_000, accuracy_ms=100, seed=1):
    w = zone_world()
    osc = sim.Oscillator(base_ppb, wander_ppb, rand=Rng(seed + 1).below)
    d = sim.Device(
        w,
        {"zone": "acme", "accuracy_ms": accuracy_ms},
        clock_error_us=-T0,
        rand=Rng(seed).below,
        oscillator=osc,
        discipline=True,
    )
    d.boot(0)
    d.run(days * DAY_MS, sample_ms=600_000)  # the error every 10 minutes
    check_invariants(w, d)
    return w, d


def figures(w, d, days, settled_ms=None):
    """Figures from the first sync on (or from settled_ms: once the drift is learned)."""
    first = d.steps[0][0] if settled_ms is None else settled_ms
    errs = sorted(abs(e) for t, e in d.errors if t > first)
    reqs = all_requests(w)
    last = [t for t in reqs if t >= (days - 10) * DAY_MS]
    return {
        "max_ms": errs[-1] // MS,
        "p99_ms": errs[len(errs) * 99 // 100] // MS,
        "last10": len(last),  # requests over the last 10 days
        "requests": len(reqs),
        "drift_ppb": d.disc.drift_ppb,
    }


def test_thirty_days_at_20_ppm_hold_the_accuracy_and_poll_a_few_times_a_day():
    w, d = simulate(30)
    f = figures(w, d, 30)
    print(
        "discipline, 30 days, 20 ppm +/- 2 ppm, accuracy 100 ms: max |error| {} ms, "
        "p99 {} ms, {} requests over the last 10 days, {} in all, drift {} ppb".format(
            f["max_ms"], f["p99_ms"], f["last10"], f["requests"], f["drift_ppb"]
        )
    )
    assert f["max_ms"] < 100 and f["p99_ms"] < 100
    assert f["last10"] <= 20  # at most 2 requests a day
    assert abs(d.disc.drift_ppb - 20_000) <= 2_500  # the estimate found the crystal
    assert d.policy.interval_s > 4 * 3600  # and the interval grew past the old 4 h maximum


def test_a_tighter_target_polls_more_and_still_holds():
    # 20 ppm unknown over the pool's 30-minute minimum is 36 ms: the target holds once the
    # drift is learned, so the figures start after the first day
    w, d = simulate(10, accuracy_ms=20, seed=3)
    f = figures(w, d, 10, settled_ms=DAY_MS)
    print(
        "discipline, 10 days, accuracy 20 ms, after day 1: max {} ms, p99 {} ms, "
        "{} requests over the last 10 days".format(f["max_ms"], f["p99_ms"], f["last10"])
    )
    assert f["max_ms"] < 20
    assert f["last10"] > 40  # the price of accuracy is more requests


def test_without_discipline_a_20_ppm_clock_drifts_past_the_target():
    # the control: the same oscillator, corrections only at each sync (no drift estimate)
    w = zone_world()
    osc = sim.Oscillator(20_000, 2_000, rand=Rng(2).below)
    d = sim.Device(
        w,
        {"zone": "acme", "poll_min_s": 14_400, "poll_max_s": 86_400},
        clock_error_us=-T0,
        rand=Rng(1).below,
        oscillator=osc,
    )
    d.boot(0)
    d.run(10 * DAY_MS, sample_ms=600_000)
    worst = max(abs(e) for t, e in d.errors if t > d.steps[0][0])
    assert worst > 200_000  # 20 ppm for 4+ hours is 290+ ms


def test_a_clock_behind_is_slewed_forward_at_the_same_bounded_rate():
    disc = dsc.Discipline()
    disc.tick(0)
    assert disc.correction(100_000, T0, True) == 0  # 100 ms behind: slewed
    steps = [disc.tick(k * 1000) for k in range(1, 201)]  # 200 s in 1 s ticks
    assert max(steps) == MAX_SLEW_PPM * 1000 // 1000  # 500 us per second, no more
    assert sum(steps) == 100_000


def test_small_offsets_are_slewed_at_a_bounded_rate_and_time_never_runs_back():
    disc = dsc.Discipline()
    disc.tick(0)
    assert disc.correction(-50_000, T0, True) == 0  # 50 ms ahead: slewed, not stepped
    rtc = [T0]  # the RTC reading, us
    keeper = Keeper(Config(), lambda n: 0, lambda: rtc[0])  # the disciplined time API
    last = keeper.time_us(rtc[0])
    applied = 0
    for k in range(1, 2_001):  # 200 s in 100 ms ticks
        rtc[0] += 100_000  # real time passes
        adj = disc.tick(k * 100)
        assert abs(adj) <= MAX_SLEW_PPM * 100 // 1000  # 50 us per 100 ms at most
        rtc[0] += adj
        applied += adj
        now = keeper.time_us(rtc[0])
        assert now >= last  # the disciplined time never runs backwards
        last = now
    assert applied == -50_000 and disc.pending_us == 0


def test_large_or_invalid_offsets_step():
    disc = dsc.Discipline()
    assert disc.correction(200_000, T0, True) == 200_000  # above 128 ms
    assert disc.correction(50_000, 0, False) == 50_000  # the clock was invalid
    assert disc.last["kind"] == "step"


def feed(disc, offsets_per_hour_us, start=T0):
    """Syncs every hour with the given offsets found; returns the wall time at the end."""
    wall = start
    disc.correction(0, wall, True)
    for off in offsets_per_hour_us:
        wall += 3_600_000_000
        disc.correction(off, wall, True)
        disc.pending_us = 0  # as if the slew completed
    return wall


def test_drift_estimate_is_the_median_and_a_moving_clock_is_not_rejected():
    disc = dsc.Discipline()
    # a clock 10 ppm slow: 36 ms behind after each hour (the estimate starts at 0)
    feed(disc, [36_000])
    assert disc.drift_ppb == 10_000
    feed_more = [0, 0, 0]  # corrected for 10 ppm: nothing left over
    for off in feed_more:
        disc.correction(off, disc.ref_unix_us + 3_600_000_000, True)
    assert disc.drift_ppb == 10_000 and len(disc.samples) == 4
    # one noisy measurement (15 ppm) does not move the median
    disc.correction(18_000, disc.ref_unix_us + 3_600_000_000, True)
    assert disc.samples[-1] == 15_000 and disc.drift_ppb == 10_000
    # 111 ppm: no window rejects it (a bad reply never gets here: the policy lets a lone
    # reply through only within the clock's error bound, R5); one does not move the median,
    # a clock that keeps measuring so does
    disc.pending_us = 0
    disc.correction(400_000, disc.ref_unix_us + 3_600_000_000, True)
    assert disc.drift_ppb == 10_000 and disc.rejected == 0 and disc.samples[-1] == 121_111
    for _ in range(2):  # the clock really moved: 121 ppm again at each sync
        disc.pending_us = 0
        disc.correction(
            (121_111 - disc.drift_ppb) * 3_600 // 1_000, disc.ref_unix_us + 3_600_000_000, True
        )
    assert abs(disc.drift_ppb - 121_111) <= 1, disc.samples  # three of five: the median


def test_tick_applies_the_drift_exactly():
    disc = dsc.Discipline()
    disc.drift_ppb = 20_000  # 20 ppm slow: add 20 us per second
    disc.tick(0)
    total = sum(disc.tick(k * 333) for k in range(1, 10_801))  # an hour in odd steps
    assert total == 20_000 * 10_800 * 333 // 1_000_000


def test_absurd_or_broken_persisted_drift_is_discarded():
    for st in (
        {"v": 1, "drift_ppb": 10_000_000},
        {"v": 1, "drift_ppb": "20"},
        {"v": 1, "samples": [10_000_000, "x", 5_000]},
        {"v": 2, "drift_ppb": 5},
        None,
    ):
        disc = dsc.Discipline()
        disc.load(st)
        assert abs(disc.drift_ppb) <= MAX_DRIFT_PPB
        assert all(abs(s) <= MAX_DRIFT_PPB for s in disc.samples)
    disc = dsc.Discipline()
    disc.load({"v": 1, "drift_ppb": 12_345, "samples": [12_000, 12_500]})
    assert disc.drift_ppb == 12_345 and disc.samples == [12_000, 12_500]


def test_interval_cap_follows_the_uncertainty():
    disc = dsc.Discipline(accuracy_ms=100)
    assert disc.interval_cap_s() == 1_000  # unknown crystal: 50 ppm
    disc.samples = [20_000, 20_400, 19_800]
    assert disc.interval_cap_s() == 50_000  # 1 ppm floor: 100 ms / 2 / 1 ppm
    disc.samples = [20_000, 30_000, 10_000]
    assert disc.interval_cap_s() == 2_500  # 20 ppm spread


def near(a, b):
    """Within 1 %: the bound counts the uncertainty in 0.1 ppm steps."""
    return abs(a - b) <= b // 100


def test_interval_cap_follows_the_estimates_realized_errors_and_the_path():
    disc = dsc.Discipline(accuracy_ms=100)
    # 5 ppm slow, then each hour's offset shows the applied estimate 1.5 ppm off, one way
    # then the other (a swing): the median moves, the measurements spread over 2.25 ppm,
    # while the estimate's realized error stays 1.5 ppm
    feed(disc, [18_000, 5_400, -5_400, 5_400, -5_400, 5_400])
    assert len(disc.errors) == DRIFT_SAMPLES
    assert all(1_499 <= e <= 1_501 for e in disc.errors), disc.errors
    assert max(disc.samples) - min(disc.samples) > 2_000
    assert disc.sigma_ppb() == max(disc.errors)
    sigma = disc.sigma_ppb()
    assert near(disc.interval_cap_s(), 50_000 * 1000 // sigma)  # half the budget: delay unknown
    # a 30 ms round trip bounds the asymmetry to 15 ms: the rest of the budget is for drift
    disc.correction(0, disc.ref_unix_us + 3_600_000_000, True, delay_us=30_000)
    assert disc.delay_us == 30_000
    assert near(disc.interval_cap_s(), (100_000 - 15_000) * 1000 // disc.sigma_ppb())
    # a long path keeps the reserve at half the budget, never more
    disc.correction(0, disc.ref_unix_us + 3_600_000_000, True, delay_us=400_000)
    assert near(disc.interval_cap_s(), 50_000 * 1000 // disc.sigma_ppb())
    # what is persisted comes back (errors and delay), garbage does not
    again = dsc.Discipline()
    again.load(disc.state())
    assert again.errors == disc.errors and again.delay_us == 400_000
    again.load({"v": 1, "errors": [-5, "x", 10**12, 700], "delay_us": -1})
    assert again.errors == [700] and again.delay_us == 400_000


def test_a_reboot_starts_a_new_measurement_base():
    # the time the board was off ran on an undisciplined (or lost) clock: the first offset
    # after a boot resets the base, it is no measure of the estimate's error
    disc = dsc.Discipline()
    wall = feed(disc, [36_000, 0, 0])
    after = dsc.Discipline()
    after.load(disc.state())
    assert after.drift_ppb == 10_000
    after.correction(108_000, wall + 2 * 3_600_000_000, True)  # an hour off at 30 ppm
    assert after.last["measured_ppb"] is None and after.samples == disc.samples
    after.pending_us = 0  # as if the slew completed
    after.correction(0, wall + 3 * 3_600_000_000, True)  # the next one measures again
    assert after.last["measured_ppb"] == 10_000


def test_drift_survives_a_reboot():
    w, d = simulate(3)
    before = d.disc.drift_ppb
    d.reboot(3 * DAY_MS)
    assert d.disc.drift_ppb == before and d.disc.samples


def sensor(days, wake_ms=600_000, awake_ms=5_000, seed=4, base_ppb=20_000):
    """A board that deep-sleeps: it wakes every wake_ms (the RTC ran on) and, only when
    due() says 0, brings its radio up for awake_ms of exchanges. Returns the world, the
    device, the clock error at each wake before anything is done (ms, us), and the number
    of radio-on wakes that sent nothing."""
    w = zone_world()
    osc = sim.Oscillator(base_ppb, 2_000, rand=Rng(seed + 1).below)
    d = sim.Device(
        w,
        {"zone": "acme"},
        clock_error_us=-T0,
        rand=Rng(seed).below,
        oscillator=osc,
        discipline=True,
    )
    d.boot(0, ask_now=True)  # power-on: the application syncs at once (sync())
    d.run(60_000)
    errors, idle_radio = [], 0
    for t in range(wake_ms, days * DAY_MS, wake_ms):
        d.reboot(t, wake=True)
        errors.append((t, d.clock_error_us))
        due = d.policy.due(t)
        assert due is not None
        if due == 0:
            before = len(all_requests(w))
            d.run(t + awake_ms)
            idle_radio += len(all_requests(w)) == before
    return w, d, errors, idle_radio


def test_a_deep_sleep_sensor_keeps_its_clock_at_an_always_on_devices_request_rate():
    days = 10
    w, d, errors, idle_radio = sensor(days)
    check_invariants(w)
    settled = [abs(e) for t, e in errors if t >= 2 * DAY_MS]
    settled.sort()
    p99_ms = settled[len(settled) * 99 // 100] // MS
    reqs = [t for t in all_requests(w) if t >= 2 * DAY_MS]
    per_day = len(reqs) * 10 // (days - 2)  # tenths
    print(
        "deep sleep, 10 min / 5 s, 20 ppm: p99 |error| {} ms at the wakes after day 2, "
        "{}.{} requests a day, {} radio-on wakes without a request".format(
            p99_ms, per_day // 10, per_day % 10, idle_radio
        )
    )
    assert p99_ms <= 100 and per_day <= 20 and idle_radio == 0
    # the sleep clock's drift was learned across wakes (here the same 20 ppm crystal as
    # awake, +/- its 2 ppm daily wander), from its own measurements: the awake clock's
    # estimate learns only from intervals without sleep, and here there are none
    last = d.disc.sleep[-1]
    assert abs(d.disc.sleep_ppb(last[0], last[1]) - 20_000) <= 2_500, d.disc.sleep
    assert d.disc.drift_ppb == 0 and not d.disc.samples
