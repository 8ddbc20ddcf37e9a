# runs-on: both
# The board glue (boards/common: one board.py for ESP32 and Pico W) on the host, with a fake
# machine.RTC driven by a fake clock: a 1 s RTC (RP2040) and a us RTC (ESP32, 2000 epoch).
#
# The fakes are independent oracles: the fake RTC converts dates with its own day-counting
# loops (not the firmware's civil-date formulas), checks every field of every write (the
# weekday included), and counts its seconds from the instant of a write, as RP2040's RTC does
# after a load. The fake clock's ticks wrap at 2**30 and start just before a wrap, and every
# ticks read costs a few us, so a busy-wait really waits.
import asyncio
import json
import sys

from fakes import NTP_1970, NTP_2000, FakeNet, fresh_path, honest

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_ROOT = _HERE + "/.."
for _p in (_ROOT + "/boards/common",):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import settings  # noqa: E402

from sntp import aio, compat  # noqa: E402
from sntp import rtc as sntp_rtc  # noqa: E402
from sntp.rtc import SECOND_RESOLUTION, US_RESOLUTION, BoardRTC  # noqa: E402
from sntp.schema import Config  # noqa: E402

PERIOD = 1 << 30
US = 1_000_000
# The true time at the start of each test: 2026-11-21 09:27:41.618034 UTC, in Unix us.
TRUE_START_UNIX_US = 1_795_253_261_618_034


