# tools/sntp: the command line of the firmware package, for the unix-port MicroPython and CPython.
#
# It runs the firmware modules unchanged; the tools/sntp wrapper picks the runtime
# (MicroPython by default, CPython with --python). query is one exchange; sync, run and
# status are the time service (sntp.service, or sntp.aio with --asyncio) on the unix board,
# whose clock is a software RTC over the untouched host clock (boards/unix/softrtc.py).
# No argparse (MicroPython has none): the grammar is small and every mistake gets one line
# on stderr and exit status 2.
# Output formatting is the only place seconds are shown with a decimal point, and even
# here they are formatted from integer microseconds, never through a float.
import json
import sys

from sntp import client, exchange, schema
from sntp.timestamp import (
    BUILD_UNIX_S,
    NTP_1970_S,
    US_PER_S,
    format_us,
    format_utc,
    ntp_to_us,
    resolve_era,
    short_to_us,
    unix_us,
)

USAGE = """usage: sntp [--python] COMMAND [OPTIONS]

  sntp query SERVER[:PORT] [--timeout SECONDS] [--json]
  sntp sync [--server HOST[:PORT]]... [--zone VENDOR] [--state FILE] [--timeout SECONDS]
            [--json] [--asyncio] [--drift-ppm PPM] [--poll-min S] [--accuracy-ms MS]
            [--no-rtc | --wake]
  sntp run [--server HOST[:PORT]]... [--zone VENDOR] [--state FILE] [--timeout SECONDS]
           [--for SECONDS] [--no-startup-delay] [--json] [--asyncio] [--drift-ppm PPM]
           [--poll-min S] [--accuracy-ms MS] [--no-rtc | --wake]
  sntp status --state FILE [--config FILE] [--json]
  sntp console --config FILE [--state FILE] [--timeout SECONDS]

  query   one SNTP exchange with SERVER (a name, an IPv4 address, or [IPv6]:PORT);
          changes no clock. Exit status 0 when the reply passed every check, 1 otherwise.
  sync    one round of the time service, started at once: the servers are asked in turn
          until the board clock is set or the policy gives up for now (every server tried
          once, a Kiss-o'-Death, the hourly cap). Exit status 0 when the clock was set, or
          is valid and the next request is not allowed yet (it says when).
  run     the time service in real time, one line per event (the board's UTC time, what
          happened, and each wait with its reason; --json: one JSON object a line). The
          first request waits for the randomized start-up delay (up to 60 s with an invalid
          clock, 30 min with a valid one) unless --no-startup-delay.
  status  the board clock and what the state file holds (last sync, interval, next request,
          Kiss-o'-Death holds with their ends, each server's counts);
          with --config, the local time too when that configuration has a tz rule.
  console the provisioning console of a device, on this terminal, against the configuration
          file --config (sntp.config; created by the first save): help, show, get, set,
          unset, save, discard, status, query, sync, reboot, exit. Replies go to stdout and
          each ends with a line `ok` or `err REASON`; the board behind it is the unix board
          (its clock and state in --state FILE). See boards/unix/README.md.

  --server HOST[:PORT]  an NTP server; repeat for up to 4 (with one, it alone sets the clock)
  --zone VENDOR         your NTP Pool vendor zone: 0-3.VENDOR.pool.ntp.org. There is no
                        built-in default server: give --server or --zone.
  --config FILE         console, status: the device configuration (JSON, sntp.config's
                        schema)
  --state FILE          the unix board's state (JSON): its clock, kept as host clock plus an
                        offset (the host clock is never changed), and the policy's state
                        (backoff, Kiss-o'-Death holds). {"rtc_unix_s": 0} starts the board
                        clock in 1970, {"rtc_offset_us": -5000000} 5 s behind. Without it the
                        board clock starts at the host's time and nothing is kept.
  --timeout SECONDS     how long to wait for each reply (default 5, at most 60; decimals allowed)
  --for SECONDS         run: stop after this long (default: until interrupted)
  --no-startup-delay    run: ask at once instead of after the start-up delay (not for fleets)
  --asyncio             sync, run: the asyncio driver (sntp.aio) instead of the blocking one
  --drift-ppm PPM       sync, run: simulate a crystal this far off (+: the board clock runs
                        slow) on the unix board's software clock (run: its "drift" events
                        show the estimate converging)
  --poll-min SECONDS    sync, run: the shortest poll interval (at least 64 s; 1800 s when a
                        server is a pool.ntp.org name)
  --accuracy-ms MS      sync, run: how far the clock may wander between polls (default 100):
                        the clock discipline polls as rarely as the measured drift allows
  --no-rtc              sync, run: the board has no battery-backed clock: it reads 1970 at
                        this boot (the state file's policy state is kept), as after a
                        power cut or a crash
  --wake                sync, run: this boot is a wake from deep sleep: the board clock ran
                        on (sync: it asks only when the saved state says a request is due,
                        and otherwise says when it will be, exit status 0, no network used)
  --json                JSON instead of text (run: one object per event)
  --python              run under CPython instead of the unix-port MicroPython
  --version             print the version and the build date (the era pivot and clock floor)
"""

EXPLAIN = {
    exchange.WRONG_SOURCE: "datagrams came only from another address or port",
    exchange.SHORT: "reply shorter than 48 bytes",
    exchange.BAD_ORIGIN: "reply did not echo our transmit timestamp (spoofed or stale)",
    exchange.BAD_MODE: "reply is not in server mode (4)",
    exchange.BAD_VERSION: "reply version is not 3 or 4",
    exchange.KISS: "Kiss-o'-Death; its timestamps are not used",
    exchange.UNSYNCHRONIZED: "server is not synchronized (leap indicator 3 or stratum 16+)",
    exchange.ZERO_TIMESTAMP: "receive or transmit timestamp is zero",
    exchange.NO_REFERENCE: "reference timestamp is zero",
    exchange.TOO_FAR: "root distance above the limit",
    exchange.BAD_TIMESTAMPS: "transmit before receive, or negative delay",
    exchange.TIMEOUT: "no reply",
    client.RESOLVE: "cannot resolve",
    client.NETWORK: "network error",
}
LEAP_TEXT = ("no warning", "last minute has 61 s", "last minute has 59 s", "unsynchronized")
MODE_TEXT = (
    "reserved",
    "symmetric active",
    "symmetric passive",
    "client",
    "server",
    "broadcast",
    "control",
    "private",
)


