# The board's clock for the time service: make() picks it for the port this runs on.
#
#   from sntp import rtc
#   clock = rtc.make()          # esp32, rp2: BoardRTC over machine.RTC; others: ProcessClock
#   svc = aio.AsyncService(config, clock=clock, rtc=clock, wake=rtc.woke())
#   asyncio.create_task(clock.run())   # RP2040: writes corrections into its 1 s RTC
#
# BoardRTC: a board's real-time clock (machine.RTC) as the time service's clock and rtc:
# now_us() with sub-second resolution, adjust(offset_us) to step it. Integers only.
# ProcessClock (the unix port, and any port not named above): the corrected time lives in
# this process (host clock + offset); the host's own clock is never changed.
#
# One class for both boards; the difference is the RTC's resolution:
#   ESP32    subseconds are microseconds (ports/esp32/machine_rtc.c: gettimeofday): read and
#            written exactly, resolution_us=1.
#   RP2040   (Pico W) whole seconds only (the subseconds field reads 0 and is ignored on write):
#            resolution_us=1_000_000. The sub-second part comes from ticks_us, and a write
#            is made at the instant the true time crosses a whole second.
#
# machine.RTC().datetime() is (year, month, day, weekday, hours, minutes, seconds, subseconds),
# not gmtime's order. It is converted here with integer civil-
# date math (sntp.timestamp.days_from_civil and civil_from_days), never with floats: a Unix
# time in a float32 is good to about 2 minutes on these boards. Weekday: 0 = Monday.
#
# Reading, now_us() = raw RTC time + soft_us (soft_us: see writing):
#   The RTC says which second (or which us) it is: the true time lies in [lo, lo + resolution).
#   The adapter keeps an anchor, (ticks_us, time) at its previous reading, and predicts the
#   time as anchor + ticks elapsed; the prediction is clamped into [lo, lo + resolution - 1]
#   and becomes the next anchor. So on a 1 s RTC the value moves with ticks_us between the
#   RTC's seconds, never leaves the second the RTC reads, and never runs backwards while the
#   RTC does not (a clamp up or down is also a small correction of the anchor's phase: the
#   adapter follows the RTC's own second boundaries). On a us RTC the window is one us wide:
#   the value is the RTC's.
#   The elapsed time comes from ticks_us, exact within 2**29 us (8.9 min); a longer gap between
#   readings is bridged with ticks_ms, good for 2**29 ms (6.2 days). The time service reads the
#   clock at every exchange and the board application every few seconds; if nobody reads it
#   for 6 days, the value is still inside the RTC's second (off by less than 1 s on RP2040)
#   until the next write or calibrate().
#
# Writing, adjust(offset_us) (positive: the clock moves forward, it was behind):
#   us RTC: the exact target time, microseconds included, is written at once.
#   1 s RTC: the correction goes into soft_us first, so now_us() is right at once. When soft_us
#     reaches rtc_tolerance_us, the RTC itself is rewritten, at the instant the corrected time
#     crosses a whole second (ticks_us-timed: sleep, then spin the last few ms), with that
#     whole second; the anchor is the ticks of that instant, and soft_us returns to 0. So
#     time.time() (which reads the RTC) is right to a few ms, not to a second. The write
#     waits for the next whole second, up to 1 s, blocking; with the run() task started (the
#     board main does), adjust() returns at once and the task writes the RTC within a second
#     or two, holding the event loop for at most LEAD_US (20 ms) at the whole second.
#   On RP2040 this assumes that loading the RTC restarts its 1 Hz divider, so that its next
#   second starts one second after the write (pico-sdk rtc_set_datetime disables the RTC,
#   loads, re-enables). If a board does not, the reading still follows the RTC's real second
#   boundaries (the clamp above); calibrate() measures how far they are from the written
#   ones, and `make hil` prints it.
#   Absurd input never raises: a non-integer offset, or a time outside [port epoch, 2100),
#   returns False and reports one line; so does an RTC that refuses the write. False: the
#   clock did not move.
from .client import SystemClock
from .compat import const
from .timestamp import NTP_1970_S, US_PER_S, civil_from_days, days_from_civil, unix_us

