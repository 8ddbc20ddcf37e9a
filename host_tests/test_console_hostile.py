# runs-on: both
# Hostile input to the provisioning console, end to end through its stream runners: the unix
# board's (boards/unix/unixconsole.main over a stdin stream, sntp.console.serve) and a
# board's serial (boards/common/serialconsole.LineReader). What test_console.py (single lines
# to Console.handle), test_console_hypothesis.py (random lines and random pieces, CPython vs
# MicroPython) and test_console_pty.py (a raw terminal) cover is not repeated here; this file
# adds what they do not reach:
#   - lines of 64 KiB and 1 MiB, with and without a line end, answered once, the heap flat
#     while they stream in (a line over MAX_LINE is cut, never buffered whole);
#   - UTF-8 split across reads at every byte, and broken UTF-8 that must not carry over;
#   - CR, LF and CRLF mixed over a thousand commands: exactly one reply per line;
#   - a line end inside a value (what a sender that does not check would send);
#   - 10,000 commands in one session, each with one final line, the heap flat;
#   - a str line with a lone surrogate (CPython's str can hold one): err, not a crash;
#   - the Wi-Fi passphrase, with quotes, a backslash and non-ASCII in it, never in any
#     output, as typed, as repr() or JSON escape it, or in hex: console replies, warnings,
#     the service's events and the board program's log.
import gc
import json
import sys

from fakes import fresh_path, stepped
from test_policy import Rng

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_HERE + "/../boards/common", _HERE + "/../boards/unix"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import settings  # noqa: E402
import unixconsole  # noqa: E402
from serialconsole import LineReader  # noqa: E402

from sntp import config  # noqa: E402
from sntp.console import MAX_LINE, Console, serve  # noqa: E402

CPYTHON = sys.implementation.name == "cpython"
KIB = 1024
# a passphrase a person may well choose: quotes, a backslash, non-ASCII, a dollar sign
SECRET = 'Pa$$ "w\u00f6rd" it\'s \\ 42'


def fresh(name):
    # one folder per runtime: both runtimes' runs may share the work tree at once
    return fresh_path("test_console_hostile-" + sys.implementation.name, name)


def config_file(name, doc):
    path = fresh(name)
    with open(path, "w") as f:
        f.write(json.dumps(doc))
    return path


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- the heap -----------------------------------------------------------------------------------
class Heap:
    """Bytes in use after a collection: gc.mem_alloc() on MicroPython, tracemalloc on CPython."""

    def __enter__(self):
        if CPYTHON:
            import tracemalloc

            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if CPYTHON:
            import tracemalloc

            tracemalloc.stop()

    def now(self):
        gc.collect()
        if CPYTHON:
            import tracemalloc

            return tracemalloc.get_traced_memory()[0]
        return gc.mem_alloc()  # type: ignore[attr-defined]


