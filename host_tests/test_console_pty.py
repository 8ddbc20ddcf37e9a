# The provisioning console on the unix board over a real pseudo-terminal: tools/sntp console
# (the unix-port MicroPython, and CPython with --python) gets its stdin and stdout from a pty,
# as on a person's terminal, and these tests type at it. Every command, every error path,
# status/query/sync against tools/refserver.py on 127.0.0.1; the board clock is the unix
# board's software clock in the --state file (the host's clock is never touched). The Wi-Fi
# passphrase must never appear in anything the console writes, on the pty or on stderr.
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
import tty

import pytest
from fakes import read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
SECRET = "correct horse battery staple"
TIMEOUT_S = 15


class Pty:
    """A console process on a pseudo-terminal. raw: bytes pass untouched (no line editing,
    no signals, no CR->NL); otherwise a terminal as a person has it (canonical mode), with
    the typed characters echoed when echo is true."""

    def __init__(self, config, state=None, runtime="micropython", raw=False, echo=False):
        master, slave = pty.openpty()
        if raw:
            tty.setraw(slave)
        elif not echo:
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.echo = echo and not raw
        cmd = [SNTP] + (["--python"] if runtime == "cpython" else [])
        cmd += ["console", "--config", str(config), "--timeout", "2"]
        if state is not None:
            cmd += ["--state", str(state)]
        env = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
        self.proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.buf = b""
        self.seen = b""  # everything the console wrote on the terminal
        self.stderr = ""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        while view:
            _, w, _ = select.select([], [self.master], [], TIMEOUT_S)
            assert w, "the console stopped reading"
            n = os.write(self.master, view[:4096])
            view = view[n:]

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        assert left > 0, "no reply; so far: {!r}".format(self.buf)
        r, _, _ = select.select([self.master], [], [], left)
        if r:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the process has closed the terminal
                chunk = b""
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
            self.seen += chunk

    def line(self, deadline):
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8")

    def reply(self):
        """The lines of one reply, the final ok or err line last."""
        deadline = time.monotonic() + TIMEOUT_S
        out = []
        while True:
            out.append(self.line(deadline))
            if out[-1] == "ok" or out[-1].startswith("err"):
                return out

    def ask(self, line):
        self.send(line + "\n")
        if self.echo:  # the terminal repeats what was typed (not the console's output)
            assert self.line(time.monotonic() + TIMEOUT_S) == line
            self.seen = self.seen.replace(line.encode() + b"\r\n", b"", 1)
        return self.reply()

    def close(self):
        """Wait for the process to end (after exit or end of input); its exit status."""
        try:
            status = self.proc.wait(TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            try:
                while True:
                    r, _, _ = select.select([self.master], [], [], 0)
                    if not r:
                        break
                    chunk = os.read(self.master, 65536)
                    if not chunk:
                        break
                    self.seen += chunk
            except OSError:
                pass
            os.close(self.master)
            self.stderr = self.proc.stderr.read().decode("utf-8", "replace")
            self.proc.stderr.close()
        return status

    def all_output(self):
        return self.seen.decode("utf-8", "replace") + self.stderr


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)


def assert_secret_never_shown(*sessions):
    for s in sessions:
        assert SECRET not in s.all_output()


# ---- a person at a terminal ------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_a_person_provisions_the_unix_board_at_a_terminal(runtime, tmp_path):
    cfg = tmp_path / "board.json"
    s = Pty(cfg, runtime=runtime, echo=True)
    help_text = s.ask("help")
    assert help_text[0] == "commands:" and help_text[-1] == "ok"
    assert any(line.startswith("  wifi_pass") for line in help_text)
    assert s.ask("set zone Acme") == ["zone=acme", "ok"]
    assert s.ask("set wifi_ssid factory-net") == ["wifi_ssid=factory-net", "ok"]
    assert s.ask("set wifi_pass " + SECRET) == ["wifi_pass=********", "ok"]
    assert s.ask("set accuracy_ms 50") == ["accuracy_ms=50", "ok"]
    show = s.ask("show")
    assert "zone=acme" in show and "wifi_pass=********" in show
    assert show[-2].startswith("unsaved changes: zone, wifi_ssid, wifi_pass, accuracy_ms")
    assert s.ask("exit") == ["err unsaved changes: save or discard first"]
    assert not cfg.exists()
    assert s.ask("save")[-1] == "ok"
    assert s.ask("exit") == ["bye", "ok"]
    assert s.close() == 0
    assert read_json(cfg) == {
        "kind": "sntp-config",
        "zone": "acme",
        "wifi_ssid": "factory-net",
        "wifi_pass": SECRET,
        "accuracy_ms": 50,
    }
    assert "sntp console: " in s.stderr
    assert_secret_never_shown(s)


