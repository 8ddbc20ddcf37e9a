# Clock discipline: step or slew, the oscillator's frequency error, and how long to wait.
#
# I/O-free, integers only. The driver hands it every Correction the policy returns and calls
# tick() every few seconds; both answer with microseconds to add to the RTC (rtc.adjust()).
#
# Step or slew. An offset above STEP_THRESHOLD_US (ntpd's 128 ms), or any offset while the
# clock is invalid, is stepped at once (the policy has already required agreement for it).
# A smaller one is slewed: spread over time at no more than MAX_SLEW_PPM, so time read
# through the disciplined API never runs backwards and never jumps.
#
# Frequency (drift). Between two syncs the clock is corrected for the current estimate;
# whatever offset is still found is the estimate's error: measured frequency = estimate +
# (offset - slew still pending) / time since the last sync. The estimate is the MEDIAN of
# the last DRIFT_SAMPLES such measurements (one outlier cannot move it), taken only over
# bases of at least MIN_BASE_S; a measurement more
# than OUTLIER_PPB away from a settled estimate is rejected outright; a persisted or
# measured value beyond MAX_DRIFT_PPB (no crystal is that bad) is discarded.
#
# Interval. The predicted error after t seconds is about sigma * t, sigma being how wrong
# the estimate has turned out to be: at each sync, the frequency measured over the interval
# just ended minus the estimate applied during it is the prediction's realized error (the
# offset found, per second of the interval). sigma is the largest of the last DRIFT_SAMPLES
# of those (a temperature swing of +/-2 ppm a day shows as about 1 ppm over half-day
# intervals), at least WANDER_FLOOR_PPB; ASSUMED_PPB until three measurements are in; the
# spread (max - min) of the measurements until three realized errors are known. Part of the
# budget is kept for what no poll rate can fix, the path's asymmetry: at most half the round
# trip of the last sync (RFC 5905: the true offset lies within offset +/- delay/2), and at
# most half the budget (unknown delay: half). The longest interval that keeps sigma * t
# under the rest is interval_cap_s(); the policy clamps it to its own bounds (30 min against
# the pool, 36 h at most).
#
# Units: drift in ppb (parts per billion), positive when the local clock runs SLOW (the
# offset, server minus local, grows positive), so the correction added is +drift * elapsed.
from .compat import const

STEP_THRESHOLD_US = const(128_000)
MAX_SLEW_PPM = const(500)  # the Linux kernel's adjtime() rate
MAX_DRIFT_PPB = const(500_000)  # 500 ppm: beyond any crystal; a larger value is garbage
OUTLIER_PPB = const(20_000)  # 20 ppm from a settled estimate: a bad reply, not the crystal
DRIFT_SAMPLES = const(5)
MIN_BASE_S = const(60)  # shorter bases are mostly network noise
MAX_BASE_S = const(10 * 86_400)  # older than this, the reference is stale: start again
ASSUMED_PPB = const(50_000)  # an unknown crystal: up to 50 ppm
WANDER_FLOOR_PPB = const(1_000)  # temperature wander of a good crystal: 1 ppm
DEFAULT_ACCURACY_MS = const(100)
_STATE_VERSION = const(1)


