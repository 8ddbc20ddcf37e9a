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
)
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


def lines_for(rule, rnd):
    use(rule)
    out = ["R " + rule]
    instants = [0, 1, (1 << 31) - 1, 1 << 31, LAST - 1, LAST]
    instants += [rnd.randrange(0, LAST + 1) for _ in range(RANDOM_INSTANTS)]
    for t in instants:
        lt = time.localtime(t)
        out.append("L {} {} {} {}".format(t, " ".join(map(str, lt[:6])), lt.tm_wday, lt.tm_yday))
        out[-1] += " {} {}".format(lt.tm_isdst, lt.tm_gmtoff)
    for t in changes(rule):
        a, b, c = time.localtime(t - 1), time.localtime(t), time.localtime(t + 1)
        if (b.tm_gmtoff, b.tm_isdst) != (c.tm_gmtoff, c.tm_isdst):
            raise SystemExit("{}: the C library changes at {} + 1 s".format(rule, t))
        out.append("T {} {} {} {} {}".format(t, a.tm_gmtoff, a.tm_isdst, b.tm_gmtoff, b.tm_isdst))
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