class UsageError(Exception):
    pass


def parse_decimal_ms(text, option="--timeout", wants="seconds such as 5 or 0.5"):
    """'1.5' -> 1500 (thousandths), integers only; UsageError on anything else."""
    whole, _, frac = text.partition(".")
    if not (whole or frac) or not (whole + frac).isdigit() or len(frac) > 3:
        raise UsageError("{} wants {}, not {!r}".format(option, wants, text))
    return int(whole or "0") * 1000 + int((frac + "000")[:3])


SERVER_FORMS = (
    "a name (like ntp.example.com), an IPv4 address or [IPv6], then :PORT (1-65535) if not 123"
)


def parse_server(text, option=None):
    """'host', 'host:port', '1.2.3.4:123', '[::1]:123', '::1' -> (host, port).

    The policy's parser (the same rules as the configuration), and then the host's own
    syntax, so that a mistyped server is a usage error here, not a resolver failure later."""
    problem = None
    try:
        host, port = schema.parse_server(text)
        if not _host_ok(host):
            problem = "bad server name {!r}".format(text)
    except ValueError as e:  # no `raise from` on MicroPython: raised below
        problem = e.args[0]
    if problem is None and _port_in_ipv6(text):
        addr, _, p = text.rpartition(":")
        where = option + ": " if option else ""
        raise UsageError(
            "{}{} is one IPv6 address: write [{}]:{} for port {} of {}, or [{}]".format(
                where, text, addr, p, p, addr, text
            )
        )
    if problem is not None:
        where = option + ": " if option else ""
        raise UsageError("{}{}: give {}".format(where, problem, SERVER_FORMS))
    return host, port


def _port_in_ipv6(text):
    """True for '::1:123': an IPv6 address whose last group reads as a port after a shorter
    address (::1). It is asked as ::1:123 port 123; brackets say which was meant."""
    addr, _, p = text.rpartition(":")
    if text.startswith("[") or "::" not in addr or addr.endswith(":") and addr[-2:] != "::":
        return False
    return p.isdigit() and len(p) <= 5 and 0 < int(p) < 65536 and _host_ok(addr)


_HEX = "0123456789abcdefABCDEF"


def _host_ok(host):
    """A DNS name, a dotted IPv4 address, or an IPv6 address (with or without its brackets)."""
    if ":" in host:
        groups = host.split(":")
        if host.count("::") > 1 or ":::" in host or not 3 <= len(groups) <= 9:
            return False
        if "." in groups[-1]:  # ::ffff:192.0.2.1
            if not _ipv4_ok(groups[-1]):
                return False
            groups = groups[:-1]
        return all(len(g) <= 4 and all(c in _HEX for c in g) for g in groups)
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if all(label.isdigit() for label in labels if label):
        return _ipv4_ok(host)
    for label in labels:
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
    return True  # the characters were checked by schema.parse_server


