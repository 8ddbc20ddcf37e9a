# The device configuration file, for the console: the help text of each key, the console's
# value parsing, and the file's load and save. The keys themselves (kind, default, bounds)
# and their checks are sntp.schema's, the one source, which a headless board loads alone.
#
# Stored as a small JSON object on the board's flash (/config.json; the unix board: a file
# named on the command line). Loading never fails: a missing file is the defaults, a broken
# file or field falls back to the default for that field, with one line saying so.
# Saving goes through store.JsonStore: a temporary file, then a rename over the old one, so a
# power cut at any byte leaves the old or the new configuration, never a broken one.
from . import schema
from .schema import KEYS, KIND, MASK, SCHEMA, SECRET_KEYS, check, defaults, hide  # noqa: F401
from .store import NOT_FOUND, OUT_OF_MEMORY, JsonStore, read_json

HELP = {  # key -> what `help` says of it; rule() adds the bounds from SCHEMA
    "zone": "NTP Pool vendor zone: 0-3.ZONE.pool.ntp.org",
    "servers": "NTP servers, comma-separated: names, or site addresses",
    "factory_server": "a name or IP address used only until the first sync",
    "wifi_ssid": "Wi-Fi network name",
    "wifi_pass": "Wi-Fi passphrase, or empty; never shown",
    "accuracy_ms": "how far the clock may wander between polls, ms",
    "poll_min_s": "shortest poll interval, s; pool names: {} at least".format(
        schema.POOL_POLL_MIN_S
    ),
    "poll_max_s": "longest poll interval, s",
    "log_level": "error, warn, info or debug",
    "country": "Wi-Fi regulatory country, 2 letters (e.g. DE), or empty",
    "tz": "local time rule, e.g. CET-1CEST,M3.5.0,M10.5.0/3 (docs/localtime.md)",
    "wdt_s": "watchdog timeout, s: the board feeds machine.WDT every second",
}
_UNITS = {"int": "", "names": " at most", "text": " bytes", "secret": " characters"}


def rule(key):
    """The help line of key: what it is, and its bounds (SCHEMA's)."""
    kind, _, lo, hi = SCHEMA[key]
    if kind not in _UNITS:
        return HELP[key]
    bounds = (
        "{}{}".format(hi, _UNITS[kind])
        if kind == "names"
        else "{}-{}{}".format(lo, hi, _UNITS[kind])
    )
    return "{} ({})".format(HELP[key], bounds)


def validate(doc):
    """schema.validate, with this file's own "kind" field not taken for a key."""
    return schema.validate(doc, KIND)


def parse_value(key, text):
    """The console's `set KEY VALUE` text -> the valid value, or ValueError(reason)."""
    if key not in SCHEMA:
        raise ValueError("unknown key {}".format(key))
    kind, _, lo, hi = SCHEMA[key]
    if kind == "int":
        t = text.strip()
        d = t[1:] if t[:1] == "-" else t  # a negative number: the range below says why not
        if not d or not all("0" <= c <= "9" for c in d):  # ASCII only, as on the boards
            raise ValueError("{} must be a whole number, {} to {}".format(key, lo, hi))
        return check(key, int(t))
    if kind == "names":
        names = [n.strip() for n in text.split(",") if n.strip()]
        return check(key, names)
    return check(key, text)


def load(path, warn=print):
    """The configuration in path, validated; every problem is one warn() line."""
    doc, why = read_json(path)
    if why == NOT_FOUND:  # not worth a line; a save cut before its rename left PATH.tmp
        doc, why = read_json(path + ".tmp")
        why = None if why == NOT_FOUND else why
    values, warnings = validate(doc)
    if why == OUT_OF_MEMORY:  # the file may be good: the defaults, and nothing saved over it
        warnings.insert(0, "{}: {}: the defaults are used until it is read".format(path, why))
    elif why:  # the configuration's words, not the state file's
        warnings.insert(0, "{}: {}, ignored: the defaults are used".format(path, why))
    for w in warnings:
        warn("config: " + w)
    return values


def save(path, values, warn=print):
    """Save atomically (temporary file, then rename). True when it reached the disk."""
    out = {"kind": KIND}
    for k in KEYS:
        if values.get(k) != SCHEMA[k][1]:
            out[k] = values[k]
    return JsonStore(path, warn).save(out)


def text(key, value):
    """How get/show print a value: secrets masked, lists comma-separated, none as ''."""
    if key in SECRET_KEYS:
        return MASK if value else ""
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    return str(value)
