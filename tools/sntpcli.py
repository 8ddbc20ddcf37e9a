# tools/sntp: the command line of the firmware package, for the unix-port MicroPython and CPython.
#
# It runs the firmware modules unchanged; the tools/sntp wrapper picks the runtime
# (MicroPython by default, CPython with --python). No argparse (MicroPython has none): the
# grammar is small and every mistake gets one line on stderr and exit status 2.
# Output formatting is the only place seconds are shown with a decimal point, and even
# here they are formatted from integer microseconds, never through a float.
import json
import sys

from sntp import client, exchange
from sntp.timestamp import (
    BUILD_UNIX_S,
    format_us,
    format_utc,
    ntp_to_us,
    resolve_era,
    short_to_us,
    unix_us,
)

USAGE = """usage: sntp [--python] query SERVER[:PORT] [--timeout SECONDS] [--json]

  query   one SNTP exchange with SERVER (a name, an IPv4 address, or [IPv6]:PORT);
          changes no clock. Exit status 0 when the reply passed every check, 1 otherwise.
  --timeout SECONDS   how long to wait for the reply (default 5, at most 60; decimals allowed)
  --json              one JSON object instead of the decoded reply
  --python            run under CPython instead of the unix-port MicroPython
  --version           print the version and the build date (the era pivot and clock floor)
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


def parse_decimal_ms(text):
    """'1.5' -> 1500, integers only. Raises UsageError on anything but digits and one point."""
    whole, _, frac = text.partition(".")
    if not (whole or frac) or not (whole + frac).isdigit() or len(frac) > 3:
        raise UsageError("--timeout wants seconds such as 5 or 0.5, not {!r}".format(text))
    return int(whole or "0") * 1000 + int((frac + "000")[:3])


def parse_server(text):
    """'host', 'host:port', '1.2.3.4:123', '[::1]:123', '::1' -> (host, port)."""
    host, port = text, 123
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError("unclosed [ in {!r}".format(text))
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError("expected :PORT after ] in {!r}".format(text))
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    if not host or len(host) > 253 or not _printable(host):
        raise UsageError("bad server name {!r}".format(text))
    return host, port


def _printable(s):
    for c in s:
        if ord(c) <= 0x20 or ord(c) >= 0x7F:
            return False
    return True


def _port(p, text):
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise UsageError("bad port in {!r}".format(text))
    return int(p)


def parse_args(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        return {"cmd": "help"}
    if argv[0] == "--version":
        return {"cmd": "version"}
    cmd = argv[0]
    if cmd != "query":
        raise UsageError("unknown command {!r} (try: sntp --help)".format(cmd))
    opts = {"cmd": cmd, "json": False, "timeout_ms": client.DEFAULT_TIMEOUT_MS, "server": None}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--json":
            opts["json"] = True
        elif a == "--timeout":
            if i + 1 >= len(argv):
                raise UsageError("--timeout needs a value")
            i += 1
            ms = parse_decimal_ms(argv[i])
            if not 0 < ms <= client.MAX_TIMEOUT_MS:
                raise UsageError("--timeout must be above 0 and at most 60 seconds")
            opts["timeout_ms"] = ms
        elif a.startswith("-"):
            raise UsageError("unknown option {!r}".format(a))
        elif opts["server"] is None:
            opts["server"] = parse_server(a)
        else:
            raise UsageError("one server only, got {!r}".format(a))
        i += 1
    if opts["server"] is None:
        raise UsageError("query needs a SERVER")
    return opts


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
    from sntp.packet import refid_text

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
        text = r.detail
    return "sntp: {}: {} ({})".format(server_text(r.server), r.error, text)


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
        out.write(USAGE)
        return 0
    if opts["cmd"] == "version":
        out.write(
            "sntp {} (build date {}, runtime {})\n".format(
                _version(), BUILD_UNIX_S, sys.implementation.name
            )
        )
        return 0
    host, port = opts["server"]
    clock = client.SystemClock()
    r = client.query(host, port, opts["timeout_ms"], clock=clock)
    if opts["json"]:
        out.write(to_json(r, clock.epoch_s) + "\n")
    else:
        if r.header is not None:
            out.write(describe(r, clock.epoch_s, client.ERA_PIVOT_NTP_S) + "\n")
        if not r.ok:
            err.write(error_line(r) + "\n")
    return 0 if r.ok else 1


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
