# The provisioning console on the board's REPL serial (stdin/stdout): a window at boot, and
# on demand while the board runs. The protocol is sntp.console's (one command a line, every
# reply ends with `ok` or `err REASON`; docs/design.md: "The provisioning console").
#
#   boot_window()  at boot, before Wi-Fi and the time service: the board prints one line and
#                  waits BOOT_WINDOW_MS for a line on stdin. A line (an empty one will do)
#                  enters the console, without a time service: set, save, then reboot or
#                  exit (the boot goes on with the configuration just saved).
#   on_demand()    a task beside the service: a line typed at any time enters the console,
#                  with the running service (status, sync). While it is open the board's own
#                  output (events, the application) is held back, so a script reads only
#                  replies; exit lets it out again.
# Characters are not echoed (turn on your terminal's local echo); a line ends with \r, \n or
# \r\n. Ctrl-C still interrupts the program (the REPL's keyboard interrupt). stdin is watched
# with select.poll, never read while nothing is there, so
# the event loop is never blocked by an idle serial line.
# sntp.console (the optional console package) is imported when the first line arrives: a
# board nobody types to never loads it, and one without it says so and runs on.
import sys

from sntp.aio import sleep_ms
from sntp.compat import const, ticks_diff, ticks_ms

_MAX_LINE = const(256)  # sntp.console.MAX_LINE: bytes of a line kept (+1: too long)
BOOT_WINDOW_MS = const(3_000)  # how long a booting board waits for a line
_POLL_MS = const(50)  # how often stdin is looked at while waiting
HELD_MAX = const(20)  # lines of the board's own output kept while the console is open
NO_CONSOLE = "console: sntp.console is not in this firmware: freeze sntp-console with sntp"


class LineReader:
    """Lines from stdin without blocking: line() returns a whole line (bytes, ending b'\\n')
    once one has arrived, else None. ready(timeout_ms) -> bool and read() -> one byte (b'' at
    the end of input) default to select.poll and read(1) on sys.stdin."""

    def __init__(self, ready=None, read=None):
        if ready is None or read is None:
            import select

            stream = sys.stdin
            poller = select.poll()
            poller.register(stream, select.POLLIN)
            raw = getattr(stream, "buffer", stream)
            ready = lambda ms: bool(poller.poll(ms))  # noqa: E731
            read = lambda: raw.read(1)  # noqa: E731
        self.ready = ready
        self.read = read
        self.buf = b""  # the line so far (at most _MAX_LINE + 1 bytes are kept)
        self.cr = False  # the last line ended with \r: a \n right after it is its end too
        self.eof = False  # the stream ended (a pipe on the unix port; never on a board)

    def line(self):
        while not self.eof and self.ready(0):
            b = self.read()
            if isinstance(b, str):  # a port without sys.stdin.buffer reads text
                b = b.encode()
            if not b:
                self.eof = True
                break
            if b == b"\n" and self.cr:
                self.cr = False
                continue
            self.cr = b == b"\r"
            if b == b"\r" or b == b"\n":
                out, self.buf = self.buf, b""
                return out + b"\n"
            if len(self.buf) <= _MAX_LINE:
                self.buf += b
        if self.eof and self.buf:
            out, self.buf = self.buf, b""
            return out + b"\n"
        return None


class Gate:
    """The board's output while the console may be open: out() prints, or holds the line
    while the console is open (the last HELD_MAX lines; the others are counted)."""

    def __init__(self, out=print):
        self.direct = out  # the serial itself: the console's replies
        self.open = False
        self.held = []
        self.dropped = 0

    def out(self, line):
        if not self.open:
            self.direct(line)
            return
        self.held.append(line)
        if len(self.held) > HELD_MAX:
            self.held.pop(0)
            self.dropped += 1

    def close(self):
        """The console closed: let the held lines out."""
        self.open = False
        if self.dropped:
            self.direct("console: {} lines of output were dropped".format(self.dropped))
        held, self.held, self.dropped = self.held, [], 0
        for line in held:
            self.direct(line)


def reset():
    """The reboot command on a board: machine.reset() (never returns)."""
    import machine

    machine.reset()


async def _session(con, reader, line, write):
    """Answer lines until exit (or the end of input); line is the first one."""
    while True:
        if line is not None:
            for reply in con.handle(line):
                write(reply)
            con.run_after()
            if con.done:
                return
        if reader.eof:
            return
        await sleep_ms(_POLL_MS)
        line = reader.line()


def _console(out):
    """sntp.console's Console, or None, said in one line, when the firmware lacks it."""
    try:
        from sntp.console import Console
    except ImportError:
        out(NO_CONSOLE)
        return None
    return Console


async def boot_window(config_path, reader, out=print, window_ms=BOOT_WINDOW_MS, reboot=reset):
    """At boot: wait window_ms for a line on stdin; if one comes, run the console (without a
    time service) until exit. True when the console was entered."""
    out("console: send a line within {} s for the configuration console".format(window_ms // 1000))
    start = ticks_ms()
    line = reader.line()
    while line is None:
        if reader.eof or ticks_diff(ticks_ms(), start) >= window_ms:
            return False
        await sleep_ms(_POLL_MS)
        line = reader.line()
    Console = _console(out)
    if Console is None:
        return False
    con = Console(config_path, reboot=reboot, warn=out)
    await _session(con, reader, line, out)
    out("console: closed, the board starts")
    return True


async def on_demand(config_path, service, reader, gate, reboot=reset):
    """A task: each line typed while the board runs goes to a console with the running
    service; the first one opens it, exit closes it. Runs until cancelled."""
    while not reader.eof:
        line = reader.line()
        if line is None:
            await sleep_ms(_POLL_MS)
            continue
        Console = _console(gate.direct)
        if Console is None:
            return
        gate.open = True
        con = Console(config_path, service=service, reboot=reboot, warn=gate.direct)
        try:
            await _session(con, reader, line, gate.direct)
        finally:
            gate.close()
