# runs-on: both
# The good-citizen policy under simulated time (tools/simdev.py drives the real Policy
# and the real Exchange checks). Each scenario asserts the invariants, not exact timings:
#   I1 never two requests to one address within 15 s (rule 1), reboots included
#   I2 never more than HOURLY_CAP requests in any hour
#   I3 the clock is never set from a KoD, a lone liar, or before the build date
import simdev as sim

from sntp import policy as pol
from sntp import schema, sources, state

T0 = 1_800_000_000_000_000  # true time at the start, Unix us (2027)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# The policy's limits as the rules and the README state them (not read from policy.py, so
# that a change there cannot move the bar with it).
MIN_GAP_MS = 15_000  # rule 1: never two requests to one server within 15 s
HOURLY_CAP = 12  # never more than 12 requests in any hour
STARTUP_INVALID_MS = 60_000  # rule 12: an invalid clock asks within a minute of boot
STARTUP_VALID_MS = 1_800_000  # a valid one within 30 minutes
REBOOT_MIN_MS = 15_000  # a reboot waits at least 15 s
BACKOFF_MIN_MS = 30_000  # a failed round backs off from 30 s
BACKOFF_MAX_MS = 3_600_000  # doubling to an hour
POOL_POLL_MIN_S = 1_800  # rule 14: the pool's 30 minutes
LOCAL_POLL_MIN_S = 64  # other servers: 64 s
POLL_MAX_LIMIT_S = 131_072  # 36 h at most
RATE_MIN_MS = 600_000  # rule 5: after a RATE, at least 10 minutes
RATE_MAX_MS = 8_192_000  # 2**13 s from RATE alone (RFC 8633 5.4)
RERESOLVE_MIN_MS = 3_600_000  # rule 16: a name is re-resolved at most hourly after failures
ADDR_FAILS_SWITCH = 2  # an address that failed twice in a row is dropped for the next


class Rng:
    """xorshift32: the same sequence on CPython and MicroPython (random.Random is CPython's)."""

    def __init__(self, seed):
        self.x = seed or 1

    def below(self, n):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return ((x << 16) | (self.x >> 8 & 0xFFFF)) % n


def zone_world(n=4, modes=None):
    w = sim.World(T0)
    for i in range(n):
        ip = "10.0.0.{}".format(i + 1)
        w.dns["{}.acme.pool.ntp.org".format(i)] = [ip]
        m = (modes or {}).get(i)
        w.servers[(ip, 123)] = m if m is not None else sim.Server()
    return w


def device(w, cfg=None, clock_error_us=None, seed=1):
    err = -T0 if clock_error_us is None else clock_error_us  # default: clock reads 1970
    cfg = {"zone": "acme"} if cfg is None else cfg
    d = sim.Device(w, cfg, clock_error_us=err, rand=Rng(seed).below)
    d.boot(0)
    return d


def all_requests(w):
    out = []
    for s in w.servers.values():
        out += s.requests
    out.sort()
    return out


def check_invariants(w, d=None):
    for key, s in w.servers.items():
        for a, b in zip(s.requests, s.requests[1:]):
            assert b - a >= MIN_GAP_MS, "I1: {} asked {} ms apart".format(key, b - a)
    reqs = all_requests(w)
    for i in range(len(reqs) - HOURLY_CAP):
        assert reqs[i + HOURLY_CAP] - reqs[i] >= HOUR_MS, "I2: too many in an hour"
    if d is not None:
        for _, offset in d.steps:
            assert abs(offset) < 365 * DAY_MS * 1000 or d.steps[0][1] == offset


def kinds(d, kind):
    return [e for e in d.events if e["event"] == kind]


