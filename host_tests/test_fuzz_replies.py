# Property-based tests of the reply decoder and checks (hypothesis, CPython only):
# (a) no bytes of any length, from any source, at any receive time make receive() raise;
# (b) an honest reply with one on-wire rule broken is rejected with that rule's named reason,
#     or ignored when it is not our reply (docs/rules.md rules 5 and 6);
# (c) honest replies anywhere in the era window (rule 9), with offsets up to +/-68 years,
#     random delays and 1970 or 2000 port epochs, are accepted with the offset the standard
#     formula gives, to the firmware's integer-microsecond rounding;
# (d) replies with random fields broken at random: every one the firmware accepts passes the
#     independent on-wire checker tools/fuzz/onwire.py, and the firmware's verdict is the
#     checker's (accepted, or the first broken rule's reason).
# Sized to run in about ten seconds; `make fuzz` runs the coverage-guided fuzzer on the same
# oracle for as long as asked.
import os

from fakes import NTP_1970, NTP_2000, SERVER, reply
from fuzz.onwire import (
    DELAY_SLACK,
    ERA,
    FINAL,
    IGNORED,
    MAX_REPLY_LEN,
    Request,
    accepted_problems,
    violations,
)
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from sntp import exchange as ex
from sntp import exchange as packet  # the header's decoding
from sntp.timestamp import BUILD_UNIX_S, refid_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# hypothesis keeps its caches in build/, not in a .hypothesis folder of the work tree
set_hypothesis_home_dir(os.path.join(ROOT, "build", "hypothesis"))

