#!/usr/bin/env python3
"""tools/tzvectors.py: write host_tests/tz_vectors.txt, the C library's local times for the
rules of RULES, for the shared local-time tests (host_tests/test_tz.py) to check sntp.tz
against on MicroPython, where there is no C library to ask.

    .venv/bin/python tools/tzvectors.py [--check]

Every value comes from CPython's time module after os.environ["TZ"] = rule; time.tzset()
(glibc on this host). The instants where the offset may change are found with sntp.tz's own
rule computation (each start and end, 1970-2106, and each 1 January 00:00 UTC, where the
year whose rule applies turns over); the C library is asked about each one at T-1 and T,
and must say at T+1 what it says at T. Wall times for mktime are drawn away from changes
(what mktime picks near one is checked from the T lines). --check: exit 1 when the file
differs from what this host's C library says now.

The file, one fact a line:
  R RULE                               the rule for the lines below
  L T Y M D h m s WDAY YDAY DST OFF    time.localtime(T) and its tm_gmtoff
  T T OFF0 DST0 OFF1 DST1              offset and isdst at T-1, and at T (and T+1)
  K Y M D h m s T-1 T0 T1              time.mktime of that wall time with isdst -1, 0, 1
"""

import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "firmware"))

from sntp import tz  # noqa: E402 - after the path

OUT = os.path.join(ROOT, "host_tests", "tz_vectors.txt")
RULES = (
    "CET-1CEST,M3.5.0,M10.5.0/3",  # Europe/Berlin
    "EST5EDT,M3.2.0,M11.1.0",  # America/New_York
    "AEST-10AEDT,M10.1.0,M4.1.0/3",  # Australia/Sydney: DST across the new year
    "<+0330>-3:30",  # Asia/Tehran today: no DST, quoted name
    "IST-1GMT0,M10.5.0,M3.5.0/1",  # Europe/Dublin: negative DST
    "<-03>3<-02>,M3.2.0/-2,M11.1.0/-1",  # America/Godthab as once proposed: negative times
    "<-03>3<-02>,M10.3.0/0,M2.3.0/0",  # America/Sao_Paulo until 2019
    "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",  # Australia/Lord_Howe: 30-minute DST
    "IST-5:30",  # Asia/Kolkata
    "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",  # America/Nuuk
    "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",  # Pacific/Chatham
    "<+0330>-3:30<+0430>,J79/24,J263/24",  # Asia/Tehran until 2022: Jn at 24:00
    "XXX5YYY,59/-2,300/167",  # zero-based days, the extreme times
    "XXX3YYY,J59/23,J60",  # Julian days either side of 29 February
    "EST5EDT,0/0,J365/25",  # DST all year, as tzdata writes it
    "<-11>11<+13>-13,M3.1.0/167,M10.5.6/-167",  # offsets 24 h apart, times a week away
    "WART4WARST,J1/0,J365/25",  # DST all year with J days: J365 is 31 December in leap years
)
# Rules in effect all year (RFC 8536 section 3.3.1: DST from 1 January 00:00 standard time to
# 31 December 24:00 standard time; POSIX's Jn never counts 29 February, so J365 is always
# 31 December). glibc judges an instant by the changes of its own UTC year, so it gives
# standard time in the hours of each 1 January before that year's start, which such a rule
# does not have. Their L and T lines come from the C library for the same offset without
# DST (the rule on the right), marked DST; the K lines (away from 1 January) from the rule.
ALL_YEAR = {
    "EST5EDT,0/0,J365/25": "<EDT>4",
    "WART4WARST,J1/0,J365/25": "<WARST>3",
}
SEED = 20261130
RANDOM_INSTANTS = 60  # per rule, plus the ends of the range
RANDOM_WALLS = 24  # per rule
LAST = (1 << 32) - 1  # 2106-02-07 06:28:15 UTC


def use(rule):
    os.environ["TZ"] = rule
    time.tzset()


def changes(rule):
    """The instants where rule may change its offset or isdst, 1970-2106, by sntp.tz."""
    r = tz.parse(rule)
    out = set()
    for y in range(1970, 2107):
        y0 = tz._y0(y)
        out.add(y0 * 86400)
        if r.start is not None:
            for c in (r.start, r.end):
                out.add(y0 * 86400 + tz._at(c, y0, tz._leap(y)))
    return sorted(t for t in out if 0 < t <= LAST)


def local(rule, t):
    """time.localtime(t) under rule: (fields 0-5, wday, yday, isdst, gmtoff)."""
    if rule in ALL_YEAR:
        use(ALL_YEAR[rule])
        lt = time.localtime(t)
        use(rule)
        return tuple(lt[:6]) + (lt.tm_wday, lt.tm_yday, 1, lt.tm_gmtoff)
    lt = time.localtime(t)
    return tuple(lt[:6]) + (lt.tm_wday, lt.tm_yday, lt.tm_isdst, lt.tm_gmtoff)


def lines_for(rule, rnd):
    use(rule)
    out = ["R " + rule]
    instants = [0, 1, (1 << 31) - 1, 1 << 31, LAST - 1, LAST]
    instants += [rnd.randrange(0, LAST + 1) for _ in range(RANDOM_INSTANTS)]
    for t in instants:
        out.append("L {} {}".format(t, " ".join(map(str, local(rule, t)))))
    for t in changes(rule):
        a, b, c = local(rule, t - 1), local(rule, t), local(rule, t + 1)
        if b[-2:] != c[-2:]:
            raise SystemExit("{}: the C library changes at {} + 1 s".format(rule, t))
        out.append("T {} {} {} {} {}".format(t, a[-1], a[-2], b[-1], b[-2]))
    walls = 0
    while walls < RANDOM_WALLS:
        t = rnd.randrange(2 * 86400, LAST - 2 * 86400)
        if len({time.localtime(t + d).tm_gmtoff for d in (-2 * 86400, 0, 2 * 86400)}) > 1:
            continue  # near a change: what mktime picks there is checked from the T lines
        walls += 1
        wall = tuple(time.localtime(t)[:6])
        ts = [int(time.mktime(wall + (0, 0, f))) for f in (-1, 0, 1)]
        out.append("K {} {}".format(" ".join(map(str, wall)), " ".join(map(str, ts))))
    return out


def generate():
    if time.localtime(1 << 32).tm_year != 2106:
        raise SystemExit("this C library's time_t stops before 2106")
    rnd = random.Random(SEED)
    lines = [
        "# sntp.tz test vectors: the C library's answers, written by tools/tzvectors.py;"
        " do not edit"
    ]
    for rule in RULES:
        lines += lines_for(rule, rnd)
    return "\n".join(lines) + "\n"


def main(argv):
    text = generate()
    if "--check" in argv:
        with open(OUT) as f:
            same = f.read() == text
        print("{}: {}".format(OUT, "up to date" if same else "differs from the C library"))
        return 0 if same else 1
    with open(OUT, "w") as f:
        f.write(text)
    print("{}: {} bytes".format(OUT, len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
