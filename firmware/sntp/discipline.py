# Clock discipline: step or slew, the oscillator's frequency error, and how long to wait.
# keeper.py binds it to the policy and the persisted state.
#
# Discipline is I/O-free, integers only. It is handed every Correction the policy returns,
# and tick() every few seconds; both answer with microseconds to add to the RTC.
#
# Step or slew. An offset above _STEP_THRESHOLD_US (ntpd's 128 ms), or any offset while the
# clock is invalid, is stepped at once (the policy has already required agreement for it).
# A smaller one is slewed: spread over time at no more than _MAX_SLEW_PPM, so time read
# through the disciplined API never runs backwards and never jumps.
#
# Frequency (drift). Between two syncs the clock is corrected for the current estimate;
# whatever offset is still found is the estimate's error: measured frequency = estimate +
# (offset - slew still pending) / time since the last sync. The estimate is the MEDIAN of
# the last _DRIFT_SAMPLES such measurements (one outlier cannot move it), taken only over
# bases of at least _MIN_BASE_S. No ppm window rejects a measurement: a crystal that moves
# with the temperature is a moving clock, and a bad reply never gets here (a lone reply is
# followed only within the clock's error bound: policy R5); a persisted or measured value
# beyond _MAX_DRIFT_PPB (no crystal is that bad) is discarded.
#
# Interval. The predicted error after t seconds is about sigma * t, sigma being how wrong
# the estimate has turned out to be: at each sync, the frequency measured over the interval
# just ended minus the estimate applied during it is the prediction's realized error (the
# offset found, per second of the interval). sigma is the largest of the last _DRIFT_SAMPLES
# of those (a temperature swing of +/-2 ppm a day shows as about 1 ppm over half-day
# intervals), at least _WANDER_FLOOR_PPB; _ASSUMED_PPB until three measurements are in; the
# spread (max - min) of the measurements until three realized errors are known. Part of the
# budget is kept for what no poll rate can fix, the path's asymmetry: at most half the round
# trip of the last sync (RFC 5905: the true offset lies within offset +/- delay/2), and at
# most half the budget (unknown delay: half). The longest interval that keeps sigma * t
# under the rest is interval_cap_s(); the policy clamps it to its own bounds (30 min against
# the pool, 36 h at most).
#
# Two clocks. A board that deep-sleeps keeps time asleep on another oscillator (a stock
# ESP32: the RTC's ~150 kHz RC, thousands of ppm off and moving with temperature; with an
# external 32 kHz crystal, tens of ppm). The awake clock is learned as above, from intervals
# with no sleep in them; the sleep clock from the intervals with sleep, each its own
# measurements (the sleep time and the us applied for it since the last sync are counted),
# so the figures hold at any duty cycle. A sleep rate up to _MAX_SLEEP_PPB is a measurement.
# It moves with the room's temperature over the day, so it is not rejected for moving: it is
# tracked with a daily harmonic, level + a cos + b sin of the time of day, fitted (least
# squares, integers) over the measurements of the last _FIT_SPAN_MIN once they are at least
# _FIT_MIN and spread over the day; before that, the median of the last three. What is a bad
# reply and what is a moving clock the servers decide (policy R5), not a ppm window.
#
# Error bound. At any instant: the last sync's root distance and half its round trip (what
# no poll rate fixes), plus the awake clock's sigma times the time awake, plus the sleep
# clock's k times the root of the time asleep (sleep_k(): its noise adds up as a random
# walk), plus, after a reboot, the time off at the whole rate. The next request is due when
# it would reach accuracy_ms (interval_cap_s(), left_ms()); health() publishes it.
#
# Units: drift in ppb (parts per billion), positive when the local clock runs SLOW (the
# offset, server minus local, grows positive), so the correction added is +drift * elapsed.
from .compat import const
from .compat import ints as _ints

