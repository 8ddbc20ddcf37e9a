# runs-on: both
# Hostile servers and an off-path attacker.
#
# Off-path attacker: around every real request it floods the device with forged replies and
# forged Kiss-o'-Death packets (RATE, DENY, RSTR, in the ntpsec form and the zero-timestamp
# form) from the server's own address, with guessed origins: random values, the previous
# request's nonce, zero, the T1 a classic client would have sent, the true time, and the
# real nonce with one bit flipped; plus a few with the real nonce from a wrong address or
# port. Each simulated run is compared with the same run without the attacker: every event,
# correction, lookup and request must be the same (nothing accepted, nothing acted on:
# docs/rules.md rules 5 and 6, RFC 8633 section 5.4), and the ignored-datagram counters
# must add up to exactly what was forged.
#
# Liars: four servers, one then two lying by an hour, a year, or with a clock in 1900 or
# 1970 (era resolution, rule 9, makes those 2036 and 2106), through the blocking Service,
# the driver a user runs, with a valid and with an invalid (1970) clock. A lone liar is
# out-voted and reported ("disagree"); two liars against two honest servers are no strict
# majority (rule 11, policy.py R5): nothing is stepped, and the events say why.
import simdev as sim
from fakes import (
    ERA_ROLLOVER_UNIX,
    NTP_1970,
    START,
    FakeNet,
    LoopClock,
    MemStore,
    StepRTC,
    honest,
    ntp64,
    reply,
)
from test_policy import T0, Rng, zone_world

from sntp import service, state

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
YEAR_US = 365 * DAY_MS * 1000

# ---- the off-path attacker -----------------------------------------------------------------


def _pack64(v):
    out = bytearray(8)
    for i in range(8):
        out[7 - i] = (v >> (8 * i)) & 0xFF
    return bytes(out)