def _ipv4_ok(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def parse_args(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        return {"cmd": "help", "topic": argv[1] if argv[1:2] and argv[0] == "help" else None}
    if argv[0] == "--version":
        return {"cmd": "version"}
    cmd = argv[0]
    if cmd not in COMMAND_OPTIONS:
        raise UsageError("unknown command {!r} (try: sntp --help)".format(cmd))
    if "--help" in argv or "-h" in argv:
        return {"cmd": "help", "topic": cmd}
    allowed = COMMAND_OPTIONS[cmd]
    opts = {
        "cmd": cmd,
        "json": False,
        "timeout_ms": client.DEFAULT_TIMEOUT_MS,
        "server": None,
        "servers": [],
        "zone": None,
        "state": None,
        "for_ms": None,
        "startup_delay": True,
        "asyncio": False,
        "drift_ppb": 0,
        "poll_min_s": None,
        "accuracy_ms": None,
        "config_path": None,
        "no_rtc": False,
        "wake": False,
    }
    i = 1
    while i < len(argv):
        a = argv[i]
        inline = None
        if a.startswith("--") and "=" in a:  # --opt=value, as well as --opt value
            a, _, inline = a.partition("=")
        if a.startswith("-") and a != "-" and a not in allowed:
            if a in ALL_OPTIONS:
                raise UsageError(
                    "{} is not an option of {} (see: sntp {} --help)".format(a, cmd, cmd)
                )
            raise UsageError("unknown option {!r} (see: sntp {} --help)".format(a, cmd))
        if a in VALUE_OPTIONS:
            if inline is None:
                if i + 1 >= len(argv):
                    raise UsageError("{} needs a value".format(a))
                i += 1
                inline = argv[i]
            _option_value(opts, a, inline)
        elif inline is not None:
            raise UsageError("{} takes no value".format(a))
        elif a == "--json":
            opts["json"] = True
        elif a == "--no-startup-delay":
            opts["startup_delay"] = False
        elif a == "--asyncio":
            opts["asyncio"] = True
        elif a == "--no-rtc" or a == "--wake":
            opts[a[2:].replace("-", "_")] = True
        elif cmd != "query":
            raise UsageError("unexpected argument {!r} (servers go after --server)".format(a))
        elif opts["server"] is None:
            opts["server"] = parse_server(a)
        else:
            raise UsageError("one server only, got {!r}".format(a))
        i += 1
    if cmd == "query" and opts["server"] is None:
        raise UsageError("query needs a SERVER: " + SERVER_FORMS)
    if cmd == "status" and opts["state"] is None:
        raise UsageError("status needs --state FILE")
    if cmd == "console" and opts["config_path"] is None:
        raise UsageError("console needs --config FILE")
    if opts["no_rtc"] and opts["wake"]:
        raise UsageError("--wake keeps the board clock, --no-rtc loses it: give one")
    if cmd in ("sync", "run"):
        opts["config"] = _config(opts)
    return opts


def command_help(cmd):
    """USAGE cut down to one command: its synopsis, its paragraph and its options, each
    option with only this command's notes (own_notes)."""
    keep_words = (cmd,) + COMMAND_OPTIONS[cmd] + ("--help",)
    blocks = []
    for block in USAGE.split("\n\n")[1:]:
        items = []  # [lines of one item]
        keep = False
        for line in block.split("\n"):
            if line[:2] == "  " and line[2:3] != " ":  # an item starts: sntp CMD, CMD, --opt
                words = line.split()
                word = words[1] if words[0] == "sntp" else words[0]
                keep = word in keep_words
                if keep:
                    items.append([line])
            elif keep:
                items[-1].append(line)
        kept = []
        for lines in items:
            if lines[0][2:4] == "--":
                lines = own_notes(lines, cmd)
            kept += lines
        if kept:
            blocks.append("\n".join(kept))
    return "usage:\n" + "\n\n".join(blocks) + "\n"


_DESC = 24  # the column where an option's description starts in USAGE
_WIDTH = 94  # and where its lines end


def own_notes(lines, cmd):
    """An option's USAGE lines for cmd's help: without the list of commands that take it
    ("sync, run: "), and with a note for one command "(run: ...)" only in that command's."""
    head = lines[0][:_DESC]
    text = " ".join(x.strip() for x in [lines[0][_DESC:]] + lines[1:])
    colon = text.find(": ")
    if colon > 0 and all(w in COMMAND_OPTIONS for w in text[:colon].split(", ")):
        text = text[colon + 2 :]
    out = ""
    while text:
        start = text.find(" (")
        end = text.find(")", start)
        if start < 0 or end < 0:
            out += text
            break
        colon = text.find(": ", start, end)
        if colon < 0 or text[start + 2 : colon] not in COMMAND_OPTIONS:
            out += text[: end + 1]  # a parenthesis of its own, not a command's note
        else:
            out += text[:start]
            if text[start + 2 : colon] == cmd:
                out += " (" + text[colon + 2 : end + 1]
        text = text[end + 1 :]
    if out == " ".join(x.strip() for x in [lines[0][_DESC:]] + lines[1:]):
        return lines  # nothing to take out: as written
    wrapped = []
    line = head
    for word in out.split(" "):
        if len(line) + 1 + len(word) > _WIDTH and len(line) > _DESC:
            wrapped.append(line)
            line = " " * _DESC
        line += word if len(line) == _DESC else " " + word
    return wrapped + [line]


_SERVICE = (
    "--server",
    "--zone",
    "--state",
    "--timeout",
    "--asyncio",
    "--drift-ppm",
    "--poll-min",
    "--accuracy-ms",
    "--no-rtc",
    "--wake",
)
COMMAND_OPTIONS = {
    "query": ("--timeout", "--json"),
    "sync": _SERVICE + ("--json",),
    "run": _SERVICE + ("--for", "--no-startup-delay", "--json"),
    "status": ("--state", "--config", "--json"),
    "console": ("--config", "--state", "--timeout"),
}
VALUE_OPTIONS = (
    "--config",
    "--server",
    "--zone",
    "--state",
    "--timeout",
    "--for",
    "--drift-ppm",
    "--poll-min",
    "--accuracy-ms",
)
ALL_OPTIONS = VALUE_OPTIONS + ("--json", "--no-startup-delay", "--asyncio", "--no-rtc", "--wake")


def _option_value(opts, option, value):
    if option == "--timeout":
        ms = parse_decimal_ms(value)
        if not 0 < ms <= client.MAX_TIMEOUT_MS:
            raise UsageError("--timeout must be above 0 and at most 60 seconds")
        opts["timeout_ms"] = ms
    elif option == "--for":
        ms = parse_decimal_ms(value, "--for")
        if ms <= 0:
            raise UsageError("--for must be above 0 seconds")
        opts["for_ms"] = ms
    elif option == "--server":
        host, _ = parse_server(value, "--server")
        why = schema.server_refusal(host)  # the configuration's rule: one function decides
        if why:
            raise UsageError("--server: " + why)
        opts["servers"].append(value)
    elif option == "--zone":
        label = value.lower()
        ok = 0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        if not ok or not all("a" <= c <= "z" or "0" <= c <= "9" or c == "-" for c in label):
            raise UsageError(
                "--zone wants your NTP Pool vendor zone, one DNS label such as acme "
                "(asked as 0-3.acme.pool.ntp.org), not {!r}".format(value)
            )
        opts["zone"] = label
    elif option == "--config":
        if not value:
            raise UsageError("--config needs a file name")
        opts["config_path"] = value
    elif option == "--state":
        if not value:
            raise UsageError("--state needs a file name")
        folder = value[: value.rfind("/")] if "/" in value.lstrip("/") else "."
        if opts["cmd"] != "status" and not _is_dir(folder or "/"):
            raise UsageError(
                "--state: no directory {!r}: the board clock is kept in that file, "
                "so it must be writable".format(folder)
            )
        opts["state"] = value
    elif option == "--drift-ppm":
        negative = value.startswith("-")
        ppb = parse_decimal_ms(  # ppm with three decimals: ppb
            value[1:] if negative else value, "--drift-ppm", "ppm such as 25 or -12.5"
        )
        if ppb > 500_000:
            raise UsageError("--drift-ppm: at most 500 ppm")
        opts["drift_ppb"] = -ppb if negative else ppb
    elif option in ("--poll-min", "--accuracy-ms"):
        lo, hi, unit = RANGES[option]
        if not (value.isdigit() and lo <= int(value) <= hi):
            raise UsageError(
                "{} wants whole {} from {} to {}, not {!r}".format(option, unit, lo, hi, value)
            )
        opts["poll_min_s" if option == "--poll-min" else "accuracy_ms"] = int(value)


def _is_dir(path):
    import os

    try:
        return os.stat(path)[0] & 0o170000 == 0o040000
    except OSError:
        return False


def _bounds(key, unit):
    """(lo, hi, unit) of an integer key of the configuration schema (sntp.schema.SCHEMA):
    the bounds the policy would clamp to."""
    _, _, lo, hi = schema.SCHEMA[key]
    return lo, hi, unit


RANGES = {
    "--poll-min": _bounds("poll_min_s", "seconds"),
    "--accuracy-ms": _bounds("accuracy_ms", "milliseconds"),
}


def _config(opts):
    """The policy's Config; anything it would clamp or drop is a usage error here."""
    names = len(opts["servers"]) + (4 if opts["zone"] is not None else 0)
    if names > schema.MAX_SOURCES:
        raise UsageError(
            "at most {} servers, a --zone counting as 4 (rule 17); got more than {}".format(
                schema.MAX_SOURCES, schema.MAX_SOURCES
            )
        )
    d = {"servers": opts["servers"]}
    if opts["zone"] is not None:
        d["zone"] = opts["zone"]
    for key in ("poll_min_s", "accuracy_ms"):
        if opts[key] is not None:
            d[key] = opts[key]
    config = schema.Config.from_dict(d)
    if opts["poll_min_s"] is not None and config.poll_min_s != opts["poll_min_s"]:
        raise UsageError(
            "--poll-min wants at least {} s with pool.ntp.org servers (the pool's terms, "
            "rule 14), not {}".format(config.poll_min_s, opts["poll_min_s"])
        )
    if config.warnings:  # what the checks above missed: still refused, never half-applied
        raise UsageError("not accepted: " + config.warnings[0])
    return config


def server_text(key):
    ip, port = key
    return "[{}]:{}".format(ip, port) if ":" in ip else "{}:{}".format(ip, port)


def _num(us):
    return format_us(us) if us is not None else "null"


def to_json(r, epoch_s):
    """One JSON object; numbers are formatted from integer microseconds (no float)."""
    h = r.header
    fields = [
        ("ok", json.dumps(r.ok)),
        ("error", json.dumps(r.error)),
        ("kiss", json.dumps(r.kiss)),
        ("server", json.dumps(server_text(r.server))),
        ("stratum", json.dumps(h.stratum) if h else "null"),
        ("leap", json.dumps(h.leap) if h else "null"),
        ("version", json.dumps(h.version) if h else "null"),
        ("mode", json.dumps(h.mode) if h else "null"),
        ("poll", json.dumps(h.poll) if h else "null"),
        ("precision", json.dumps(h.precision) if h else "null"),
        ("refid", json.dumps(_refid(h)) if h else "null"),
        ("root_delay", _num(short_to_us(h.root_delay)) if h else "null"),
        ("root_dispersion", _num(short_to_us(h.root_disp)) if h else "null"),
        ("offset", _num(r.offset_us)),
        ("delay", _num(r.delay_us)),
        ("server_time", _num(unix_us(r.t3_us, epoch_s)) if r.t3_us is not None else "null"),
        ("ignored", json.dumps(r.ignored or {})),
        ("detail", json.dumps(r.detail)),
    ]
    return "{" + ", ".join(json.dumps(k) + ": " + v for k, v in fields) + "}"


def _refid(h):
    from sntp.timestamp import refid_text

    return refid_text(h.stratum, h.refid)


def _ts_line(name, ts64, pivot_s, epoch_s, note=None):
    if ts64 == 0:
        when = "0 (not set)"
    elif note:
        when = note
    else:
        when = format_utc(ntp_to_us(resolve_era(ts64, pivot_s), epoch_s), epoch_s)
    return "  {:<10} {:08x}.{:08x}  {}".format(name, ts64 >> 32, ts64 & 0xFFFFFFFF, when)


def describe(r, epoch_s, pivot_s):
    """The decoded reply, field by field, the way sntp -d shows it."""
    h = r.header
    lines = ["server {}".format(server_text(r.server))]
    if h is not None:
        lines.append("  leap       {} ({})".format(h.leap, LEAP_TEXT[h.leap]))
        lines.append("  version    {}".format(h.version))
        lines.append("  mode       {} ({})".format(h.mode, MODE_TEXT[h.mode]))
        kind = (
            "Kiss-o'-Death"
            if h.stratum == 0
            else "primary"
            if h.stratum == 1
            else ("secondary" if h.stratum < 16 else "unsynchronized")
        )
        lines.append("  stratum    {} ({})".format(h.stratum, kind))
        lines.append("  poll       {} (2^{} s)".format(h.poll, h.poll))
        lines.append("  precision  {} (2^{} s)".format(h.precision, h.precision))
        lines.append("  root delay {} s".format(format_us(short_to_us(h.root_delay))))
        lines.append("  root disp. {} s".format(format_us(short_to_us(h.root_disp))))
        label = "kiss code" if h.stratum == 0 else "refid"
        lines.append("  {:<10} {}".format(label, _refid(h)))
        if h.stratum == 0:
            lines.append("  (timestamps of a Kiss-o'-Death are not used)")
        lines.append(_ts_line("reference", h.ref_ts, pivot_s, epoch_s))
        lines.append(
            _ts_line("origin", h.origin_ts, pivot_s, epoch_s, "(our random nonce, echoed)")
        )
        lines.append(_ts_line("receive", h.rx_ts, pivot_s, epoch_s))
        lines.append(_ts_line("transmit", h.tx_ts, pivot_s, epoch_s))
    if r.ok:
        lines.append(
            "  offset     {} s ({})".format(
                ("+" if r.offset_us >= 0 else "") + format_us(r.offset_us),
                "local clock is behind" if r.offset_us >= 0 else "local clock is ahead",
            )
        )
        lines.append("  delay      {} s".format(format_us(r.delay_us)))
        lines.append("  local      {}".format(format_utc(r.t1_us, epoch_s)))
        lines.append("  server     {}".format(format_utc(r.t3_us, epoch_s)))
    return "\n".join(lines)


def error_line(r):
    text = EXPLAIN.get(r.error, r.error)
    if r.error == exchange.KISS:
        text = "Kiss-o'-Death {}; its timestamps are not used".format(r.kiss)
    if r.detail:
        text = in_words(r.detail)
    return "sntp: {}: {} ({})".format(server_text(r.server), r.error, text)


# getaddrinfo's codes (glibc's numbering, which the unix port reports as a bare number)
EAI_TEXT = {
    -2: "no such name (NXDOMAIN)",
    -3: "temporary failure in name resolution (no answer from the DNS server)",
    -4: "non-recoverable failure in name resolution",
    -5: "the name has no address",
    -9: "the name has no address of this family",
    -10: "out of memory",
    -11: "system error",
}


def in_words(detail):
    """'... [addrinfo error -2]' -> '... no such name (NXDOMAIN)'; other text unchanged."""
    i = detail.find("[addrinfo error ")
    if i < 0 or not detail.endswith("]"):
        return detail
    code = detail[i + 16 : -1]
    try:
        words = EAI_TEXT.get(int(code), "resolver error " + code)
    except ValueError:
        return detail
    return detail[:i] + words


def _net():
    """The firmware's Net, whose sockets also report ICMP port unreachable (Linux).

    An unconnected UDP socket is not told that nothing listens at the server's port; with
    IP_RECVERR it is, as ECONNREFUSED from the next read. A query to a closed port then
    fails at once, with that reason, instead of waiting out the timeout."""
    from sntp import net

    class RefusedUdp(net.Udp):
        def __init__(self, family):
            super().__init__(family)
            v6 = family == getattr(net.socket, "AF_INET6", -1)
            try:  # (SOL_IP, IP_RECVERR) or (SOL_IPV6, IPV6_RECVERR); not everywhere
                self.sock.setsockopt(41 if v6 else 0, 25 if v6 else 11, 1)
            except (OSError, TypeError, ValueError):
                pass
            self.dest = None

        def send(self, data, sockaddr):
            self.dest = sockaddr
            super().send(data, sockaddr)

        def recv(self, timeout_ms):
            if not self.poller.poll(max(0, timeout_ms)):
                return None
            try:
                data, source = self.sock.recvfrom(1024)
            except OSError as e:
                if e.args and e.args[0] == _ECONNREFUSED:
                    raise net.NetError(
                        "network", "nothing listens at that port: ICMP port unreachable"
                    )
                return None
            return data, net.addr_key(source)

    class RefusedNet(net.Net):
        def udp(self, family):
            return RefusedUdp(family)

    return RefusedNet()


_ECONNREFUSED = 111  # Linux; the unix port and CPython both report it so


def run(argv, out=None, err=None):
    """The whole command; returns the exit status. Never raises."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        opts = parse_args(argv)
    except UsageError as e:
        err.write("sntp: {}\n".format(e.args[0]))
        return 2
    if opts["cmd"] == "help":
        topic = opts["topic"]
        if topic is not None and topic not in COMMAND_OPTIONS:
            err.write("sntp: no command {!r} (try: sntp --help)\n".format(topic))
            return 2
        out.write(command_help(topic) if topic else USAGE)
        return 0
    if opts["cmd"] == "version":
        out.write(
            "sntp {} (build date {}, runtime {})\n".format(
                _version(), _utc(BUILD_UNIX_S * US_PER_S)[:10], sys.implementation.name
            )
        )
        return 0
    if opts["cmd"] == "status":
        return cmd_status(opts, out, err)
    if opts["cmd"] == "console":
        import unixconsole

        return unixconsole.main(
            opts["config_path"], opts["state"], opts["timeout_ms"], out=out, err=err
        )
    if opts["cmd"] in ("sync", "run"):
        return cmd_service(opts, out, err)
    host, port = opts["server"]
    clock = client.SystemClock()
    r = client.query(host, port, opts["timeout_ms"], net=_net(), clock=clock)
    if opts["json"]:
        out.write(to_json(r, clock.epoch_s) + "\n")
    else:
        if r.header is not None:
            out.write(describe(r, clock.epoch_s, exchange.ERA_PIVOT_NTP_S) + "\n")
        if not r.ok:
            err.write(error_line(r) + "\n")
    return 0 if r.ok else 1


# ---- sync, run, status: the time service on the unix board ----------------------------------


def _utc(t_unix_us):
    return format_utc(t_unix_us, NTP_1970_S)  # an epoch of 1970: the value is Unix us


def _seconds(us):
    return format_us(us) if us is not None else "null"


def _signed(us):
    return ("+" if us >= 0 else "") + format_us(us)


def cmd_service(opts, out, err):
    """sync and run. The board clock is a SoftRTC; with --state it persists."""
    from softrtc import SoftRTC, StateFile, WrongKind

    if not opts["config"].servers:
        err.write(
            "sntp: no servers configured: give --server HOST[:PORT] or --zone VENDOR "
            "(there is no built-in default server)\n"
        )
        return 1

    def warn(text):
        err.write("sntp: warning: {}\n".format(text))

    state = None
    if opts["state"] is not None:
        try:
            state = StateFile(opts["state"], warn=warn).open()
        except WrongKind as e:
            err.write("sntp: {}\n".format(e.args[0]))
            return 2
        rtc = state.rtc
    else:
        rtc = SoftRTC()
    rtc.fold()
    if opts["no_rtc"]:
        rtc.set_unix_us(0)  # no battery-backed clock: 1970 again
    rtc.drift_ppb = opts["drift_ppb"]
    if opts["asyncio"]:
        from sntp.aio import AsyncService as Service
    else:
        from sntp.service import Service
    svc = Service(
        opts["config"],
        clock=rtc,
        rtc=rtc,
        store=state,
        timeout_ms=opts["timeout_ms"],
        wake=opts["wake"],
    )
    try:
        due = svc.due() if opts["wake"] else 0
        if opts["cmd"] == "sync" and due != 0:  # a wake with nothing due: no network
            s = _not_due(due)
        elif opts["cmd"] == "sync":

            def said(e):  # the blocking wait before a request, on stderr
                if e["event"] == "wait":
                    why = WAIT_REASONS.get(e["reason"], e["reason"])
                    err.write("sntp: waiting {}: {}\n".format(duration(e["wait_ms"]), why))

            svc.subscribe(said)
            s = _drive(opts, svc.sync())
        else:
            _run(svc, opts, out)
    finally:
        kept = True
        if state is not None:
            state.servers = _counted(state.doc.get("servers"), svc.status()["servers"])
            state.health = svc.health()
            kept = state.flush()
    if not kept:  # the board clock lives in that file: a correction not saved never happened
        err.write(
            "sntp: {}: the board clock and its state could not be saved there; nothing "
            "was kept\n".format(opts["state"])
        )
        return 1
    if opts["cmd"] == "sync":
        return _sync(s, opts, rtc, out, err)
    return 0


def _counted(before, now):
    """Each server's counters of this run added to those the state file held for it: the
    file's counts are since it was made, not since the last run (which may have sent
    nothing: a sync that only waited)."""
    old = {}
    for x in before if isinstance(before, list) else []:
        if isinstance(x, dict):
            old[x.get("server")] = x
    out = []
    for srv in now:
        prev = old.get(srv.get("server")) or {}
        srv = dict(srv)
        for k in ("sends", "replies", "kods", "dns_failures"):
            if type(prev.get(k)) is int and type(srv.get(k)) is int:
                srv[k] += prev[k]
        if srv.get("address") is None:
            srv["address"] = prev.get("address")
        out.append(srv)
    return out


def _drive(opts, coro_or_value):
    if opts["asyncio"]:
        import asyncio

        return asyncio.run(coro_or_value)
    return coro_or_value


def _not_due(due_ms):
    """sync --wake's summary when no request is due."""
    detail = (
        "nothing scheduled"
        if due_ms is None
        else "next request in {} s".format((due_ms + 999) // 1000)
    )
    from sntp.summary import blank

    s = blank()
    s["error"], s["detail"] = "not-due", detail
    return s


def _sync(s, opts, rtc, out, err):
    board_us = rtc.unix_us()
    # a valid board clock whose next request is not allowed yet (the floor, the crash-loop
    # guard): the board is fine and says when it may ask; only an invalid clock is a failure
    waits = s["error"] == "deferred" and board_us >= BUILD_UNIX_S * US_PER_S
    if opts["json"]:
        fields = [
            ("ok", json.dumps(s["ok"])),
            ("error", json.dumps(s["error"])),
            ("detail", json.dumps(s["detail"])),
            ("kiss", json.dumps(s["kiss"])),
            ("offset", _seconds(s["offset_us"])),
            ("server", json.dumps(s["server"])),
            ("servers", json.dumps(s["servers"])),
            ("clock_set", json.dumps(s["clock_set"])),
            ("servers_tried", json.dumps(s["servers_tried"])),
            ("failures", json.dumps(s["failures"])),
            ("time", _seconds(board_us)),
            ("valid", json.dumps(board_us >= BUILD_UNIX_S * US_PER_S)),
        ]
        out.write("{" + ", ".join(json.dumps(k) + ": " + v for k, v in fields) + "}\n")
    elif s["clock_set"]:
        out.write(
            "clock set: {} s from {} (board clock now {})\n".format(
                _signed(s["offset_us"]), s["server"], _utc(board_us)
            )
        )
    elif s["error"] == "not-due":
        out.write("not due: {} (board clock {})\n".format(s["detail"], _utc(board_us)))
    elif waits:
        out.write(
            "clock valid, nothing to do now: {} (board clock {})\n".format(
                s["detail"], _utc(board_us)
            )
        )
    else:
        err.write("sntp: clock not set: {} ({})\n".format(s["error"], s["detail"]))
    return 0 if s["clock_set"] or s["error"] == "not-due" or waits else 1


def event_json(e):
    """One event as one line of JSON: event and t_ms first, then the other fields sorted."""
    keys = ["event", "t_ms"] + sorted(k for k in e if k not in ("event", "t_ms"))
    return "{" + ", ".join(json.dumps(k) + ": " + json.dumps(e[k]) for k in keys) + "}"


def _run(svc, opts, out):
    rtc = svc.rtc

    def show(e):
        if e["event"] == "start" and not opts["startup_delay"]:
            e = dict(e, wait_ms=0, startup_delay=False)  # it asks at once: no wait to show
        out.write((event_json(e) if opts["json"] else event_text(e, rtc.unix_us())) + "\n")
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()

    svc.subscribe(show)
    svc.boot(startup_delay=opts["startup_delay"])
    until = None if opts["for_ms"] is None else svc.now_ms() + opts["for_ms"]
    _drive(opts, svc.run(until))


# ---- waits and events in words ---------------------------------------------------------------

# The policy's reason for a "wait" event, in words.
WAIT_REASONS = {"floor": "at most one request per 15 s to each server address (rule 1)"}


def duration(ms):
    """17 min, 2 min 54 s, 13.7 s, 1 h 4 min, 2 d 3 h (integers only)."""
    s = ms // 1000
    if s < 60:
        return "{}.{} s".format(s, ms % 1000 // 100)
    if s < 3600:
        return "{} min {} s".format(s // 60, s % 60) if s % 60 else "{} min".format(s // 60)
    if s < 86400:
        return "{} h {} min".format(s // 3600, s % 3600 // 60)
    return "{} d {} h".format(s // 86400, s % 86400 // 3600)


def offset_text(us):
    """+956 us, -1.461 ms, +2.000044 s, +20787 days (1796021886 s): signed, integers only."""
    sign = "+" if us >= 0 else "-"
    a = abs(us)
    if a < 1000:
        return "{}{} us".format(sign, a)
    if a < US_PER_S:
        return "{}{}.{:03d} ms".format(sign, a // 1000, a % 1000)
    if a < 86400 * US_PER_S:
        return "{}{} s".format(sign, format_us(a))
    return "{}{} days ({} s)".format(sign, a // (86400 * US_PER_S), a // US_PER_S)


def _ppm(ppb):
    if ppb is None:
        return "none"
    sign = "-" if ppb < 0 else "+"
    return "{}{}.{} ppm".format(sign, abs(ppb) // 1000, abs(ppb) % 1000 // 100)


def _hms(unix_us_):
    return _utc(unix_us_)[11:19] + "Z"


def _next(e, now_us, why):
    w = e.get("wait_ms") or 0
    return "next request in {} at {} ({})".format(duration(w), _hms(now_us + w * 1000), why)


def event_text(e, now_us):
    """One event as one line for a person: the board's UTC time, what happened, and for a
    wait, how long, until when and why. Unknown events show their fields."""
    k = e["event"]
    server = e.get("server")
    if k == "start":
        valid = "valid" if e.get("clock_valid") else "not valid (before the build date)"
        if e.get("startup_delay") is False:
            text = "start: board clock {}; asking now (no start-up delay)".format(valid)
        else:
            text = "start: board clock {}; {}".format(
                valid, _next(e, now_us, "the start-up delay: random, spreads a fleet's requests")
            )
    elif k == "resolve":
        if e.get("ok"):
            text = "resolved {}: {}".format(server, ", ".join(e.get("addresses") or []))
        else:
            text = "cannot resolve {}: {}; next lookup in {}".format(
                server, in_words(str(e.get("detail"))), duration(e.get("retry_ms") or 0)
            )
    elif k == "send":
        text = "request to {}{}".format(server, _via(e))
    elif k == "reply":
        text = "reply from {}{}: offset {}, delay {}, stratum {}".format(
            server,
            _via(e),
            offset_text(e["offset_us"]),
            offset_text(e["delay_us"])[1:],
            e.get("stratum"),
        )
    elif k in ("timeout", "reject") and e.get("reason") != "before-build-date":
        text = "no good reply from {}{}: {} ({})".format(
            server, _via(e), e.get("reason"), EXPLAIN.get(e.get("reason"), "")
        )
    elif k == "reject":
        text = "{} would set the clock before the build date: refused".format(server)
    elif k == "kod":
        code = e.get("code")
        text = "Kiss-o'-Death {} from {}{}".format(code, server, _via(e))
        if e.get("gap_ms"):
            text += ": that address waits at least {} (rule 5)".format(duration(e["gap_ms"]))
        elif e.get("hold_s"):
            text += ": that address is not asked for {} (rule 5)".format(
                duration(e["hold_s"] * 1000)
            )
    elif k == "disagree":
        pairs = zip(e.get("servers") or [], e.get("offsets_us") or [])
        text = "servers disagree ({}): {}".format(
            ", ".join("{} {}".format(s, offset_text(o)) for s, o in pairs),
            "they are left out" if e.get("chosen_us") is not None else "the clock is left alone",
        )
    elif k == "step":
        text = "correction {} agreed by {}".format(
            offset_text(e["offset_us"]), ", ".join(e.get("servers") or [])
        )
    elif k == "clock":
        if not e.get("applied"):
            text = "clock NOT corrected ({}): {}".format(
                offset_text(e["offset_us"]), e.get("detail")
            )
        elif e.get("how") == "step":
            text = "clock stepped by {}".format(offset_text(e["offset_us"]))
        elif e.get("how") == "slew":
            text = "clock slewed by {} (gradually, at most 0.5 ms a second)".format(
                offset_text(e["offset_us"])
            )
        else:
            text = "clock corrected by {}".format(offset_text(e["offset_us"]))
    elif k == "poll":
        text = "synced; " + _next(e, now_us, "poll interval {} s".format(e.get("interval_s")))
    elif k == "backoff":
        text = "round failed ({} in a row); {}".format(
            e.get("fails"), _next(e, now_us, "backoff, rule 4")
        )
    elif k == "hold":
        text = "{} of {} requests reached; {}".format(
            e.get("reason"), e.get("cap"), _next(e, now_us, "rule 2")
        )
    elif k == "wait":
        why = WAIT_REASONS.get(e.get("reason"), e.get("reason"))
        text = "waiting {} until {}: {}".format(
            duration(e["wait_ms"]), _hms(now_us + e["wait_ms"] * 1000), why
        )
    elif k == "drift":
        text = "drift estimate {} (this sync measured {}); poll interval at most {} s".format(
            _ppm(e.get("drift_ppb")), _ppm(e.get("measured_ppb")), e.get("interval_cap_s")
        )
    elif k == "idle":
        text = "idle: {}".format(e.get("reason"))
    elif k == "config":
        text = "configuration: {}".format(e.get("warning") or e.get("note"))
    elif k == "store":
        text = "cannot save the state: {}".format(e.get("detail"))
    else:
        rest = sorted(x for x in e if x not in ("event", "t_ms"))
        text = "{}: {}".format(k, ", ".join("{}={}".format(x, e[x]) for x in rest))
    return "{} {}".format(_utc(now_us)[:19] + "Z", text)


def _via(e):
    a = e.get("address")
    return " ({})".format(a) if a and a != e.get("server") else ""


def cmd_status(opts, out, err):
    from softrtc import KIND, StateFile, WrongKind, check_kind

    from sntp.store import read_json

    path = opts["state"]
    doc, why = read_json(path)
    if doc is None:
        err.write("sntp: {}: {}\n".format(path, why))
        return 1
    try:
        check_kind(path, doc, KIND)
        if opts["config_path"] is not None:
            from sntp import config

            check_kind(opts["config_path"], read_json(opts["config_path"])[0], config.KIND)
    except WrongKind as e:
        err.write("sntp: {}\n".format(e.args[0]))
        return 2

    def warn(text):
        err.write("sntp: warning: {}\n".format(text))

    state = StateFile(path, warn=warn).apply(doc)
    board_us = state.rtc.unix_us()
    valid = board_us >= BUILD_UNIX_S * US_PER_S
    pst = state.policy_state or {}
    last = _int_or_none(pst.get("last_sync_unix_s"))
    interval = _int_or_none(pst.get("interval_s"))
    servers = doc.get("servers") if isinstance(doc.get("servers"), list) else []
    local = _local(opts["config_path"], board_us, warn)
    if opts["json"]:
        fields = [
            ("time", _seconds(board_us)),
            ("local", json.dumps(local)),
            ("valid", json.dumps(valid)),
            ("last_sync", json.dumps(last)),
            ("interval", json.dumps(interval)),
            ("servers", json.dumps(servers)),
            ("rtc_offset", _seconds(state.rtc.offset_us)),
            ("fails", json.dumps(_int_or_none(pst.get("fails")))),
            ("next_due", json.dumps(_int_or_none(pst.get("next_due_unix_s")))),
            ("denied", json.dumps(pst.get("denied") or {})),
            ("rate", json.dumps(pst.get("rate") or {})),
            ("health", json.dumps(doc.get("health"))),
        ]
        out.write("{" + ", ".join(json.dumps(k) + ": " + v for k, v in fields) + "}\n")
        return 0
    lines = [
        "time       {} (host clock {} s)".format(_utc(board_us), _signed(state.rtc.offset_us)),
        "valid      {}".format(
            "yes"
            if valid
            else "no (before the build date {})".format(_utc(BUILD_UNIX_S * US_PER_S)[:10])
        ),
        "last_sync  {}".format(
            _utc(last * US_PER_S)[:19] + " UTC" if last is not None else "never"
        ),
        "interval   {}".format("{} s".format(interval) if interval is not None else "unknown"),
    ]
    if local is not None:
        lines.insert(1, "local      " + local)
    lines += _holds(pst)
    h = doc.get("health")
    if isinstance(h, dict):
        from sntp.console import health_text

        lines.append("health     {} (at the last save)".format(health_text(h)))
    if not servers:
        lines.append("servers    none recorded")
    for i, srv in enumerate(servers):
        label = "servers" if i == 0 else ""
        if isinstance(srv, dict):
            text = "{} (sent {}, replies {}, KoD {})".format(
                srv.get("server"), srv.get("sends"), srv.get("replies"), srv.get("kods")
            )
        else:
            text = str(srv)
        lines.append("{:<10} {}".format(label, text))
    out.write("\n".join(lines) + "\n")
    return 0


def _holds(pst):
    """The policy state's next request and its holds, as the state file has them: a DENY
    until a date, a RATE gap until a time after the save (by the board clock then)."""
    lines = []
    due = _int_or_none(pst.get("next_due_unix_s"))
    if due is not None:
        lines.append(
            "next       {} UTC (the next request, by the board clock)".format(
                _utc(due * US_PER_S)[:19]
            )
        )
    saved_ms = _int_or_none(pst.get("saved_ms"))
    rate = pst.get("rate") if isinstance(pst.get("rate"), dict) else {}
    for addr in sorted(rate):
        v = rate[addr]
        if not (
            isinstance(v, list) and len(v) == 3 and all(_int_or_none(x) is not None for x in v)
        ):
            continue
        end = (
            _utc((saved_ms + v[2]) * 1000)[:19] + " UTC"
            if saved_ms is not None
            else "{} after the save".format(duration(v[2]))
        )
        lines.append(
            "hold       {} RATE: at most one request per {} until {}".format(
                addr, duration(v[0]), end
            )
        )
    denied = pst.get("denied") if isinstance(pst.get("denied"), dict) else {}
    for addr in sorted(denied):
        until = _int_or_none(denied[addr])
        if until is not None:
            lines.append(
                "hold       {} DENY: no request until {} UTC".format(
                    addr, _utc(until * US_PER_S)[:19]
                )
            )
    return lines


def _local(config_path, board_us, warn):
    """The board clock as local time, when the configuration at config_path has a tz rule."""
    if config_path is None:
        return None
    from sntp import config
    from sntp.console import local_text

    rule = config.load(config_path, warn)["tz"]
    return local_text(rule, board_us) if rule else None


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _version():
    import sntp

    return sntp.__version__


def main():
    try:
        status = run(sys.argv[1:])
    except KeyboardInterrupt:
        status = 130
    except Exception as e:  # a bug: still one line, never a traceback
        sys.stderr.write("sntp: internal error: {}: {}\n".format(type(e).__name__, e))
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