US_RESOLUTION = const(1)  # ESP32: subseconds are us
SECOND_RESOLUTION = const(1_000_000)  # RP2040: whole seconds

# How far the RTC (what time.time() reads) may be from the corrected time before a 1 s RTC is
# rewritten: a correction below this only moves soft_us. The service slews by at most 500 us
# a second (firmware/sntp/discipline.py): a slew rewrites the RTC about every 10 s.
_DEFAULT_RTC_TOLERANCE_US = const(5_000)
# The writes spin (busy-wait on ticks_us) for the last SPIN_US before the whole second; the
# rest of the wait is a sleep, which may overshoot by a millisecond or so (an interrupt, the
# Wi-Fi driver). `make hil` prints how late the write really was.
SPIN_US = const(5_000)
_MAX_SPINS = const(1_000_000)  # a ticks_us that does not advance must not hang the board
# ticks_us differences are exact below 2**29 us; beyond this gap, ticks_ms bridges them.
_FINE_GAP_MS = const(400_000)
_TICKS_PERIOD = const(1 << 30)  # ticks wrap on the 32-bit boards (compat.TICKS_PERIOD)
_TICKS_HALF = const(1 << 29)
# The run() task: how often it looks at soft_us, and how close to the whole second it wakes.
_IDLE_MS = const(1_000)
LEAD_US = const(20_000)
_RETRY_MS = const(60_000)  # after a failed write
MAX_MISSES = const(10)  # whole seconds missed (woken too late) before a blocking write
# The adapter writes no time from 2100-01-01 on: far beyond a device's life, well inside
# what both RTCs hold; the firmware's era pivot is good until 2112.
_MAX_YEAR = const(2099)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class OnHostClock:
    """Base of a board clock that keeps its own time but takes ticks, sleep and entropy from
    self.host (a SystemClock, set by the subclass): BoardRTC and ProcessClock below."""

    host: SystemClock  # an annotation only: no class attribute on either runtime

    def ticks_us(self):
        return self.host.ticks_us()

    def ticks_ms(self):
        return self.host.ticks_ms()

    def ticks_diff(self, a, b):
        return self.host.ticks_diff(a, b)

    def sleep_ms(self, ms):
        self.host.sleep_ms(ms)

    def random_bytes(self, n):
        return self.host.random_bytes(n)


