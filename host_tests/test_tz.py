# runs-on: both
# Local time (firmware/sntp/tz.py) against the C library's answers in tz_vectors.txt (written
# by tools/tzvectors.py from glibc): random instants, every instant where a rule may change
# its offset in 1970-2106 and one second either side, mktime of wall times (isdst -1, 0, 1),
# and around each change what mktime picks for a wall time that occurs twice or never. Then
# malformed rules (ValueError with a reason) and allocation (MicroPython: only the tuple).
# The same file runs under CPython, the unix-port MicroPython and any mprun-style runner;
# host_tests/test_tz_libc.py asks the C library directly (CPython only).
import gc
import sys

from sntp import tz

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
VECTORS = _HERE + "/tz_vectors.txt"
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def civil(t):
    """Seconds since 1970 -> (Y, M, D, h, m, s, weekday 0=Monday, yearday): the slow obvious
    way (a year, then a month at a time), to check tz.py's arithmetic against."""
    days = t // 86400 + 365  # from 1969, for local times just before 1970 UTC
    sod = t % 86400
    y = 1969
    while True:
        n = 366 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 365
        if days < n:
            break
        days -= n
        y += 1
    yday = days + 1
    leap = n == 366
    m = 1
    while True:
        n = 29 if m == 2 and leap else _MONTH_DAYS[m - 1]
        if days < n:
            break
        days -= n
        m += 1
    wday = (t // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    return (y, m, days + 1, sod // 3600, sod // 60 % 60, sod % 60, wday, yday)


def vectors():
    """(rule text, [L fields], [T fields], [K fields]) for each rule in the file, one rule at
    a time (a 32-bit port holds one rule's lines, not the file's)."""
    block = None
    with open(VECTORS) as f:
        for line in f:
            if line.startswith("#"):
                continue
            if line.startswith("R "):
                if block is not None:
                    yield block
                block = (line[2:].strip(), [], [], [])
                continue
            kind = "LTK".index(line[0]) + 1
            block[kind].append(tuple(int(v) for v in line[2:].split()))
    if block is not None:
        yield block


def test_the_vector_file_has_every_rule_and_the_whole_range():
    n = 0
    for rule, ls, ts, ks in vectors():
        n += 1
        assert len(ls) >= 60 and len(ks) >= 20, rule
        assert len(ts) >= 136, rule  # each 1 January, 1971-2106, at least
        assert max(v[0] for v in ls) == (1 << 32) - 1, rule
    assert n >= 15


def test_civil_agrees_with_the_c_library():
    # the oracle below for the changes: the C library's local time of T is civil(T + offset)
    for rule, ls, _, _ in vectors():
        for v in ls:
            assert civil(v[0] + v[10]) == v[1:9], (rule, v)


def test_localtime_and_utcoffset_match_the_c_library():
    for rule, ls, _, _ in vectors():
        r = tz.parse(rule)
        for v in ls:
            assert r.localtime(v[0]) == v[1:10], (rule, v[0])
            assert r.utcoffset(v[0]) == v[10], (rule, v[0])


def test_every_change_and_one_second_either_side_match_the_c_library():
    n = 0
    for rule, _, ts, _ in vectors():
        r = tz.parse(rule)
        for t, off0, dst0, off1, dst1 in ts:
            for u, off, dst in ((t - 1, off0, dst0), (t, off1, dst1), (t + 1, off1, dst1)):
                assert r.utcoffset(u) == off, (rule, u)
                assert r.localtime(u) == civil(u + off) + (dst,), (rule, u)
            n += off0 != off1
    assert n > 3000  # the rules with DST change twice a year


def _alone(ts, i, span):
    """True when no other change of the rule lies within span seconds of change i."""
    t = ts[i][0]
    for j in (i - 1, i + 1):
        if 0 <= j < len(ts) and ts[j][2] != ts[j][4] and abs(ts[j][0] - t) <= span:
            return False
    return True


def test_mktime_around_every_change():
    # isdst 0 or 1 reads the wall time with that offset; -1 (or 8 fields): the one in force,
    # and for a wall time that occurs twice or never, the one in force before the change
    for rule, _, ts, _ in vectors():
        r = tz.parse(rule)
        for i, (t, off0, dst0, off1, dst1) in enumerate(ts):
            before = civil(t - 1 + off0)
            after = civil(t + off1)
            assert r.mktime(before + (dst0,)) == t - 1, (rule, t)
            assert r.mktime(after + (dst1,)) == t, (rule, t)
            if off0 == off1 or not _alone(ts, i, 2 * abs(off0 - off1)):
                continue
            assert r.mktime(before + (-1,)) == t - 1, (rule, t)
            assert r.mktime(before[:8]) == t - 1, (rule, t)
            if off1 < off0:  # clocks go back: after's wall time was first seen off0-off1 ago
                assert r.mktime(after + (-1,)) == t - (off0 - off1), (rule, t)
            else:  # clocks go forward: the skipped wall times are read with off0
                gap = civil(t + off0)
                assert r.mktime(gap + (-1,)) == t, (rule, t)
                last = civil(t + off1 - 1)
                assert r.mktime(last + (-1,)) == t + (off1 - off0) - 1, (rule, t)
                assert r.mktime(after + (-1,)) == t, (rule, t)


def test_mktime_matches_the_c_library():
    for rule, _, _, ks in vectors():
        r = tz.parse(rule)
        for v in ks:
            wall = v[:6]
            for f, want in ((-1, v[6]), (0, v[7]), (1, v[8])):
                assert r.mktime(wall + (0, 0, f)) == want, (rule, wall, f)


def test_mktime_carries_fields_out_of_range_as_c_does():
    r = tz.parse("CET-1CEST,M3.5.0,M10.5.0/3")
    # month 14 of 2024, day 40, 25:70:-5 is 2025-03-13 02:09:55, standard time
    t = r.mktime((2024, 14, 40, 25, 70, -5, 0, 0, -1))
    assert t == r.mktime((2025, 3, 13, 2, 9, 55, 0, 0))
    assert r.localtime(t)[:6] == (2025, 3, 13, 2, 9, 55)
    assert r.mktime((2025, 0, 1, 0, 0, 0, 0, 0, 0)) == r.mktime((2024, 12, 1, 0, 0, 0, 0, 0, 0))


def test_a_dst_name_without_a_rule_gets_the_documented_default():
    short = tz.parse("XXX5YYY")
    full = tz.parse("XXX5YYY,M3.2.0,M11.1.0")
    assert short.std == full.std == -5 * 3600 and short.dst == full.dst == -4 * 3600
    for t in range(0, (1 << 32) - 86400, 86400 * 7 + 3599):
        assert short.localtime(t) == full.localtime(t)
    assert tz.parse("XXX5YYY3").dst == -3 * 3600


def test_a_rule_in_effect_all_year_is_dst_on_31_december_too():
    # POSIX Jn never counts 29 February: J365 is 31 December in every year, and this rule
    # (RFC 8536 3.3.1) is DST all year, the last hours of 31 December included (1984 and 2092
    # are leap years): 1 January 00:00-04:00 UTC is 31 December 21:00-01:00 local
    r = tz.parse("WART4WARST,J1/0,J365/25")
    for y in (1983, 1984, 1985, 2092):
        new_year = sum(366 if z % 4 == 0 and z != 2100 else 365 for z in range(1970, y + 1))
        new_year *= 86400  # 1 January of y + 1, 00:00 UTC
        assert civil(new_year)[:3] == (y + 1, 1, 1)
        for t in (new_year - 3 * 3600, new_year, new_year + 3 * 3600, new_year + 4 * 3600):
            assert r.utcoffset(t) == -3 * 3600, (y, t)
        assert r.localtime(new_year - 1)[:4] == (y, 12, 31, 20)
        assert r.localtime(new_year - 1)[8] == 1


def test_names_and_offsets():
    r = tz.parse("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45")
    assert r.names == ("+1245", "+1345")
    assert r.std == 12 * 3600 + 45 * 60 and r.dst == r.std + 3600
    r = tz.parse("IST-5:30")
    assert r.names == ("IST", "IST") and r.start is None
    assert r.utcoffset(1 << 31) == 19800 and r.localtime(0)[8] == 0
    assert tz.parse("UTC0").localtime(951782400) == (2000, 2, 29, 0, 0, 0, 1, 60, 0)
    assert tz.parse("ABC+1:02:03").std == -3723
    assert tz.parse("ABC-24XYZ+24,J1/-167,J365/167").dst == -86400


BAD = (
    "",
    "UTC",
    "CET",
    "AB1",
    "A1",
    "<AB>1",
    "<ABC1",
    "<A_C>1",
    "ABC",
    "ABC+",
    "ABC25",
    "ABC-1:60",
    "ABC-1:5",
    "ABC-1:00:60",
    "ABC-1x",
    "ABC-1CEST,",
    "ABC-1CEST,M3.5.0",
    "ABC-1CEST,M3.5.0,",
    "ABC-1CEST,M3.5.0,M10.5.0,",
    "ABC-1CEST,M13.5.0,M10.5.0",
    "ABC-1CEST,M0.5.0,M10.5.0",
    "ABC-1CEST,M3.6.0,M10.5.0",
    "ABC-1CEST,M3.0.0,M10.5.0",
    "ABC-1CEST,M3.5.7,M10.5.0",
    "ABC-1CEST,M3.5,M10.5.0",
    "ABC-1CEST,M3,M10.5.0",
    "ABC-1CEST,J0,J100",
    "ABC-1CEST,J366,J100",
    "ABC-1CEST,366,100",
    "ABC-1CEST,-1,100",
    "ABC-1CEST,J1/168,J100",
    "ABC-1CEST,J1/-168,J100",
    "ABC-1CEST,J1/,J100",
    "ABC-1CEST,J1/1:2,J100",
    "ABC-1CEST-25,J1,J100",
    "ABC-1CE,J1,J100",
    "ABC-1CEST,J1,J100 ",
    " ABC-1",
    "ABC -1",
    "Europe/Berlin",
    ":Europe/Berlin",
    "ÄBC-1",
    "ABC-１",
    "\u212aAB-1",  # the Kelvin sign: CPython lowers it to k
)


def test_malformed_rules_raise_value_error_with_a_reason():
    for text in BAD:
        assert reason(text), text
    # the position is the first character that does not fit
    assert reason("CET-1CEST,M3.5.0,M10.5.9") == "0-6 expected at 23"
    assert reason("CET-1:5") == "2 digits expected at 6"
    assert reason("CET") == "offset expected at 3 (POSIX writes UTC as UTC0)"
    assert reason("UTC") == "offset expected at 3 (POSIX writes UTC as UTC0)"
    assert reason("CET-") == "0-24 expected at 4"


def test_a_zone_name_says_it_is_not_a_rule():
    for text in ("Europe/Berlin", ":America/New_York"):
        assert "zone name" in reason(text), text


def reason(text):
    """The reason tz.parse gives for rejecting text (AssertionError if it accepts it)."""
    try:
        tz.parse(text)
    except ValueError as e:
        return e.args[0]
    raise AssertionError("accepted {!r}".format(text))


def test_localtime_allocates_only_its_tuple():
    if sys.implementation.name != "micropython":
        return  # CPython allocates for every int
    r = tz.parse("AEST-10AEDT,M10.1.0,M4.1.0/3")
    t = 1 << 29  # a small int on every port (a Unix time past 2**30 is a big int on 32 bits)
    r.localtime(t)
    r.mktime((2001, 2, 3, 4, 5, 6, 0, 0, -1))
    a = b = c = d = e = f = g = h = i = 1
    gc.collect()
    gc.disable()
    try:
        m0 = gc.mem_alloc()
        x = (a, b, c, d, e, f, g, h, i)
        m1 = gc.mem_alloc()
        y = r.localtime(t)
        m2 = gc.mem_alloc()
        r.utcoffset(t)
        r.mktime((2001, 2, 3, 4, 5, 6, 0, 0, -1))  # a constant tuple: nothing to build
        m3 = gc.mem_alloc()
    finally:
        gc.enable()
    assert len(x) == len(y) == 9
    assert m2 - m1 == m1 - m0 > 0, (m1 - m0, m2 - m1)
    assert m3 == m2, m3 - m2


def test_the_configuration_validates_tz_with_the_parser():
    from sntp import config

    rule = "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0"
    assert config.parse_value("tz", rule) == rule and config.defaults()["tz"] is None
    values, warnings = config.validate({"tz": "CET-1CEST,M3.5.0,M10.5.0/8:0"})
    assert values["tz"] is None and warnings == ["tz: tz: 2 digits expected at 27; default used"]
    values, warnings = config.validate({"tz": rule, "zone": "acme"})
    assert values["tz"] == rule and not warnings