_STEP_THRESHOLD_US = const(128_000)
_MAX_SLEW_PPM = const(500)  # the Linux kernel's adjtime() rate
_MAX_DRIFT_PPB = const(500_000)  # 500 ppm: beyond any crystal; a larger value is garbage
_DRIFT_SAMPLES = const(5)
_MIN_BASE_S = const(60)  # shorter bases are mostly network noise
_MAX_BASE_S = const(10 * 86_400)  # older than this, the reference is stale: start again
_ASSUMED_PPB = const(50_000)  # an unknown crystal: up to 50 ppm
_WANDER_FLOOR_PPB = const(1_000)  # temperature wander of a good crystal: 1 ppm
_DEFAULT_ACCURACY_MS = const(100)
_STATE_VERSION = const(1)
# The sleep clock. An ESP32's RC sleep clock runs 1,000 to over 5,000 ppm off per device
# (users' measurements; the vendor names no figure): up to 5 % is a measurement.
_MAX_SLEEP_PPB = const(50_000_000)
_ASSUMED_SLEEP_PPB = const(5_000_000)  # not measured yet: it may be an RC, 5,000 ppm
_SLEEP_SAMPLES = const(12)  # measurements kept for the daily fit
_SLEEP_ERRORS = const(8)  # realized errors kept for its k: the largest of 8 ~ 1.4 sigma
_FIT_MIN = const(5)  # the fit needs this many, within _FIT_SPAN_MIN of the latest
_FIT_SPAN_MIN = const(4_320)  # 3 days
_DAY_MIN = const(1_440)
_Q = const(4_096)  # sin and cos scaled by this
_SHORT_MIN = const(120)  # over a shorter span the daily curve is taken at its middle
_MS_TOP = const(1 << 29)  # time counts stop here (6.2 days): small ints on 32-bit ports


