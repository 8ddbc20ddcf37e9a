# Local time from a POSIX TZ rule string (POSIX.1-2024 TZ), integers only. An optional
# package (package-tz.json, manifests/sntp-tz): the sync core never imports it.
#
#   r = tz.parse("CET-1CEST,M3.5.0,M10.5.0/3")  # ValueError(reason) for a bad rule
#   r.localtime(unix_s) -> (year, month, mday, hour, minute, second, weekday 0=Monday,
#                           yearday 1..366, isdst)
#   r.utcoffset(unix_s) -> seconds east of UTC;  r.names -> (standard name, DST name)
#   r.mktime(tuple) -> unix_s (fields out of range are carried, as in C)
#
# Grammar: std offset [dst [offset] [,start[/time],end[/time]]]. A name is 3 or more letters,
# or <...> of letters, digits, + and -. An offset is [+-]hh[:mm[:ss]], hh 0-24, west of UTC
# positive; the DST offset defaults to one hour east of standard. A day is Jn (1-365, 29
# February never counted), n (0-365, counted) or Mm.w.d (month, week 1-5 with 5 = the last,
# weekday 0 = Sunday); a time is [+-]hh[:mm[:ss]], hh 0-167, default 02:00, in the local time
# in force before the change. A DST name without a rule gets M3.2.0,M11.1.0 (POSIX leaves it
# to the implementation; glibc's built-in rule is this one).
#
# As the C library does (glibc), an instant is judged by the changes of its UTC year: in the
# UTC year y, DST is on from start(y) to end(y), or outside end(y)..start(y) when the end
# comes first (southern hemisphere).
#
# mktime: isdst 0 reads the wall time as standard time, isdst 1 as DST (without DST in the
# rule, one hour ahead of standard: as glibc). isdst -1 (or an 8-field tuple) picks the
# offset in force at that wall time; a wall time that occurs twice (clocks going back) or
# never (clocks going forward) is read with the offset in force before the change: the first
# of the two, or the instant that far after the change (02:30 skipped becomes 03:30).
#
# Correct 1970-2106 on 32-bit ports: the argument is split into days and seconds first, so
# the rest is small ints (a Unix time past 2**30 is itself a big int there); no allocation
# but the result tuple. docs/localtime.md has the zones' rule strings. No other sntp module
# is imported: the package installs and works on its own.
try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_J = const(0)  # Jn
_N = const(1)  # n
_M = const(2)  # Mm.w.d
_DAY = const(86400)
_CUM = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)  # days before each month


def _leap(y):
    return 1 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 0


def _y0(y):
    """Days from 1970-01-01 to 1 January of year y."""
    y -= 1
    return 365 * y + y // 4 - y // 100 + y // 400 - 719162


def _year(d):
    """The year of day d (days since 1970-01-01)."""
    y = 1970 + d * 400 // 146097
    while _y0(y) > d:
        y -= 1
    while _y0(y + 1) <= d:
        y += 1
    return y


def _at(r, y0, leap):
    """Seconds from 1 January 00:00 UTC of the year (day y0, leap 0/1) to change r."""
    k, a, w, d, t = r
    if k == _M:
        c = _CUM[a - 1] + (leap if a > 2 else 0)
        n = c + (d - y0 - c - 4) % 7 + w * 7 - 7  # 1970-01-01 was a Thursday
        if n >= _CUM[a] + (leap if a > 1 else 0):
            n -= 7  # week 5 is the last
        return n * _DAY + t
    if k == _J and a >= 59:
        a += leap
    return a * _DAY + t


