# runs-on: both
# The console on a board's serial (boards/common/serialconsole.py, app.py), with a fake serial
# line: lines ended by \r, \n or \r\n, the window at boot, the console on demand beside the
# running service with the board's own output held back while it is open.
import asyncio
import json
import sys

from fakes import fresh_path

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _p in (_HERE + "/../boards/common",):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import serialconsole  # noqa: E402
from serialconsole import Gate, LineReader  # noqa: E402

from sntp import config  # noqa: E402
from sntp.aio import sleep_ms  # noqa: E402
from sntp.console import MAX_LINE  # noqa: E402

SECRET = "correct horse battery staple"


class FakeSerial:
    """Bytes typed at the board: ready() while some are waiting (or at the end)."""

    def __init__(self, data=b"", eof=False):
        self.data = data
        self.eof = eof

    def feed(self, data):
        self.data += data

    def ready(self, timeout_ms):
        return bool(self.data) or self.eof

    def read(self):
        b, self.data = self.data[:1], self.data[1:]
        return b

    def reader(self):
        return LineReader(self.ready, self.read)


def fresh(name):
    # one folder per runtime: both runtimes' runs may share the work tree at once
    return fresh_path("test_console_board-" + sys.implementation.name, name)


def test_lines_end_with_cr_lf_or_both_and_long_lines_are_cut():
    serial = FakeSerial(b"get zone\r\nshow\rhelp\n\r\nx")
    r = serial.reader()
    assert r.line() == b"get zone\n" and r.line() == b"show\n" and r.line() == b"help\n"
    assert r.line() == b"\n"  # \n\r\n: an empty line between (a \r\n is one end)
    assert r.line() is None and r.buf == b"x"  # waiting for the rest
    serial.feed(b"y" * 1000 + b"\n")
    line = r.line()
    assert len(line) == MAX_LINE + 2 and line.endswith(b"\n")  # too long: err, not kept whole
    serial.feed(b"partial")
    serial.eof = True
    assert r.line() == b"partial\n" and r.eof and r.line() is None


def test_the_gate_holds_the_boards_output_while_the_console_is_open():
    printed = []
    gate = Gate(printed.append)
    gate.out("a")
    gate.open = True
    for i in range(serialconsole.HELD_MAX + 3):
        gate.out("held {}".format(i))
    gate.direct("reply")
    assert printed == ["a", "reply"]
    gate.close()
    assert printed[2] == "console: 3 lines of output were dropped"
    assert printed[3] == "held 3" and printed[-1] == "held {}".format(serialconsole.HELD_MAX + 2)
    gate.out("b")
    assert printed[-1] == "b"


def test_boot_window_without_a_line_goes_on():
    printed = []
    serial = FakeSerial()
    entered = asyncio.run(
        serialconsole.boot_window(fresh("none.json"), serial.reader(), printed.append, 120)
    )
    assert entered is False and len(printed) == 1 and "configuration console" in printed[0]


def test_a_line_without_the_console_module_says_so_once_and_the_board_goes_on():
    import sys

    saved = sys.modules.get("sntp.console")
    sys.modules["sntp.console"] = None  # type: ignore[assignment]  # an import of it fails
    printed = []
    try:
        entered = asyncio.run(
            serialconsole.boot_window(
                fresh("none.json"), FakeSerial(b"\r").reader(), printed.append, 2_000
            )
        )
    finally:
        if saved is None:
            del sys.modules["sntp.console"]
        else:
            sys.modules["sntp.console"] = saved
    assert entered is False and printed[-1] == serialconsole.NO_CONSOLE


def test_boot_window_with_a_line_runs_the_console_until_exit():
    path = fresh("boot.json")
    printed = []
    rebooted = []
    serial = FakeSerial(b"\r")  # Enter
    serial.feed(b"set zone acme\r")
    serial.feed(b"set wifi_pass " + SECRET.encode() + b"\r")
    serial.feed(b"status\r")
    serial.feed(b"reboot\r")
    serial.feed(b"save\r")
    serial.feed(b"reboot\r")
    serial.feed(b"exit\r")
    entered = asyncio.run(
        serialconsole.boot_window(
            path, serial.reader(), printed.append, 2_000, lambda: rebooted.append(len(printed))
        )
    )
    assert entered is True
    assert printed[1:8] == [
        "ok",
        "zone=acme",
        "ok",
        "wifi_pass=********",
        "ok",
        "service    not running (this console runs before the time service starts)",
        "servers    none configured",  # the saved configuration: zone is not saved yet
    ]
    assert "err unsaved changes: save or discard first" in printed
    i = printed.index("rebooting")
    assert rebooted == [i + 2]  # the reboot came after its reply
    assert printed[-3:] == ["bye", "ok", "console: closed, the board starts"]
    assert config.load(path)["zone"] == "acme" and config.load(path)["wifi_pass"] == SECRET
    assert SECRET not in "\n".join(printed)