class Discipline:
    """One clock's discipline. accuracy_ms: how far the clock may wander between polls."""

    def __init__(self, accuracy_ms=_DEFAULT_ACCURACY_MS):
        self.accuracy_ms = accuracy_ms  # ms
        self.drift_ppb = 0  # the awake clock's frequency estimate, ppb, + = local clock slow
        self.samples = []  # its last _DRIFT_SAMPLES frequency measurements, ppb
        self.errors = []  # |measurement - estimate applied| of the last _DRIFT_SAMPLES, ppb
        self.sleep = []  # sleep-clock measurements [from, to (Unix min), ppb], oldest first
        # the sleep clock's realized errors: |offset| / sqrt(s asleep), us per root second,
        # the last _SLEEP_ERRORS (its cycle-to-cycle noise adds up as a random walk)
        self.sleep_errors = []
        self.fit = None  # the sleep clock's daily fit [level, a, b] ppb, or None (_fit)
        self.awake_ms = 0  # ms on the awake clock since the last sync (to _MS_TOP)
        self.slept_ms = 0  # ms asleep since the last sync (to _MS_TOP)
        self.slept_us = 0  # us applied for those sleeps, signed
        self.duty = 0  # share of the last sync interval spent asleep, in 1/1024
        self.pending_us = 0  # slew still to apply, signed us
        self.ref_unix_us = None  # wall time of the last correction (start of the base)
        self.tick_ms = None  # monotonic ms of the last tick()
        self.frac = 0  # drift correction not yet whole us, in ppb*ms (< 10**6)
        self.rejected = 0  # measurements rejected as beyond any clock (_MAX_*_PPB)
        self.delay_us = None  # round trip of the last sync, us (None: unknown)
        self.root_us = 0  # the server's root distance at the last sync, us
        self.last = None  # the last correction: kind, offset_us, measured_ppb
        self.warning = None  # what load() dropped, one sentence
        self.warned_ms = 0  # the accuracy last said to be all the poll floor allows (0: none)
        self.off_ms = None  # a reboot: ms the board was off since the last sync's state (the
        # RTC ran undisciplined; None: no reboot since the sync); the next offset measures no rate

    # ---- persistence ---------------------------------------------------------------------
    def load(self, st, wall_us=None, woke=True):
        """Restore from a persisted dict; absurd or broken fields are dropped (warning says
        so), never applied. wall_us: the RTC kept running since the save (a wake from deep
        sleep; or a reboot with a clock valid then and now): the last sync's time is restored
        too. A wake returns the sleep clock's drift for the time slept (us to add); a reboot
        adds nothing (the clock ran undisciplined), counts the time off in the bound at the
        whole rate (off_ms), and the next offset measures no rate."""
        if st is None:
            return 0
        if not isinstance(st, dict) or st.get("v") != _STATE_VERSION:
            self.warning = "clock state unreadable or of another version, dropped"
            return 0
        bad = []
        d = st.get("drift_ppb")
        if _is_int(d) and -_MAX_DRIFT_PPB <= d <= _MAX_DRIFT_PPB:
            self.drift_ppb = d
        elif d is not None:
            bad.append("drift_ppb")
        s = _recent_ints(st.get("samples"), -_MAX_DRIFT_PPB, _MAX_DRIFT_PPB)
        if s is not None:
            self.samples = s
        e = _recent_ints(st.get("errors"), 0, 2 * _MAX_DRIFT_PPB)
        if e is not None:
            self.errors = e
        sl = st.get("sleep")
        if isinstance(sl, list):
            for m in sl[-_SLEEP_SAMPLES:]:
                if (
                    isinstance(m, list)
                    and len(m) == 3
                    and _ints(m)
                    and 0 <= m[0] < m[1]
                    and abs(m[2]) <= _MAX_SLEEP_PPB
                ):
                    self.sleep.append(m)
                else:
                    bad.append("sleep")
        f = st.get("fit")
        if isinstance(f, list) and len(f) == 3 and _ints(f) and max(map(abs, f)) <= _MAX_SLEEP_PPB:
            self.fit = f
        elif self.sleep:
            self.fit = _fit(self.sleep)  # an older state, or a broken fit: from the measurements
        e = st.get("sleep_errors")
        if isinstance(e, list):
            self.sleep_errors = [x for x in e if _is_int(x) and 0 <= x < _MS_TOP][-_SLEEP_ERRORS:]
        for k in ("awake_ms", "slept_ms", "duty", "root_us", "warned_ms"):
            v = st.get(k)
            if _is_int(v) and 0 <= v <= _MS_TOP:
                setattr(self, k, v)
            elif v is not None:
                bad.append(k)
        v = st.get("slept_us")
        if _is_int(v) and abs(v) <= _MS_TOP * 1000:
            self.slept_us = v
        if bad:
            self.warning = "clock state: {} absurd, dropped".format(" ".join(bad))
        # ref_unix_us is restored only when the RTC ran on (wall_us): after a power cut that
        # lost the clock there is nothing to count from
        r = st.get("delay_us")
        if _is_int(r) and r >= 0:
            self.delay_us = r
        ref, at = st.get("ref_us"), st.get("at_us")
        if wall_us is None or not _is_int(at) or not at <= wall_us:
            return 0
        # ref is the true time at the sync: ahead of the clock by a slew still pending then
        if _is_int(ref) and ref <= at + _STEP_THRESHOLD_US:
            self.ref_unix_us = ref
        if woke:
            return self.slept(at, wall_us)
        off = st.get("off_ms")
        off = off if _is_int(off) and 0 <= off < _MS_TOP else 0  # reboots before this one
        self.off_ms = min(_MS_TOP, off + (wall_us - at) // 1000)
        return 0

    def state(self, wall_us=None):
        return {
            "ref_us": self.ref_unix_us,
            "at_us": wall_us,  # drift applied up to here (to within the last tick)
            "v": _STATE_VERSION,
            "drift_ppb": self.drift_ppb,
            "samples": self.samples,  # a store writes them out at once
            "errors": self.errors,
            "sleep": self.sleep,
            "sleep_errors": self.sleep_errors,
            "fit": self.fit,
            "awake_ms": self.awake_ms,
            "slept_ms": self.slept_ms,
            "slept_us": self.slept_us,
            "duty": self.duty,
            "root_us": self.root_us,
            "warned_ms": self.warned_ms,
            "off_ms": self.off_ms,
            "delay_us": self.delay_us,
        }

    def slept(self, from_us, to_us):
        """A deep sleep from from_us to to_us (wall): the us to add for it, by the sleep
        clock's estimate over that span (the awake clock's until the sleep clock has one)."""
        ms = (to_us - from_us) // 1000
        ppb = self.drift_ppb
        if self.sleep:
            ppb = self.sleep_ppb(from_us // 60_000_000, to_us // 60_000_000)
        adj = ppb * ms // 1_000_000
        self.slept_ms = min(_MS_TOP, self.slept_ms + ms)
        self.slept_us += adj
        return adj

    # ---- corrections ---------------------------------------------------------------------
    def correction(self, offset_us, wall_us, clock_valid, delay_us=None, root_us=None):
        """A Correction from the policy. Returns us to add to the clock now (a step, or 0).

        The rest (a slew) comes out of tick(). wall_us: the clock now, Unix us; delay_us:
        the round trip of the measurement (None: unknown); root_us: the server's root
        distance.
        """
        if _is_int(delay_us) and delay_us >= 0:
            self.delay_us = delay_us
        self.root_us = root_us if _is_int(root_us) and 0 <= root_us < _MS_TOP else 0
        if self.off_ms is not None:  # a reboot in the interval: no rate to learn from it
            measured = self.off_ms = None
        elif self.slept_ms:
            measured = self._measure_sleep(offset_us, wall_us, clock_valid)
        else:
            measured = self._measure(offset_us, wall_us, clock_valid)
        total = self.awake_ms + self.slept_ms
        self.duty = self.slept_ms * 1024 // total if total else 0
        self.awake_ms = self.slept_ms = self.slept_us = 0
        if not clock_valid or abs(offset_us) > _STEP_THRESHOLD_US:
            step, self.pending_us = offset_us, 0
            kind = "step"
        else:
            step, self.pending_us = 0, offset_us
            kind = "slew"
        self.ref_unix_us = wall_us + offset_us  # the true time at this sync
        # the estimate, its sigma and the interval it allows are read from self when wanted
        self.last = {"kind": kind, "offset_us": offset_us, "measured_ppb": measured}
        return step

    def _base_us(self, wall_us, clock_valid):
        ref = self.ref_unix_us
        if not clock_valid or ref is None:
            return None
        base_us = wall_us - ref
        if base_us < _MIN_BASE_S * 1_000_000 or base_us > _MAX_BASE_S * 1_000_000:
            return None
        return base_us

    def _measure(self, offset_us, wall_us, clock_valid):
        """Update the frequency estimate from this offset; returns the measurement or None."""
        base_us = self._base_us(wall_us, clock_valid)
        if base_us is None:
            return None
        residual_ppb = (offset_us - self.pending_us) * 1_000_000_000 // base_us
        f = self.drift_ppb + residual_ppb
        if abs(f) > _MAX_DRIFT_PPB:
            self.rejected += 1
            return None
        _push(self.samples, f)
        _push(self.errors, abs(residual_ppb))  # how wrong the applied estimate was
        self.drift_ppb = _median(self.samples)
        return f

    def _measure_sleep(self, offset_us, wall_us, clock_valid):
        """The interval had deep sleep in it: what is left of the offset is the sleep
        clock's (its error times a sleep time dwarfs the awake clock's): a measurement of
        its rate over the sleeps since the last sync."""
        ms = self.slept_ms
        if self._base_us(wall_us, clock_valid) is None or ms < _MIN_BASE_S * 1000:
            return None
        r = offset_us - self.pending_us
        f = (self.slept_us + r) * 1_000_000 // ms
        if abs(f) > _MAX_SLEEP_PPB:
            self.rejected += 1
            return None
        self.sleep_errors.append(abs(r) // _isqrt(ms // 1000))
        if len(self.sleep_errors) > _SLEEP_ERRORS:
            self.sleep_errors.pop(0)
        self.sleep.append([self.ref_unix_us // 60_000_000, wall_us // 60_000_000 + 1, f])
        if len(self.sleep) > _SLEEP_SAMPLES:
            self.sleep.pop(0)
        self.fit = _fit(self.sleep)
        return f

    def tick(self, now_ms):
        """us to add to the clock for the time since the last tick: drift and slew."""
        if self.tick_ms is None:
            self.tick_ms = now_ms
            return 0
        dt_ms = now_ms - self.tick_ms
        if dt_ms <= 0:
            return 0
        self.tick_ms = now_ms
        if self.awake_ms < _MS_TOP:
            self.awake_ms += dt_ms
        # drift: drift_ppb * dt, kept exact with a remainder in ppb*ms (rounded toward zero),
        # in parts that stay small ints on 32-bit ports (20 ppm * 60 s is past 2**30)
        q = self.drift_ppb * (dt_ms // 1000)  # ppb*s
        m = 1000 * (q % 1000) + self.drift_ppb * (dt_ms % 1000) + self.frac
        whole_us = m // 1_000_000
        m -= whole_us * 1_000_000
        whole_us += q // 1000
        if whole_us < 0 and m:
            whole_us += 1
            m -= 1_000_000
        self.frac = m
        # slew: at most _MAX_SLEW_PPM of the elapsed time
        limit_us = _MAX_SLEW_PPM * dt_ms // 1000
        s = self.pending_us
        if s > limit_us:
            s = limit_us
        elif s < -limit_us:
            s = -limit_us
        self.pending_us -= s
        return whole_us + s

    # ---- what it knows -------------------------------------------------------------------
    def sigma_ppb(self):
        """Uncertainty of the estimate: its largest recent realized error, with floors."""
        if len(self.samples) < 3:
            return _ASSUMED_PPB
        sigma = max(self.samples) - min(self.samples)
        if len(self.errors) >= 3:
            sigma = max(self.errors)
        return max(_WANDER_FLOOR_PPB, sigma)

    def sleep_k(self):
        """How fast the sleep clock's error grows, us per root second asleep: twice its
        largest recent realized error (a random walk's p99 is 2.6 sigma; the largest of
        eight is about 1.4 sigma); None: not measured yet."""
        e = self.sleep_errors
        return max(e) * 2 + 1 if e else None

    def sleep_ppb(self, t0, t1):
        """The sleep clock's predicted mean rate over [t0, t1] (Unix minutes): the daily fit
        when there is one, else the median of the last three measurements."""
        f = self.fit
        if f is not None:
            c, sn = _cs(t0, t1)
            return f[0] + (f[1] * c + f[2] * sn) // _Q
        return _median([m[2] for m in self.sleep[-3:]])

    def bound_us(self, now_ms):
        """How wrong the clock may be now: the last sync's root distance and half its round
        trip, plus what each clock may have gained or lost since; None: no sync to count
        from. Small ints for any plausible figure (an idle board may ask)."""
        if self.ref_unix_us is None:
            return None
        b = self.root_us + (self.delay_us or 0) // 2
        b += self._grow_us(self.awake_now(now_ms), self.slept_ms)
        if self.off_ms:  # the RTC ran on undisciplined: the whole rate, and its uncertainty
            u = abs(self.drift_ppb) + self.sigma_ppb()
            b += (u // 100) * (self.off_ms // 1000) // 10
        return b

    def awake_now(self, now_ms):
        """ms on the awake clock since the last sync, up to now_ms (ticks count to the last
        tick)."""
        aw = self.awake_ms
        if self.tick_ms is not None and now_ms > self.tick_ms:
            aw += now_ms - self.tick_ms
        return aw

    def _rates(self):
        """(u, k): the awake clock's uncertainty, ppb, and the sleep clock's k (None: not
        measured yet). A board that sleeps between all its syncs never measures its awake
        clock alone: the sleep clock's measurements took the awake seconds' error in with
        theirs (k holds it), so they count at the wander floor only."""
        u = self.sigma_ppb()
        if len(self.samples) < 3 and self.sleep:
            u = _WANDER_FLOOR_PPB
        return u, self.sleep_k()

    def _grow_us(self, awake_ms, slept_ms, rates=None):
        """What the clocks may have gained or lost, us: the awake clock's uncertainty times
        the time on it (linear: a crystal's error is mostly a rate), the sleep clock's k
        times the root of the time asleep (its noise, drawn anew each sleep, adds up as a
        random walk; a rate error shows in k at longer intervals, which k then shortens)."""
        u, k = rates or self._rates()
        b = (u // 100) * (awake_ms // 1000) // 10  # 0.1 ppm x s / 10: us
        if k is None:
            return b + (_ASSUMED_SLEEP_PPB // 100) * (slept_ms // 1000) // 10
        return b + k * _isqrt(slept_ms // 1000)

    def _reach_s(self, budget_us, awake_ms=0, slept_ms=0):
        """Seconds from (awake_ms, slept_ms) on until _grow_us reaches budget_us, at the last
        interval's share of sleep (bisection: it only grows)."""
        lo, hi = 0, 1 << 22  # 48 days: beyond any interval
        r = self._rates()
        sl = self.duty
        while lo < hi:
            t = (lo + hi + 1) // 2
            a, s = _share(t, 1024 - sl), _share(t, sl)
            if (
                self._grow_us(min(awake_ms + a, _MS_TOP), min(slept_ms + s, _MS_TOP), r)
                <= budget_us
            ):
                lo = t
            else:
                hi = t - 1
        return lo

    def _reserve_us(self):
        """The part of the budget no poll rate can fix: half the last round trip, at most
        half the budget. The server's root distance counts in the bound, not here: it is
        the server's own claim of its worst case, and no poll rate changes it."""
        r = self.accuracy_ms * 500
        if self.delay_us is not None and self.delay_us // 2 < r:
            r = self.delay_us // 2
        return r

    def interval_cap_s(self):
        """The longest poll interval that keeps the predicted error within the budget left
        after the reserve; and while the sleep clock's daily swing is more than the budget
        can absorb (the fit's amplitude x day / pi, what a level alone gets wrong over half a
        day), at most a quarter day, so that its measurements follow the curve (longer
        intervals average the swing away: the fit loses it, and the error mid-interval is
        large while the one found at the end is not)."""
        budget = self.accuracy_ms * 1000 - self._reserve_us()
        cap = self._reach_s(budget)
        # a level alone gets a swing of amplitude A wrong by up to A x day / pi: 27,502 s
        f = self.fit
        if f is not None and max(abs(f[1]), abs(f[2])) * 27_502 // 1000 > budget:
            cap = min(cap, _DAY_MIN * 15)  # a quarter day, s
        return cap

    def can_ms(self, interval_s):
        """The accuracy that polling every interval_s holds, ms."""
        sl = self.duty
        g = self._grow_us(_share(interval_s, 1024 - sl), _share(interval_s, sl))
        return (self._reserve_us() + g) // 1000 + 1

    def left_ms(self, now_ms):
        """ms until the bound reaches accuracy_ms at the last interval's duty (0: it has),
        or None: no sync to count from."""
        if self.ref_unix_us is None:
            return None
        aw = self.awake_now(now_ms)
        left = self.accuracy_ms * 1000 - self._reserve_us()
        if self._grow_us(aw, self.slept_ms) >= left:
            return 0
        return min(_MS_TOP, self._reach_s(left, aw, self.slept_ms) * 1000)


def _share(t_s, share):
    """The ms of t_s seconds at share/1024 (the awake or the asleep part of an interval at
    the last one's duty), at most _MS_TOP. In small ints: with t_s = 1024 q + r, the product
    t_s x share x 1000 (up to 2**42, a big int on a 32-bit port, 44 times in a bisection) is
    never formed."""
    whole_s, ms = (t_s >> 10) * share, (t_s & 1023) * share * 1000 // 1024
    return _MS_TOP if whole_s > _MS_TOP // 1000 else min(whole_s * 1000 + ms, _MS_TOP)


def _fit(s):
    """The daily fit of the sleep clock's measurements s, as [level, a, b] ppb (rate =
    level + a cos + b sin of the time of day), or None: too few within _FIT_SPAN_MIN or
    not spread over the day. Least squares by Cramer's rule: big ints, at a sync only."""
    if not s:
        return None
    pts = [m for m in s if s[-1][1] - m[1] < _FIT_SPAN_MIN]
    n = len(pts)
    if n < _FIT_MIN:
        return None
    sc = ss = scc = scs = sss = y0 = yc = ys = 0
    for m in pts:
        c, sn = _cs(m[0], m[1])
        y = m[2]
        sc += c
        ss += sn
        scc += c * c
        scs += c * sn
        sss += sn * sn
        y0 += y
        yc += y * c
        ys += y * sn
    a00, a01, a02 = n * _Q * _Q, _Q * sc, _Q * ss
    b0 = _Q * y0
    det = _det(a00, a01, a02, a01, scc, scs, a02, scs, sss)
    # the phases must cover the day: a well-spread set has det ~ n**3 * Q**6 / 4
    if det * 64 < n * n * n * _Q**6:
        return None
    return [
        _det(b0, a01, a02, yc, scc, scs, ys, scs, sss) * _Q // det,
        _det(a00, b0, a02, a01, yc, scs, a02, ys, sss) * _Q // det,
        _det(a00, a01, b0, a01, scc, yc, a02, scs, ys) * _Q // det,
    ]


def _isqrt(n):
    """The integer square root of n >= 0 (Newton)."""
    if n <= 0:
        return 0
    x = 1
    while x * x < n:  # a first guess at or above the root, then Newton from above
        x <<= 1
    y = (x + n // x) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


def _sin(x):
    """sin(2 pi x / _DAY_MIN) * _Q, x in minutes (Bhaskara's approximation, within 0.2 %)."""
    x %= _DAY_MIN
    h = _DAY_MIN // 2
    neg = x >= h
    if neg:
        x -= h
    p = x * (h - x)
    v = 16 * p * _Q // (5 * h * h - 4 * p)
    return -v if neg else v


def _cs(t0, t1):
    """The mean of cos and sin of the time of day over [t0, t1] (minutes), scaled by _Q."""
    q = _DAY_MIN // 4
    if t1 - t0 < _SHORT_MIN:
        m = (t0 + t1) // 2
        return _sin(m + q), _sin(m)
    # the mean of cos over the span is (sin(t1) - sin(t0)) / (w (t1 - t0)), w = 2 pi / day
    k = _DAY_MIN * 113  # 2 pi ~ 710 / 113
    d = 710 * (t1 - t0)
    return (_sin(t1) - _sin(t0)) * k // d, (_sin(t0 + q) - _sin(t1 + q)) * k // d


def _det(a, b, c, d, e, f, g, h, i):
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _median(xs):
    s = sorted(xs)
    n = len(s)
    if n % 2:
        return s[n // 2]
    return (s[n // 2 - 1] + s[n // 2]) // 2


def _push(recent, x):
    """Append x to a list kept to its last _DRIFT_SAMPLES values."""
    recent.append(x)
    if len(recent) > _DRIFT_SAMPLES:
        recent.pop(0)


def _recent_ints(v, lo, hi):
    """The last _DRIFT_SAMPLES ints in [lo, hi] of a persisted list (others dropped), or None
    when v is not a list."""
    if not isinstance(v, list):
        return None
    return [x for x in v if _is_int(x) and lo <= x <= hi][-_DRIFT_SAMPLES:]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)
