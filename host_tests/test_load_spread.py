# runs-on: both
# What a server sees of a fleet after a RATE, an outage and a warm power-restore (policy.py
# R4 and the Kiss-o'-Death rules; rules 5, 12 and 15): the policy's share of
# the fleet benchmark's targets (tools/fleet, README "Fleet benchmark"), one device at a time.
import simdev as sim
from test_policy import (
    BACKOFF_MAX_MS,
    DAY_MS,
    HOUR_MS,
    RATE_MAX_MS,
    REBOOT_MIN_MS,
    STARTUP_VALID_MS,
    Rng,
    check_invariants,
    kinds,
    zone_world,
)

POLL_MAX_S = 14_400  # test_policy's devices have no discipline: 4 h at most


def synced_device(seed, modes=None):
    """A device with a valid clock, synced for two days against four honest servers."""
    w = zone_world(modes=modes)
    d = sim.Device(w, {"zone": "acme"}, clock_error_us=0, rand=Rng(seed).below)
    d.boot(0)
    d.run(2 * DAY_MS)
    assert d.steps and d.policy.interval_s == POLL_MAX_S
    return w, d


def test_first_rate_doubles_the_gap_that_address_saw():
    # four servers in rotation: each address is asked every few intervals, far beyond the
    # 2**13 s that RATE alone may impose, so 'twice the poll interval' would change nothing;
    # rule 5 wants that address's own rate halved at least
    w, d = synced_device(7)
    kissed = w.servers[("10.0.0.1", 123)]
    kissed.mode = "kod"  # from now on it answers RATE
    t_switch = d.t_ms
    d.run(8 * DAY_MS)
    check_invariants(w, d)
    reqs = kissed.requests
    k = [i for i, t in enumerate(reqs) if t >= t_switch][0]  # the first kissed request
    before, after = reqs[k] - reqs[k - 1], reqs[k + 1] - reqs[k]
    assert before > RATE_MAX_MS  # the rotation's gap (the premise)
    assert after >= 2 * before, (before, after)
    kods = kinds(d, "kod")
    assert kods[0]["gap_ms"] >= 2 * before
    # further RATEs while it is held never compound the doubled gap (RFC 8633 5.4)
    assert all(k["gap_ms"] <= max(RATE_MAX_MS, kods[0]["gap_ms"]) for k in kods)
    assert d.steps[-1][0] > t_switch  # the other three still keep the clock


def test_a_synced_device_retries_a_failed_round_within_one_poll_interval():
    # all four servers stop answering: an unsynced device backs off 30 s doubling to 1 h
    # (test_policy), a synced one waits a random quarter-to-whole interval, so that a fleet
    # whose polls fall due during an outage comes back spread over hours, not in a burst
    iv_ms = POLL_MAX_S * 1000
    waits = []
    for seed in range(1, 6):
        w, d = synced_device(seed)
        for s in w.servers.values():
            s.mode = "silent"
        t_out = d.t_ms
        d.run(t_out + 3 * DAY_MS)
        check_invariants(w, d)
        backoffs = [e["wait_ms"] for e in kinds(d, "backoff") if e["t_ms"] >= t_out]
        assert backoffs, "no failed round"
        for wait in backoffs:
            assert iv_ms // 4 <= wait <= iv_ms * 5 // 4, wait  # the interval, jittered
        waits += backoffs
        sent = sum(len([t for t in s.requests if t >= t_out]) for s in w.servers.values())
        assert sent <= 4 * 3 * DAY_MS // (iv_ms // 4)  # one round of 4 per quarter interval
    assert max(waits) - min(waits) > iv_ms // 2, waits  # spread, not one fixed step


def test_a_warm_boot_that_missed_its_poll_takes_it_within_one_interval():
    # the fleet loses power for an hour and boots in the same second with its clocks kept:
    # devices whose poll fell due in the dark must not all come in the first half hour
    waits = []
    for seed in range(1, 21):
        w, d = synced_device(seed)
        due_ms = d.policy.due_ms
        d.reboot(due_ms + HOUR_MS)  # off through its poll
        start = kinds(d, "start")[-1]
        assert start["clock_valid"]
        waits.append(start["wait_ms"])
        d.run(due_ms + HOUR_MS + 2 * POLL_MAX_S * 1000)
        check_invariants(w, d)
    assert min(waits) >= REBOOT_MIN_MS
    assert max(waits) <= POLL_MAX_S * 1000
    late = [x for x in waits if x > STARTUP_VALID_MS]
    assert len(late) >= len(waits) // 2, waits  # most beyond the 30 min start-up window


def test_a_clock_lost_in_a_power_cut_backs_off_fast_even_after_syncs():
    # synced before, but the RTC did not survive the cut: it reads 1970 and the servers are
    # down; the long spread wait is for clocks that still hold their accuracy, this one
    # retries from 30 s doubling to 1 h and is set within minutes of the servers' return
    w, d = synced_device(3)
    for s in w.servers.values():
        s.mode = "silent"
    t_cut = d.t_ms
    d.reboot(t_cut, lose_clock=True)
    d.run(t_cut + 2 * HOUR_MS)
    for s in w.servers.values():
        s.mode = "honest"
    d.run(t_cut + 5 * HOUR_MS)
    check_invariants(w)  # the floors (the second 1970 -> now step is meant)
    backoffs = [e["wait_ms"] for e in kinds(d, "backoff") if e["t_ms"] >= t_cut]
    assert backoffs and max(backoffs) <= BACKOFF_MAX_MS * 5 // 4, backoffs
    set_at = [t for t, _ in d.steps if t > t_cut]
    assert set_at and set_at[0] <= t_cut + 2 * HOUR_MS + BACKOFF_MAX_MS * 5 // 4