# ---- fakes --------------------------------------------------------------------------------------
class FakeHost:
    """Wrapping ticks, sleep and entropy; mono (us of real time) moves only forward."""

    def __init__(self, epoch_s=NTP_1970, tick_cost_us=3, sleep_over_us=400):
        self.epoch_s = epoch_s  # s from 1900 to the port epoch
        self.mono = 0  # us of real time since the test began
        self.start = PERIOD - 700_000  # ticks_us wraps 0.7 s into the test
        self.tick_cost_us = tick_cost_us  # each ticks_us() read takes this long
        self.sleep_over_us = sleep_over_us  # sleep_ms oversleeps by this
        self.sleeps = []  # every sleep_ms argument

    @property
    def mono_us(self):  # fakes.FakeNet's name for it
        return self.mono

    def advance(self, us):
        self.mono += us

    def ticks_us(self):
        self.mono += self.tick_cost_us
        return (self.start + self.mono) % PERIOD

    def ticks_ms(self):
        return ((self.start + self.mono) // 1000) % PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + PERIOD // 2) % PERIOD) - PERIOD // 2

    def sleep_ms(self, ms):
        self.sleeps.append(ms)
        self.mono += ms * 1000 + self.sleep_over_us

    def random_bytes(self, n):
        return bytes(n)

    def true_us(self):
        """The true time now, us since this host's port epoch."""
        return TRUE_START_UNIX_US - (self.epoch_s - NTP_1970) * US + self.mono


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _month_days(y, m):
    if m == 2:
        return 29 if _leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


class FakeRTC:
    """machine.RTC: datetime() reads, datetime(tuple) writes; 1 s or 1 us resolution.

    free_running: a 1 s RTC whose seconds tick at a fixed phase whatever the writes (not
    RP2040's behaviour; for calibrate()). fail: every write raises OSError.
    """

    def __init__(self, host, resolution_us, start_us, free_running=False, phase_us=0):
        self.host = host
        self.res = resolution_us
        self.epoch_year = 1970 if host.epoch_s == NTP_1970 else 2000
        self.wd0 = 3 if self.epoch_year == 1970 else 5  # Thursday, Saturday (0 = Monday)
        self.free_running = free_running
        self.phase_mono = host.mono - phase_us  # free running: a second starts here
        self.fail = False
        self.writes = []  # (mono, tuple)
        self._set(start_us)

    def _set(self, port_us):
        self.base_mono = self.host.mono
        self.base_us = port_us if self.res == 1 else port_us - port_us % US

    def exact_us(self):
        """Where the RTC's time really is (a 1 s RTC that restarts its seconds at a write)."""
        return self.base_us + self.host.mono - self.base_mono

    def value_us(self):
        """The RTC's own time now, us since the port epoch (floored on a 1 s RTC)."""
        e = self.host.mono - self.base_mono
        if self.res == 1:
            return self.base_us + e
        if self.free_running:
            ticks = (self.host.mono - self.phase_mono) // US
            ticks -= (self.base_mono - self.phase_mono) // US
            return self.base_us + ticks * US
        return self.base_us + e // US * US

    def datetime(self, dt=None):
        if dt is None:
            self.host.advance(20)  # a read takes 20 us
            return self._tuple(self.value_us())
        if self.fail:
            raise OSError(5)
        if len(dt) != 8 or not all(isinstance(v, int) for v in dt):
            raise ValueError("bad tuple {}".format(dt))
        y, mo, d, wd, h, mi, s, sub = dt
        if not (1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and y >= self.epoch_year):
            raise ValueError("bad date {}".format(dt))
        if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 60 and 0 <= sub < US):
            raise ValueError("bad time {}".format(dt))
        days = self._days(y, mo, d)
        if wd != (days + self.wd0) % 7:
            raise ValueError("wrong weekday {} in {}".format(wd, dt))
        self.writes.append((self.host.mono, dt))
        sub_us = sub if self.res == 1 else 0  # RP2040 ignores subseconds
        self._set((days * 86400 + h * 3600 + mi * 60 + s) * US + sub_us)
        return None

    def _days(self, y, mo, d):
        days = 0
        for yy in range(self.epoch_year, y):
            days += 366 if _leap(yy) else 365
        for mm in range(1, mo):
            days += _month_days(y, mm)
        return days + d - 1

    def _tuple(self, port_us):
        s, sub = divmod(port_us, US)
        days, sod = divmod(s, 86400)
        wd = (days + self.wd0) % 7
        y = self.epoch_year
        while days >= (366 if _leap(y) else 365):
            days -= 366 if _leap(y) else 365
            y += 1
        mo = 1
        while days >= _month_days(y, mo):
            days -= _month_days(y, mo)
            mo += 1
        return (y, mo, days + 1, wd, sod // 3600, sod // 60 % 60, sod % 60, sub)


def make(resolution_us, rtc_error_us, epoch_s=NTP_1970, **kw):
    """A host, a fake RTC that is rtc_error_us off the true time, and the adapter over them."""
    host = FakeHost(epoch_s)
    rtc = FakeRTC(host, resolution_us, host.true_us() + rtc_error_us, **kw)
    warnings = []
    adapter = BoardRTC(rtc, resolution_us, host=host, warn=warnings.append)
    return host, rtc, adapter, warnings


def error_us(host, adapter):
    return adapter.now_us() - host.true_us()


def measured_offset(host, adapter):
    """What the service measures: true time minus the clock (positive: the clock is behind)."""
    return host.true_us() - adapter.now_us()


# ---- the 1 s RTC (RP2040) -----------------------------------------------------------------------
def test_one_second_rtc_is_set_within_5_ms_and_stays_there():
    for rtc_error_us in (-3_700_000, 2_400_001, -999_999, 86_400 * US * 400):
        host, rtc, adapter, warnings = make(SECOND_RESOLUTION, rtc_error_us)
        assert adapter.adjust(measured_offset(host, adapter)) is True, warnings
        assert len(rtc.writes) == 1 and warnings == []
        # written at the true whole second: the write instant and the written second agree
        mono, dt = rtc.writes[0]
        assert dt[7] == 0
        for _ in range(300):  # 3 s of readings across second changes
            assert abs(error_us(host, adapter)) <= 5_000, (rtc_error_us, error_us(host, adapter))
            # the RTC itself (what time.time() reads) is right to 5 ms too
            t = host.true_us()
            assert (t - 5_000) // US <= rtc.value_us() // US <= (t + 5_000) // US
            host.advance(9_871)


def test_adjust_waits_at_most_a_second_and_mostly_sleeps():
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 1_234_567)
    before = host.mono
    assert adapter.adjust(measured_offset(host, adapter))
    assert host.mono - before <= US + 1_000
    assert sum(host.sleeps) * 1000 >= host.mono - before - 2 * sntp_rtc.SPIN_US
    assert 0 <= adapter.last_write_late_us <= 100