class Discipline:
    """One clock's discipline. accuracy_ms: how far the clock may wander between polls."""

    def __init__(self, accuracy_ms=DEFAULT_ACCURACY_MS):
        self.accuracy_ms = accuracy_ms  # ms
        self.drift_ppb = 0  # current frequency estimate, ppb, + = local clock slow
        self.samples = []  # the last DRIFT_SAMPLES frequency measurements, ppb
        self.errors = []  # |measurement - estimate applied| of the last DRIFT_SAMPLES, ppb
        self.pending_us = 0  # slew still to apply, signed us
        self.ref_unix_us = None  # wall time of the last correction (start of the base)
        self.tick_ms = None  # monotonic ms of the last tick()
        self.frac = 0  # drift correction not yet whole us, in ppb*ms (< 10**6)
        self.rejected = 0  # measurements rejected as outliers
        self.delay_us = None  # round trip of the last sync, us (None: unknown)
        self.last = None  # dict describing the last correction, for events and status

    # ---- persistence ---------------------------------------------------------------------
    def load(self, st):
        """Restore from a persisted dict; absurd or broken fields are dropped, never applied."""
        if not isinstance(st, dict) or st.get("v") != _STATE_VERSION:
            return
        d = st.get("drift_ppb")
        if _is_int(d) and -MAX_DRIFT_PPB <= d <= MAX_DRIFT_PPB:
            self.drift_ppb = d
        s = _recent_ints(st.get("samples"), -MAX_DRIFT_PPB, MAX_DRIFT_PPB)
        if s is not None:
            self.samples = s
        e = _recent_ints(st.get("errors"), 0, 2 * MAX_DRIFT_PPB)
        if e is not None:
            self.errors = e
        # ref_unix_us is not restored: the time the board was off ran on an undisciplined
        # (or lost) clock, so the next offset is no measure of this estimate's error
        r = st.get("delay_us")
        if _is_int(r) and r >= 0:
            self.delay_us = r

    def state(self):
        return {
            "v": _STATE_VERSION,
            "drift_ppb": self.drift_ppb,
            "samples": list(self.samples),
            "errors": list(self.errors),
            "ref_unix_us": self.ref_unix_us,  # the last sync, for a reader; never loaded
            "delay_us": self.delay_us,
        }

    # ---- corrections ---------------------------------------------------------------------
    def correction(self, offset_us, wall_us, clock_valid, delay_us=None):
        """A Correction from the policy. Returns us to add to the clock now (a step, or 0).

        The rest (a slew) comes out of tick(). wall_us: the clock now, Unix us; delay_us:
        the round trip of the measurement (None: unknown).
        """
        if _is_int(delay_us) and delay_us >= 0:
            self.delay_us = delay_us
        measured = self._measure(offset_us, wall_us, clock_valid)
        if not clock_valid or abs(offset_us) > STEP_THRESHOLD_US:
            step, self.pending_us = offset_us, 0
            kind = "step"
        else:
            step, self.pending_us = 0, offset_us
            kind = "slew"
        self.ref_unix_us = wall_us + offset_us  # the true time at this sync
        self.last = {
            "kind": kind,
            "offset_us": offset_us,
            "measured_ppb": measured,
            "drift_ppb": self.drift_ppb,
            "sigma_ppb": self.sigma_ppb(),
            "interval_cap_s": self.interval_cap_s(),
        }
        return step

    def _measure(self, offset_us, wall_us, clock_valid):
        """Update the frequency estimate from this offset; returns the measurement or None."""
        ref = self.ref_unix_us
        if not clock_valid or ref is None:
            return None
        base_us = wall_us - ref
        if base_us < MIN_BASE_S * 1_000_000 or base_us > MAX_BASE_S * 1_000_000:
            return None
        residual_ppb = (offset_us - self.pending_us) * 1_000_000_000 // base_us
        f = self.drift_ppb + residual_ppb
        if abs(f) > MAX_DRIFT_PPB:
            self.rejected += 1
            return None
        if len(self.samples) >= 3 and abs(f - self.drift_ppb) > OUTLIER_PPB:
            self.rejected += 1
            return None
        _push(self.samples, f)
        _push(self.errors, abs(residual_ppb))  # how wrong the applied estimate was
        self.drift_ppb = _median(self.samples)
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
        # slew: at most MAX_SLEW_PPM of the elapsed time
        limit_us = MAX_SLEW_PPM * dt_ms // 1000
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
            return ASSUMED_PPB
        sigma = max(self.samples) - min(self.samples)
        if len(self.errors) >= 3:
            sigma = max(self.errors)
        return max(WANDER_FLOOR_PPB, sigma)

    def interval_cap_s(self):
        """The longest poll interval that keeps the predicted error within the budget left
        after the asymmetry reserve (half the last round trip, at most half the budget)."""
        budget_us = self.accuracy_ms * 1000
        reserve_us = budget_us // 2
        if self.delay_us is not None and self.delay_us // 2 < reserve_us:
            reserve_us = self.delay_us // 2
        return (budget_us - reserve_us) * 1000 // self.sigma_ppb()  # us / (ppb * 1e-9) = s


def _median(xs):
    s = sorted(xs)
    n = len(s)
    if n % 2:
        return s[n // 2]
    return (s[n // 2 - 1] + s[n // 2]) // 2


def _push(recent, x):
    """Append x to a list kept to its last DRIFT_SAMPLES values."""
    recent.append(x)
    if len(recent) > DRIFT_SAMPLES:
        recent.pop(0)


def _recent_ints(v, lo, hi):
    """The last DRIFT_SAMPLES ints in [lo, hi] of a persisted list (others dropped), or None
    when v is not a list."""
    if not isinstance(v, list):
        return None
    return [x for x in v if _is_int(x) and lo <= x <= hi][-DRIFT_SAMPLES:]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class MonotonicTime:
    """The disciplined time API: read_us() (the RTC with its ticks interpolation) made
    monotonic: a slew or a small negative drift correction can never make it run backwards.
    Only a step (the policy's agreement rules passed) moves it back, and then at once."""

    def __init__(self, read_us):
        self.read_us = read_us  # callable -> us since the port epoch
        self.last_us = None  # the last value returned

    def now_us(self):
        t = self.read_us()
        if self.last_us is not None and t < self.last_us:
            return self.last_us
        self.last_us = t
        return t

    def stepped(self):
        """Call after a step: the next reading is taken as it is, even if earlier."""
        self.last_us = None