def test_thirty_days_of_normal_operation():
    w = zone_world()
    d = device(w, {"zone": "acme", "poll_min_s": 1, "poll_max_s": 1})  # asks too fast: clamped
    assert d.config.poll_min_s == POOL_POLL_MIN_S and d.config.warnings
    d.run(30 * DAY_MS)
    check_invariants(w, d)
    first = d.steps[0][0]
    assert first <= STARTUP_INVALID_MS + 1_000  # synchronized within about a minute
    assert abs(d.clock_error_us) < 1_000  # and kept right
    reqs = all_requests(w)
    per_day = len(reqs) * DAY_MS // (30 * DAY_MS)
    assert 12 <= per_day <= 60, per_day  # every 30 min at most, within the jitter
    # steady state: rounds at least 30 minutes apart against pool names (rule 14)
    rounds = [s[0] for s in d.steps]
    assert min(b - a for a, b in zip(rounds, rounds[1:])) >= POOL_POLL_MIN_S * 1000
    # no wall-clock alignment (rule 15): send times spread over the minutes of the hour
    minutes = {(t // 60_000) % 60 for t in reqs}
    assert len(minutes) >= 30, minutes
    # and the load spreads over the four servers
    counts = [len(s.requests) for s in w.servers.values()]
    assert min(counts) * 2 >= max(counts), counts


def test_poll_interval_grows_to_its_maximum_and_local_servers_go_to_64_s():
    w = sim.World(T0)
    w.dns["ntp.factory.lan"] = ["192.168.1.10"]
    w.servers[("192.168.1.10", 123)] = sim.Server()
    cfg = {"servers": ["ntp.factory.lan"], "poll_min_s": 10, "poll_max_s": 256}
    d = device(w, cfg, clock_error_us=0)
    assert d.config.poll_min_s == LOCAL_POLL_MIN_S
    d.run(DAY_MS)
    check_invariants(w, d)
    intervals = [e["interval_s"] for e in kinds(d, "poll")]
    assert intervals[0] == 64 and intervals[-1] == 256 and intervals == sorted(intervals)
    gaps = [
        b - a
        for a, b in zip(
            w.servers[("192.168.1.10", 123)].requests[1:],
            w.servers[("192.168.1.10", 123)].requests[2:],
        )
    ]
    assert min(gaps) >= 64_000


def test_servers_that_never_answer():
    w = zone_world(modes={i: sim.Server("silent") for i in range(4)})
    d = device(w)
    d.run(3 * DAY_MS)
    check_invariants(w, d)
    assert d.steps == []
    for key, s in w.servers.items():
        later = [t for t in s.requests if t >= DAY_MS]  # after the first day: backoff capped
        assert len(later) <= 2 * 24 + 2, (key, len(later))  # at most about hourly
        assert len(s.requests) >= 20  # but it does keep trying
    for name in w.dns:  # DNS still answers with the dead addresses: re-resolve hourly at most
        mine = [t for t, n in w.lookups if n == name]
        assert len(mine) >= 2
        for a, b in zip(mine, mine[1:]):
            assert b - a >= RERESOLVE_MIN_MS, (name, b - a)
    backoffs = [e["wait_ms"] for e in kinds(d, "backoff")]
    assert backoffs[0] >= BACKOFF_MIN_MS and max(backoffs) <= BACKOFF_MAX_MS * 5 // 4
    assert backoffs[3] > backoffs[0] * 4  # exponential


def test_one_dead_server_among_honest_ones_is_asked_rarely():
    w = zone_world(modes={2: sim.Server("silent")})
    d = device(w)
    d.run(10 * DAY_MS)
    check_invariants(w, d)
    dead = w.servers[("10.0.0.3", 123)].requests
    live = w.servers[("10.0.0.1", 123)].requests
    assert len(dead) <= len(live) + 2
    assert abs(d.clock_error_us) < 1_000


def test_rate_kiss_lengthens_that_servers_interval():
    w = sim.World(T0)
    w.dns["ntp.example.net"] = ["10.0.0.1"]
    w.servers[("10.0.0.1", 123)] = sim.Server("kod", "RATE")
    d = device(w, {"servers": ["ntp.example.net"]})
    d.run(2 * DAY_MS)
    check_invariants(w, d)
    assert d.steps == []  # a KoD never sets the clock
    reqs = w.servers[("10.0.0.1", 123)].requests
    gaps = [b - a for a, b in zip(reqs, reqs[1:])]
    assert gaps and min(gaps) >= RATE_MIN_MS  # at least 10 min after every RATE
    kods = kinds(d, "kod")
    assert len(kods) == len(reqs) and all(k["code"] == "RATE" for k in kods)
    assert kods[1]["gap_ms"] >= 2 * kods[0]["gap_ms"] or kods[1]["gap_ms"] == RATE_MAX_MS
    assert max(k["gap_ms"] for k in kods) <= RATE_MAX_MS  # 2**13 s from RATE alone
    assert len(reqs) <= 2 * DAY_MS // RATE_MIN_MS


def test_deny_stops_that_address_for_a_day_even_across_reboots():
    w = zone_world(modes={0: sim.Server("kod", "DENY")})
    d = device(w, seed=3)
    d.run(2 * HOUR_MS)
    denied = w.servers[("10.0.0.1", 123)].requests
    assert len(denied) == 1 and kinds(d, "kod")[0]["code"] == "DENY"
    for k in range(1, 20):  # reboots, the clock kept by an RTC
        d.reboot(2 * HOUR_MS + k * 60_000)
        d.run(2 * HOUR_MS + (k + 1) * 60_000)
    d.run(DAY_MS)
    assert len(w.servers[("10.0.0.1", 123)].requests) == 1
    d.run(3 * DAY_MS)  # after the hold, a re-resolved address may be tried again
    check_invariants(w, d)
    assert abs(d.clock_error_us) < 1_000


def test_spoofed_kod_is_not_acted_on():
    w = zone_world(modes={0: sim.Server("spoof-kod", "DENY")})
    d = device(w)
    d.run(DAY_MS)
    check_invariants(w, d)
    assert kinds(d, "kod") == []
    rejected = [e for e in kinds(d, "timeout") if e["address"] == "10.0.0.1:123"]
    assert rejected and all(e["reason"] == "bad-origin" for e in rejected)
    # the address is not denied: it is still asked (after failures, rarely)
    assert len(w.servers[("10.0.0.1", 123)].requests) >= 2


def test_server_leaves_the_pool_and_dns_later_gives_a_new_address():
    w = zone_world()
    d = device(w)
    d.run(DAY_MS)
    w.servers[("10.0.0.1", 123)].mode = "silent"  # it leaves the pool for good
    w.dns["0.acme.pool.ntp.org"] = ["10.0.0.9"]
    w.servers[("10.0.0.9", 123)] = sim.Server()
    d.run(4 * DAY_MS)
    check_invariants(w, d)
    dead = [t for t in w.servers[("10.0.0.1", 123)].requests if t > DAY_MS]
    assert len(dead) <= ADDR_FAILS_SWITCH + 1
    assert len(w.servers[("10.0.0.9", 123)].requests) >= 3  # one of four in rotation
    lookups = [t for t, name in w.lookups if name == "0.acme.pool.ntp.org"]
    for a, b in zip(lookups, lookups[1:]):
        assert b - a >= RERESOLVE_MIN_MS  # rule 16: never more than once an hour


def test_dns_outage_backs_off_to_hourly_lookups_and_recovers():
    w = zone_world()
    saved = dict(w.dns)
    w.dns = {}
    d = device(w)
    d.run(6 * HOUR_MS)
    assert d.steps == [] and all_requests(w) == []
    for name in saved:
        mine = [t for t, n in w.lookups if n == name]
        late = [t for t in mine if t >= HOUR_MS]
        for a, b in zip(late, late[1:]):
            assert b - a >= HOUR_MS, name  # after the first failures: at most hourly
        assert 3 <= len(mine) <= 9, (name, len(mine))
    w.dns = saved
    d.run(9 * HOUR_MS)
    # lookups stay hourly: two names must come back (two agreeing servers) within 2.5 h
    assert d.steps and d.steps[0][0] <= 6 * HOUR_MS + 5 * HOUR_MS // 2
    check_invariants(w, d)


def reboot_every_ten_seconds_for_an_hour(w, seed, lose_clock):
    d = device(w, seed=seed)
    for k in range(360):
        if k:
            d.reboot(k * 10_000, lose_clock=lose_clock)
        d.run((k + 1) * 10_000)
    check_invariants(w)
    return len(all_requests(w))


def test_reboot_loop_every_ten_seconds_for_an_hour_is_not_a_fast_poller():
    for lose_clock in (True, False):
        w = zone_world(modes={i: sim.Server("silent") for i in range(4)})
        n = reboot_every_ten_seconds_for_an_hour(w, 5, lose_clock)
        assert n <= 8, n


def test_reboot_loop_with_honest_servers_still_respects_the_floor():
    n = reboot_every_ten_seconds_for_an_hour(zone_world(), 9, True)
    assert n <= 8, n


def test_one_server_lying_by_a_year_never_sets_the_clock():
    year_us = 365 * DAY_MS * 1000
    for start_error in (-T0, 0):  # clock invalid (1970), then valid
        w = zone_world(modes={1: sim.Server(offset_us=year_us)})
        d = device(w, clock_error_us=start_error, seed=11)
        d.run(10 * DAY_MS)
        check_invariants(w, d)
        assert abs(d.clock_error_us) < 1_000, d.clock_error_us
        for _, offset in d.steps[1:]:
            assert abs(offset) < 1_000_000
        assert kinds(d, "disagree")  # the lie is reported
        assert len(w.servers[("10.0.0.2", 123)].requests) >= 3  # and it was asked


def test_two_liars_agreeing_with_each_other_still_lose_to_a_valid_clock():
    # a valid clock takes a small correction from one server; two liars a year off are never
    # consulted alone because they need agreement, and honest servers answer in between
    year_us = 365 * DAY_MS * 1000
    w = zone_world(modes={0: sim.Server(offset_us=year_us), 1: sim.Server(offset_us=year_us)})
    d = device(w, clock_error_us=0, seed=2)
    d.run(5 * DAY_MS)
    check_invariants(w, d)
    assert abs(d.clock_error_us) < 1_000


def test_two_liars_against_two_honest_servers_never_set_an_invalid_clock():
    # a liar and an honest server answer first (rotation starts at name 0): they disagree,
    # so all four are asked, and a tie is no majority. (Two liars that agree and are asked
    # first do set an invalid clock: the price of a cold start that asks two, rule 11.)
    year_us = 365 * DAY_MS * 1000
    w = zone_world(modes={0: sim.Server(offset_us=year_us), 2: sim.Server(offset_us=year_us)})
    d = device(w, seed=4)
    d.run(2 * DAY_MS)
    check_invariants(w, d)
    assert d.steps == []  # two against two: the clock stays invalid, and says why
    assert kinds(d, "disagree")


def test_single_configured_server_may_set_an_invalid_clock_alone():
    w = sim.World(T0)
    w.dns["ntp.factory.lan"] = ["192.168.1.10"]
    w.servers[("192.168.1.10", 123)] = sim.Server()
    d = device(w, {"servers": ["ntp.factory.lan"]})
    d.run(2 * STARTUP_INVALID_MS)
    assert len(d.steps) == 1 and abs(d.clock_error_us) < 1_000


def test_never_steps_before_the_build_date():
    w = sim.World(T0)
    w.dns["ntp.factory.lan"] = ["192.168.1.10"]
    # a server whose clock reads 2001: before the firmware was built
    w.servers[("192.168.1.10", 123)] = sim.Server(offset_us=-(T0 - 1_000_000_000_000_000))
    d = device(w, {"servers": ["ntp.factory.lan"]})
    d.run(DAY_MS)
    assert d.steps == []
    assert [e for e in kinds(d, "reject") if e["reason"] == "before-build-date"]


def test_no_server_configured_means_no_traffic_and_says_why():
    w = zone_world()
    d = device(w, {})
    d.run(DAY_MS)
    assert all_requests(w) == [] and w.lookups == []
    assert "no servers configured" in kinds(d, "idle")[0]["reason"]
    assert d.policy.due_ms is None


def test_a_crash_loop_backs_off_across_boots_then_a_long_boot_syncs():
    crash_loop_then_long_boot(False)
    crash_loop_then_long_boot(True)  # no RTC: the clock reads 1970 at every boot


def crash_loop_then_long_boot(lose_clock):
    # tools/sntp sync run again and again: each run is a fresh Policy from the state file.
    # The k-th short boot in a row waits min(15 s x 2**k, 1 h) (jittered) since the last
    # request: a restart every 2 s asks once in 4 minutes; a boot that runs on asks again
    # once that hour (in uptime, or by the clock when it is valid) has passed.
    w = sim.World(T0)
    w.dns["ntp.factory.lan"] = ["192.168.1.10"]
    w.servers[("192.168.1.10", 123)] = sim.Server()
    d = device(w, {"servers": ["ntp.factory.lan"]}, clock_error_us=0)
    for k in range(120):  # a restart and an immediate sync every 2 s for 4 minutes
        now = k * 2_000
        d.reboot(now, lose_clock=lose_clock)
        d.policy.sync_now(now)
        d.run(now + 2_000)
    reqs = w.servers[("192.168.1.10", 123)].requests
    assert reqs == [0], reqs
    assert d.policy.short == 64 and d.saved["short"] == 64  # counted up to 64
    assert not kinds(d, "config"), kinds(d, "config")  # no warning: a readable state
    d.reboot(240_000, lose_clock=lose_clock)  # this one runs on
    d.run(3 * HOUR_MS)
    check_invariants(w, None if lose_clock else d)  # (each lost clock is a big step)
    assert HOUR_MS <= reqs[1] <= HOUR_MS * 5 // 4 + 240_000, reqs
    d.reboot(3 * HOUR_MS, lose_clock=lose_clock)  # after a long boot: no guard
    assert d.policy.short == 0 and d.policy.quiet_ms is None


def test_sync_now_obeys_the_floor_and_the_hourly_cap():
    w = zone_world()
    d = device(w, clock_error_us=0)
    d.run(HOUR_MS)
    for k in range(600):  # someone presses 'sync' every second for ten minutes
        now = HOUR_MS + k * 1000
        d.policy.sync_now(now)
        d.run(now + 1000)
    check_invariants(w, d)
    recent = [t for t in all_requests(w) if t >= HOUR_MS]
    assert len(recent) <= HOURLY_CAP


def test_ten_thousand_devices_started_in_the_same_second_spread_their_first_request():
    rng = Rng(42)
    cfg = schema.Config.from_dict({"zone": "acme"})
    buckets = [0] * 61
    for _ in range(10_000):
        p = pol.Policy(cfg, rng.below)
        p.start(0, 0, None)  # every clock reads 1970 after the power cut
        first = p.due_ms
        assert 0 <= first < STARTUP_INVALID_MS
        buckets[first // 1000] += 1
    mean = 10_000 // 60
    assert max(buckets) <= mean * 3 // 2, max(buckets)  # no second gets a burst
    assert min(buckets[:60]) >= mean // 2, min(buckets[:60])  # and none is left empty


def test_bad_configuration_values_are_clamped_or_rejected_with_a_reason():
    c = schema.Config.from_dict(
        {
            "servers": [
                "ok.example",
                "bad host",
                7,
                "x:99999",
                "[::1]:123",
                "a.example",
                "b.example",
                "c.example",
            ],
            "zone": "not.a.label",
            "poll_min_s": "fast",
            "poll_max_s": 10**9,
        }
    )
    assert c.servers == [("ok.example", 123), ("::1", 123), ("a.example", 123), ("b.example", 123)]
    text = " | ".join(c.warnings)
    for needle in ("zone", "bad host", "7", "99999", "c.example", "poll_min_s", "poll_max_s"):
        assert needle in text, (needle, text)
    assert c.poll_max_s == POLL_MAX_LIMIT_S and c.poll_min_s >= LOCAL_POLL_MIN_S


def test_persisted_state_garbage_is_ignored():
    cfg = schema.Config.from_dict({"zone": "acme"})
    for junk in (
        None,
        3,
        "x",
        {"v": 1, "fails": "many", "interval_s": -5, "denied": [1]},
        {"v": 1, "denied": {"1.2.3.4:123": "soon", 5: 6}},
        {"v": 99},
    ):
        p = pol.Policy(cfg, Rng(1).below)
        p.start(0, T0, junk)
        assert p.fails == 0 and p.interval_s == cfg.poll_min_s
        assert 0 <= p.due_ms <= STARTUP_VALID_MS


def test_factory_server_is_used_alone_until_the_first_sync_then_never_again():
    w = zone_world()
    w.dns["192.168.1.10"] = ["192.168.1.10"]  # an IP address resolves to itself
    w.servers[("192.168.1.10", 123)] = sim.Server()
    d = device(w, {"zone": "acme", "factory_server": "192.168.1.10"})
    d.run(3 * DAY_MS)
    check_invariants(w, d)
    factory = w.servers[("192.168.1.10", 123)].requests
    assert len(factory) == 1  # the first sync, from it alone (an invalid clock, one server)
    assert d.steps[0][0] <= STARTUP_INVALID_MS + 1_000
    zone = [t for t in all_requests(w) if t not in factory]
    assert zone and min(zone) > factory[0]  # then the vendor zone
    assert kinds(d, "config")


def test_a_factory_server_alone_syncs_once_then_the_device_goes_quiet():
    w = sim.World(T0)
    w.dns["192.168.1.10"] = ["192.168.1.10"]
    w.servers[("192.168.1.10", 123)] = sim.Server()
    d = device(w, {"factory_server": "192.168.1.10"})
    d.run(DAY_MS)
    assert len(w.servers[("192.168.1.10", 123)].requests) == 1 and len(d.steps) == 1
    assert kinds(d, "idle") and d.policy.due_ms is None


# ---- a cold start asks two servers; RATE holds across reboots -----------------------------
def test_a_cold_start_with_honest_servers_asks_two():
    for seed in (1, 2, 3):
        w = zone_world()
        d = device(w, seed=seed)  # the clock reads 1970
        d.run(HOUR_MS // 2)  # the next round comes a poll interval (30 min) after the first
        check_invariants(w, d)
        assert len(all_requests(w)) == 2, w.servers  # two that agree: a majority of two
        assert len(d.steps) == 1 and abs(d.clock_error_us) < 1_000
        assert len(kinds(d, "step")[0]["servers"]) == 2


def test_a_cold_start_with_a_liar_among_the_first_two_asks_more_and_the_liar_loses():
    year_us = 365 * DAY_MS * 1000
    for liar in (0, 1):  # the first two names asked are 0 and 1
        w = zone_world(modes={liar: sim.Server(offset_us=year_us)})
        d = device(w, seed=5)
        d.run(HOUR_MS // 2)
        check_invariants(w, d)
        assert len(all_requests(w)) == 4  # they disagree: the others are asked too
        assert len(d.steps) == 1 and abs(d.clock_error_us) < 1_000  # three against one
        assert kinds(d, "disagree")[-1]["servers"] == ["{}.acme.pool.ntp.org".format(liar)]


def rate_world():
    w = sim.World(T0)
    w.dns["ntp.example.net"] = ["10.0.0.1"]
    w.servers[("10.0.0.1", 123)] = sim.Server("kod", "RATE")
    return w


def test_a_rate_hold_is_kept_across_reboots_with_or_without_a_valid_clock():
    # each boot asks at once (as tools/sntp sync does), so only the hold can keep it quiet.
    # clock: "lost" reads 1970 at every boot (no RTC), "kept" by an RTC, "set" valid from
    # the second boot on while the RATE came with an invalid clock (its date means nothing)
    for clock in ("lost", "kept", "set"):
        for off_ms in (0, 30 * 60_000):  # reboot at once, or after half an hour switched off
            where = (clock, off_ms)
            w = rate_world()
            reqs = w.servers[("10.0.0.1", 123)].requests
            d = device(w, {"servers": ["ntp.example.net"]}, clock_error_us=-T0 * (clock != "kept"))
            d.reboot(1_000, ask_now=True)
            t = 60_000
            d.run(t)
            assert len(reqs) == 1, (where, reqs)
            hold_end = reqs[0] + kinds(d, "kod")[-1]["gap_ms"]
            boots = []
            for _ in range(12):  # a sync asked for every 11 minutes, each after a reboot
                t += off_ms  # (boots of 10 min or more: the crash-loop guard stays out)
                if clock == "set":
                    d.clock_error_us = 0
                d.reboot(t, lose_clock=clock == "lost", ask_now=True)
                boots.append(t)
                t += 11 * 60_000
                d.run(t)
            d.run(t + 6 * HOUR_MS)
            assert [x for x in reqs if x < hold_end] == reqs[:1], (where, reqs, hold_end)
            assert len(reqs) >= 2, (where, reqs)  # asked again after the hold
            if clock == "kept":  # a valid clock counts the time switched off too
                # asked again in the boot the hold ends in (its backoff permitting), or
                # the next one: not a whole hold later, as a hold restarted at boot would be
                nxt = min(b for b in boots if b >= hold_end)
                assert reqs[1] <= nxt, (where, reqs, boots)
            check_invariants(w)


def test_rate_holds_from_an_older_or_garbage_state_get_a_safe_default_and_one_warning():
    cfg = schema.Config.from_dict({"servers": ["ntp.example.net"]})
    held = [
        ({"v": 1, "boots": 4}, False),  # an older version: no RATE holds saved
        ({"v": 1, "rate": 5}, False),
        ({"v": 1, "rate": {"10.0.0.1:123": "soon", 7: [1, 2, 3]}}, True),
        ({"v": 1, "rate": {"10.0.0.1:123": [600_000, 900_000, 1]}}, True),  # hold > gap
        ({"v": 1, "rate": {"10.0.0.1:123": [True, 0, 1]}}, True),
    ]
    for st, rate_held in held:
        p = pol.Policy(cfg, Rng(1).below)
        events = []
        p.subscribe(events.append)
        p.start(0, T0, st)
        warned = [e for e in events if e["event"] == "config"]
        assert len(warned) == 1 and "rate" in warned[0]["warning"], (st, warned)
        assert p.due_ms >= REBOOT_MIN_MS  # a state means a boot before: a reboot's wait
        peer = sources.peer_of(p.peers, ("10.0.0.1", 123))
        if rate_held:  # unreadable: held as long as a RATE alone can hold it
            assert peer.rate_gap_ms >= RATE_MAX_MS and peer.last_send_ms == 0, st
        else:
            assert peer.rate_until_ms == 0 and peer.last_send_ms is None, st
    # a state saved by this version restores without a warning
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, T0, held[2][0])
    p2 = pol.Policy(cfg, Rng(1).below)
    events = []
    p2.subscribe(events.append)
    p2.start(0, T0, state.write(p, T0))
    assert [e for e in events if e["event"] == "config"] == []
    assert sources.peer_of(p2.peers, ("10.0.0.1", 123)).rate_gap_ms == RATE_MAX_MS


def test_a_rate_is_saved_at_once_before_the_round_goes_on():
    # a crash right after the RATE, before the next server of the round is asked
    w = zone_world(2, modes={0: sim.Server("kod", "RATE"), 1: sim.Server("silent")})
    reqs = w.servers[("10.0.0.1", 123)].requests
    d = device(w, clock_error_us=0)
    d.reboot(1_000, ask_now=True)
    d.run(1_000 + 20)  # the send at 1 s, its RATE 20 ms later: stop there
    assert len(reqs) == 1 and kinds(d, "kod") and not w.servers[("10.0.0.2", 123)].requests
    d.reboot(2_000, ask_now=True)
    d.run(RATE_MIN_MS)
    assert reqs == [1_000] and w.servers[("10.0.0.2", 123)].requests, reqs


def test_an_unreadable_or_older_state_or_an_unknown_reset_cause_is_a_short_boot():
    # each gets one warning, and the crash-loop guard's first step (30-37.5 s after the
    # last request) on top of a reboot's wait: longer, never shorter
    cfg = schema.Config.from_dict({"servers": ["ntp.example.net"]})
    t_ms = 1_000_000
    sent = [["10.0.0.1:123", 0, 5_000]]  # asked 5 s before the last save
    long_ago = {"v": 1, "boots": 9, "short": 0, "up": 700_000, "open": False, "sent": sent}
    long_ago["rate"] = {}
    cases = [
        (dict(long_ago), False, None),  # a long boot before: no guard, no warning
        (dict(long_ago, up=20_000), False, None),  # a short one: the guard, no warning
        (dict(long_ago, open=True), False, None),  # it died in an exchange: short
        (dict(long_ago), None, "reset cause unknown"),
        (dict(long_ago, up="x"), False, "no uptime saved"),
        (dict(long_ago, boots=-4), False, "boots"),  # a counter that went back or wrapped
        (dict(long_ago, short=10**9), False, "short"),
        ({"v": 1, "boots": 4, "sent": sent}, False, "no uptime saved"),  # an older version
        ({"v": 99}, False, "unreadable"),
        ({}, False, "unreadable"),  # the store's answer for a garbage file
    ]
    for st, wake, warning in cases:
        p = pol.Policy(cfg, Rng(1).below)
        events = []
        p.subscribe(events.append)
        p.start(t_ms, 0, st, wake)  # the clock reads 1970
        warned = [e["warning"] for e in events if e["event"] == "config"]
        short = p.short > 0
        assert short == (st is not cases[0][0]), (st, wake, p.short)
        if warning is None:
            assert warned == [], (st, warned)
        else:
            assert len(warned) == 1 and warning in warned[0], (st, warned)
        if short and "sent" in st:  # the guard: 30 s at least after that request
            assert p.quiet_ms is not None and p.due_ms >= t_ms - 5_000 + 30_000, st
        assert p.due_ms >= t_ms + REBOOT_MIN_MS, st


def test_a_wake_from_deep_sleep_decides_from_the_saved_due_time_alone():
    cfg = schema.Config.from_dict({"servers": ["ntp.example.net"]})
    now_s = T0 // 1_000_000 + 86_400
    st = {
        "v": 1,
        "boots": 3,
        "short": 2,
        "up": 5_000,
        "open": False,
        "interval_s": 4096,
        "last_sync_unix_s": now_s - 3000,
        "next_due_unix_s": now_s + 1_096,
        "rate": {},
        "saved_ms": (now_s - 600) * 1000,
    }
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, now_s * 1_000_000, dict(st), True)
    assert p.due(0) == 1_096_000 and p.boots == 3 and p.short == 2  # not a boot
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, now_s * 1_000_000, dict(st, next_due_unix_s=now_s - 5), True)
    assert p.due(0) == 0  # fell due while asleep: at once, no start-up spread
    # a clock never set (1970) ran on through the sleep too: its differences still count
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, 100_000_000, dict(st, saved_ms=40_000, next_due_unix_s=130), True)
    assert p.due(0) == 30_000 and p.boots == 3 and p.short == 2
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, 100_000_000, dict(st, saved_ms=40_000, next_due_unix_s=130), False)
    assert p.due(0) >= REBOOT_MIN_MS and p.boots == 4 and p.short == 3  # a reset: a boot
    sent = [["10.0.0.1:123", (now_s - 60) * 1000, 0] for _ in range(HOURLY_CAP)]
    p = pol.Policy(cfg, Rng(1).below)
    p.start(0, now_s * 1_000_000, dict(st, next_due_unix_s=now_s - 5, sent=sent), True)
    assert p.due(0) == HOUR_MS - 60_000 + 1 + 250  # the hourly cap: not due before then