def test_interpolation_is_monotonic_and_sub_second_across_second_changes():
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, -450_000)
    adapter.adjust(measured_offset(host, adapter))
    last = adapter.now_us()
    seconds = set()
    fractions = set()
    for i in range(700):  # 5 s, uneven steps, across a ticks_us wrap
        host.advance(3_001 + (i * 7919) % 11_000)
        v = adapter.now_us()
        assert v >= last, (i, v, last)
        assert abs(v - host.true_us()) <= 5_000
        seconds.add(v // US)
        fractions.add(v % US // 100_000)
        last = v
    assert len(seconds) >= 5 and len(fractions) == 10  # every tenth of a second was seen


def test_interpolation_survives_long_gaps_between_readings():
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 0)
    adapter.adjust(measured_offset(host, adapter))
    for gap_s in (300, 700, 3_000, 86_400):  # beyond ticks_us' 2**29 us (8.9 min)
        host.advance(gap_s * US + 123_457)
        assert abs(error_us(host, adapter)) <= 5_000, gap_s


def test_reading_never_leaves_the_second_the_rtc_reads():
    # An anchor that is wrong (here: none, so the first reading assumes .000) is pulled to the
    # RTC's real second boundaries, never outside them, and never backwards. (This RTC is
    # 0.618 s behind the true time: it is the RTC's boundaries that the reading learns.)
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 0)
    host.advance(654_321)
    last = 0
    for _ in range(2_000):
        host.advance(997)
        v = adapter.now_us()
        assert v // US == rtc.value_us() // US and v >= last
        last = v
    assert abs(adapter.now_us() - rtc.exact_us()) <= 2_000  # it learnt the phase on the way
    # Someone else sets the RTC back (ntptime.settime(), say, by 1.4-2.4 s: it writes whole
    # seconds): the reading follows it, holding at the end of each second until the RTC's
    # next one rather than running ahead of the RTC.
    rtc.datetime(rtc._tuple(rtc.exact_us() - 1_400_000))
    for _ in range(2_000):
        host.advance(997)
        v = adapter.now_us()
        assert v // US == rtc.value_us() // US
    assert abs(adapter.now_us() - rtc.exact_us()) <= 2_000


def test_calibrate_measures_the_rtc_phase():
    # A free-running RTC whose seconds begin 0.4 s after the adapter's first guess (.000 at
    # its first reading): calibrate() sees the real boundary and says how far off it was.
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 0, free_running=True, phase_us=400_000)
    adapter.now_us()
    phase = adapter.calibrate()
    assert phase is not None and abs(phase - 400_000) <= 1_000, phase
    host.advance(250_000)
    v = adapter.now_us()
    assert v // US == rtc.value_us() // US and abs(v % US - 250_000) <= 1_000


def test_small_corrections_move_the_reading_not_the_rtc():
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 0)
    adapter.adjust(measured_offset(host, adapter))
    writes = len(rtc.writes)
    before = error_us(host, adapter)
    assert adapter.adjust(3_000) is True
    assert len(rtc.writes) == writes and adapter.soft_us == 3_000
    assert abs(error_us(host, adapter) - before - 3_000) <= 100
    assert adapter.adjust(-6_000) is True  # -3 ms in all: still within the 5 ms tolerance
    assert len(rtc.writes) == writes and adapter.soft_us == -3_000
    assert adapter.adjust(-2_500) is True  # -5.5 ms reaches the tolerance: written
    assert len(rtc.writes) == writes + 1 and adapter.soft_us == 0
    assert abs(error_us(host, adapter) - before + 5_500) <= 200
    t = host.true_us() - 5_500
    assert (t - 1_000) // US <= rtc.value_us() // US <= (t + 1_000) // US


def test_background_writer_writes_at_the_whole_second_holding_the_loop_briefly():
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, 7 * US + 333_333)
    real_sleep = aio.sleep_ms
    resumed = [host.mono]
    held = []  # us of fake time the run() task held the event loop, each time it ran

    async def fake_sleep(ms):
        held.append(host.mono - resumed[0])
        host.sleep_ms(ms)
        await real_sleep(0)
        resumed[0] = host.mono

    async def scenario():
        task = asyncio.create_task(adapter.run())
        await real_sleep(0)
        assert adapter.background
        start = host.mono
        assert adapter.adjust(measured_offset(host, adapter)) is True
        assert host.mono - start < 1_000 and rtc.writes == []  # returned at once
        assert abs(error_us(host, adapter)) <= 1_000  # the reading is right already
        for _ in range(1_000):
            if rtc.writes:
                break
            await real_sleep(0)
        task.cancel()

    aio.sleep_ms = fake_sleep
    try:
        asyncio.run(scenario())
    finally:
        aio.sleep_ms = real_sleep
    assert len(rtc.writes) == 1 and adapter.soft_us == 0
    assert host.mono <= 3 * US  # written within a second or two
    assert max(held) <= sntp_rtc.LEAD_US + 1_000, max(held)
    for _ in range(200):
        assert abs(error_us(host, adapter)) <= 5_000
        t = host.true_us()
        assert (t - 5_000) // US <= rtc.value_us() // US <= (t + 5_000) // US
        host.advance(13_001)


