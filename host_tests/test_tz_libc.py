# sntp.tz against the C library itself (CPython only: time.localtime and time.mktime after
# os.environ["TZ"] = rule; time.tzset(); glibc here), property-based with hypothesis:
# random rules built from the whole grammar and random instants over 1970-2106; the real
# rules of tools/tzvectors.py at every instant where they may change, one second either
# side, with mktime around each; the committed vector file still what the C library says;
# and fuzzed malformed rules, which raise ValueError and nothing else, and never hang. Then
# the package's edges: nothing imports sntp.tz unless a rule is set, a missing package is a
# reason, and the zone table of docs/localtime.md is tzdata's and reads as the C library.
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from test_tz import civil
from tzvectors import ALL_YEAR, LAST, RULES, changes, local

from sntp import tz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
set_hypothesis_home_dir(os.path.join(ROOT, "build", "hypothesis"))


@pytest.fixture(autouse=True)
def keep_tz():
    old = os.environ.get("TZ")
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def use(rule):
    os.environ["TZ"] = rule
    time.tzset()


def libc_local(t):
    lt = time.localtime(t)
    return tuple(lt[:6]) + (lt.tm_wday, lt.tm_yday, lt.tm_isdst), lt.tm_gmtoff


def test_the_c_library_here_reaches_2106():
    use("UTC0")
    assert time.localtime(1 << 32)[:6] == (2106, 2, 7, 6, 28, 16)


# ---- random rules from the grammar ---------------------------------------------------------
def _hms(draw, hmax):
    h = draw(st.integers(0, hmax))
    text = str(h) if draw(st.booleans()) or h > 9 else "0" + str(h)
    form = draw(st.integers(0, 2))
    if form:
        text += ":{:02d}".format(draw(st.integers(0, 59)))
    if form == 2:
        text += ":{:02d}".format(draw(st.integers(0, 59)))
    return draw(st.sampled_from(("", "+", "-"))) + text


@st.composite
def names(draw):
    # quoted, or unquoted starting with Q: never the name of a tzdata file (glibc would
    # read the file, e.g. EST5EDT)
    if draw(st.booleans()):
        inner = draw(st.text("ABCXYZabc0123456789+-", min_size=3, max_size=6))
        return "<" + inner + ">"
    return "Q" + draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=2, max_size=5))


@st.composite
def days(draw):
    kind = draw(st.integers(0, 2))
    if kind == 0:
        m, w, d = draw(st.integers(1, 12)), draw(st.integers(1, 5)), draw(st.integers(0, 6))
        text = "M{}.{}.{}".format(m, w, d)
    elif kind == 1:
        text = "J{}".format(draw(st.integers(1, 365)))
    else:
        text = str(draw(st.integers(0, 365)))
    if draw(st.booleans()):
        text += "/" + _hms(draw, 167)
    return text


@st.composite
def rules(draw):
    text = draw(names()) + _hms(draw, 24)
    if draw(st.integers(0, 4)) == 0:
        return text  # no DST
    text += draw(names())
    if draw(st.booleans()):
        text += _hms(draw, 24)
    return text + "," + draw(days()) + "," + draw(days())