class Attacker:
    """Forged datagrams around each request (sim.World.attacker). Counts what it sends.

    It knows the real nonce only to flip its bits and to send it from wrong addresses (a
    stronger attacker than an off-path one); every other origin is a guess.
    """

    def __init__(self, seed):
        self.rng = Rng(seed)
        self.prev_nonce = bytes(8)  # the previous request's nonce: a stale-reply replay
        self.requests = 0  # requests flooded
        self.from_server = 0  # forged datagrams from the server's address and port
        self.elsewhere = 0  # forged datagrams from another address or port
        self.per_request = None  # (from the server, elsewhere) in one batch

    def origins(self, nonce, t1_us, true_us):
        out = [self.prev_nonce, bytes(8), _pack64(ntp64(t1_us)), _pack64(ntp64(true_us))]
        out.append(_pack64(ntp64(t1_us) >> 32 << 32))  # T1 in whole seconds
        for _ in range(8):
            out.append(_pack64((self.rng.below(1 << 32) << 32) | self.rng.below(1 << 32)))
        for bit in range(64):  # one bit away from the real nonce
            b = bytearray(nonce)
            b[bit // 8] ^= 0x80 >> (bit % 8)
            out.append(bytes(b))
        return out

    def templates(self, true_us):
        """(packet, is_ntpsec_kod): replies that lie, and KoDs in both forms."""
        z = bytes(8)
        out = [
            (reply(z, true_us + YEAR_US, true_us + YEAR_US + 100), False),
            (reply(z, true_us + HOUR_MS * 1000, true_us + HOUR_MS * 1000 + 100), False),
            (reply(z, 0, 0, rx=5 << 32, tx=(5 << 32) | 1, ref=4 << 32), False),  # "1900"
        ]
        for code in (b"RATE", b"DENY", b"RSTR"):
            # ntpsec: LI 3, stratum 0, origin = receive = transmit = the guessed origin
            out.append((reply(z, 0, 0, li=3, stratum=0, refid=code, rx=1, tx=1, ref=0), True))
            # the other form: LI 0, zero timestamps (the 1900 incident)
            out.append((reply(z, 0, 0, stratum=0, refid=code, rx=0, tx=0, ref=0), False))
        return out

    def batch(self, nonce, key, t1_us, true_us):
        out = []
        tpls = self.templates(true_us)
        for origin in self.origins(nonce, t1_us, true_us):
            for tpl, ntpsec in tpls:
                b = bytearray(tpl)
                b[24:32] = origin
                if ntpsec:
                    b[32:40] = origin
                    b[40:48] = origin
                out.append((bytes(b), key))
        n = len(out)
        for source in ((key[0], key[1] + 1), ("203.0.113.66", key[1])):
            for tpl, ntpsec in tpls:  # the real nonce, from the wrong place
                b = bytearray(tpl)
                b[24:32] = nonce
                if ntpsec:
                    b[32:40] = nonce
                    b[40:48] = nonce
                out.append((bytes(b), source))
        self.per_request = (n, len(out) - n)
        self.from_server += 2 * n
        self.elsewhere += 2 * (len(out) - n)
        return out

    def __call__(self, req, key, t1_us, true_us):
        nonce = bytes(req[40:48])
        self.requests += 1
        before = self.batch(nonce, key, t1_us, true_us)
        after = self.batch(nonce, key, t1_us, true_us)  # new random guesses
        self.prev_nonce = nonce
        return before, after


def normalized(events):
    """Events as comparable tuples; a timeout's reason (timeout, or bad-origin when only
    forgeries came) is the one thing an attacker may change, and the policy treats both alike
    (the same 'timeout' event, the same backoff)."""
    out = []
    for e in events:
        items = sorted(
            (k, v) for k, v in e.items() if not (e["event"] == "timeout" and k == "reason")
        )
        out.append(repr(items))
    return out


def attacked_and_control(days, clock_error_us, seed):
    runs = []
    for attack in (False, True):
        # one dead server: its timeouts and the backoff are compared too
        w = zone_world(modes={3: sim.Server("silent")})
        d = sim.Device(w, {"zone": "acme"}, clock_error_us=clock_error_us, rand=Rng(seed).below)
        a = Attacker(seed + 100) if attack else None
        w.attacker = a
        d.boot(0)
        d.run(days * DAY_MS)
        runs.append((w, d, a))
    return runs


def check_attack_changed_nothing(days, clock_error_us, seed):
    (cw, cd, _), (w, d, a) = attacked_and_control(days, clock_error_us, seed)
    # nothing accepted, nothing acted on: the same decisions, event for event
    assert normalized(d.events) == normalized(cd.events)
    assert d.steps == cd.steps and d.steps and abs(d.clock_error_us) < 1_000
    assert [e for e in d.events if e["event"] == "kod"] == []
    assert w.lookups == cw.lookups  # no address dropped, no extra re-resolve
    for key, s in w.servers.items():
        assert s.requests == cw.servers[key].requests, key  # no RATE gap, no DENY hold
    p = d.policy
    assert p.kods == 0 and p.denied_wall == {}
    for peer in p.peers.values():
        assert peer.rate_gap_ms == 0 and peer.denied_until_ms == 0
    assert state.write(p) == state.write(
        cd.policy
    )  # the same backoff, interval and persisted state
    # every real reply was still accepted
    answered = sum(len(s.requests) for k, s in w.servers.items() if k != ("10.0.0.4", 123))
    silent = len(w.servers[("10.0.0.4", 123)].requests)
    assert len([e for e in d.events if e["event"] == "reply"]) == answered
    assert a.requests == answered + silent
    # and the ignored-datagram counters add up to what was forged
    srv, other = a.per_request
    expected = {
        "bad-origin": (answered + 2 * silent) * srv,
        "wrong-source": (answered + 2 * silent) * other,
        "duplicate": answered * (srv + other),  # after the real reply: never a second result
    }
    assert d.ignored == expected, (d.ignored, expected)
    assert [e["reason"] for e in d.events if e["event"] == "timeout"] == ["bad-origin"] * silent
    forged = a.from_server + a.elsewhere
    print(
        "off-path attacker, {} simulated days, clock {}: {} forged datagrams around {} "
        "requests ({} per request), none accepted".format(
            days, "valid" if clock_error_us == 0 else "invalid", forged, a.requests,
            forged // a.requests,
        )
    )  # fmt: skip
    return forged


def test_off_path_flood_changes_nothing_with_an_invalid_clock():
    check_attack_changed_nothing(7, -T0, 21)  # the clock reads 1970


def test_off_path_flood_changes_nothing_with_a_valid_clock():
    check_attack_changed_nothing(7, 0, 22)


class RecordingService(service.Service):
    """Keeps every exchange's Result, to read its ignored-datagram counters."""

    def __init__(self, *args, **kw):
        service.Service.__init__(self, *args, **kw)
        self.results = []  # every exchange's Result
        result = self.keeper.result

        def record(src, addr, r, now_ms):
            self.results.append(r)
            return result(src, addr, r, now_ms)

        self.keeper.result = record


def test_the_blocking_driver_reads_past_a_flood_to_the_real_reply():
    # client.exchange_with keeps reading after each forgery until the real reply, which
    # arrives after all of them; later forgeries are never read (the socket is closed)
    attacker = Attacker(5)
    real = honest(START)

    def respond(req, dst, mono):
        forged = attacker.batch(bytes(req[40:48]), dst, START - 3_000_000 + mono, START + mono)
        out = [(1_000 + i, data, src) for i, (data, src) in enumerate(forged)]
        return out + real(req, dst, mono) + [(30_000 + i, d, s) for i, (d, s) in enumerate(forged)]

    results = {}
    for attack in (False, True):
        clock = LoopClock(START - 3_000_000)  # 3 s behind: a step
        net = FakeNet(clock, respond if attack else real)
        svc = RecordingService(
            {"servers": ["ntp.example"]},
            net=net,
            clock=clock,
            rtc=StepRTC(clock),
            store=MemStore(),
            rand_below=lambda n: n // 3,
            timeout_ms=1_000,
        )
        events = []
        svc.subscribe(events.append)
        s = svc.sync()
        results[attack] = (s, svc, normalized(events))
    s, svc, events = results[True]
    s0, svc0, events0 = results[False]
    assert s["clock_set"] and s["offset_us"] == s0["offset_us"] and s["kiss"] is None
    assert svc.rtc.steps == svc0.rtc.steps and events == events0
    srv, other = attacker.per_request
    assert len(svc.results) == 1 and svc.results[0].ignored == {
        "bad-origin": srv,
        "wrong-source": other,
    }


# ---- liars, through the blocking Service -------------------------------------------------

NAMES = ["a.example", "b.example", "c.example", "d.example"]
ADDRS = [("192.0.2.{}".format(i + 1), 123) for i in range(4)]
HOSTS = {n: [a] for n, a in zip(NAMES, ADDRS)}
DELAY_US = 20_000

# What a liar's clock reads, as a function of true Unix us; and what the client decodes.
LIES = {
    "hour": (lambda t: t + HOUR_MS * 1000, lambda t: t + HOUR_MS * 1000),
    "year": (lambda t: t + YEAR_US, lambda t: t + YEAR_US),
    # a clock in 1900 (NTP seconds near 0): the era pivot (rule 9) reads it as 2036
    "1900": (
        lambda t: -NTP_1970 * 1_000_000 + 5_000_000 + (t - START),
        lambda t: (ERA_ROLLOVER_UNIX + 5) * 1_000_000 + (t - START),
    ),
    # a clock in 1970, before the pivot (1976): read as 2106, the other end of the window
    "1970": (
        lambda t: 5_000_000 + (t - START),
        lambda t: (ERA_ROLLOVER_UNIX + NTP_1970 + 5) * 1_000_000 + (t - START),
    ),
}


def liar_net(clock, liars, lie):
    """Four servers; those in liars read LIES[lie]'s clock, the others true time."""
    server_time = LIES[lie][0]

    def respond(req, dst, mono):
        true_t2 = START + mono + DELAY_US // 2
        t2 = server_time(true_t2) if dst in liars else true_t2
        return [(DELAY_US + 100, reply(req[40:48], t2, t2 + 100), dst)]

    return FakeNet(clock, respond, HOSTS)


def liar_service(device_unix_us, liars, lie):
    clock = LoopClock(device_unix_us)
    svc = service.Service(
        {"servers": NAMES},
        net=liar_net(clock, liars, lie),
        clock=clock,
        rtc=StepRTC(clock),
        store=MemStore(),
        rand_below=lambda n: n // 3,
        timeout_ms=1_000,
    )
    events = []
    svc.subscribe(events.append)
    return svc, clock, events


def run_for(svc, ms):
    """Run the service ms longer; the fake clock's own elapsed time also stops it, so that a
    service that loses track of time fails the test instead of running forever."""
    clock = svc.clock
    limit_us = clock.mono_us + (ms + HOUR_MS) * 1000
    svc.run(until_ms=svc.now_ms() + ms, stop=lambda: clock.mono_us > limit_us)


def error_us(clock):
    """The device clock minus true time."""
    return clock.now_us() - (START + clock.mono_us)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


# valid: the device's clock is right; invalid: it reads 1970 (before the build date)
CLOCKS = {"valid": START, "invalid": 0}


def test_a_lone_liar_is_outvoted_and_reported():
    for lie in LIES:
        for clock_kind, device_us in CLOCKS.items():
            # the liar is the first server: it is asked first in the sync and every 4th round
            svc, clock, events = liar_service(device_us, [ADDRS[0]], lie)
            s = svc.sync()
            where = (lie, clock_kind)
            assert s["clock_set"] and NAMES[0] not in s["servers"], (where, s)
            assert abs(error_us(clock)) < 1_000, where
            assert {"server": NAMES[0], "error": "disagree"} in s["failures"], where
            run_for(svc, 12 * HOUR_MS)
            assert abs(error_us(clock)) < 1_000, where
            steps = svc.rtc.steps[1:] if clock_kind == "invalid" else svc.rtc.steps
            assert all(abs(x) < 1_000 for x in steps), (where, steps)
            for e in of(events, "step"):
                assert NAMES[0] not in e["servers"], where  # never vouched for a correction
            disagree = of(events, "disagree")
            assert len(disagree) >= 2, where  # in the sync and in later rounds
            for e in disagree:
                assert e["servers"] == [NAMES[0]], (where, e)
                # what the client saw: the lie as the era pivot decodes it (for 1900 and
                # 1970, a date in 2036 or 2106), against the honest servers' chosen offset
                t = START + e["t_ms"] * 1000
                lie_us = e["offsets_us"][0] - e["chosen_us"]
                assert abs(lie_us - (LIES[lie][1](t) - t)) < 100_000, (where, e)


def test_two_liars_against_two_honest_servers_step_nothing_and_say_so():
    # 5 s behind: a valid clock that needs a step, so every round needs a strict majority.
    # The first two asked are a liar and an honest server: they disagree, so an invalid
    # clock too asks all four (two liars that agree and are asked first would set it).
    for clock_kind, device_us in (("invalid", 0), ("valid, 5 s behind", START - 5_000_000)):
        for lie in LIES:
            where = (lie, clock_kind)
            svc, clock, events = liar_service(device_us, ADDRS[::2], lie)
            before = error_us(clock)
            s = svc.sync()
            assert not s["ok"] and not s["clock_set"] and s["error"] == "disagree", (where, s)
            assert s["servers_tried"] == NAMES, where  # every server asked once, then it stops
            run_for(svc, 12 * HOUR_MS)
            assert svc.rtc.steps == [] and of(events, "step") == [], where
            assert error_us(clock) == before, where
            rounds = of(events, "disagree")
            assert len(rounds) >= 5, where  # each round says so, with all four offsets
            for e in rounds:
                assert sorted(e["servers"]) == NAMES and "chosen_us" not in e, (where, e)
            assert of(events, "backoff"), where  # a round without a decision backs off
            assert len(rounds) <= svc.policy.fails <= len(rounds) + 1, where


def test_two_liars_never_move_a_valid_clock_that_honest_servers_confirm():
    # a valid clock takes a correction under 1 s from one server (R5): the honest servers'
    # ~0 is taken, the liars' hour or year is reported and never followed
    for lie in LIES:
        svc, clock, events = liar_service(START, ADDRS[:2], lie)
        svc.sync()
        run_for(svc, 12 * HOUR_MS)
        assert abs(error_us(clock)) < 1_000 and all(abs(x) < 1_000 for x in svc.rtc.steps)
        liars = {NAMES[0], NAMES[1]}
        disagree = of(events, "disagree")
        assert disagree, lie
        for e in disagree:
            assert set(e["servers"]) <= liars, (lie, e)
        for e in of(events, "step"):
            assert not liars & set(e["servers"]), (lie, e)


def test_three_agreeing_servers_out_of_four_are_a_strict_majority():
    # the other side of the rule, so that the tests above cannot pass by never stepping:
    # an invalid clock follows three agreeing servers out of four (here, three "liars";
    # the first two asked disagree, so all four are)
    svc, clock, events = liar_service(0, ADDRS[:1] + ADDRS[2:], "hour")
    s = svc.sync()
    assert s["clock_set"] and sorted(s["servers"]) == NAMES[:1] + NAMES[2:]
    assert abs(error_us(clock) - HOUR_MS * 1000) < 1_000
    assert of(events, "disagree")[-1]["servers"] == [NAMES[1]]


def test_the_forged_origins_are_guesses_not_the_nonce():
    # the flood above must be off-path: no guessed origin is the real nonce
    nonce = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    origins = Attacker(1).origins(nonce, START + 123_456, START + 7_000_000)
    assert nonce not in origins and len(origins) == 77


# ---- liars that stay under a second: the clock's own error bound out-votes them -----------
# A lone liar 400 ms off, or one whose clock walks away 60 ms a day, is under the 1 s a
# server could once move a valid clock by alone. Now a lone reply counts only within the
# clock's own error bound (policy R5): the liar moves neither the clock nor the drift
# estimate beyond what a run with four honest servers shows.
class Walker(sim.Server):
    """A server whose clock walks away from true time at walk_us_per_day, from the start."""

    def __init__(self, t0_us, walk_us_per_day):
        super().__init__()
        self.t0_us = t0_us
        self.walk = walk_us_per_day

    def reply(self, req, true_us):
        self.offset_us = (true_us - self.t0_us) * self.walk // (86_400 * 1_000_000)
        return super().reply(req, true_us)


def run_with(liar, days=12):
    """A 20 ppm crystal with its daily swing, the discipline on, four servers (liar: the
    third, or None); returns the |clock error| samples after the first day, and the device."""
    osc = sim.Oscillator(20_000, 2_000, rand=Rng(7).below)
    w = zone_world(modes={2: liar} if liar is not None else None)
    d = sim.Device(
        w, {"zone": "acme"}, clock_error_us=0, rand=Rng(3).below, oscillator=osc, discipline=True
    )
    d.boot(0)
    d.run(days * DAY_MS, sample_ms=600_000)
    return sorted(abs(e) for t, e in d.errors if t >= DAY_MS), d


def test_a_lone_liar_under_a_second_moves_neither_the_clock_nor_the_rate():
    honest_errs, h = run_with(None)
    for liar in (sim.Server(offset_us=400_000), Walker(T0, 60_000)):
        errs, d = run_with(liar)
        assert errs[-1] <= max(honest_errs[-1], 100_000), (errs[-1], honest_errs[-1])
        # the rate the clock learned is the honest run's, to within the crystal's wander
        assert abs(d.disc.drift_ppb - h.disc.drift_ppb) <= 2_000, (
            d.disc.drift_ppb,
            h.disc.drift_ppb,
        )
        assert of(d.events, "disagree") or not liar.requests  # reported when it was asked