def test_background_writer_still_writes_when_the_event_loop_is_always_late():
    # every sleep comes back 25 ms late (a busy application): the whole second is missed
    # each time, and after MAX_MISSES the task waits for it itself
    host, rtc, adapter, _ = make(SECOND_RESOLUTION, -2 * US)
    host.sleep_over_us = 25_000

    async def scenario():
        task = asyncio.create_task(adapter.run())
        await aio.sleep_ms(0)
        assert adapter.adjust(measured_offset(host, adapter)) is True and rtc.writes == []
        for _ in range(1_000):
            if rtc.writes:
                break
            await aio.sleep_ms(0)
        task.cancel()

    with_fake_sleep(host, scenario)
    assert len(rtc.writes) == 1 and host.mono <= (sntp_rtc.MAX_MISSES + 3) * US
    t = host.true_us()
    assert (t - 5_000) // US <= rtc.value_us() // US <= (t + 5_000) // US


# ---- the us RTC (ESP32, 2000 epoch) -------------------------------------------------------------
def test_us_rtc_is_set_within_1_ms_with_its_microseconds():
    for rtc_error_us in (-2_345_678, 999, 10 * 365 * 86_400 * US + 1):
        host, rtc, adapter, warnings = make(US_RESOLUTION, rtc_error_us, NTP_2000)
        assert adapter.adjust(measured_offset(host, adapter)) is True, warnings
        assert len(rtc.writes) == 1 and rtc.writes[0][1][7] != 0
        for _ in range(100):
            assert abs(error_us(host, adapter)) <= 1_000
            assert abs(rtc.value_us() - host.true_us()) <= 1_000
            host.advance(77_777)


def test_us_rtc_reading_is_the_rtc():
    host, rtc, adapter, _ = make(US_RESOLUTION, 5_000_123, NTP_2000)
    assert abs(adapter.now_us() - rtc.value_us()) <= 50
    assert abs(adapter.unix_us() - adapter.now_us() - (NTP_2000 - NTP_1970) * US) <= 100
    assert adapter.calibrate() == 0


# ---- absurd input -------------------------------------------------------------------------------
def test_adjust_never_raises_on_absurd_input():
    for res, epoch in ((SECOND_RESOLUTION, NTP_1970), (US_RESOLUTION, NTP_2000)):
        host, rtc, adapter, warnings = make(res, 0, epoch)
        adapter.adjust(measured_offset(host, adapter))
        writes = len(rtc.writes)
        far = 200 * 365 * 86_400 * US
        for bad in (1.5, "12", None, True, [1], far, -far, -adapter.now_us() - US, 10**40):
            before = error_us(host, adapter)
            assert adapter.adjust(bad) is False, (res, bad)
            assert abs(error_us(host, adapter) - before) <= 100, bad  # nothing moved
        assert len(rtc.writes) == writes and adapter.soft_us == 0
        assert len(warnings) >= 5 and all("\n" not in w for w in warnings)
        assert adapter.set_unix_us(0.5) is False
        # an RTC that refuses the write: False, one warning, nothing moved
        rtc.fail = True
        n = len(warnings)
        before = error_us(host, adapter)
        assert adapter.adjust(-5 * US) is False
        assert adapter.adjust(-5 * US) is False
        assert len(warnings) == n + 1 and "cannot write" in warnings[-1]
        assert abs(error_us(host, adapter) - before) <= 100 and adapter.soft_us == 0


def test_civil_dates_round_trip():
    from sntp.timestamp import days_from_civil

    for days in list(range(-800, 800, 7)) + list(range(10_900, 11_400)) + [47_481, 47_482]:
        y, m, d = sntp_rtc.civil_from_days(days)
        assert days_from_civil(y, m, d) == days, days
    assert sntp_rtc.civil_from_days(0) == (1970, 1, 1)
    assert sntp_rtc.civil_from_days(11_016) == (2000, 2, 29)
    assert sntp_rtc.civil_from_days(47_541) == (2100, 3, 1)  # 2100 is not a leap year


# ---- settings -----------------------------------------------------------------------------------
def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_settings_missing_or_broken_file_gives_defaults_and_one_line():
    for name, text in (("missing", None), ("garbage", "{wifi"), ("list", "[1, 2]")):
        path = fresh_path("test_boards", name + ".json")
        if text is not None:
            write(path, text)
        lines = []
        s = settings.load(path, lines.append)
        assert s == settings.defaults() and len(lines) == 1, (name, lines)
        assert path in lines[0]


