# The provisioning console: a line protocol for a person or a script on the board's serial.
#
# I/O-free: Console.handle(line bytes) -> response lines; serve() runs it over a stream. The
# boards feed it from stdin (boards/common/serialconsole.py: a window at boot, then on
# demand), the unix board from a terminal (tools/sntp console --config FILE).
#
# Protocol: one command a line, ended by \n (a \r before it is dropped). Every response is
# zero or more lines, then one last line: `ok`, or `err REASON`. No other line of a response
# is `ok` or begins with `err`, so a script reads until it sees one. An empty line answers
# `ok` (a script sends one to find the start of the conversation). A line longer than
# MAX_LINE bytes, a line that is not UTF-8, or one with a control character (below 0x20, or
# 0x7F) gets `err` and changes nothing; so does an unknown command or a wrong argument.
#
#   help              the commands, and every configuration key with its rule
#   show              every key=value of the pending configuration (the passphrase masked)
#   get KEY           KEY=value
#   set KEY VALUE     into the pending configuration, validated (config.parse_value);
#                     a VALUE in double quotes keeps its leading and trailing spaces
#   unset KEY         back to the default, in the pending configuration
#   save              write the pending configuration (config.save: temporary file, then
#                     rename) and read it back; it takes effect at the next reboot
#   discard           drop the pending changes
#   status            clock valid, last sync, offset, drift, interval, each server's state
#                     and counters, KoDs received (from the running time service); the
#                     local time beside UTC when the configuration has a tz rule (sntp.tz)
#   query HOST[:PORT] one SNTP exchange (sntp.client.query); changes no clock
#   sync              ask the time service for a sync now: it still obeys the 15 s floor,
#                     the hourly cap and every Kiss-o'-Death hold
#   reboot            restart the device (refused while changes are unsaved)
#   exit              leave the console (refused while changes are unsaved)
#
# The Wi-Fi passphrase never appears in a response: show and get mask it, no error message
# repeats what was typed, and every line is scrubbed of the passphrase (as typed, and as
# repr() escapes it) before it goes out.
# Integers only, as everywhere in firmware/ (times are formatted from integer us).
from . import config
from .compat import const
from .schema import POOL_POLL_MIN_S, parse_server
from .sources import key_text
from .timestamp import NTP_1970_S, US_PER_S, format_us, format_utc

MAX_LINE = const(256)  # bytes of a command line, without its line end
MAX_SECRETS = const(8)  # passphrases of this session scrubbed from replies (the newest)
OK = "ok"
ERR = "err"

# (name, arguments, what it does): help prints this table
COMMANDS = (
    ("help", "", "this list, and the configuration keys with their rules"),
    ("show", "", "every key=value of the pending configuration (passphrase masked)"),
    ("get", "KEY", "one key=value"),
    ("set", "KEY VALUE", "change KEY in the pending configuration (validated)"),
    ("unset", "KEY", "put KEY back to its default in the pending configuration"),
    ("save", "", "store the pending configuration (atomic); used from the next reboot"),
    ("discard", "", "drop the pending changes (and read the file again if it failed)"),
    ("status", "", "clock, last sync, offset, drift, interval, servers, KoDs"),
    ("query", "HOST[:PORT]", "one SNTP exchange with HOST; changes no clock"),
    ("sync", "", "ask the time service for a sync now (floors and KoD holds apply)"),
    ("reboot", "", "restart the device (save or discard changes first)"),
    ("exit", "", "leave the console (save or discard changes first)"),
)

HELP = {  # key -> what `help` says of it; rule() adds the bounds from SCHEMA
    "zone": "NTP Pool vendor zone: 0-3.ZONE.pool.ntp.org",
    "servers": "NTP servers, comma-separated: names, or site addresses",
    "factory_server": "a name or IP address used only until the first sync",
    "wifi_ssid": "Wi-Fi network name",
    "wifi_pass": "Wi-Fi passphrase, or empty; never shown",
    "accuracy_ms": "how far the clock may wander between polls, ms",
    "poll_min_s": "shortest poll interval, s; pool names: {} at least".format(POOL_POLL_MIN_S),
    "poll_max_s": "longest poll interval, s",
    "log_level": "error, warn, info or debug",
    "country": "Wi-Fi regulatory country, 2 letters (e.g. DE), or empty",
    "tz": "local time rule, e.g. CET-1CEST,M3.5.0,M10.5.0/3 (docs/localtime.md)",
    "wdt_s": "watchdog timeout, s: the board feeds machine.WDT every second",
}
_UNITS = {"int": "", "names": " at most", "text": " bytes", "secret": " characters"}


