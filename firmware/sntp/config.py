# The device configuration: one documented schema, every field validated, saved atomically.
#
# Stored as a small JSON object on the board's flash (/config.json; the unix board: a file
# named on the command line). Loading never fails: a missing file is the defaults, a broken
# file or field falls back to the default for that field, with one line saying so.
# Saving goes through store.JsonStore: a temporary file, then a rename over the old one, so a
# power cut at any byte leaves the old or the new configuration, never a broken one.
#
# The schema, in order (this table is the reference; `help` prints it):
#   key             type      default  rule
#   zone            label     none     NTP Pool vendor zone: 0-3.<zone>.pool.ntp.org
#   servers         names     []       up to 4 host names, ":port" ok; an IP address only when
#                                      private, link-local, unique-local or loopback (rule 3)
#   factory_server  host      none     a name or an IP address, used only until the first sync
#   wifi_ssid       text      ""       1-32 bytes
#   wifi_pass       secret    ""       8-63 characters (or "" for an open network); never shown
#   accuracy_ms     int       100      1-60000: how far the clock may wander between polls
#   poll_min_s      int       none     64-131072 (1800 at least for pool names: clamped)
#   poll_max_s      int       none     64-131072: a ceiling for the discipline's interval
#   log_level       choice    info     error, warn, info or debug
#   country         text      ""       2-letter Wi-Fi regulatory country (e.g. DE), or ""
#   tz              rule      none     POSIX TZ rule for local time (sntp.tz, docs/localtime.md)
#   wdt_s           int       none     2-8: the board program feeds a machine.WDT of this
#                                      timeout every second (none: no watchdog; RP2040: 8.3 s max)
from . import policy
from .compat import const
from .store import NOT_FOUND, OUT_OF_MEMORY, JsonStore, read_json

MAX_TEXT = const(64)  # bytes of any text value
KIND = "sntp-config"  # the file's "kind": never taken for a state file (or one for it)
SECRET_KEYS = ("wifi_pass",)
LOG_LEVELS = ("error", "warn", "info", "debug")
MASK = "********"

# key -> (kind, default, help)
SCHEMA = {  # type: dict
    "zone": ("label", None, "NTP Pool vendor zone: 0-3.ZONE.pool.ntp.org"),
    "servers": ("names", [], "up to 4 NTP servers, comma-separated: names, or site addresses"),
    "factory_server": ("host", None, "a name or IP address used only until the first sync"),
    "wifi_ssid": ("text", "", "Wi-Fi network name (1-32 bytes)"),
    "wifi_pass": ("secret", "", "Wi-Fi passphrase (8-63 characters, or empty); never shown"),
    "accuracy_ms": ("int:1:60000", 100, "how far the clock may wander between polls, ms"),
    "poll_min_s": ("int:64:131072", None, "shortest poll interval, s (pool names: 1800 at least)"),
    "poll_max_s": ("int:64:131072", None, "longest poll interval, s"),
    "log_level": ("choice", "info", "error, warn, info or debug"),
    "country": ("country", "", "Wi-Fi regulatory country, 2 letters (e.g. DE), or empty"),
    "tz": ("tz", None, "local time rule, e.g. CET-1CEST,M3.5.0,M10.5.0/3 (docs/localtime.md)"),
    "wdt_s": ("int:2:8", None, "watchdog timeout, s: the board feeds machine.WDT every second"),
}
KEYS = (
    "zone",
    "servers",
    "factory_server",
    "wifi_ssid",
    "wifi_pass",
    "accuracy_ms",
    "poll_min_s",
    "poll_max_s",
    "log_level",
    "country",
    "tz",
    "wdt_s",
)


def defaults():
    out = {}
    for k in KEYS:
        d = SCHEMA[k][1]
        out[k] = list(d) if isinstance(d, list) else d
    return out


def _printable(text):
    for c in text:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return False
    return True