def test_settings_bad_values_fall_back_one_by_one():
    path = fresh_path("test_boards", "mixed.json")
    doc = {
        "wifi_ssid": "x" * 33,
        "wifi_pass": 1234,
        "zone": "acme",
        "servers": ["ntp.example.com", 7],
        "accuracy_ms": 0.5,
        "poll_max_s": 86_400,
        "country": "de",
        "wifi_password": "typo",
    }
    write(path, json.dumps(doc))
    lines = []
    s = settings.load(path, lines.append)
    assert len(lines) == 1
    for word in ("wifi_ssid", "wifi_pass", "servers", "accuracy_ms", "wifi_password"):
        assert word in lines[0], word
    assert s["wifi_ssid"] == "" and s["wifi_pass"] == "" and s["servers"] == []
    assert s["zone"] == "acme" and s["accuracy_ms"] == 100 and s["country"] == "DE"
    c = Config.from_dict(s)  # the service takes the settings whole
    assert [h for h, _ in c.servers] == ["{}.acme.pool.ntp.org".format(i) for i in range(4)]
    assert c.accuracy_ms == 100 and c.poll_max_s == 86_400 and c.warnings == []


def test_settings_good_file():
    path = fresh_path("test_boards", "good.json")
    write(
        path,
        '{"wifi_ssid": "net", "wifi_pass": "password", "servers": ["ntp.example.com"],'
        ' "factory_server": "10.0.0.1", "accuracy_ms": 50}',
    )
    lines = []
    s = settings.load(path, lines.append)
    assert lines == [] and s["wifi_ssid"] == "net" and s["wifi_pass"] == "password"
    c = Config.from_dict(s)
    assert c.servers == [("ntp.example.com", 123)] and c.factory == ("10.0.0.1", 123)
    assert c.accuracy_ms == 50 and c.warnings == [] and not c.poll_max_explicit
    assert settings.has_servers(s) and not settings.has_servers(settings.defaults())


def test_settings_unread_for_want_of_memory_say_so_and_are_never_saved_over():
    # the heap had no block for the file's text: the defaults for this boot, with a line that
    # says "out of memory" as sntp.config.load's does; the console, which reads the file
    # itself, refuses to save over it; once memory is back, the file reads whole
    from sntp import config, store

    path = fresh_path("test_boards", "oom.json")
    good = {"kind": config.KIND, "wifi_ssid": "factory-net", "wifi_pass": "password"}
    text = json.dumps(good)
    write(path, text)
    real = store._read
    store._read = lambda p: (None, store.OUT_OF_MEMORY) if p == path else real(p)
    try:
        lines = []
        assert settings.load(path, lines.append) == settings.defaults()
        assert len(lines) == 1 and store.OUT_OF_MEMORY in lines[0] and path in lines[0], lines
        refuses_save(path, b"set accuracy_ms 50")
    finally:
        store._read = real
    with open(path) as f:
        assert f.read() == text  # untouched
    lines = []
    s = settings.load(path, lines.append)
    assert lines == [] and s["wifi_ssid"] == "factory-net" and s["wifi_pass"] == "password"


def refuses_save(path, change):
    """The console takes change but refuses to save it over path, unread for memory."""
    from sntp import store
    from sntp.console import Console

    con = Console(path, warn=[].append)
    assert con.handle(change)[-1] == "ok"
    reply = con.handle(b"save")
    assert reply[-1].startswith("err ") and store.OUT_OF_MEMORY in reply[-1], reply


def test_a_configuration_read_but_not_checked_for_want_of_memory_counts_as_unread():
    # checking the values needs memory too (a tz rule imports sntp.tz, a new character interns
    # a qstr): a MemoryError there is tried once more, then said as "out of memory", as for
    # a file that could not be read; never an exception out of load()
    from sntp import config, store

    path = fresh_path("test_boards", "oom-check.json")
    good = {"kind": config.KIND, "wifi_ssid": "factory-net", "zone": "acme"}
    write(path, json.dumps(good))
    real = config.validate  # what config.load and settings.load check the values with
    calls = []

    def short_once(doc):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError
        return real(doc)

    def short(doc):
        raise MemoryError

    try:
        config.validate = short_once  # the second try has the memory: the file, whole
        lines = []
        assert settings.load(path, lines.append)["wifi_ssid"] == "factory-net" and lines == []
        del calls[:]
        assert config.load(path, lines.append)["zone"] == "acme" and lines == []
        config.validate = short
        assert settings.load(path, lines.append) == settings.defaults()
        assert config.load(path, lines.append) == config.defaults()
        assert len(lines) == 2 and all(store.OUT_OF_MEMORY in x for x in lines), lines
        refuses_save(path, b"set zone other")
    finally:
        config.validate = real
    with open(path) as f:
        assert json.loads(f.read()) == good  # untouched


