# NTP timestamps <-> microseconds since the port's epoch, with era resolution. Integers only.
#
# Wire formats (RFC 5905 section 6):
#   timestamp  64 bits: seconds since 1900-01-01 (32 bits, wrapping) . fraction (32 bits)
#   short      32 bits: seconds (16) . fraction (16), for root delay and root dispersion
# Local times are microseconds since the port's epoch (1970 on unix/rp2/CPython, 2000 on
# ESP32), always Python ints: a float32 on the boards would only be good to about 2 minutes.
# Values above 2**30 are big ints on the boards (they take heap):
# fine at one exchange a minute, never used in a tight loop.
#
# Era (rule 9): the 32-bit seconds wrap on 2036-02-07 06:28:16 UTC. A wire
# timestamp is resolved to the unique full value in [pivot, pivot + 2**32 s), with the pivot
# 50 years before the firmware's build date (as chrony does): a build in 2026 decodes every
# time from 1976 until 2112 correctly, 2036+ server times included.
from .compat import const

US_PER_S = const(1_000_000)
_FRAC_HALF = const(1 << 31)

# Seconds from 1900-01-01 (the NTP prime epoch) to the port epochs.
NTP_1970_S = 2_208_988_800  # 70 years incl. 17 leap days
NTP_2000_S = 3_155_673_600  # 100 years incl. 24 leap days

# The firmware's build date, the clock floor of rule 10 and the anchor of the era pivot.
# Update it with each release (tools/sntp --version prints it). 2026-11-21 00:00:00 UTC.
BUILD_UNIX_S = 1_795_219_200
ERA_PIVOT_NTP_S = BUILD_UNIX_S + NTP_1970_S - 50 * 365 * 86400  # 50 years before the build


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), integers."""
    y = year - (1 if month <= 2 else 0)
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch_ntp_s(epoch_year):
    """Seconds from 1900-01-01 to 1 January of the port's epoch year (1970 or 2000)."""
    return days_from_civil(epoch_year, 1, 1) * 86400 + NTP_1970_S


def resolve_era(ts64, pivot_s):
    """A 64-bit wire timestamp -> the full NTP value in [pivot_s, pivot_s + 2**32) seconds."""
    sec = ts64 >> 32
    full_sec = pivot_s + (sec - pivot_s) % (1 << 32)  # 2**32 s: one era, 136 years
    return (full_sec << 32) | (ts64 & 0xFFFF_FFFF)


def ntp_to_us(full, epoch_s):
    """A full NTP value -> us since the port epoch, rounded to the nearest microsecond."""
    s = (full >> 32) - epoch_s
    return s * US_PER_S + (((full & 0xFFFF_FFFF) * US_PER_S + _FRAC_HALF) >> 32)


def short_to_us(v):
    """An NTP short (16.16 unsigned) -> microseconds, rounded."""
    return (v * US_PER_S + (1 << 15)) >> 16


def format_us(us):
    """Signed microseconds as a decimal seconds string, '-0.000123': no float anywhere."""
    sign = "-" if us < 0 else ""
    s, frac = divmod(abs(us), US_PER_S)
    return "{}{}.{:06d}".format(sign, s, frac)


def unix_us(t_us, epoch_s):
    """us since the port epoch -> us since 1970-01-01 (for output and for the 2000-epoch ports)."""
    return t_us + (epoch_s - NTP_1970_S) * US_PER_S


def format_utc(t_us, epoch_s):
    """us since the port epoch -> 'YYYY-MM-DD hh:mm:ss.uuuuuu UTC', without time.gmtime.

    Independent of the port's gmtime range (2038 on some 32-bit builds); correct for any date.
    """
    u = unix_us(t_us, epoch_s)
    s, frac = divmod(u, US_PER_S)
    days, sod = divmod(s, 86400)
    # civil_from_days (H. Hinnant), integers only
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    if m <= 2:
        y += 1
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}.{:06d} UTC".format(
        y, m, d, sod // 3600, sod // 60 % 60, sod % 60, frac
    )
