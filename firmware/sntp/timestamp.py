# Times and header fields as people read them, and the port epoch from its year: outside
# the sync core (sntp.exchange holds the NTP timestamp arithmetic the core needs; its names
# are re-exported here, so `from sntp.timestamp import ntp_to_us` keeps working).
#
# Dates are computed with integers only (H. Hinnant's civil-date algorithms), independent of
# the port's gmtime range (2038 on some 32-bit builds).
from .exchange import (  # noqa: F401 - re-exported
    BUILD_UNIX_S,
    ERA_PIVOT_NTP_S,
    NTP_1970_S,
    NTP_2000_S,
    US_PER_S,
    kiss_code,
    ntp_to_us,
    resolve_era,
    short_to_us,
    unix_us,
)


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), integers."""
    y = year - (1 if month <= 2 else 0)
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days):
    """Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant), integers."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def epoch_ntp_s(epoch_year):
    """Seconds from 1900-01-01 to 1 January of the port's epoch year (1970 or 2000)."""
    return days_from_civil(epoch_year, 1, 1) * 86400 + NTP_1970_S


def format_us(us):
    """Signed microseconds as a decimal seconds string, '-0.000123': no float anywhere."""
    sign = "-" if us < 0 else ""
    s, frac = divmod(abs(us), US_PER_S)
    return "{}{}.{:06d}".format(sign, s, frac)


def format_utc(t_us, epoch_s):
    """us since the port epoch -> 'YYYY-MM-DD hh:mm:ss.uuuuuu UTC', without time.gmtime.

    Independent of the port's gmtime range (2038 on some 32-bit builds); correct for any date.
    """
    u = unix_us(t_us, epoch_s)
    s, frac = divmod(u, US_PER_S)
    days, sod = divmod(s, 86400)
    y, m, d = civil_from_days(days)
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}.{:06d} UTC".format(
        y, m, d, sod // 3600, sod // 60 % 60, sod % 60, frac
    )


def refid_text(stratum, refid):
    """The refid as sntp -d shows it: a code for stratum 0-1, an IPv4 address above."""
    if stratum <= 1:
        return kiss_code(refid).rstrip("?")
    return "{}.{}.{}.{}".format(refid[0], refid[1], refid[2], refid[3])