def test_settings_read_the_temporary_file_of_a_save_cut_before_its_rename():
    path = fresh_path("test_boards", "fat.json")  # FAT: the old file removed, then the cut
    write(path + ".tmp", '{"wifi_ssid": "net", "zone": "acme"}')
    lines = []
    s = settings.load(path, lines.append)
    assert lines == [] and s["wifi_ssid"] == "net" and s["zone"] == "acme"
    write(path + ".tmp", '{"wifi_ssid": "ne')  # a first save cut while writing: none saved
    s = settings.load(path, lines.append)
    assert s == settings.defaults() and len(lines) == 1 and "not found" in lines[0], lines


# ---- the board program --------------------------------------------------------------------------
class FakeWLAN:
    def __init__(self, joins_after=2):
        self.joins_after = joins_after  # isconnected() calls until joined (None: never)
        self.calls = 0
        self.connected = False
        self.active_set = None
        self.connects = []

    def active(self, on=None):
        if on is not None:
            self.active_set = on
        return self.active_set

    def connect(self, ssid, key):
        self.connects.append((ssid, key))

    def disconnect(self):
        pass

    def isconnected(self):
        self.calls += 1
        if self.joins_after is not None and self.calls > self.joins_after:
            self.connected = True
        return self.connected

    def status(self):
        return 1

    def ifconfig(self):
        return ("192.0.2.7", "255.255.255.0", "192.0.2.1", "192.0.2.1")


class FakeBoard:
    NAME = "fake"

    def __init__(self, wlan, resolution_us=US_RESOLUTION, rtc_error_us=0):
        self.wlan = wlan
        self.host = FakeHost(NTP_2000 if resolution_us == US_RESOLUTION else NTP_1970)
        self.resolution_us = resolution_us
        self.rtc = FakeRTC(self.host, resolution_us, self.host.true_us() + rtc_error_us)

    def make_rtc(self, warn=None):
        return BoardRTC(self.rtc, self.resolution_us, host=self.host, warn=warn)

    def make_wlan(self, s):
        self.wlan.active(True)
        return self.wlan


def run_board(config_text, wlan, period_ms=5):
    import app

    config = fresh_path("test_boards", "config.json")
    state = fresh_path("test_boards", "state.json")
    if config_text is not None:
        write(config, config_text)
    lines = []

    async def application(b, out):
        await app.placeholder_app(b, out, period_ms=period_ms, count=3)

    board = asyncio.run(app.main(FakeBoard(wlan), config, state, application, lines.append))
    return board, lines


def test_board_without_wifi_credentials_says_so_and_runs_its_application():
    wlan = FakeWLAN()
    board, lines = run_board('{"zone": "acme"}', wlan)
    assert board.service is None and board.wifi is None and wlan.connects == []
    assert any("no Wi-Fi credentials" in line for line in lines), lines
    assert len([line for line in lines if line.startswith("app: ")]) == 3
    board, lines = run_board(None, FakeWLAN())  # no file at all: the same
    assert board.service is None and len([x for x in lines if x.startswith("app: ")]) == 3


def test_board_settings_and_service_need_no_console_module():
    # the core frozen alone (no sntp-console extra): the settings are read with sntp.config,
    # which is in the core, and the service runs; only the console is missing
    import sys

    saved = {m: sys.modules.pop(m) for m in ("sntp.console",) if m in sys.modules}
    try:
        board, lines = run_board('{"wifi_ssid": "net", "zone": "acme"}', FakeWLAN())
        loaded = [m for m in ("sntp.console",) if m in sys.modules]
    finally:
        sys.modules.update(saved)
    assert board.service is not None and board.settings["zone"] == "acme"
    assert loaded == [], loaded
    assert len([line for line in lines if line.startswith("app: ")]) == 3


def test_board_with_credentials_joins_and_starts_the_service():
    wlan = FakeWLAN(joins_after=2)
    board, lines = run_board('{"wifi_ssid": "net", "wifi_pass": "password"}', wlan)
    assert wlan.connects == [("net", "password")] and wlan.active_set is True
    assert board.service is not None and board.wifi.joins == 1
    assert any(line.startswith("wifi: joined 'net'") for line in lines), lines
    assert any("no NTP servers" in line for line in lines), lines
    assert any(line.startswith("sntp: idle") for line in lines), lines  # rule 3: no default
    assert len([line for line in lines if line.startswith("app: ")]) == 3