def test_every_command_against_a_reference_server(tmp_path, server):
    cfg, state = tmp_path / "board.json", tmp_path / "state.json"
    write_json(state, {"rtc_offset_us": -5_000_000})  # the board clock is 5 s behind
    s = Pty(cfg, state)
    addr = "127.0.0.1:{}".format(server.port)
    out = s.ask("status")
    assert out[-1] == "ok" and "servers    none configured (no NTP traffic)" in out
    assert s.ask("sync") == [
        "err sync: no-servers (no servers configured (rule 3: no built-in default))"
    ]
    # query: one exchange, measured against the board clock, which it does not change
    out = s.ask("query " + addr)
    assert out[0] == "server     " + addr and out[1] == "stratum    2" and out[-1] == "ok"
    offset = float(out[2].split()[1])
    assert 4.9 < offset < 5.1
    assert s.ask("query 127.0.0.1:1")[0].startswith("err query 127.0.0.1:1: ")
    assert s.ask("query no-such-host.invalid")[0].startswith("err query ")
    # provision a factory server, save, and reboot: the service is built from the new file
    assert s.ask("set factory_server " + addr)[-1] == "ok"
    assert s.ask("set wifi_pass " + SECRET)[-1] == "ok"
    assert s.ask("set zone acme")[-1] == "ok"
    assert s.ask("unset zone") == ["zone=", "ok"]
    assert s.ask("set country se") == ["country=SE", "ok"]
    assert s.ask("discard") == ["dropped 3 changes", "ok"]
    assert s.ask("get factory_server") == ["factory_server=", "ok"]
    s.ask("set factory_server " + addr)
    s.ask("set wifi_pass " + SECRET)
    assert s.ask("reboot") == ["err unsaved changes: save or discard first"]
    assert s.ask("save")[0].startswith("saved factory_server, wifi_pass to ")
    assert s.ask("reboot") == ["rebooting", "ok"]
    out = s.ask("status")
    factory = [line for line in out if line.startswith("server ")]
    assert factory == [
        "server     {} address=- state=unresolved,factory sends=0 replies=0 kods=0"
        " dns_failures=0".format(addr)
    ]
    # sync: the factory server alone sets the board clock
    out = s.ask("sync")
    assert out[-1] == "ok" and out[0].startswith("clock set: +") and addr in out[0]
    assert 4.9 < float(out[0].split()[2]) < 5.1
    out = s.ask("status")
    text = "\n".join(out)
    assert "last_sync  20" in text and "(step at the last sync)" in text and "(valid)" in text
    assert "kods       0" in text
    # a second sync at once: the 15 s floor holds, nothing is sent
    sent = len(server.requests)
    out = s.ask("sync")
    assert out[0].startswith("err sync: ") and len(server.requests) == sent
    assert s.ask("exit") == ["bye", "ok"]
    assert s.close() == 0
    st = read_json(state)
    assert abs(st["rtc_offset_us"]) < 100_000  # the board clock was set (state file)
    assert st["policy"]["last_sync_unix_s"] > 0
    assert len(server.requests) == 2  # the query and the sync
    assert_secret_never_shown(s)


def test_end_of_input_ends_the_console_and_keeps_the_state(tmp_path):
    cfg, state = tmp_path / "board.json", tmp_path / "state.json"
    write_json(cfg, {"wifi_pass": SECRET, "zone": "acme"})
    s = Pty(cfg, state)
    assert s.ask("get zone") == ["zone=acme", "ok"]
    assert s.ask("set zone other")[-1] == "ok"
    s.send(b"\x04")  # Ctrl-D at the start of a line: end of input, the changes not saved
    assert s.close() == 1  # and said so
    assert "end of input with unsaved changes (zone): not saved" in s.stderr
    assert read_json(cfg) == {"wifi_pass": SECRET, "zone": "acme"}
    assert read_json(state)["policy"]["boots"] == 1
    assert_secret_never_shown(s)


def test_a_broken_configuration_file_is_reported_and_the_console_still_works(tmp_path):
    cfg = tmp_path / "board.json"
    cfg.write_text('{"zone": "acme", "accuracy_ms": 0, "wifi_pass": "' + SECRET + '", "x": 1}')
    s = Pty(cfg)
    assert s.ask("get accuracy_ms") == ["accuracy_ms=100", "ok"]
    assert s.ask("save")[-1] == "ok"
    assert s.ask("exit")[-1] == "ok"
    assert s.close() == 0
    assert "accuracy_ms" in s.stderr and "x: unknown key" in s.stderr
    assert read_json(cfg) == {"kind": "sntp-config", "zone": "acme", "wifi_pass": SECRET}
    assert_secret_never_shown(s)


# ---- hostile input on a raw terminal ------------------------------------------------------------
def hostile():
    lines = [b"x" * 100_000, b"set zone " + b"a" * 300, b"\x00" * 50, b"\xff\xfe\xfd"]
    for c in list(range(0x20)) + [0x7F]:
        if c not in (0x0A,):
            lines.append(b"set zone ev" + bytes([c]) + b"il")
    lines += [
        b"set zone evil\rsave",
        b"set wifi_ssid \xc0\x80",
        b"set wifi_ssid \xed\xa0\x80",
        b"set wifi_ssid caf\xc3",
        b"set wifi_ssid \x1b[31mred",
        b"\x03\x04\x1a\x1c",  # interrupt, end of input, suspend, quit: bytes here
        b"set wifi_pass " + SECRET.encode() + b"\x00",
    ]
    return lines


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_hostile_bytes_on_a_raw_terminal_get_err_and_change_nothing(runtime, tmp_path):
    cfg = tmp_path / "board.json"
    write_json(cfg, {"zone": "keep", "wifi_pass": SECRET})
    before = cfg.read_bytes()
    s = Pty(cfg, runtime=runtime, raw=True)
    for line in hostile():
        s.send(line + b"\n")
        out = s.reply()
        assert len(out) == 1 and out[0].startswith("err "), (line[:40], out)
        assert s.ask("save") == ["no changes to save", "ok"]
    assert s.ask("get zone") == ["zone=keep", "ok"]
    assert s.ask("exit") == ["bye", "ok"]
    assert s.close() == 0
    assert cfg.read_bytes() == before
    assert_secret_never_shown(s)
