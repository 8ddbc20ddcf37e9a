# The configuration: every key's kind, default and bounds in one table (SCHEMA), and Config,
# the settings the policy and the discipline run on.
#
# One source: the policy (Config.from_dict), the discipline (Config.accuracy_ms), the checks
# of a configuration file (sntp.config, which the board loads to read its settings) and the
# console's help (sntp.console) all read SCHEMA; a bound or default is written nowhere else.
#
#   key             kind      default  bounds
#   zone            label     none     one DNS label of 1-63 characters: 0-3.<zone>.pool.ntp.org
#   servers         names     []       up to 4 host names, ":port" ok; an IP address only when
#                                      private, link-local, unique-local or loopback (rule 3)
#   factory_server  host      none     a name or an IP address, used only until the first sync
#   wifi_ssid       text      ""       1-32 bytes
#   wifi_pass       secret    ""       8-63 characters (or "" for an open network); never shown
#   accuracy_ms     int       100      1-60000: how far the clock may wander between polls
#   poll_min_s      int       none     64-131072 (1800 at least for pool names: clamped)
#   poll_max_s      int       none     64-131072: a ceiling for the discipline's interval
#   log_level       choice    info     error, warn, info or debug
#   country         country   ""       2-letter Wi-Fi regulatory country (e.g. DE), or ""
#   tz              tz        none     POSIX TZ rule for local time (sntp.tz, docs/localtime.md)
#   wdt_s           int       none     2-8: the board program feeds a machine.WDT of this
#                                      timeout every second (none: no watchdog; RP2040: 8.3 s max)
from .compat import const

MAX_SOURCES = const(4)  # the pool asks for no more than four servers at once (rule 17)
MAX_TEXT = const(64)  # bytes of any text value
POOL_SUFFIX = "pool.ntp.org"
KIND = "sntp-config"  # a configuration file's "kind": never taken for a state file
POOL_POLL_MIN_S = const(1_800)  # the pool's terms: no more often than every 30 min (rule 14)
_DEFAULT_POLL_MIN_S = const(1_024)  # without a setting: ntpd's 2**10, gentle on any server
_DEFAULT_POLL_MAX_S = const(14_400)  # without a setting, until the drift is known: 4 h