def test_the_board_feeds_a_watchdog_every_second_when_configured():
    import app

    class WDT:
        made = []

        def __init__(self, timeout):
            self.timeout = timeout
            self.feeds = []  # ticks_ms of each feed
            WDT.made.append(self)

        def feed(self):
            self.feeds.append(compat.ticks_ms())

    class Machine:
        pass

    machine = Machine()
    machine.WDT = WDT
    saved = sys.modules.get("machine"), app.WDT_FEED_MS
    sys.modules["machine"] = machine
    app.WDT_FEED_MS = 10  # a second on the board; 10 ms here, so the test is quick
    try:
        board, lines = run_board('{"wifi_ssid": "net", "wifi_pass": "password"}', FakeWLAN())
        assert WDT.made == []  # not asked for: no watchdog (it cannot be stopped once started)
        for bad in ("1", "9", '"4"'):
            board, lines = run_board('{"wdt_s": %s}' % bad, FakeWLAN())
            assert WDT.made == [] and any("wdt_s" in x for x in lines), lines
        config = '{"wifi_ssid": "net", "wifi_pass": "password", "wdt_s": 4}'
        board, lines = run_board(config, FakeWLAN(), period_ms=40)
    finally:
        if saved[0] is None:
            sys.modules.pop("machine", None)
        else:
            sys.modules["machine"] = saved[0]
        app.WDT_FEED_MS = saved[1]
    assert len(WDT.made) == 1 and WDT.made[0].timeout == 4_000
    feeds = WDT.made[0].feeds
    assert len(feeds) >= 5, feeds  # 3 x 40 ms of the application: fed all along
    gaps = [compat.ticks_diff(b, a) for a, b in zip(feeds, feeds[1:])]
    assert max(gaps) < 100, gaps
    assert any(x.startswith("board: watchdog of 4000 ms") for x in lines), lines


def test_the_board_module_makes_its_rtc_and_wlan():
    # one boards/common/board.py for ESP32 and Pico W: sntp.rtc.make() picks the RTC's
    # resolution by sys.platform (us on esp32, whole seconds on rp2); any other port with a
    # machine.RTC (this host, with a fake one) gets its whole seconds
    class Module:
        pass

    made = []
    machine = Module()
    machine.RTC = lambda: FakeRTC(FakeHost(), SECOND_RESOLUTION, 0)
    network = Module()
    network.STA_IF = 0
    network.country = lambda code: made.append(("country", code))
    network.WLAN = lambda iface: made.append(("wlan", iface)) or FakeWLAN()
    saved = {k: sys.modules.get(k) for k in ("machine", "network")}
    sys.modules["machine"] = machine
    sys.modules["network"] = network
    platform = sys.platform
    try:
        import board

        assert board.NAME == platform
        clock = board.make_rtc()
        assert isinstance(clock, BoardRTC) and clock.resolution_us == SECOND_RESOLUTION
        wlan = board.make_wlan({"country": "DE"})
        assert made == [("country", "DE"), ("wlan", 0)] and wlan.active_set is True
        made.clear()
        board.make_wlan({"country": ""})
        assert made == [("wlan", 0)]  # no country set: the port's default
        for name, res in (("esp32", US_RESOLUTION), ("rp2", SECOND_RESOLUTION)):
            try:
                sys.platform = name  # CPython; MicroPython's sys.platform is read-only
            except AttributeError:
                break
            assert board.make_rtc().resolution_us == res, name
    finally:
        try:
            sys.platform = platform
        except AttributeError:
            pass
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_why_the_board_booted_comes_from_machine_reset_cause():
    class Module:
        pass

    saved = sys.modules.get("machine")
    try:
        if saved is None:
            assert sntp_rtc.woke() is False  # a host: a process start is a boot
        machine = Module()
        sys.modules["machine"] = machine
        assert sntp_rtc.woke() is False  # no reset_cause (the unix port's machine): a host
        machine.reset_cause = lambda: 4
        assert sntp_rtc.woke() is False  # the port names no deep-sleep wake
        machine.DEEPSLEEP_RESET = 4
        assert sntp_rtc.woke() is True  # esp32 after machine.deepsleep()
        machine.reset_cause = lambda: 1  # PWRON_RESET
        assert sntp_rtc.woke() is False
    finally:
        if saved is None:
            sys.modules.pop("machine", None)
        else:
            sys.modules["machine"] = saved


# ---- the real service and the HIL check on the 1 s RTC, over a fake network ---------------------
def with_fake_sleep(host, coro_fn):
    """Run coro_fn() with sntp.aio.sleep_ms moving the fake clock instead of waiting."""
    real_sleep = aio.sleep_ms

    async def fake_sleep(ms):
        host.sleep_ms(max(0, ms))
        await real_sleep(0)

    aio.sleep_ms = fake_sleep
    try:
        return asyncio.run(coro_fn())
    finally:
        aio.sleep_ms = real_sleep