class BoardRTC(OnHostClock):
    """machine.RTC as the service's clock (now_us, ticks, sleep, entropy) and rtc (adjust).

    rtc            machine.RTC()-like: datetime() reads, datetime(tuple) writes
    resolution_us  US_RESOLUTION (ESP32) or SECOND_RESOLUTION (RP2040)
    host           client.SystemClock()-like for ticks_us/ticks_ms/ticks_diff/sleep_ms,
                   random_bytes and epoch_s (tests pass a fake)
    warn           callable(one line) for each problem; None: print it
    """

    def __init__(
        self,
        rtc,
        resolution_us=SECOND_RESOLUTION,
        host=None,
        warn=None,
        rtc_tolerance_us=_DEFAULT_RTC_TOLERANCE_US,
    ):
        if resolution_us != US_RESOLUTION and resolution_us != SECOND_RESOLUTION:
            raise ValueError("resolution_us must be 1 or 1000000")
        self.rtc = rtc  # machine.RTC()
        self.resolution_us = resolution_us  # us: 1 (ESP32) or 1_000_000 (RP2040)
        self.host = host if host is not None else SystemClock()  # ticks, sleep, entropy
        self.epoch_s = self.host.epoch_s  # s from 1900 to the port epoch
        self.epoch_days = (self.epoch_s - NTP_1970_S) // 86400  # port epoch, days since 1970
        self.max_us = (days_from_civil(_MAX_YEAR + 1, 1, 1) - self.epoch_days) * 86400 * US_PER_S
        self.warn = warn  # callable(text), or None: print
        self.rtc_tolerance_us = max(0, rtc_tolerance_us)  # us the RTC may be off (1 s RTC)
        self.soft_us = 0  # us added to the RTC's time: corrections not yet written to it
        self.anchor_ticks = None  # ticks_us of the previous reading (None: none yet)
        self.anchor_ms = 0  # ticks_ms of the previous reading
        self.anchor_us = 0  # raw RTC time then, us since the port epoch
        self.background = False  # the run() task writes the RTC (adjust does not wait)
        self.error = None  # the last problem, one line (None: none yet)
        self.writes = 0  # RTC writes made
        # how late the last write landed, us: after the whole second (1 s RTC), after the
        # instant its value was computed for (us RTC)
        self.last_write_late_us = None

    # ---- reading ------------------------------------------------------------------------
    def now_us(self):
        """The corrected time, us since the port epoch (sub-second resolution on both RTCs)."""
        return self._raw_us() + self.soft_us

    def unix_us(self):
        """now_us() as Unix us (the ESP32's epoch is 2000)."""
        return unix_us(self.now_us(), self.epoch_s)

    def _sample(self):
        """(the RTC's reading in us since the port epoch, floored to its resolution, and the
        ticks_us and ticks_ms taken right after it): the date math comes after the ticks."""
        dt = self.rtc.datetime()
        t = self.host.ticks_us()
        t_ms = self.host.ticks_ms()
        days = days_from_civil(dt[0], dt[1], dt[2]) - self.epoch_days
        s = days * 86400 + dt[4] * 3600 + dt[5] * 60 + dt[6]
        sub = 0
        if self.resolution_us == US_RESOLUTION:
            sub = min(max(0, dt[7]), US_PER_S - 1)
        return s * US_PER_S + sub, t, t_ms

    def _raw_us(self):
        lo, t, t_ms = self._sample()
        if self.anchor_ticks is None:
            v = lo  # no anchor yet: the start of the RTC's second (calibrate() does better)
        else:
            v = self.anchor_us + self._elapsed_us(t, t_ms)
            hi = lo + self.resolution_us - 1
            if v < lo:
                v = lo  # the RTC's second began earlier than the anchor said
            elif v > hi:
                v = hi  # it has not ended yet: hold (never backwards)
        self.anchor_ticks, self.anchor_ms, self.anchor_us = t, t_ms, v
        return v

    def _elapsed_us(self, t, t_ms):
        """us from the anchor to (t, t_ms): ticks_us, bridged with ticks_ms over long gaps."""
        fine = self.host.ticks_diff(t, self.anchor_ticks)
        gap_ms = self.host.ticks_diff(t_ms, self.anchor_ms)
        if gap_ms < _FINE_GAP_MS:
            return fine
        # ticks_us wrapped in between: it is still exact modulo its period, and ticks_ms
        # (the same counter on both boards) says how many periods went by.
        approx = gap_ms * 1000
        return approx + ((fine - approx + _TICKS_HALF) % _TICKS_PERIOD) - _TICKS_HALF

    def calibrate(self, max_ms=1_100):
        """1 s RTC: wait (spinning, at most max_ms) for the RTC's next second, and anchor there.

        Returns how far the interpolation was from the RTC's real second boundary, in us
        (positive: it was behind), or None if no second change was seen. A us RTC: 0 at once.
        Blocks up to a second: call it at boot, or from a check such as `make hil`.
        """
        if self.resolution_us == US_RESOLUTION:
            return 0
        h = self.host
        before = self._raw_us()
        first = before - before % US_PER_S
        start = self.anchor_ticks
        for _ in range(_MAX_SPINS):
            lo, t, t_ms = self._sample()
            if lo != first:
                predicted = self.anchor_us + self._elapsed_us(t, t_ms)
                self.anchor_ticks, self.anchor_ms, self.anchor_us = t, t_ms, lo
                return lo - predicted
            if h.ticks_diff(t, start) > max_ms * 1000:
                break
        return None

    # ---- writing --------------------------------------------------------------------------
    def adjust(self, offset_us):
        """Step the clock by offset_us (positive: forward). True, or False and one warning.

        Never raises. False: the clock did not move (bad offset, time out of range, or the
        RTC refused the write).
        """
        if not _is_int(offset_us):
            return self._fail("adjust: offset {!r} is not an integer (us)".format(offset_us))
        now = self.now_us()
        target = now + offset_us
        if not (0 <= target < self.max_us):
            return self._fail(
                "adjust: {} us would leave the RTC's range (port epoch .. {})".format(
                    offset_us, _MAX_YEAR
                )
            )
        if self.resolution_us == US_RESOLUTION:
            return self._write_us(target)
        previous = self.soft_us
        self.soft_us = previous + offset_us
        if abs(self.soft_us) < self.rtc_tolerance_us or self.background:
            return True  # now_us() is right; the RTC is close enough, or run() will write it
        if self.write_rtc(US_PER_S):
            return True
        self.soft_us = previous  # nothing moved
        return False

    def set_unix_us(self, t_unix_us):
        """Make the clock read t_unix_us (Unix us) now. True, or False and one warning."""
        if not _is_int(t_unix_us):
            return self._fail("set: {!r} is not an integer number of us".format(t_unix_us))
        return self.adjust(t_unix_us - self.unix_us())

    def _write_us(self, target_us):
        """us RTC: write target_us (the corrected time at the last reading) at once."""
        h = self.host
        t = h.ticks_us()
        # the time has moved on since the reading the target was computed from (the board
        # stubs type ticks as kinds of their own, hence the ignores)
        value = target_us + h.ticks_diff(t, self.anchor_ticks)  # type: ignore[type-var,unused-ignore]
        s, sub = divmod(value, US_PER_S)
        if not self._write(self._datetime(s, sub)):
            return False
        self.soft_us = 0
        self.anchor_ticks, self.anchor_ms, self.anchor_us = t, h.ticks_ms(), value  # type: ignore[assignment,unused-ignore]
        self.last_write_late_us = h.ticks_diff(h.ticks_us(), t)
        return True

    def write_rtc(self, max_wait_us=US_PER_S):
        """1 s RTC: write the corrected time at its next whole second, if that comes within
        max_wait_us. True when written, None when the second is further away, False (and a
        warning) when the write failed.

        Sleeps, then spins for the last SPIN_US: blocks for up to max_wait_us.
        """
        h = self.host
        now = self.now_us()  # reads the RTC: the anchor is now (t0, now - soft_us)
        t0 = self.anchor_ticks
        t0_ms = self.anchor_ms
        wait_us = (-now) % US_PER_S
        if wait_us > max_wait_us:
            return None
        whole_s = (now + wait_us) // US_PER_S
        dt = self._datetime(whole_s, 0)  # ready before the wait: the write follows the spin
        if wait_us > SPIN_US:
            h.sleep_ms((wait_us - SPIN_US) // 1000)
        late_us = 0
        for _ in range(_MAX_SPINS):
            late_us = h.ticks_diff(h.ticks_us(), t0) - wait_us  # type: ignore[type-var,unused-ignore]
            if late_us >= 0:
                break
        else:
            return self._fail("rtc: ticks_us does not advance, RTC not written")
        if not self._write(dt):
            return False
        # From now on the RTC's time is the corrected one: at t0 it read `now`.
        self.soft_us = 0
        self.anchor_ticks, self.anchor_ms, self.anchor_us = t0, t0_ms, now
        self.last_write_late_us = late_us
        return True

    def _datetime(self, s, sub):
        """s since the port epoch, sub us -> the RTC's 8-tuple."""
        days, sod = divmod(s, 86400)
        days += self.epoch_days
        year, month, day = civil_from_days(days)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        return (year, month, day, weekday, sod // 3600, sod // 60 % 60, sod % 60, sub)

    def _write(self, dt):
        try:
            self.rtc.datetime(dt)
        except (OSError, ValueError, TypeError) as e:
            return self._fail("rtc: cannot write the time: {!r}".format(e))
        self.writes += 1
        return True

    def _fail(self, text):
        if text != self.error:  # a failure that repeats is said once
            self.error = text
            if self.warn is not None:
                self.warn(text)
            else:
                print(text)
        return False

    # ---- the background writer ----------------------------------------------------------
    async def run(self):
        """An asyncio task for a 1 s RTC: writes pending corrections at the next whole second.

        While it runs, adjust() never waits. Returns at once for a us RTC (nothing to do).
        """
        if self.resolution_us == US_RESOLUTION:
            return
        from .aio import sleep_ms  # asyncio only where this task is used

        self.background = True
        misses = 0  # whole seconds missed in a row: the event loop woke us after them
        aimed = False  # the last sleep was meant to end just before a whole second
        try:
            while True:
                if abs(self.soft_us) < self.rtc_tolerance_us:
                    misses, aimed = 0, False
                    await sleep_ms(_IDLE_MS)
                    continue
                wait_us = (-self.now_us()) % US_PER_S
                if wait_us > LEAD_US:
                    if aimed:
                        misses += 1  # woken too late: the second went by
                    if misses < MAX_MISSES:
                        aimed = True
                        await sleep_ms((wait_us - LEAD_US // 2) // 1000)
                        continue
                # in the window; or, after MAX_MISSES, wait for the second here (up to 1 s)
                aimed = False
                done = self.write_rtc(LEAD_US if misses < MAX_MISSES else US_PER_S)
                if done is False:
                    await sleep_ms(_RETRY_MS)  # said once; try again later
                elif done:
                    misses = 0
        finally:
            self.background = False


class ProcessClock(OnHostClock):
    """The service's clock and rtc on a port without a known RTC (the unix port): the host's
    clock plus offset_us, kept in this process. The host's own clock is never changed."""

    def __init__(self, host=None):
        self.host = host if host is not None else SystemClock()
        self.epoch_s = self.host.epoch_s  # s from 1900 to the port epoch
        self.offset_us = 0  # this clock minus the host's, us

    def now_us(self):
        return self.host.now_us() + self.offset_us

    def unix_us(self):
        return unix_us(self.now_us(), self.epoch_s)

    def set_unix_us(self, t_unix_us):
        """Make the clock read t_unix_us (Unix us) now."""
        self.adjust(t_unix_us - self.unix_us())

    def adjust(self, offset_us):
        """Move the clock by offset_us (positive: forward)."""
        self.offset_us += offset_us
        return True

    async def run(self):
        """Nothing to write in the background (BoardRTC.run's counterpart)."""


def make(warn=None):
    """The clock and rtc for the service on this port: BoardRTC over machine.RTC on esp32
    (microseconds) and rp2 (whole seconds), else a ProcessClock. warn: BoardRTC's."""
    import sys

    p = sys.platform
    if p == "esp32" or p == "rp2":
        import machine

        res = US_RESOLUTION if p == "esp32" else SECOND_RESOLUTION
        return BoardRTC(machine.RTC(), res, warn=warn)
    return ProcessClock()


def woke():
    """Why this board booted, for Service(wake=...): True after a wake from deep sleep (the
    RTC ran on), None when a board cannot say (counted as a short boot), False otherwise
    (power-on, reset, watchdog; and a host, the unix port too: a process start is a boot)."""
    import sys

    try:
        import machine

        cause = machine.reset_cause
    except (ImportError, AttributeError):
        return None if sys.platform in ("esp32", "rp2") else False
    return cause() == getattr(machine, "DEEPSLEEP_RESET", -1)
