# The console on the unix board: `tools/sntp console --config FILE [--state FILE]`.
#
# The same sntp.console.Console as on a device, over this process's stdin and stdout (a
# terminal, a pipe, or a pseudo-terminal in the tests), against a configuration file. The
# board behind it is the unix board of tools/sntp: its clock is the software RTC kept in the
# --state file (boards/unix/softrtc.py; never the host's clock), and its time service is
# sntp.service.Service built from the configuration file when the console starts, as a
# device builds it at boot:
#   status  reads that service: board clock, last sync, offset, drift, servers, KoDs
#   sync    runs one blocking Service.sync() (floors, the hourly cap and KoD holds apply,
#           across runs too: the state file keeps them)
#   query   one exchange measured against the board clock; changes no clock
#   reboot  what a device does: the state is saved, the configuration file is read again
#           and the service is built anew from it (so a saved configuration takes effect)
#   exit    (or end of input) saves the state and ends with status 0; end of input with
#           unsaved configuration changes says which and ends with status 1
# Responses go to stdout, one line at a time, flushed; warnings and the banner go to stderr,
# so a script reading stdout sees only the protocol. Runs under the unix-port MicroPython and
# under CPython (tools/sntp --python console ...).
import sys

from softrtc import KIND, SoftRTC, StateFile, WrongKind, check_kind

from sntp import client, config
from sntp.console import MAX_LINE, Console, serve
from sntp.service import Service
from sntp.store import read_json

READ_CHUNK = MAX_LINE + 8  # bytes asked of readline at a time (a longer line comes in parts)


class UnixBoard:
    """The unix board behind a console: its software RTC, state file and time service."""

    def __init__(
        self, config_path, state_path=None, timeout_ms=client.DEFAULT_TIMEOUT_MS, warn=None
    ):
        self.config_path = config_path
        self.state_path = state_path
        self.timeout_ms = timeout_ms
        self.warn = warn if warn is not None else print
        self.state = None  # StateFile, or None without --state
        self.rtc = None  # SoftRTC: the board clock
        self.service = None  # sntp.service.Service while started
        self.console = None  # the Console, whose service is kept up to date

    def start(self):
        """Boot: the clock from the state file, the service from the configuration file."""
        if self.state_path is not None:
            self.state = StateFile(self.state_path, warn=self.warn).open()
            self.rtc = self.state.rtc
        else:
            self.rtc = SoftRTC()
        values = config.load(self.config_path, lambda line: None)  # the console said it
        self.service = Service(
            values,
            clock=self.rtc,
            rtc=self.rtc,
            store=self.state,
            timeout_ms=self.timeout_ms,
        )
        for w in self.service.config.warnings:
            self.warn("config: " + w)
        self.service.boot()
        if self.console is not None:
            self.console.service = self.service

    def stop(self):
        """Save the state (the board clock's offset, the policy's state, server counters)."""
        if self.state is not None and self.service is not None:
            self.state.servers = self.service.status()["servers"]
            self.state.health = self.service.health()
            self.state.flush()
        self.service = None
        if self.console is not None:
            self.console.service = None

    def reboot(self):
        self.stop()
        if self.console is not None:
            self.console.reload()
        self.start()

    def sync(self):
        return self.service.sync()

    def query(self, host, port):
        return client.query(host, port, self.timeout_ms, clock=self.rtc)


def main(
    config_path,
    state_path=None,
    timeout_ms=client.DEFAULT_TIMEOUT_MS,
    stdin=None,
    out=None,
    err=None,
):
    """The console until exit or end of input. Returns the exit status: 0, 1 when input ended
    with unsaved changes, 2 when a file is of the wrong kind."""
    err = err if err is not None else sys.stderr
    out = out if out is not None else sys.stdout
    stdin = stdin if stdin is not None else sys.stdin.buffer

    def warn(text):
        err.write("sntp: warning: {}\n".format(text))

    def write(line):
        out.write(line)
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()

    try:  # a state file given as the configuration (or back): refused, left unchanged
        check_kind(config_path, read_json(config_path)[0], config.KIND)
        if state_path is not None:
            check_kind(state_path, read_json(state_path)[0], KIND)
    except WrongKind as e:
        err.write("sntp: {}\n".format(e.args[0]))
        return 2
    board = UnixBoard(config_path, state_path, timeout_ms, warn)
    con = Console(config_path, query=board.query, reboot=board.reboot, warn=warn, sync=board.sync)
    board.console = con
    board.start()
    err.write(
        "sntp console: {} (type help; every reply ends with ok or err REASON)\n".format(
            config_path
        )
    )
    try:
        serve(con, lambda: stdin.readline(READ_CHUNK), write)
    finally:
        board.stop()
    lost = con.changed() if not con.done else []
    if lost:  # end of input before save: say what is lost, and fail the script that did it
        err.write(
            "sntp: end of input with unsaved changes ({}): not saved to {}\n".format(
                ", ".join(lost), config_path
            )
        )
        return 1
    return 0