def check(key, value):
    """A JSON value for key -> the valid value. Raises ValueError(reason) otherwise."""
    if key not in SCHEMA:
        raise ValueError("unknown key {}".format(key))
    kind = SCHEMA[key][0]
    if value is None:
        if SCHEMA[key][1] is None:
            return None
        raise ValueError("{} cannot be empty".format(key))
    if kind.startswith("int:"):
        _, lo, hi = kind.split(":")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("{} must be a whole number".format(key))
        if not int(lo) <= value <= int(hi):
            raise ValueError("{} must be {} to {}".format(key, lo, hi))
        return value
    if kind == "names":
        if not isinstance(value, list):
            raise ValueError("servers must be a list of names")
        if len(value) > policy.MAX_SOURCES:
            raise ValueError("at most {} servers (rule 17)".format(policy.MAX_SOURCES))
        out = []
        for name in value:
            if not isinstance(name, str):
                raise ValueError("a server must be a name")
            host, _ = policy.parse_server(name)  # ValueError with a reason
            why = policy.server_refusal(host)  # the API's own rule (Config.from_dict)
            if why:
                raise ValueError(why)
            out.append(name)
        return out
    if not isinstance(value, str):
        raise ValueError("{} must be text".format(key))
    if len(value.encode()) > MAX_TEXT or not _printable(value):
        raise ValueError("{}: at most {} bytes of printable text".format(key, MAX_TEXT))
    if kind == "label":
        return policy.zone_label(value)  # the policy's own rule (Config.from_dict)
    if kind == "host":
        policy.parse_server(value)
        return value
    if kind == "text":
        if not 0 < len(value.encode()) <= 32:
            raise ValueError("{} must be 1 to 32 bytes".format(key))
        return value
    if kind == "secret":
        if value and not 8 <= len(value) <= 63:
            raise ValueError("{} must be 8 to 63 characters, or empty".format(key))
        return value
    if kind == "choice":
        if value not in LOG_LEVELS:
            raise ValueError("log_level must be one of error, warn, info, debug")
        return value
    if kind == "tz":
        why = None
        try:
            from . import tz  # only here: the optional package, imported when a rule is set

            tz.parse(value)
        except ImportError:
            why = "needs the sntp.tz package (package-tz.json)"
        except ValueError as e:
            why = e.args[0]
        if why is not None:
            raise ValueError("tz: " + why)
        return value
    if kind == "country":
        if value and not (len(value) == 2 and all("a" <= c.lower() <= "z" for c in value)):
            raise ValueError("country must be 2 letters, or empty")
        return value.upper()
    raise ValueError("bad schema kind {}".format(kind))


def parse_value(key, text):
    """The console's `set KEY VALUE` text -> the valid value, or ValueError(reason)."""
    if key not in SCHEMA:
        raise ValueError("unknown key {}".format(key))
    kind = SCHEMA[key][0]
    if kind.startswith("int:"):
        t = text.strip()
        d = t[1:] if t[:1] == "-" else t  # a negative number: the range below says why not
        if not d or not all("0" <= c <= "9" for c in d):  # ASCII only, as on the boards
            _, lo, hi = kind.split(":")
            raise ValueError("{} must be a whole number, {} to {}".format(key, lo, hi))
        return check(key, int(t))
    if kind == "names":
        names = [n.strip() for n in text.split(",") if n.strip()]
        return check(key, names)
    return check(key, text)


def hide(text, secrets):
    """text with each secret in it replaced by MASK: as typed, and as repr() escapes it (an
    error message quoting a value with {!r} turns a backslash or a quote into an escape)."""
    for s in secrets:
        if s:
            for form in (s, repr(s)[1:-1]):
                if form in text:
                    text = text.replace(form, MASK)
    return text


def validate(doc):
    """A loaded object -> (values, warnings): each bad or unknown field dropped, with a reason.
    A passphrase pasted into another field never shows in that field's warning."""
    values = defaults()
    warnings = []
    if not isinstance(doc, dict):
        if doc is not None:
            warnings.append("configuration is not a JSON object: defaults used")
        return values, warnings
    for k, v in doc.items():
        if k == "kind" and v == KIND:
            continue
        if k not in SCHEMA:
            warnings.append("{}: unknown key, ignored".format(k))
            continue
        try:
            values[k] = check(k, v)
        except ValueError as e:
            warnings.append("{}: {}; default used".format(k, e.args[0]))
    secrets = []
    for k in SECRET_KEYS:  # the file's, valid or not (a short one too: it is still meant)
        v = doc.get(k)
        if isinstance(v, str) and v:
            secrets.append(v)
    return values, [hide(w, secrets) for w in warnings]


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


def policy_dict(values):
    """The policy's configuration dict (policy.Config.from_dict). The policy uses the factory
    server alone until the first good sync, then the zone and the servers."""
    d = {"servers": list(values["servers"]), "accuracy_ms": values["accuracy_ms"]}
    for k in ("zone", "factory_server", "poll_min_s", "poll_max_s"):
        if values[k] is not None:
            d[k] = values[k]
    return d