SETTINGS = dict(
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
US = 1_000_000
Y68_S = 1 << 31  # 68 years and 28 days: the largest offset the era window leaves unambiguous
# Rule 9 and docs/design.md: a wire timestamp means the one time in the 136 years (2**32 s) that
# start 50 years (of 365 days) before the firmware's build date. Computed here, not imported:
# the exchanges use the firmware's own pivot, so a pivot off by a day fails the edge cases.
ERA_PIVOT_NTP_S = BUILD_UNIX_S + NTP_1970 - 50 * 365 * 86400
WINDOW_END_S = ERA_PIVOT_NTP_S + ERA
EPOCHS = (NTP_1970, NTP_2000)
ROLLOVER_S = ERA  # 2036-02-07 06:28:16 UTC in NTP seconds: the wire seconds wrap to 0


def ceil_div(a, b):
    return -(-a // b)


class Case:
    """An honest exchange: the local clock (port epoch epoch_s) sends at t1_us; the request
    travels a_us, the server (its clock theta ahead) receives at t2 (in 2**-32 s units since
    1900, full era), spends p units, transmits at t3; the reply travels b_us and arrives at
    t4_us (rounded up to the next local microsecond)."""

    def __init__(self, epoch_s, t1_us, t2_units, a_us, b_us, p_units, nonce):
        self.epoch_s = epoch_s
        self.t1_us = t1_us
        self.t2_units = t2_units
        self.t3_units = t2_units + p_units
        self.a_us, self.b_us = a_us, b_us
        self.t4_us = t1_us + a_us + b_us + ceil_div(p_units * US, ERA)
        self.nonce = nonce
        self.request = Request(SERVER, nonce, t1_us, epoch_s, ERA_PIVOT_NTP_S)

    def data(self, **fields):
        """The honest reply (fakes.reply, every field overridable)."""
        wire = {"rx": self.t2_units % (1 << 64), "tx": self.t3_units % (1 << 64)}
        wire["ref"] = (self.t2_units - 16 * ERA) % (1 << 64)
        wire.update(fields)
        return reply(self.nonce, 0, 0, **wire)

    def exchange(self):
        return ex.Exchange(SERVER, self.nonce, self.t1_us, self.epoch_s)

    def theta_us2(self):
        """2 x the exact offset formula in us * 2**32 units: ((T2-T1) + (T3-T4))."""
        epoch_units = self.epoch_s * ERA
        t2 = (self.t2_units - epoch_units) * US
        t3 = (self.t3_units - epoch_units) * US
        return (t2 - self.t1_us * ERA) + (t3 - self.t4_us * ERA)


@st.composite
def honest_cases(draw, max_trip_us=10 * US, max_processing_s=2):
    epoch_s = draw(st.sampled_from(EPOCHS))
    # the local clock anywhere from its epoch (a board that just booted) to the window's end
    t1_us = draw(st.integers(0, (WINDOW_END_S - epoch_s) * US))
    a_us = draw(st.integers(0, max_trip_us))
    b_us = draw(st.integers(0, max_trip_us))
    p_units = draw(st.integers(0, max_processing_s * ERA))
    # the server's receive time: within 68 years of the local clock and inside the window,
    # leaving room for its processing time before the window closes
    t1_s = epoch_s + t1_us // US
    lo_s = max(ERA_PIVOT_NTP_S, t1_s - Y68_S)
    hi_s = min(WINDOW_END_S - max_processing_s - 1, t1_s + Y68_S)
    t2_units = draw(st.integers(lo_s * ERA, hi_s * ERA))
    nonce = draw(st.binary(min_size=8, max_size=8))
    case = Case(epoch_s, t1_us, t2_units, a_us, b_us, p_units, nonce)
    # 2036-02-07 06:28:16.000000000 exactly is 0 on the wire, which means "no time" (RFC 5905
    # section 6): an honest server cannot send that instant, and the firmware says zero-timestamp
    assume(all(v % (1 << 64) for v in (t2_units, case.t3_units, t2_units - 16 * ERA)))
    return case


NONCE = bytes.fromhex("0102030405060708")
# 2036-02-07 06:28:16 UTC: a local clock a second before the wire seconds wrap, the server
# a second after; a board that booted at its epoch (2000) with the server in 2026; the
# edges of the era window.
T_ROLLOVER_1970_US = (ROLLOVER_S - NTP_1970 - 1) * US
EDGE_CASES = [
    Case(NTP_1970, T_ROLLOVER_1970_US, (ROLLOVER_S + 1) * ERA, 20_000, 20_000, 100, NONCE),
    Case(NTP_2000, 0, (BUILD_UNIX_S + NTP_1970) * ERA + 12345, 1, 0, 0, NONCE),
    Case(NTP_1970, 0, (NTP_1970 + Y68_S) * ERA, 0, 0, 0, NONCE),
    Case(NTP_1970, (ERA_PIVOT_NTP_S - NTP_1970) * US, ERA_PIVOT_NTP_S * ERA, 5, 5, 0, NONCE),
    Case(NTP_2000, (WINDOW_END_S - NTP_2000 - 3) * US, (WINDOW_END_S - 3) * ERA, 0, 0, ERA, NONCE),
]


def assert_no_time(r):
    """A reply that failed a check carries no time (rule 5: a KoD's timestamps are never used)."""
    assert r.offset_us is None and r.delay_us is None, r.error
    assert r.t2_us is None and r.t3_us is None, r.error


# ---- (a) nothing raises ------------------------------------------------------------------


@st.composite
def any_datagrams(draw):
    nonce = draw(st.binary(min_size=8, max_size=8))
    data = draw(st.binary(min_size=0, max_size=200))
    if len(data) >= 32 and draw(st.booleans()):  # half with our origin: the final checks
        data = data[:24] + nonce + data[32:]
    if draw(st.booleans()):
        data = bytearray(data)
    source = draw(
        st.one_of(
            st.just(SERVER),
            st.tuples(
                st.sampled_from([SERVER[0], "192.0.2.99", "::1", ""]), st.integers(0, 65535)
            ),
            st.none(),
        )
    )
    t1_us = draw(st.integers(-(1 << 70), 1 << 70))
    t4_us = draw(st.integers(-(1 << 70), 1 << 70))
    epoch_s = draw(st.sampled_from(EPOCHS))
    return nonce, data, source, t1_us, t4_us, epoch_s


@settings(max_examples=1500, **SETTINGS)
@given(case=any_datagrams())
@example(case=(NONCE, b"", SERVER, 0, 0, NTP_1970))
@example(case=(NONCE, bytes(24) + NONCE + bytes(16), SERVER, 0, 0, NTP_2000))
@example(case=(NONCE, b"\xff" * 24 + NONCE + b"\xff" * 16, SERVER, 0, -1, NTP_1970))
def test_any_bytes_from_any_source_at_any_time_never_raise(case):
    nonce, data, source, t1_us, t4_us, epoch_s = case
    e = ex.Exchange(SERVER, nonce, t1_us, epoch_s)
    r = e.receive(data, source, t4_us)
    if r is None:
        assert sum(e.ignored.values()) == 1
        assert e.expire().error in IGNORED
    else:
        assert r.ok == (r.error is None) and (r.error is None or r.error in FINAL)
        if not r.ok:
            assert_no_time(r)
        assert e.receive(data, source, t4_us) is None  # after the result: a duplicate
    if len(data) >= 48:  # the header fields the console and tools/sntp show, of any bytes
        h = packet.Header(data)
        assert len(packet.kiss_code(h.refid)) == 4
        refid_text(h.stratum, h.refid)


# ---- (b) one broken rule, its reason -----------------------------------------------------


def set_bits(data, offset, shift, width, value):
    b = bytearray(data)
    mask = ((1 << width) - 1) << shift
    b[offset] = (b[offset] & ~mask & 0xFF) | (value << shift)
    return bytes(b)


def mutation(draw, case):
    """One on-wire rule broken in the honest reply: (name, data, source, expected reason)."""
    data = case.data()
    kind = draw(
        st.sampled_from(
            [
                "mode",
                "version",
                "stratum-0",
                "stratum-16+",
                "li-3",
                "origin",
                "zero-rx",
                "zero-tx",
                "zero-ref",
                "root-distance",
                "tx-before-rx",
                "processing-longer-than-trip",
                "wrong-source",
                "short",
                "long",
            ]
        )
    )
    source = SERVER
    if kind == "mode":
        data = set_bits(data, 0, 0, 3, draw(st.sampled_from([0, 1, 2, 3, 5, 6, 7])))
        return kind, data, source, ex.BAD_MODE
    if kind == "version":
        data = set_bits(data, 0, 3, 3, draw(st.sampled_from([0, 1, 2, 5, 6, 7])))
        return kind, data, source, ex.BAD_VERSION
    if kind == "stratum-0":
        refid = draw(
            st.one_of(
                st.sampled_from([b"RATE", b"DENY", b"RSTR"]), st.binary(min_size=4, max_size=4)
            )
        )
        li = draw(st.integers(0, 3))
        return kind, case.data(stratum=0, refid=refid, li=li), source, ex.KISS
    if kind == "stratum-16+":
        return kind, case.data(stratum=draw(st.integers(16, 255))), source, ex.UNSYNCHRONIZED
    if kind == "li-3":
        return kind, case.data(li=3), source, ex.UNSYNCHRONIZED
    if kind == "origin":
        origin = draw(st.binary(min_size=8, max_size=8).filter(lambda o: o != case.nonce))
        return kind, data[:24] + origin + data[32:], source, ex.BAD_ORIGIN
    if kind == "zero-rx":
        return kind, case.data(rx=0), source, ex.ZERO_TIMESTAMP
    if kind == "zero-tx":
        return kind, case.data(tx=0), source, ex.ZERO_TIMESTAMP
    if kind == "zero-ref":
        return kind, case.data(ref=0), source, ex.NO_REFERENCE
    if kind == "root-distance":
        # root delay / 2 + root dispersion > 1.5 s, in 2**-16 s units: 2 * disp + delay > 3 * 2**16
        disp = draw(st.integers(0, (1 << 32) - 1))
        delay = draw(st.integers(max(0, 3 * 65536 - 2 * disp + 1), (1 << 32) - 1))
        return kind, case.data(root_delay=delay, root_disp=disp), source, ex.TOO_FAR
    if kind == "tx-before-rx":
        # transmit any amount before receive, down to one 2**-32 s unit, in the same window
        assume(case.t2_units > ERA_PIVOT_NTP_S * ERA)
        back = draw(st.integers(1, min(case.t2_units - ERA_PIVOT_NTP_S * ERA, 100 * ERA)))
        tx = (case.t2_units - back) % (1 << 64)
        assume(tx != 0)
        return kind, case.data(tx=tx), source, ex.BAD_TIMESTAMPS
    if kind == "processing-longer-than-trip":
        # the server claims to have held the request longer than the whole round trip took,
        # by more than the 1 ms slack (and the firmware's rounding)
        limit_us = case.t4_us - case.t1_us + DELAY_SLACK * US + 2
        hold = ceil_div(int(limit_us) * ERA, US) + draw(st.integers(1, 10 * ERA))
        assume((case.t2_units + hold) % (1 << 64) != 0)
        return kind, case.data(tx=(case.t2_units + hold) % (1 << 64)), source, ex.BAD_TIMESTAMPS
    if kind == "wrong-source":
        source = draw(
            st.tuples(st.sampled_from([SERVER[0], "192.0.2.2", "::1"]), st.integers(0, 65535))
        )
        source = source if source != SERVER else (SERVER[0], SERVER[1] + 1)
        return kind, data, source, ex.WRONG_SOURCE
    if kind == "long":  # extension fields after the header, or a datagram cut at net.RECV_LEN
        tail = draw(st.binary(min_size=MAX_REPLY_LEN - len(data) + 1, max_size=200))
        return kind, data + tail, source, ex.LONG
    cut = draw(st.integers(0, 47))
    return kind, data[:cut], source, ex.SHORT


@st.composite
def broken_replies(draw):
    case = draw(honest_cases(max_trip_us=US, max_processing_s=1))
    return (case,) + mutation(draw, case)


@settings(max_examples=1500, **SETTINGS)
@given(broken=broken_replies())
def test_a_reply_with_one_rule_broken_is_rejected_with_that_reason(broken):
    case, kind, data, source, reason = broken
    # the oracle names the same rule first (a check of the checker)
    assert violations(case.request, data, source, case.t4_us)[:1] == [reason], kind
    e = case.exchange()
    r = e.receive(data, source, case.t4_us)
    if reason in IGNORED:
        assert r is None and e.ignored == {reason: 1}, (kind, r and r.error)
        assert e.expire().error == reason
        return
    assert r is not None, (kind, e.ignored)
    assert not r.ok and r.error == reason, (kind, r.error)
    assert_no_time(r)
    if reason == ex.KISS:
        code = "".join(chr(c) if 0x20 < c < 0x7F else "?" for c in data[12:16])
        assert r.kiss == code


# ---- (c) honest replies anywhere in the window -------------------------------------------


@settings(max_examples=1500, **SETTINGS)
@given(case=honest_cases(), extras=st.tuples(st.integers(0, 2), st.integers(1, 15), st.binary()))
def test_honest_replies_give_the_generated_offset(case, extras):
    li, stratum, tail = extras
    data = case.data(li=li, stratum=stratum, extra=tail[: MAX_REPLY_LEN - 48])  # a MAC
    assert violations(case.request, data, SERVER, case.t4_us, band=-1) == []
    r = case.exchange().receive(data, SERVER, case.t4_us)
    assert r is not None and r.ok, r and r.error
    # offset: ((T2 - T1) + (T3 - T4)) / 2 (positive: the local clock is behind). The
    # firmware rounds T2 and T3 to the nearest us and floors the half: within [-1.5, +0.5] us.
    exact2 = case.theta_us2()  # 2 x offset, in us x 2**32
    assert -3 * ERA <= r.offset_us * 2 * ERA - exact2 <= ERA, (r.offset_us, exact2 / 2 / ERA)
    # the formula itself is the server's lead to within half the path asymmetry
    theta_units = case.t2_units - (
        case.epoch_s * ERA + ceil_div((case.t1_us + case.a_us) * ERA, US)
    )
    assert abs(r.offset_us - theta_units * US // ERA) <= abs(case.a_us - case.b_us) // 2 + 3
    # delay: the two trips plus the rounding up of the processing time, within 1 us
    assert abs(r.delay_us - (case.a_us + case.b_us)) <= 2
    # the server's time, era-resolved: T3 to the nearest us
    t3_us2 = 2 * ((case.t3_units - case.epoch_s * ERA) * US)
    assert abs(r.t3_us * 2 * ERA - t3_us2) <= ERA
    assert accepted_problems(case.request, data, SERVER, case.t4_us, r) == []


@given(case=st.sampled_from(EDGE_CASES))
@settings(max_examples=len(EDGE_CASES) * 3, **SETTINGS)
def test_honest_replies_at_the_era_edges(case):
    r = case.exchange().receive(case.data(), SERVER, case.t4_us)
    assert r is not None and r.ok, r and r.error
    assert accepted_problems(case.request, case.data(), SERVER, case.t4_us, r) == []


# ---- (d) random breakage: the firmware's verdict is the independent checker's -------------


def near(center, spread):
    return st.integers(max(0, center - spread), min((1 << 32) - 1, center + spread))


FIELDS = ("byte0", "stratum", "root_delay", "root_disp", "rx", "tx", "ref", "origin")
FIELDS += ("length", "source", "t4")


@st.composite
def perturbed_replies(draw):
    """An honest reply with up to three of its fields (or its length, source, arrival time)
    set to random or boundary values (some of them still valid)."""
    case = draw(honest_cases(max_trip_us=US, max_processing_s=1))
    chosen = draw(st.permutations(FIELDS))[: draw(st.integers(1, 3))]
    f = {}
    if "byte0" in chosen:
        f["li"], f["vn"], f["mode"] = draw(st.integers(0, 3)), draw(st.integers(0, 7)), 4
        if draw(st.booleans()):
            f["mode"] = draw(st.integers(0, 7))
    if "stratum" in chosen:
        f["stratum"] = draw(st.one_of(st.sampled_from([0, 1, 15, 16, 255]), st.integers(0, 255)))
        f["refid"] = draw(st.binary(min_size=4, max_size=4))
    if "root_delay" in chosen:
        f["root_delay"] = draw(st.one_of(near(3 << 16, 2), st.integers(0, (1 << 32) - 1)))
    if "root_disp" in chosen:
        f["root_disp"] = draw(
            st.one_of(near(3 << 15, 2), near(1 << 16, 2), st.integers(0, 1 << 20))
        )
    wire = st.one_of(
        st.just(0),
        st.integers(0, (1 << 64) - 1),
        st.integers(-3 * ERA, 3 * ERA).map(lambda d: (case.t2_units + d) % (1 << 64)),
        # around the wire seconds' wrap and around the era pivot
        st.integers(-ERA, ERA).map(lambda d: d % (1 << 64)),
        st.integers(-ERA, ERA).map(lambda d: (ERA_PIVOT_NTP_S * ERA + d) % (1 << 64)),
    )
    for name in ("rx", "tx", "ref"):
        if name in chosen:
            f[name] = draw(wire)
    data = case.data(**f)
    if "origin" in chosen:  # one bit off, zero, or the transmit timestamp
        bit = draw(st.integers(0, 63))
        origin = int.from_bytes(case.nonce, "big") ^ (1 << bit)
        origin = draw(st.sampled_from([origin.to_bytes(8, "big"), bytes(8), data[40:48]]))
        data = data[:24] + origin + data[32:]
    if "length" in chosen:
        data = data[: draw(st.integers(0, 60))]
    source = ("192.0.2.2", 123) if "source" in chosen else SERVER
    t4_us = case.t4_us
    if "t4" in chosen:  # anything from 10 s before the send to a minute after it
        t4_us = case.t1_us + draw(st.integers(-10 * US, 60 * US))
    return case, data, source, t4_us


@settings(max_examples=3000, **SETTINGS)
@given(p=perturbed_replies())
def test_the_firmware_verdict_is_the_independent_checkers(p):
    case, data, source, t4_us = p
    e = case.exchange()
    r = e.receive(data, source, t4_us)
    event("accepted" if r is not None and r.ok else (r.error if r else "ignored"))
    if r is not None and r.ok:
        assert accepted_problems(case.request, data, source, t4_us, r) == []
    else:
        assert r is None or r.error is not None
    lenient = violations(case.request, data, source, t4_us, band=1)
    strict = violations(case.request, data, source, t4_us, band=-1)
    if lenient != strict:
        return  # within a microsecond of the delay limit: either verdict is right
    if not strict:
        assert r is not None and r.ok, (r and r.error, e.ignored)
    elif strict[0] in IGNORED:
        assert r is None and e.ignored == {strict[0]: 1}, (strict, r and r.error)
    else:
        assert r is not None and r.error == strict[0], (strict, r and r.error, e.ignored)
        assert_no_time(r)


def test_make_fuzz_shows_progress_while_it_runs(tmp_path):
    # a stand-in for libFuzzer: its status lines, over about 1.5 s
    import subprocess
    import sys

    from fuzz import run as fuzz_run

    log = tmp_path / "fuzz.log"
    script = (
        "import sys, time\n"
        "for i in range(1, 4):\n"
        "    print('#%d pulse  cov: %d ft: %d corp: %d/%db exec/s: 1'\n"
        "          % (i * 1000, 70 + i, 100 + i, 40 + i, 900), flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    said = []
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=f)
        rc = fuzz_run.watch(proc, str(log), 2, every_s=0.3, say=said.append)
    assert rc == 0 and len(said) >= 2, said
    assert said[-1].startswith("fuzz: ") and " of 2 s, " in said[-1]
    assert any("3,000 executions, cov 73 ft 103, corpus 43 inputs" in x for x in said) or any(
        "2,000 executions, cov 72 ft 102, corpus 42 inputs" in x for x in said
    ), said