instants = st.one_of(st.integers(0, LAST), st.sampled_from((0, (1 << 31) - 1, 1 << 31, LAST)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(instants, min_size=20, max_size=20))
@example("<-11>11<+13>-13,M3.1.0/167,M10.5.6/-167", [0, LAST])
@example("QAB0QCD0,J1/0,J365/24", [0, 86399, 86400, LAST])
@example("<AAA>5<BBB>,J100/2,J100/3", [0, 8639999, 8640000, LAST])  # start = end: no DST
@example("QAA02QAA00,M2.1.0,M2.1.0", [4294951200])  # 2 hours of standard time a year
def test_random_rules_match_the_c_library(rule, ts):
    r = tz.parse(rule)
    use(rule)
    for t in ts:
        want, off = libc_local(t)
        assert r.localtime(t) == want, (rule, t)
        assert r.utcoffset(t) == off, (rule, t)
        # the wall time back to the instant, with the C library's isdst; glibc's mktime
        # searches in steps of about a week and can miss a season of a few hours (then its
        # answer does not even show that wall time): compared where it does
        assert r.mktime(want) == t, (rule, t)
        back = int(time.mktime(want[:6] + (0, 0, want[8])))
        if libc_local(back)[0] == want:
            assert r.mktime(want) == back, (rule, t)
        # read as the other kind of time: the C library takes that kind's offset from a
        # time nearby that shows it (glibc looks years around; for a rule where it finds
        # none it shifts by one hour, which sntp.tz does not try to mimic)
        # (and only where glibc's answer does not depend on its previous call: its mktime
        # starts from the offset it found last time, which can pick another season here)
        f = 1 - want[8]
        if r.start is not None and _season_nearby(t, f) and _season_nearby(t, want[8]):
            other = _libc_mktime_settled(want[:6] + (0, 0, f))
            if other is not None:
                assert r.mktime(want[:8] + (f,)) == other, (rule, t)


def _libc_mktime_settled(wall):
    """glibc's mktime of wall after two different previous calls, or None if they differ."""
    got = set()
    for primer in ((1970, 1, 2, 0, 0, 0, 0, 0, -1), (2100, 7, 1, 0, 0, 0, 0, 0, -1)):
        time.mktime(primer)
        got.add(int(time.mktime(wall)))
    return got.pop() if len(got) == 1 else None


def _season_nearby(t, isdst):
    """The C library shows isdst for 8 days in a row within 60 days of t."""
    run = 0
    for k in range(-60, 61):
        run = run + 1 if time.localtime(t + k * 86400).tm_isdst == isdst else 0
        if run >= 8:
            return True
    return False


def _expected_mktime_auto(wall):
    """What sntp.tz documents for isdst -1, from the C library's own answers: the instants
    that show this wall time (read as standard, read as DST); one: it; two: the first; none
    (a skipped wall time): read with the offset in force before, which is the later one."""
    c = [int(time.mktime(wall + (0, 0, f))) for f in (0, 1)]
    fits = [t for f, t in enumerate(c) if tuple(time.localtime(t)[:6]) == wall]
    fits = [t for t in fits if time.localtime(t).tm_isdst == c.index(t)]
    if len(fits) == 1:
        return fits[0]
    return min(c) if fits else max(c)


@pytest.mark.parametrize("rule", RULES)
def test_every_change_of_the_real_rules_matches_the_c_library(rule):
    r = tz.parse(rule)
    use(rule)
    n = 0
    for t in changes(rule):
        for u in (t - 1, t, t + 1):
            want, off = local(rule, u)[:9], local(rule, u)[9]  # all year: DST, not glibc's
            assert r.localtime(u) == want, (rule, u)
            assert r.utcoffset(u) == off, (rule, u)
        if r.start is None or rule in ALL_YEAR:
            continue  # no change: nothing to read three ways
        off0, off1 = r.utcoffset(t - 1), r.utcoffset(t)
        n += off0 != off1
        # wall times just before, in and after the change, each read three ways
        walls = {civil(t - 1 + off0)[:6], civil(t + off1)[:6], civil(t + off0)[:6]}
        walls.add(civil(t + (off0 + off1) // 2)[:6])
        for wall in walls:
            for f in (0, 1):
                assert r.mktime(wall + (0, 0, f)) == int(time.mktime(wall + (0, 0, f)))
            assert r.mktime(wall + (0, 0, -1)) == _expected_mktime_auto(wall), (rule, wall)
    assert n == 0 if r.start is None or rule in ALL_YEAR else n > 250


def test_the_vector_file_is_what_the_c_library_says():
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "tzvectors.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.getsize(os.path.join(ROOT, "host_tests", "tz_vectors.txt")) < 300_000


# ---- malformed rules -----------------------------------------------------------------------
class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def parse_in_time(text):
    """tz.parse(text) with a 2 s alarm: a hang fails the test instead of stopping it."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(2)
    try:
        return tz.parse(text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ<>+-:,./0123456789 Jj\x00\u00e9\u0661"


@st.composite
def mutated(draw):
    """A real rule with a few characters replaced, inserted or deleted."""
    text = draw(st.sampled_from(RULES + ("XXX5YYY", "UTC0")))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        c = draw(st.sampled_from(ALPHABET))
        op = draw(st.integers(0, 2))
        if op == 0:
            text = text[:i] + c + text[i + 1 :]
        elif op == 1:
            text = text[:i] + c + text[i:]
        else:
            text = text[:i] + text[i + 1 :]
    return text


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.text(ALPHABET, max_size=40), st.text(max_size=40)))
@example("9" * 10000)
@example("<" + "A" * 10000)
@example("ABC-1DEF," + "J" * 5000)
def test_malformed_rules_raise_only_value_error_and_never_hang(text):
    try:
        r = parse_in_time(text)
    except ValueError as e:
        assert e.args and isinstance(e.args[0], str) and e.args[0]
        return
    # accepted: it works over the whole range, and the C library reads it the same way
    # (where it reads it as a rule: a quoted first name is never a tzdata file name)
    for t in (0, 1 << 31, LAST):
        lt = r.localtime(t)
        assert r.mktime(lt) == t
    if text.startswith("<"):
        use(text)
        for t in (0, 1 << 30, 1 << 31, LAST):
            assert r.localtime(t) == libc_local(t)[0], (text, t)


# ---- the optional package: imported only for a rule ------------------------------------------
def _imports_tz(code):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "firmware"))
    r = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('sntp.tz' in sys.modules)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() == "True"


def test_the_core_and_a_configuration_without_tz_never_import_it(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"zone": "acme"}')
    load = "from sntp import config, console; config.load({!r})".format(str(path))
    assert not _imports_tz("import sntp.aio, sntp.service, sntp.store\n" + load)
    path.write_text('{"zone": "acme", "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}')
    assert _imports_tz(load)


def test_a_tz_without_the_package_is_refused_with_a_reason(monkeypatch):
    import sntp
    from sntp import config

    monkeypatch.setitem(sys.modules, "sntp.tz", None)  # import sntp.tz: ImportError
    monkeypatch.delattr(sntp, "tz", raising=False)
    with pytest.raises(ValueError, match="tz: needs the sntp.tz package"):
        config.check("tz", "CET-1CEST,M3.5.0,M10.5.0/3")
    values, warnings = config.validate({"tz": "CET-1"})
    assert values["tz"] is None and warnings == [
        "tz: tz: needs the sntp.tz package (package-tz.json); default used"
    ]


def test_package_tz_installs_with_mip_alone_and_runs(tmp_path):
    # as `mpremote mip install github:OWNER/REPO/package-tz.json` on an empty board
    lib = tmp_path / "lib"
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "mipinstall.py"),
            "package-tz.json",
            str(lib),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(str(p.relative_to(lib)) for p in lib.rglob("*")) == ["sntp", "sntp/tz.mpy"]
    code = "from sntp import tz; print(tz.parse('IST-1GMT0,M10.5.0,M3.5.0/1').localtime(0))"
    r = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "micropython"), "-c", code],
        env=dict(os.environ, MICROPYPATH=str(lib)),
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout.strip() == "(1970, 1, 1, 0, 0, 0, 3, 1, 1)", r.stderr


# ---- docs/localtime.md -----------------------------------------------------------------------
def doc_table():
    """(zone, rule) of each row of the zone table in docs/localtime.md."""
    rows = []
    with open(os.path.join(ROOT, "docs", "localtime.md")) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ") and len(cells) == 2 and cells[1].startswith("`"):
                rows.append((cells[0].split(",")[0], cells[1].strip("`")))
    return rows


def test_the_docs_zone_table_is_tzdata_and_reads_as_the_c_library_does():
    rows = doc_table()
    assert len(rows) >= 15
    for zone, rule in rows:
        r = tz.parse(rule)
        path = os.path.join("/usr/share/zoneinfo", zone)
        if os.path.isfile(path):  # the last line of the zone file is the rule
            with open(path, "rb") as f:
                assert f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode() == rule, zone
        use(rule)
        for t in range(0, LAST, 86400 * 97 + 3613):
            assert r.localtime(t) == libc_local(t)[0], (zone, t)