def test_the_service_sets_a_one_second_rtc_within_5_ms():
    host, rtc, adapter, warnings = make(SECOND_RESOLUTION, -3_700_000)
    svc = aio.AsyncService(
        {"servers": ["ntp.example"]},
        net=FakeNet(host, honest(TRUE_START_UNIX_US)),
        clock=adapter,
        rtc=adapter,
        timeout_ms=1_000,
    )
    summary = with_fake_sleep(host, svc.sync)
    assert summary["ok"] and summary["clock_set"], summary
    assert abs(summary["offset_us"] - 3_700_000) <= 1_000_000  # the RTC's phase was unknown
    assert len(rtc.writes) == 1 and warnings == []
    for _ in range(300):
        assert abs(error_us(host, adapter)) <= 5_000, error_us(host, adapter)
        assert abs(svc.time_us() - host.true_us()) <= 5_000
        t = host.true_us()
        assert (t - 5_000) // US <= rtc.value_us() // US <= (t + 5_000) // US
        host.advance(9_871)


def hil_board(name, resolution_us, rtc_error_us):
    """A fake board with credentials and a server, an honest fake network, and a scenario()
    that runs hil.check on them, its lines in lines."""
    import hil

    board = FakeBoard(FakeWLAN(joins_after=1), resolution_us, rtc_error_us=rtc_error_us)
    config = fresh_path("test_boards", name + "-config.json")
    state = fresh_path("test_boards", name + "-state.json")
    write(config, '{"wifi_ssid": "net", "wifi_pass": "pw", "servers": ["ntp.example"]}')
    lines = []
    net = FakeNet(board.host, honest(TRUE_START_UNIX_US))

    async def scenario():
        return await hil.check(board, 60, lines.append, config, state, net)

    return board, config, lines, net, scenario


def test_hil_check_passes_against_a_fake_server():
    board, config, lines, net, scenario = hil_board("hil", SECOND_RESOLUTION, 2_500_000)
    assert with_fake_sleep(board.host, scenario) is True, lines
    assert lines[-1].startswith("HIL: PASS offset -2.") and "interval" in lines[-1], lines
    assert " ppb (offset " in lines[-1]  # the drift was measured
    assert len(net.sent) == 2  # one sync request, one drift measurement: no more
    t = board.host.true_us()
    assert (t - 5_000) // US <= board.rtc.value_us() // US <= (t + 5_000) // US
    # no credentials: a clear verdict, no traffic
    write(config, '{"servers": ["ntp.example"]}')
    del lines[:]
    assert with_fake_sleep(board.host, scenario) is False
    assert lines[-1].startswith("HIL: FAIL no Wi-Fi credentials")


def test_hil_drift_leaves_out_the_slew_the_service_has_pending():
    # an RTC 50 ms ahead is slewed, not stepped: the slew is still pending when the drift is
    # measured (the service loop does not run during the check), so it is no drift
    board, _, lines, _, scenario = hil_board("hil-slew", US_RESOLUTION, 50_000)
    assert with_fake_sleep(board.host, scenario) is True, lines
    verdict = lines[-1]
    pending = int(verdict.split("slew pending ")[1].split(" us")[0])
    assert -60_000 <= pending <= -45_000, (
        verdict
    )  # the sync's slew (50 ms, the fake costs), not yet applied
    ppb = int(verdict.split("drift ")[1].split(" ppb")[0])
    assert abs(ppb) < 20_000, verdict  # not the 50 ms over 60 s (-833,333 ppb)
    assert "service estimate" in verdict, verdict


def test_the_process_clock_moves_only_its_own_offset():
    from sntp.rtc import ProcessClock

    host = FakeHost(NTP_2000)
    host.now_us = lambda: host.true_us()  # noqa: E731 - the host's clock, which is never set
    clock = ProcessClock(host)
    assert clock.epoch_s == NTP_2000 and clock.now_us() == host.true_us()
    assert clock.adjust(-2_500_000) is True and clock.adjust(1) is True
    assert clock.now_us() == host.true_us() - 2_499_999
    clock.set_unix_us(1_795_253_261_000_000)
    assert clock.unix_us() == 1_795_253_261_000_000
    run = clock.run()  # no background writer to run: the coroutine ends at its first step
    try:
        run.send(None)
        ended = False
    except StopIteration:
        ended = True
    assert ended