class StubService:
    """Enough of a Service for status: the console asks, it does not run."""

    def __init__(self):
        from sntp import service

        self.svc = service.Service({}, rand_below=lambda n: 0)
        self.svc.boot()

    def __getattr__(self, name):
        return getattr(self.svc, name)


def test_on_demand_the_console_opens_with_a_line_and_holds_the_output():
    printed = []
    gate = Gate(printed.append)
    serial = FakeSerial()
    svc = StubService()

    async def scenario():
        task = asyncio.create_task(
            serialconsole.on_demand(fresh("demand.json"), svc, serial.reader(), gate)
        )
        gate.out("sntp: before")
        await sleep_ms(80)
        serial.feed(b"status\n")
        await _wait(lambda: printed and printed[-1] == "ok")
        gate.out("sntp: while open")
        serial.feed(b"sync\nexit\n")
        await _wait(lambda: printed[-1] == "sntp: while open")
        gate.out("sntp: after")
        task.cancel()

    asyncio.run(scenario())
    assert printed[0] == "sntp: before"
    assert any(line.startswith("clock      ") for line in printed)
    assert "err no servers configured (rule 3: there is no built-in default)" in printed
    assert printed[-4:] == ["bye", "ok", "sntp: while open", "sntp: after"]


async def _wait(cond, limit=1_000):
    for _ in range(limit):
        if cond():
            return
        await sleep_ms(10)
    raise AssertionError("timed out")


def test_the_board_program_enters_the_console_at_boot_and_on_demand():
    import app
    from test_boards import FakeBoard, FakeWLAN

    cfg = fresh("board.json")
    state = fresh("state.json")
    printed = []
    serial = FakeSerial(b"set wifi_ssid net\nset wifi_pass " + SECRET.encode() + b"\n")
    serial.feed(b"save\nexit\n")  # typed during the window at boot

    async def application(b, out):
        out("app: started")
        serial.feed(b"get wifi_ssid\n")
        await _wait(lambda: printed[-1] == "ok")
        out("app: while the console is open")
        await sleep_ms(20)
        assert printed[-1] == "ok"  # held back
        serial.feed(b"exit\n")
        await _wait(lambda: printed[-1] == "app: while the console is open")

    wlan = FakeWLAN()
    board = asyncio.run(
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
    assert wlan.connects == [("net", SECRET)]  # the configuration saved at boot was used
    assert board.service is not None
    i = printed.index("console: closed, the board starts")
    assert printed[i - 2 : i] == ["bye", "ok"]
    j = printed.index("app: started")
    k = len(printed) - 1 - printed[::-1].index("wifi_ssid=net")  # opened on demand
    assert j < k and printed[k + 1 : k + 4] == ["ok", "bye", "ok"]  # nothing else between
    assert printed[-1] == "app: while the console is open"  # held back until exit
    assert SECRET not in "\n".join(printed)
    with open(cfg) as f:
        assert json.loads(f.read())["wifi_ssid"] == "net"


def test_log_level_filters_the_service_events():
    import app

    send = {"event": "send", "server": "x"}
    kod = {"event": "kod", "code": "RATE"}
    bad_store = {"event": "store", "ok": False}
    failed_dns = {"event": "resolve", "ok": False}
    for level, shown in (
        ("debug", [send, kod, bad_store, failed_dns]),
        ("info", [kod, bad_store, failed_dns]),
        ("warn", [kod, bad_store, failed_dns]),
        ("error", [bad_store]),
    ):
        got = [e for e in (send, kod, bad_store, failed_dns) if app.shown(e, level)]
        assert got == shown, level


def test_the_events_a_log_level_hides_are_never_built():
    # what app.hidden(level) names, the board subscribes as skipped: the policy builds no
    # event dict for them (Policy.hears), and a kind a level shows is never in it
    import app

    for level in app.LEVELS:
        hidden = app.hidden(level)
        for kind in hidden:
            assert not app.shown({"event": kind, "ok": True, "applied": True}, level), kind
    assert set(app.hidden("info")) == {"send", "reply", "poll", "wait"}
    assert app.hidden("debug") == ()
    from sntp import policy, schema

    p = policy.Policy(schema.Config.from_dict({"servers": ["ntp.example.com"]}), lambda n: 0)
    seen = []
    p.subscribe(seen.append, app.hidden("info"))
    assert not p.hears("send") and p.hears("step") and p.hears("kod")
    p.subscribe(seen.append)  # a second listener that wants everything
    assert p.hears("send")
    p.unsubscribe(seen.append)
    assert p.listeners == [] and not p.hears("step")