def test_the_rotation_goes_on_across_reboots():
    # a valid clock is set by one reply: each boot asks one server, the next one in turn (a
    # rotation restarted at every boot would send every device's every request to 0.acme)
    w = zone_world()
    d = device(w, clock_error_us=0)
    d.run(HOUR_MS)
    asked = []
    for k in range(1, 6):
        for s in w.servers.values():
            s.requests.clear()
        looked = len(w.lookups)
        d.reboot(k * HOUR_MS, ask_now=True)
        d.run(k * HOUR_MS + 60_000)
        asked.append(sorted(key[0] for key, s in w.servers.items() if s.requests))
        assert len(w.lookups) - looked == 1  # the name it asks, not all four first
    first = int(asked[0][0][-1])
    turn = ["10.0.0.{}".format((first - 1 + i) % 4 + 1) for i in range(5)]
    assert asked == [[a] for a in turn], asked


def test_a_configured_ip_address_must_be_one_of_the_site():
    # the one rule the console, provision and the command line apply too (rule 3)
    site = ["10.0.0.1", "172.16.5.5:1123", "192.168.1.10", "169.254.1.1", "127.0.0.1", "::1"]
    site += ["fe80::1", "[fd00::2]:123", "fc00::9", "::ffff:10.1.1.1", "ntp.example.com"]
    public = ["8.8.8.8", "172.32.0.1", "192.0.2.1", "11.0.0.1", "2001:db8::1", "fe00::1"]
    public += ["::", "::ffff:8.8.8.8", "256.1.1.1"]
    c = schema.Config.from_dict({"servers": site[:4]})
    assert c.servers == [schema.parse_server(s) for s in site[:4]] and c.warnings == []
    for text in site:
        assert schema.server_refusal(schema.parse_server(text)[0]) is None, text
    for text in public:
        why = schema.server_refusal(schema.parse_server(text)[0])
        assert why is not None and why.startswith(schema.parse_server(text)[0] + ": "), text
        c = schema.Config.from_dict({"servers": [text, "ntp.example.com"]})
        assert c.servers == [("ntp.example.com", 123)], text
        assert c.warnings == ["servers: {}, ignored".format(why)], (text, c.warnings)