def rule(key):
    """The help line of key: what it is, and its bounds (SCHEMA's)."""
    kind, _, lo, hi = config.SCHEMA[key]
    if kind not in _UNITS:
        return HELP[key]
    bounds = (
        "{}{}".format(hi, _UNITS[kind])
        if kind == "names"
        else "{}-{}{}".format(lo, hi, _UNITS[kind])
    )
    return "{} ({})".format(HELP[key], bounds)


def utf8_ok(data):
    """True when data (bytes) is well-formed UTF-8: no overlong forms, no surrogates, nothing
    above U+10FFFF. Checked here, the same on every port (MicroPython's own check is laxer)."""
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + need >= n:
            return False
        if not lo <= data[i + 1] <= hi:
            return False
        for k in range(2, need + 1):
            if not 0x80 <= data[i + k] <= 0xBF:
                return False
        i += need + 1
    return True


def _cut(text):
    """'word  rest of it' -> ('word', 'rest of it'): split at the first run of spaces."""
    i = text.find(" ")
    if i < 0:
        return text, ""
    rest = text[i + 1 :]
    while rest.startswith(" "):
        rest = rest[1:]
    return text[:i], rest


def _unquote(value):
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _ppm(ppb):
    sign = "-" if ppb < 0 else "+"
    return "{}{}.{:03d} ppm".format(sign, abs(ppb) // 1000, abs(ppb) % 1000)


def _utc(t_unix_us):
    return format_utc(t_unix_us, NTP_1970_S)


def _signed_s(us):
    return ("+" if us >= 0 else "") + format_us(us) + " s"


class Console:
    """One console session over a configuration file.

    config_path  the JSON configuration (sntp.config)
    service      the running sntp.service.Service / sntp.aio.AsyncService, or None (at boot,
                 before it starts): status and sync read and ask it
    query        query(host, port) -> client.Result; None: sntp.client.query
    reboot       reboot() restarts the device; None: the command says it is not available
    warn         one line per configuration problem found when loading
    sync         sync() -> the summary dict of Service.sync(), for a driver that can run a
                 blocking sync (the unix board); None: the service's policy is asked
                 (Service.sync_now) and its running loop does the rest
    """

    def __init__(self, config_path, service=None, query=None, reboot=None, warn=print, sync=None):
        self.path = config_path
        self.service = service
        self.query_fn = query
        self.reboot_fn = reboot
        self.sync_fn = sync
        self.warn = warn
        self.done = False  # exit was asked: the runner stops
        self.after = None  # a callable to run once the response is written (reboot)
        self.saved = {}  # the configuration as stored
        self.pending = {}  # what save would store
        self.clean = True  # the stored file loaded without a warning
        self.secrets = []  # the last MAX_SECRETS passphrases this session held: scrubbed
        self.reload()

    # ---- configuration -----------------------------------------------------------------------
    def reload(self):
        """Read the configuration file again; pending changes are dropped."""
        problems = []

        def note(line):
            problems.append(line)
            self.warn(line)

        self.saved = config.load(self.path, note)
        self.pending = _copy(self.saved)
        self.clean = not problems
        # the file could not be read for want of memory: it may be good, so no save replaces
        # it with the defaults and this session's changes (discard reads it again)
        self.unread = any(config.OUT_OF_MEMORY in p for p in problems)

    def changed(self):
        """The keys whose pending value differs from the stored one, in schema order."""
        return [k for k in config.KEYS if self.pending[k] != self.saved[k]]

    # ---- the protocol -------------------------------------------------------------------------
    def handle(self, raw):
        """One line (bytes, with or without its line end) -> the response lines.

        The last line is OK or 'err REASON'. Never raises."""
        try:
            lines = self._handle(raw)
        except Exception as e:  # noqa: BLE001 - a bug answers err, the console stays up
            lines = [ERR + " internal error ({})".format(type(e).__name__)]
        return self._scrub(lines)

    def run_after(self):
        """Run what the last command left for after its response (a reboot). The runner calls
        it once the response is written: a reboot may never return."""
        fn, self.after = self.after, None
        if fn is not None:
            fn()

    def _scrub(self, lines):
        for values in (self.saved, self.pending):
            for k in config.SECRET_KEYS:
                v = values.get(k)
                if v:
                    if v in self.secrets:
                        self.secrets.remove(v)
                    self.secrets.append(v)  # the newest last: the current ones stay
        while len(self.secrets) > MAX_SECRETS:  # a session setting thousands stays small
            self.secrets.pop(0)
        return [config.hide(line, self.secrets) for line in lines]

    def _handle(self, raw):
        if isinstance(raw, str):
            try:
                raw = raw.encode()
            except UnicodeError:  # CPython: a lone surrogate
                return [_err("line is not UTF-8")]
        raw = bytes(raw)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > MAX_LINE:
            return [_err("line too long (at most {} bytes)".format(MAX_LINE))]
        for b in raw:
            if b < 0x20 or b == 0x7F:
                return [_err("control character in line (0x{:02x})".format(b))]
        if not utf8_ok(raw):
            return [_err("line is not UTF-8")]
        text = raw.decode("utf-8")
        while text.startswith(" "):
            text = text[1:]
        while text.endswith(" "):
            text = text[:-1]
        if not text:
            return [OK]
        cmd, rest = _cut(text)
        fn = getattr(self, "cmd_" + cmd, None) if cmd in _NAMES else None
        if fn is None:
            return [_err("unknown command (type help)")]
        return fn(rest)

    # ---- commands: each takes the rest of the line and returns the response lines ------------
    def cmd_help(self, rest):
        if rest:
            return [_err("help takes no argument")]
        lines = ["commands:"]
        for name, args, what in COMMANDS:
            lines.append("  {:<26}{}".format((name + " " + args).strip(), what))
        lines.append("keys (set KEY VALUE; a value in double quotes keeps its spaces):")
        for k in config.KEYS:
            default = config.SCHEMA[k][1]
            shown = config.text(k, default) if default not in (None, "", []) else "none"
            lines.append("  {:<15}default {:<6} {}".format(k, shown, rule(k)))
        lines.append("every reply ends with a line: ok, or err REASON")
        return lines + [OK]

    def cmd_show(self, rest):
        if rest:
            return [_err("show takes no argument")]
        lines = [k + "=" + config.text(k, self.pending[k]) for k in config.KEYS]
        changed = self.changed()
        if changed:
            lines.append("unsaved changes: " + ", ".join(changed) + " (save or discard)")
        return lines + [OK]

    def _key(self, word):
        if word not in config.SCHEMA:
            return _err("unknown key (type help for the keys)")
        return None

    def cmd_get(self, rest):
        key, extra = _cut(rest)
        if not key or extra:
            return [_err("usage: get KEY")]
        bad = self._key(key)
        if bad:
            return [bad]
        return [key + "=" + config.text(key, self.pending[key]), OK]

    def cmd_set(self, rest):
        key, value = _cut(rest)
        if not key or not value:
            return [_err("usage: set KEY VALUE (unset KEY for the default)")]
        bad = self._key(key)
        if bad:
            return [bad]
        value = _unquote(value)
        try:
            v = config.parse_value(key, value)
        except ValueError as e:
            reason = e.args[0] if e.args else "invalid value"
            if key in config.SECRET_KEYS and value and value in str(reason):
                reason = "invalid value for {}".format(key)
            return [_err(str(reason))]
        self.pending[key] = v
        return [key + "=" + config.text(key, v), OK]

    def cmd_unset(self, rest):
        key, extra = _cut(rest)
        if not key or extra:
            return [_err("usage: unset KEY")]
        bad = self._key(key)
        if bad:
            return [bad]
        self.pending[key] = config.defaults()[key]
        return [key + "=" + config.text(key, self.pending[key]), OK]

    def cmd_save(self, rest):
        if rest:
            return [_err("save takes no argument")]
        if self.unread:
            return [
                _err(
                    "{} could not be read (out of memory): discard, then set again".format(
                        self.path
                    )
                )
            ]
        changed = self.changed()
        if not changed and self.clean:
            return ["no changes to save", OK]
        problems = []
        if not config.save(self.path, self.pending, problems.append):
            return [_err("cannot save: " + (problems[-1] if problems else "unknown error"))]
        # read it back from the file: what the next boot will see
        back = config.load(self.path, problems.append)
        if back != self.pending or problems:
            return [_err("the saved configuration reads back differently")]
        self.saved = _copy(back)
        self.clean = True
        what = ", ".join(changed) if changed else "the configuration, cleaned"
        return ["saved {} to {}; used from the next reboot".format(what, self.path), OK]

    def cmd_discard(self, rest):
        if rest:
            return [_err("discard takes no argument")]
        changed = self.changed()
        if self.unread:  # read the file again: memory may be there now
            self.reload()
        self.pending = _copy(self.saved)
        return ["dropped {} change{}".format(len(changed), "" if len(changed) == 1 else "s"), OK]

    def cmd_status(self, rest):
        if rest:
            return [_err("status takes no argument")]
        svc = self.service
        if svc is None:
            lines = ["service    not running (this console runs before the time service starts)"]
            lines.append("servers    {}".format(_configured(self.saved) or "none configured"))
            return lines + [OK]
        return status_lines(svc, self.saved.get("tz")) + [OK]

    def cmd_query(self, rest):
        host_text, extra = _cut(rest)
        if not host_text or extra:
            return [_err("usage: query HOST[:PORT]")]
        try:
            host, port = parse_server(host_text)
        except ValueError:
            return [_err("not a host name or address")]
        q = self.query_fn
        if q is None:
            from . import client  # sockets only when asked

            q = client.query
        r = q(host, port)
        where = key_text(r.server) if r.server else host_text
        if not r.ok:
            why = r.error
            if r.kiss:
                why = "kiss {}".format(r.kiss)
            if r.detail:
                why = "{} ({})".format(why, r.detail)
            return [_err("query {}: {}".format(where, why))]
        h = r.header
        return [
            "server     {}".format(where),
            "stratum    {}".format(h.stratum if h is not None else "?"),
            "offset     {} (positive: this clock is behind)".format(_signed_s(r.offset_us)),
            "delay      {} s".format(format_us(r.delay_us)),
            OK,
        ]

    def cmd_sync(self, rest):
        if rest:
            return [_err("sync takes no argument")]
        svc = self.service
        if svc is None:
            return [_err("no time service running (it starts after this console exits)")]
        if self.sync_fn is not None:
            s = self.sync_fn()
            if s["clock_set"]:
                return [
                    "clock set: {} from {}".format(_signed_s(s["offset_us"]), s["server"]),
                    OK,
                ]
            return [_err("sync: {} ({})".format(s["error"], s["detail"]))]
        if not svc.sync_now():
            return [_err("no servers configured (rule 3: there is no built-in default)")]
        return ["sync requested: the service asks as soon as its floors and holds allow", OK]

    def cmd_reboot(self, rest):
        if rest:
            return [_err("reboot takes no argument")]
        if self.reboot_fn is None:
            return [_err("reboot is not available here")]
        if self.changed():
            return [_err("unsaved changes: save or discard first")]
        self.after = self.reboot_fn
        return ["rebooting", OK]

    def cmd_exit(self, rest):
        if rest:
            return [_err("exit takes no argument")]
        if self.changed():
            return [_err("unsaved changes: save or discard first")]
        self.done = True
        return ["bye", OK]


_NAMES = tuple(c[0] for c in COMMANDS)


def _err(reason):
    return ERR + " " + reason


def _copy(values):
    out = {}
    for k in values:
        v = values[k]
        out[k] = list(v) if isinstance(v, list) else v
    return out


def _configured(values):
    names = []
    if values.get("factory_server"):
        names.append(values["factory_server"] + " (factory, until the first sync)")
    if values.get("zone"):
        names.append("{}.pool.ntp.org zone".format(values["zone"]))
    names += values.get("servers") or []
    return ", ".join(names)


def local_text(rule, unix_us):
    """'YYYY-MM-DD hh:mm:ss NAME (UTC+hh:mm)': unix_us as local time under a TZ rule."""
    from . import tz  # the optional package, only when a rule is configured

    r = tz.parse(rule)
    t = unix_us // US_PER_S
    lt = r.localtime(t)
    off = r.utcoffset(t)
    a = abs(off)
    sign = "-" if off < 0 else "+"
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(
        *lt[:6]
    ) + " {} (UTC{}{:02d}:{:02d})".format(r.names[lt[8]], sign, a // 3600, a // 60 % 60)


def health_text(h):
    """A health() record in one line."""
    b = h.get("bound_ms")
    return "{}, error bound {}, {} request{} since boot, {} failed round{}, {} KoD".format(
        "trusted" if h.get("trusted") else "not trusted",
        "unknown" if b is None else "+/-{} ms".format(b),
        h.get("requests"),
        "" if h.get("requests") == 1 else "s",
        h.get("failed"),
        "" if h.get("failed") == 1 else "s",
        h.get("kods"),
    )


def status_lines(svc, tz=None):
    """The status of a running Service, one fact a line (no OK); with tz (a TZ rule), the
    local time too."""
    st = svc.status()
    wall = svc.wall_us()
    lines = [
        "clock      {} ({})".format(
            _utc(wall),
            "valid" if st["valid"] else "not valid: before {}".format(_utc(st["floor_us"])[:10]),
        )
    ]
    if tz:
        lines.append("local      " + local_text(tz, wall))
    last = st["last_sync_unix_s"]
    lines.append("last_sync  {}".format(_utc(last * US_PER_S)[:19] + " UTC" if last else "never"))
    disc = svc.keeper.disc
    if disc is not None and disc.last is not None:
        lines.append(
            "offset     {} ({} at the last sync)".format(
                _signed_s(disc.last["offset_us"]), disc.last["kind"]
            )
        )
    elif st["last_offset_us"] is not None:
        lines.append("offset     {} (at the last sync)".format(_signed_s(st["last_offset_us"])))
    else:
        lines.append("offset     none since boot")
    if disc is None:
        lines.append("drift      not disciplined (no clock to set)")
    else:
        n = len(disc.samples)
        lines.append(
            "drift      {} ({} measurement{})".format(
                _ppm(disc.drift_ppb), n, "" if n == 1 else "s"
            )
        )
    lines.append("health     " + health_text(svc.health()))
    lines.append("interval   {} s".format(st["interval_s"]))
    nxt = st["next_ms"]
    lines.append(
        "next       {}".format("in {} s".format(nxt // 1000) if nxt is not None else "none")
    )
    lines.append("failed     {} round{}".format(st["fails"], "" if st["fails"] == 1 else "s"))
    lines.append("kods       {}".format(st["kods"]))
    if not st["servers"]:
        lines.append("servers    none configured (no NTP traffic)")
    for s in st["servers"]:
        lines.append(
            "server     {} address={} state={} sends={} replies={} kods={} dns_failures={}".format(
                s["server"],
                s["address"] or "-",
                s["state"] + (",factory" if st["factory"] else ""),
                s["sends"],
                s["replies"],
                s["kods"],
                s["dns_failures"],
            )
        )
    denied = st["denied"]
    for text in sorted(denied):
        lines.append(
            "denied     {} until {} UTC (Kiss-o'-Death)".format(
                text, _utc(denied[text] * US_PER_S)[:19]
            )
        )
    return lines


def serve(console, readline_bytes, write):
    """Run console over a stream until exit or end of input.

    readline_bytes() -> bytes up to and including one b'\\n' (fewer: the line goes on; b'':
    end of input); write(text) writes one response line with its '\\n'. A line longer than
    MAX_LINE is answered err without being kept whole in memory."""
    keep = MAX_LINE + 3  # more than MAX_LINE after the line end is dropped: too long
    buf = b""
    while not console.done:
        chunk = readline_bytes()
        if chunk:
            if len(buf) < keep:
                buf = (buf + chunk)[:keep]
            if not chunk.endswith(b"\n"):
                continue
        elif not buf:
            return  # end of input
        for line in console.handle(buf):
            write(line + "\n")
        buf = b""
        console.run_after()
        if not chunk:
            return