# ---- streams that never hold what they send -----------------------------------------------------
class Stream:
    """stdin for unixconsole.main: readline(n) over runs of (bytes, repeat), made on the fly,
    so a 1 MiB line is never in memory here. every/probe: probe(calls) every `every` calls."""

    def __init__(self, runs, every=0, probe=None):
        self.runs = [r for r in runs if r[0] and r[1]]  # [(piece, repeat)]
        self.pos = 0  # bytes already given of the current run
        self.every = every
        self.probe = probe
        self.calls = 0

    def readline(self, n=-1):
        self.calls += 1
        if self.every and self.calls % self.every == 0:
            self.probe(self.calls)
        out = b""
        while self.runs and (n < 0 or len(out) < n):
            piece, repeat = self.runs[0]
            total = len(piece) * repeat
            take = total - self.pos if n < 0 else min(total - self.pos, n - len(out))
            start = self.pos % len(piece)
            chunk = (piece * ((start + take) // len(piece) + 1))[start : start + take]
            nl = chunk.find(b"\n")
            if nl >= 0:
                chunk = chunk[: nl + 1]
            out += chunk
            self.pos += len(chunk)
            if self.pos == total:
                self.runs.pop(0)
                self.pos = 0
            if nl >= 0:
                break
        return out


class Lines:
    """stdout for unixconsole.main: the reply lines (without their line ends)."""

    def __init__(self, keep=True):
        self.keep = keep
        self.lines = []
        self.finals = 0  # replies: lines that are ok or err ...
        self.partial = ""

    def write(self, text):
        text = self.partial + text
        parts = text.split("\n")
        self.partial = parts.pop()
        for line in parts:
            if line == "ok" or line.startswith("err"):
                self.finals += 1
            if self.keep:
                self.lines.append(line)


def run_unix_console(path, runs, every=0, probe=None, keep=True):
    """unixconsole.main over a Stream of runs; returns (Lines of stdout, stderr text)."""
    out, err = Lines(keep), Lines()
    status = unixconsole.main(
        path, stdin=Stream(runs, every, probe), out=out, err=err, timeout_ms=100
    )
    assert status == 0 and out.partial == ""
    return out, "\n".join(err.lines)


TOO_LONG = "err line too long (at most {} bytes)".format(MAX_LINE)


def test_huge_lines_are_answered_once_and_never_buffered():
    path = config_file("huge.json", {"zone": "keep"})
    before = read_bytes(path)
    figures = []
    for size in (64 * KIB, KIB * KIB):
        for end in (b"\n", b"\r\n", b""):  # b"": the stream ends inside the line
            samples = []
            with Heap() as heap:
                runs = [(b"set zone ", 1), (b"\xff\x00x", size // 3), (end, 1)]
                if end:
                    runs.append((b"get zone\n", 1))
                out, _ = run_unix_console(
                    path, runs, 64, lambda calls, s=samples, h=heap: s.append(h.now())
                )
            want = [TOO_LONG] + (["zone=keep", "ok"] if end else [])
            assert out.lines == want, (size, end, out.lines[:3])
            # a line over MAX_LINE is cut as it comes: nothing of it piles up
            assert len(samples) >= size // (unixconsole.READ_CHUNK * 64), samples
            grew = max(samples) - samples[0]
            figures.append(grew)
            assert grew < 4 * KIB, (size, end, samples)
    assert read_bytes(path) == before
    print("console: 64 KiB and 1 MiB lines, heap growth at most {} bytes".format(max(figures)))


class Serial:
    """A board's serial, byte by byte (serialconsole.LineReader), from runs made on the fly.
    longest: the most bytes of one line the reader has held at any time."""

    def __init__(self, runs):
        self.stream = Stream(runs)
        self.pending = b""
        self.reader = None  # the LineReader reading this
        self.longest = 0

    def ready(self, timeout_ms):
        return True  # bytes are waiting, or the end (read() answers b'')

    def read(self):
        self.longest = max(self.longest, len(self.reader.buf))
        if not self.pending:
            self.pending = self.stream.readline(64)
        b, self.pending = self.pending[:1], self.pending[1:]
        return b


def board_session(path, runs):
    """Every line the LineReader gives, answered by a Console: (reply lines, longest)."""
    serial = Serial(runs)
    r = serial.reader = LineReader(serial.ready, serial.read)
    con = Console(path, warn=lambda line: None)
    out = []
    while not r.eof:
        line = r.line()
        if line is not None:
            out += con.handle(line)
    return out, serial.longest


def test_huge_lines_on_a_boards_serial_are_cut_as_they_come():
    path = config_file("serial-huge.json", {"zone": "keep"})
    size = 64 * KIB if not CPYTHON else KIB * KIB
    for end in (b"\r", b"\n", b"\r\n"):
        out, longest = board_session(path, [(b"x", size), (end, 1), (b"get zone\r", 1)])
        assert out == [TOO_LONG, "zone=keep", "ok"], out
        assert longest <= MAX_LINE + 1  # never more of a line kept than the limit
    out, longest = board_session(path, [(b"\x00\xff", size // 2)])  # and then the end
    assert out == [TOO_LONG] and longest <= MAX_LINE + 1


# ---- UTF-8 across reads -------------------------------------------------------------------------
def pieces_at(data, cut):
    """data (with line ends) as serve()'s readline would give it, cut once more at `cut`."""
    out = []
    for part in (data[:cut], data[cut:]):
        while b"\n" in part[:-1]:
            i = part.index(b"\n")
            out.append(part[: i + 1])
            part = part[i + 1 :]
        if part:
            out.append(part)
    return out


def serve_lines(path, pieces):
    con = Console(path, warn=lambda line: None)
    written = []
    feed = list(pieces)
    serve(con, lambda: feed.pop(0) if feed else b"", written.append)
    return [w[:-1] for w in written], con


def test_utf8_split_across_reads_at_every_byte_is_one_character():
    path = config_file("utf8.json", {})
    value = "caf\u00e9 \u2603 \U0001f550"
    data = ("set wifi_ssid " + value + "\n").encode("utf-8")
    for cut in range(1, len(data)):
        out, con = serve_lines(path, pieces_at(data, cut))
        assert out == ["wifi_ssid=" + value, "ok"], (cut, out)
        assert con.pending["wifi_ssid"] == value
    # the same on a board's serial, one byte at a time
    out, _ = board_session(path, [(data, 1)])
    assert out == ["wifi_ssid=" + value, "ok"]


def test_broken_utf8_is_refused_and_nothing_carries_over_to_the_next_line():
    path = config_file("utf8-broken.json", {"wifi_ssid": "keep"})
    before = read_bytes(path)
    cases = [
        b"set wifi_ssid caf\xc3\n\xa9\n",  # a character cut by a line end: both halves refused
        b"set wifi_ssid \xe2\x98\n\x83 x\n",
        b"set wifi_ssid \xf0\x9f\x95\n\x90\n",
        b"set wifi_ssid \xed\xa0\x80\xed\xb0\x80\n\n",  # a surrogate pair in UTF-8 (CESU-8)
        b"set wifi_ssid \xc0\xaf\n\n",  # overlong '/'
    ]
    for data in cases:
        for cut in range(1, len(data)):
            out, con = serve_lines(path, pieces_at(data, cut) + [b"save\n"])
            assert out[0] == "err line is not UTF-8", (data, out)
            assert out[1] in ("err line is not UTF-8", "ok"), (data, out)  # "" is ok
            assert out[2:] == ["no changes to save", "ok"], (data, out)
    assert read_bytes(path) == before


def test_a_str_line_with_a_lone_surrogate_is_refused_not_a_crash():
    # CPython's str can hold one (MicroPython's cannot: the same text arrives as bytes there)
    con = Console(config_file("surrogate.json", {}), warn=lambda line: None)
    for line in ("set wifi_ssid caf\ud800", "\udcff", "get zone\udc80"):
        assert con.handle(line) == ["err line is not UTF-8"], line
    assert con.changed() == []


# ---- line ends ----------------------------------------------------------------------------------
def test_cr_lf_and_crlf_mixed_give_one_reply_per_line():
    rng = Rng(8)
    commands = [b"get zone", b"get log_level", b"show", b"help", b"set zone acme", b"x" * 400]
    path = config_file("ends.json", {})
    # the board: \r, \n and \r\n each end a line; a \r\n is one end, \n\r two
    sent = []
    data = b""
    for _ in range(1_000):
        cmd = commands[rng.below(len(commands))]
        end = (b"\r", b"\n", b"\r\n")[rng.below(3)]
        data += cmd + end
        sent.append(cmd)
    out, _ = board_session(path, [(data, 1)])
    finals = [line for line in out if line == "ok" or line.startswith("err")]
    assert len(finals) == len(sent)
    assert finals.count(TOO_LONG) == sent.count(b"x" * 400)
    # the unix board (a line ends at \n; one \r before it is dropped): \r elsewhere is refused
    data = b"get zone\r\nget zone\n\r\nget zone\rshow\n\n\r\r\nget zone\r"
    out, _ = serve_lines(path, pieces_at(data, 7))
    assert out == [
        "zone=",
        "ok",
        "zone=",
        "ok",
        "ok",  # \r\n alone: an empty line
        "err control character in line (0x0d)",
        "ok",
        "err control character in line (0x0d)",  # \r\r\n: one \r is the line end, one is not
        "zone=",
        "ok",  # the last line, ended by \r and then the end of input
    ], out


def test_a_line_end_inside_a_value_never_makes_a_second_command_of_one_line():
    """A line handed over whole (mpremote's script in tools/provision --port, a test harness)
    with a line end inside it is one line: refused whole, the tail never runs as a command."""
    path = config_file("inject.json", {"zone": "keep", "wifi_pass": SECRET})
    before = read_bytes(path)
    con = Console(path, reboot=lambda: None, warn=lambda line: None)
    for value in ("net\nsave", "net\rsave", "net\r\nsave", "net\n\nsave\n\n", "x\nreboot"):
        for key in ("wifi_ssid", "zone", "wifi_pass", "servers"):
            for line in ("set {} {}".format(key, value), 'set {} "{}"'.format(key, value)):
                out = con.handle(line.encode())
                assert len(out) == 1 and out[0].startswith("err control character"), (line, out)
                assert con.after is None and con.changed() == []
    assert read_bytes(path) == before
    # in a stream, a line end ends the line: whatever follows it is the next line, judged
    # on its own (so a sender must refuse line ends in values, as tools/provision does)
    out, con = serve_lines(path, [b"set wifi_ssid net\n", b"save\n"])
    assert out[-1] == "ok" and con.saved["wifi_ssid"] == "net"


# ---- many commands ------------------------------------------------------------------------------
@stepped
def test_ten_thousand_commands_in_one_session_keep_the_heap_flat():
    # One session (the board and console unixconsole.main makes) served 1,000 commands at a
    # time by serve(), which returns at the end of each part's input with nothing held; the
    # heap is read between the parts (each a call of its own on the WebAssembly runner).
    path = config_file("many.json", {"zone": "keep", "wifi_pass": SECRET})
    n, part = 10_000, 1_000
    mix = [
        b"set wifi_pass passphrase-%06d\n",  # a new passphrase every time (each scrubbed)
        b"set zone bad.zone-%d\n",
        b"get zone\n",
        b"set accuracy_ms %d\n",
        b"\xff\xfe%d\n",
        b"set wifi_ssid net-%d\n",
        b"frobnicate %d\n",
        b"discard\n",
    ]

    def command(i):
        m = mix[i % len(mix)]
        return m.replace(b"%06d", b"%06d" % i).replace(b"%d", b"%d" % i)

    class Commands:
        """Lines made one at a time, none of them kept here; b'' at the end of each part."""

        def __init__(self):
            self.i = 0
            self.end = 0

        def readline(self):
            if self.i == self.end:
                return b""
            self.i += 1
            return command(self.i - 1)

    out, err = Lines(keep=False), Lines()

    def warn(text):
        err.write("sntp: warning: {}\n".format(text))

    board = unixconsole.UnixBoard(path, warn=warn)
    con = Console(path, query=board.query, reboot=board.reboot, warn=warn, sync=board.sync)
    board.console = con
    board.start()
    stdin = Commands()
    samples = []  # the heap at the start and after each part
    with Heap() as heap:
        try:
            while True:
                samples.append(heap.now())
                # fail early, not after minutes of a growing list
                assert len(samples) < 3 or samples[-1] - samples[1] < 8 * KIB, samples
                if stdin.i == n:
                    break
                stdin.end += part
                serve(con, stdin.readline, out.write)
                yield
        finally:
            board.stop()
    assert out.finals == n and out.partial == ""  # one final line for every command
    growth = max(samples[1:]) - samples[1]
    print("console: {} commands, heap growth after the first 1,000: {} bytes".format(n, growth))
    assert growth < 8 * KIB


# ---- the passphrase -----------------------------------------------------------------------------
def secret_forms(secret):
    """The passphrase as it could leak: as typed, as repr() and JSON escape it, in hex."""
    import binascii

    raw = secret.encode("utf-8")
    inner = repr(secret)[1:-1]
    escaped = ""  # repr() on MicroPython (ascii() on CPython): non-ASCII as \xNN, \uNNNN
    for c in inner:
        n = ord(c)
        if n < 0x7F:
            escaped += c
        elif n < 0x100:
            escaped += "\\x{:02x}".format(n)
        elif n < 0x10000:
            escaped += "\\u{:04x}".format(n)
        else:
            escaped += "\\U{:08x}".format(n)
    forms = [secret, inner, escaped, json.dumps(secret)[1:-1]]
    forms += [binascii.hexlify(raw).decode(), binascii.hexlify(raw).decode().upper()]
    forms.append(repr(raw)[2:-1])  # bytes' repr
    return forms


def assert_never_shown(text, secret=SECRET):
    for form in secret_forms(secret):
        assert form not in text, (form, text[:400])


def test_the_passphrase_never_appears_in_any_console_output_warning_or_event():
    import app
    from test_console import running_service

    svc = running_service()
    events = []
    svc.subscribe(lambda e: events.append(e))
    path = config_file("secret.json", {"zone": "acme"})
    warned = []
    con = Console(path, service=svc, sync=svc.sync, reboot=lambda: None, warn=warned.append)
    said = []

    def ask(line):
        said.extend(con.handle(line.encode("utf-8") if isinstance(line, str) else line))

    ask("set wifi_pass " + SECRET)
    ask('set wifi_pass "' + SECRET + '"')
    ask("save")
    lines = ["help", "show", "status", "sync", "status", "discard", "dump", "get", "get  "]
    lines += ["get " + k for k in config.KEYS] + ["unset zone", "reboot", "exit", "save"]
    for k in config.KEYS:  # the passphrase typed where it does not belong, every way
        lines += ["set {} {}".format(k, SECRET), 'set {} "{}"'.format(k, SECRET)]
        lines += ["get {} {}".format(k, SECRET), "unset {} {}".format(k, SECRET)]
    lines += ["query " + SECRET, "query [" + SECRET + "]:123", SECRET, "get " + SECRET]
    lines += ["set servers a.example," + SECRET, "set wifi_pass " + SECRET + "x" * 60]
    lines += ["set wifi_pass " + SECRET[:5], "show", "discard", "status", "exit"]
    for line in lines:
        ask(line)
    ask(SECRET.encode("utf-8") + b"\x00")  # hostile bytes with the passphrase in them
    ask(b"set wifi_ssid " + SECRET.encode("utf-8") + b"\xff")
    assert "wifi_pass=" + config.MASK in said and "bye" in said
    # a configuration file where the passphrase also sits in the wrong fields (a paste gone
    # wrong): every warning at load time, in the console and on the board, hides it
    bad = {"wifi_pass": SECRET, "servers": [SECRET], "factory_server": SECRET, "zone": SECRET}
    bad["wifi_ssid"] = SECRET + "x" * 40
    path2 = config_file("secret-bad.json", bad)
    board_warned = []
    settings_values = settings.load(path2, board_warned.append)
    assert settings_values["wifi_pass"] == SECRET and board_warned
    con2 = Console(path2, service=svc, warn=warned.append)
    said += con2.handle(b"show") + con2.handle(b"save") + con2.handle(b"show")
    text = "\n".join(said + warned + board_warned)
    text += "\n".join(str(e) + app.event_line(e) for e in events)
    assert events and warned
    assert_never_shown(text)
    assert json.loads(read_bytes(path))["wifi_pass"] == SECRET  # it was saved, all the same
    print(
        "console: {} replies, {} warnings, {} events: the passphrase in none".format(
            len(said), len(warned) + len(board_warned), len(events)
        )
    )


def test_the_board_program_never_logs_the_passphrase():
    import asyncio

    import app
    from test_boards import FakeBoard, FakeWLAN
    from test_console_board import FakeSerial

    from sntp.aio import sleep_ms

    cfg = config_file(
        "board-secret.json",
        {"wifi_ssid": "net", "wifi_pass": SECRET, "servers": [SECRET], "log_level": "debug"},
    )
    state = fresh("board-state.json")
    printed = []
    serial = FakeSerial(b"show\nset wifi_pass " + SECRET.encode("utf-8") + b"\nstatus\n")
    serial.feed(b"set servers " + SECRET.encode("utf-8") + b"\nsave\nexit\n")

    async def application(b, out):
        out("app: started")
        serial.feed(b"show\nstatus\nsync\nset factory_server " + SECRET.encode("utf-8") + b"\n")
        serial.feed(b"discard\nexit\n")
        for _ in range(200):
            await sleep_ms(10)
            if printed.count("bye") == 2:
                break
        await sleep_ms(20)
        assert printed.count("bye") == 2

    wlan = FakeWLAN()
    asyncio.run(
        app.main(
            FakeBoard(wlan),
            cfg,
            state,
            application,
            printed.append,
            console=serial.reader(),
            window_ms=1_000,
        )
    )
    assert wlan.connects == [("net", SECRET)]
    text = "\n".join(printed)
    assert "wifi_pass=" + config.MASK in text and "config: " in text
    assert_never_shown(text)
