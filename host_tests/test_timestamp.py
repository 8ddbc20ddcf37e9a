# runs-on: both
# Era and epoch arithmetic (rule 9).
from fakes import ERA_ROLLOVER_UNIX, NTP_1970, NTP_2000, ntp64

from sntp import timestamp as ts


def test_epoch_offsets_match_the_calendar():
    assert ts.epoch_ntp_s(1970) == NTP_1970
    assert ts.epoch_ntp_s(2000) == NTP_2000
    assert ts.NTP_2000_S - ts.NTP_1970_S == 946684800  # 2000-01-01 in Unix seconds


def test_pivot_is_fifty_years_before_the_build():
    assert ts.ERA_PIVOT_NTP_S == ts.BUILD_UNIX_S + NTP_1970 - 50 * 365 * 86400


def _roundtrip(unix_us, epoch_s):
    wire = ntp64(unix_us)  # the independent encoder (tools/ntpwire.py): the era dropped
    back = ts.ntp_to_us(ts.resolve_era(wire, ts.ERA_PIVOT_NTP_S), epoch_s)
    return back + (epoch_s - NTP_1970) * 1_000_000


def test_both_sides_of_the_2036_rollover_on_both_epochs():
    for epoch_s in (NTP_1970, NTP_2000):
        for unix_us in (
            ERA_ROLLOVER_UNIX * 1_000_000 - 1,  # last microsecond of era 0
            ERA_ROLLOVER_UNIX * 1_000_000,  # first of era 1: wire seconds are 0
            ERA_ROLLOVER_UNIX * 1_000_000 + 86400 * 1_000_000 + 123_456,
            ts.BUILD_UNIX_S * 1_000_000 + 999_999,
        ):
            assert _roundtrip(unix_us, epoch_s) == unix_us


def test_2036_wire_seconds_are_small_and_decode_after_2036_not_1900():
    wire = ntp64(ERA_ROLLOVER_UNIX * 1_000_000 + 5_000_000)
    assert wire >> 32 == 5
    full = ts.resolve_era(wire, ts.ERA_PIVOT_NTP_S)
    assert full >> 32 == (1 << 32) + 5
    assert ts.format_utc(ts.ntp_to_us(full, NTP_1970), NTP_1970).startswith("2036-02-07 06:28:21")


def test_era_window_ends_136_years_after_the_pivot():
    last = ts.ERA_PIVOT_NTP_S + (1 << 32) - 1
    assert ts.resolve_era((last % (1 << 32)) << 32, ts.ERA_PIVOT_NTP_S) >> 32 == last
    first = ts.ERA_PIVOT_NTP_S
    assert ts.resolve_era((first % (1 << 32)) << 32, ts.ERA_PIVOT_NTP_S) >> 32 == first


def test_2038_and_the_2000_epoch_before_its_start():
    t = 2147483648 * 1_000_000  # 2038-01-19 03:14:08, past the signed 32-bit Unix limit
    assert _roundtrip(t, NTP_1970) == t
    assert ts.format_utc(t, NTP_1970) == "2038-01-19 03:14:08.000000 UTC"
    # 1999 on a 2000-epoch port is a negative local time, and still exact
    assert ts.format_utc(-1, NTP_2000) == "1999-12-31 23:59:59.999999 UTC"


def test_fraction_rounding_is_to_the_nearest_microsecond():
    assert ts.ntp_to_us((NTP_1970 << 32) | 0x80000000, NTP_1970) == 500_000
    assert ts.ntp_to_us((NTP_1970 << 32) | 0xFFFFFFFF, NTP_1970) == 1_000_000
    assert ts.short_to_us(0x00010000) == 1_000_000
    assert ts.short_to_us(0x00008000) == 500_000


def test_format_us_without_floats():
    assert ts.format_us(12_500_000) == "12.500000"
    assert ts.format_us(-1) == "-0.000001"
    assert ts.format_us(0) == "0.000000"