# key -> (kind, default, lo, hi): an int's range, or a text's length in bytes. 1 ms is below
# what SNTP over the Internet can hold, a minute no target at all; 64 s is the protocol's
# shortest poll (RFC 5905 MINPOLL), 36 h past anything a drift estimate supports.
SCHEMA = {  # type: dict
    "zone": ("label", None, 1, 63),
    "servers": ("names", [], 0, MAX_SOURCES),
    "factory_server": ("host", None, 1, 253),
    "wifi_ssid": ("text", "", 1, 32),
    "wifi_pass": ("secret", "", 8, 63),
    "accuracy_ms": ("int", 100, 1, 60_000),
    "poll_min_s": ("int", None, 64, 131_072),
    "poll_max_s": ("int", None, 64, 131_072),
    "log_level": ("choice", "info", 0, 0),
    "country": ("country", "", 2, 2),
    "tz": ("tz", None, 1, MAX_TEXT),
    "wdt_s": ("int", None, 2, 8),
}
KEYS = (  # the order help, show and the saved file use
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


def _digits(t):
    return bool(t) and _only(t, b"", 0)


def _only(text, extra, letters=32):
    """Every character of text an ASCII digit, letter (letters=0: none) or one of extra
    (bytes): ASCII only, as on the boards, where isalpha() differs. Its bytes are looked at,
    not its characters: iterating a str makes a string of each on the heap, and a character
    new to the interned pool may need a block a fragmented heap has not got."""
    for b in text.encode():
        if not (48 <= b <= 57 or letters and 97 <= b | letters <= 122 or b in extra):
            return False
    return True


# ---- servers ------------------------------------------------------------------------------
def parse_server(text):
    """'host', 'host:port', '[v6]:port' -> (host, port). Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("{!r} is not a string".format(text))
    host, port = text, "123"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed [ in {!r}".format(text))
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if rest[0] != ":":
                raise ValueError("bad port in {!r}".format(text))
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not _digits(port) or not 0 < int(port) < 65536:
        raise ValueError("bad port in {!r}".format(text))
    if not (0 < len(host) <= SCHEMA["factory_server"][3] and _only(host, b".-_:")):
        raise ValueError("bad server name {!r}".format(text))
    return host, int(port)


def server_refusal(host):
    """Why host may not be a configured server, or None. Any name may (rule 3: names let the
    operator move servers); an IP address only when the site runs it: private (10/8,
    172.16/12, 192.168/16), link-local (169.254/16, fe80::/10), unique-local (fc00::/7) or
    loopback (127/8, ::1), as a factory or site server is. A public address baked into
    devices is the rule's lesson: its owner cannot move it, and may never have agreed."""
    low = host.lower()
    v4 = low[7:] if low.startswith("::ffff:") and "." in low else host  # IPv4 as IPv6
    parts = v4.split(".")
    if len(parts) == 4 and all(_digits(p) and len(p) <= 3 for p in parts):
        a, b = int(parts[0]), int(parts[1])
        if max(int(p) for p in parts) > 255:
            return "{}: not an IP address".format(host)
        if a in (10, 127) or (a, b) in ((169, 254), (192, 168)) or (a == 172 and 16 <= b < 32):
            return None
    elif ":" in host:
        first = low.split(":")[0]
        if low == "::1" or (
            first
            and len(first) <= 4
            and all(c in "0123456789abcdef" for c in first)
            and (int(first, 16) & 0xFFC0 == 0xFE80 or int(first, 16) & 0xFE00 == 0xFC00)
        ):
            return None
    else:
        return None  # a name
    return (
        "{}: a public IP address; give a name, or a private, link-local, unique-local or "
        "loopback address (rule 3)".format(host)
    )


def zone_label(zone):
    """A vendor zone of the NTP Pool (one DNS label, like acme), lower-cased. ValueError."""
    _, _, lo, hi = SCHEMA["zone"]
    ok = isinstance(zone, str) and lo <= len(zone) <= hi and zone[0] != "-" and zone[-1] != "-"
    if not (ok and _only(zone, b"-")):
        raise ValueError("zone must be one DNS label such as acme")
    return zone.lower()


# ---- the service's settings -----------------------------------------------------------------
def int_in(d, key, lo, hi, default, warnings):
    """d[key] clamped to [lo, hi] (an int, not a bool); default when absent or not one; each
    change said in warnings (the settings here, the saved state in state.py)."""
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        warnings.append("{}: not an integer, using {}".format(key, default))
        return default
    c = min(max(v, lo), hi)
    if c != v:
        warnings.append("{}: {} clamped to {}".format(key, v, c))
    return c


class Config:
    """The service's settings, from a dict of the schema's keys (others are ignored: a board's
    whole settings will do). from_dict() clamps or drops every bad field and says why."""

    def __init__(self):
        self.servers = []  # [(host, port)], at most MAX_SOURCES
        self.factory = None  # (host, port) used alone until the first good sync, or None
        self.poll_min_s = POOL_POLL_MIN_S  # s, after clamping to the safe floor
        self.poll_max_s = _DEFAULT_POLL_MAX_S  # s
        self.poll_max_explicit = False  # configured: the clock discipline may not exceed it
        self.accuracy_ms = SCHEMA["accuracy_ms"][1]  # how far the clock may wander, ms
        self.warnings = []  # what was clamped or dropped, one sentence each

    @staticmethod
    def from_dict(d):
        c = Config()
        w = c.warnings
        names = []
        zone = d.get("zone")
        if zone is not None:
            try:
                zone = zone_label(zone)
                names = ["{}.{}.pool.ntp.org".format(i, zone) for i in range(4)]
            except ValueError as e:
                w.append("zone: {!r}: {}, ignored".format(zone, e.args[0]))
        servers = d.get("servers") or []
        if not isinstance(servers, list):
            w.append("servers: not a list, ignored")
            servers = []
        for text in names + servers:
            try:
                hp = parse_server(text)
            except ValueError as e:
                w.append("servers: {}, ignored".format(e.args[0]))
                continue
            why = server_refusal(hp[0])
            if why:
                w.append("servers: {}, ignored".format(why))
                continue
            if hp in c.servers:
                continue
            if len(c.servers) == MAX_SOURCES:
                w.append("servers: more than {}, {} ignored (rule 17)".format(MAX_SOURCES, text))
                continue
            c.servers.append(hp)
        if d.get("factory_server") is not None:
            try:
                c.factory = parse_server(d["factory_server"])  # an IP address is fine here
            except ValueError as e:
                w.append("factory_server: {}, ignored".format(e.args[0]))
        pool = any(h.endswith(POOL_SUFFIX) for h, _ in c.servers)
        lo = POOL_POLL_MIN_S if pool else SCHEMA["poll_min_s"][2]
        top = SCHEMA["poll_min_s"][3]
        c.poll_min_s = int_in(d, "poll_min_s", lo, top, max(lo, _DEFAULT_POLL_MIN_S), w)
        lo = c.poll_min_s
        top = SCHEMA["poll_max_s"][3]
        c.poll_max_s = int_in(d, "poll_max_s", lo, top, max(lo, _DEFAULT_POLL_MAX_S), w)
        c.poll_max_explicit = d.get("poll_max_s") is not None
        _, default, lo, hi = SCHEMA["accuracy_ms"]
        c.accuracy_ms = int_in(d, "accuracy_ms", lo, hi, default, w)
        return c