def test_a_floor_wait_is_the_policys_own_event_once_with_its_reason():
    # 'sync' pressed every second: the next request waits for the 15 s floor (rule 1); the
    # policy says so once per wait, and a long wait (poll interval) is no "wait" event
    w = zone_world(n=1)
    d = device(w, clock_error_us=0)
    d.run(HOUR_MS)
    assert kinds(d, "wait") == []  # the start-up delay and the poll interval have their own
    for k in range(120):
        now = HOUR_MS + k * 1000
        d.policy.sync_now(now)
        before = len(kinds(d, "wait"))
        d.run(now + 1000)
        assert len(kinds(d, "wait")) - before <= 1  # one press, one wait at most: said once
    check_invariants(w, d)
    waits = kinds(d, "wait")
    assert waits, "no floor wait in two minutes of sync presses"
    sends = [e["t_ms"] for e in kinds(d, "send")]
    for e in waits:
        assert e["reason"] == "floor" and 0 < e["wait_ms"] <= MIN_GAP_MS + 1_000, e
        last = max(t for t in sends if t <= e["t_ms"])
        assert last + MIN_GAP_MS <= e["t_ms"] + e["wait_ms"], (e, last)  # the floor's end
    n = len(waits)
    d.run(3 * HOUR_MS)  # the poll interval again: no "wait" event
    assert len(kinds(d, "wait")) == n


def test_a_round_that_heard_only_oversized_datagrams_is_a_timeout_not_a_rejection():
    # exchange.LONG, as SHORT or a spoof: nothing of ours arrived (a timeout event, no
    # reject), and the address counts a failure toward the next one
    from sntp import exchange

    p = pol.Policy(schema.Config.from_dict({"servers": ["ntp.example.com"]}), Rng(1).below)
    events = []
    p.subscribe(events.append)
    p.start(0, T0, None)
    src = p.sources[0]
    p.resolved(src, [sim.Addr(("10.0.0.1", 123))], 0)
    p.sync_now(0)
    a = p.poll(0, T0)
    p.result(a.src, a.addr, exchange.Result(("10.0.0.1", 123), exchange.LONG), 10, T0)
    kinds = [e["event"] for e in events if e["event"] in ("timeout", "reject")]
    assert kinds == ["timeout"] and src.addr_fails == 1, events