class Rule:
    def __init__(self, names, std, dst, start, end):
        self.names = names
        self.std = std  # seconds east of UTC
        self.dst = dst
        self.start = start  # (kind, a, w, d, time - offset before): None without DST
        self.end = end

    def _isdst(self, d, s):
        if self.start is None:
            return False
        d += s // _DAY
        y = _year(d)
        y0 = _y0(y)
        leap = _leap(y)
        t = (d - y0) * _DAY + s % _DAY
        a = _at(self.start, y0, leap)
        b = _at(self.end, y0, leap)
        if a > b:
            return t < b or t >= a
        if t < a:  # DST all year (RFC 8536 3.3.1): last year's DST ends at this one's start
            p0 = _y0(y - 1)
            return _at(self.end, p0, _leap(y - 1)) - (y0 - p0) * _DAY >= a
        return t < b

    def utcoffset(self, t):
        return self.dst if self._isdst(t // _DAY, t % _DAY) else self.std

    def localtime(self, t):
        d = t // _DAY
        s = t % _DAY
        dst = self._isdst(d, s)
        s += self.dst if dst else self.std
        d += s // _DAY
        s %= _DAY
        y = _year(d)
        yd = d - _y0(y)
        leap = _leap(y)
        m = 11
        while yd < _CUM[m] + (leap if m > 1 else 0):
            m -= 1
        md = yd - _CUM[m] - (leap if m > 1 else 0) + 1
        return (y, m + 1, md, s // 3600, s // 60 % 60, s % 60, (d + 3) % 7, yd + 1, int(dst))

    def mktime(self, tm):
        m = tm[1] - 1
        y = tm[0] + m // 12
        m %= 12
        d = _y0(y) + _CUM[m] + (_leap(y) if m > 1 else 0) + tm[2] - 1
        s = tm[3] * 3600 + tm[4] * 60 + tm[5]
        f = tm[8] if len(tm) > 8 else -1
        a = self.std
        b = self.dst
        if f < 0:
            p = self._isdst(d, s - a)  # DST at the instant if the wall time is standard
            q = self._isdst(d, s - b)  # ... if it is DST
            if p == q:
                f = p
            else:  # both fit: the first (bigger offset); neither: the offset before
                return d * _DAY + (s - (max(a, b) if q else min(a, b)))
        return d * _DAY + (s - (b if f else a))  # one big-int step past 2**30 on 32 bits


def _err(what, i):
    raise ValueError("{} at {}".format(what, i))


def _num(s, i, n, lo, hi):
    """Up to n digits at s[i:] -> (value lo..hi, next i)."""
    j = i
    while j < len(s) and j - i < n and "0" <= s[j] <= "9":
        j += 1
    if j == i or not lo <= int(s[i:j]) <= hi:
        _err("{}-{} expected".format(lo, hi), i)
    return int(s[i:j]), j


def _hms(s, i, hmax):
    """[+-]hh[:mm[:ss]] at s[i:] -> (seconds, next i)."""
    sign = 1
    if s[i : i + 1] in ("+", "-"):
        sign = -1 if s[i] == "-" else 1
        i += 1
    v, i = _num(s, i, 3 if hmax > 99 else 2, 0, hmax)
    v *= 3600
    f = 60
    while f and s[i : i + 1] == ":":
        n, j = _num(s, i + 1, 2, 0, 59)
        if j != i + 3:
            _err("2 digits expected", i + 1)
        v += n * f
        i = j
        f //= 60
    return sign * v, i


def _alpha(c):
    return "a" <= c <= "z" or "A" <= c <= "Z"  # ASCII only, on every port


def _name(s, i):
    """std or dst at s[i:] -> (name, next i)."""
    j = i
    if s[i : i + 1] == "<":
        j = i + 1
        while j < len(s) and (s[j] in "+-" or "0" <= s[j] <= "9" or _alpha(s[j])):
            j += 1
        if s[j : j + 1] != ">":
            _err("> expected", j)
        n = s[i + 1 : j]
        j += 1
    else:
        while j < len(s) and _alpha(s[j]):
            j += 1
        n = s[i:j]
    if len(n) < 3:
        _err("name of 3+ letters expected", i)
    return n, j


def _rule(s, i, off):
    """,start[/time] at s[i:] -> ((kind, a, w, d, time - off), next i)."""
    if s[i : i + 1] != ",":
        _err(", expected", i)
    i += 1
    w = d = 0
    c = s[i : i + 1]
    if c == "M":
        k = _M
        a, i = _num(s, i + 1, 2, 1, 12)
        if s[i : i + 1] != ".":
            _err(". expected", i)
        w, i = _num(s, i + 1, 1, 1, 5)
        if s[i : i + 1] != ".":
            _err(". expected", i)
        d, i = _num(s, i + 1, 1, 0, 6)
    elif c == "J":
        k = _J
        a, i = _num(s, i + 1, 3, 1, 365)
        a -= 1
    else:
        k = _N
        a, i = _num(s, i, 3, 0, 365)
    t = 7200
    if s[i : i + 1] == "/":
        t, i = _hms(s, i + 1, 167)
    return (k, a, w, d, t - off), i


def parse(rule):
    """A POSIX TZ rule string -> Rule. ValueError('what expected at POSITION') otherwise."""
    s = rule
    if s[:1] == ":" or "/" in s.split(",")[0]:
        raise ValueError("a zone name, not a rule (docs/localtime.md)")
    std, i = _name(s, 0)
    if i == len(s):  # TZ=UTC: a zone name to glibc, no rule
        raise ValueError("offset expected at {} (POSIX writes UTC as UTC0)".format(i))
    w, i = _hms(s, i, 24)
    std_off = -w
    if i == len(s):
        return Rule((std, std), std_off, std_off + 3600, None, None)
    dst, i = _name(s, i)
    dst_off = std_off + 3600
    if i < len(s) and s[i] != ",":
        w, i = _hms(s, i, 24)
        dst_off = -w
    if i == len(s):
        s += ",M3.2.0,M11.1.0"
    start, i = _rule(s, i, std_off)
    end, i = _rule(s, i, dst_off)
    if i != len(s):
        _err("end expected", i)
    return Rule((std, dst), std_off, dst_off, start, end)
