# The unix board's two files cannot be confused: tools/sntp given a configuration file as its
# --state (or a state file as the console's --config) refuses in one line with exit status 2
# and leaves the file byte for byte; files of the older version, without "kind", are judged by
# their keys. A state that cannot be saved is an error (the board clock lives in it), and a
# configuration file, which holds the Wi-Fi passphrase, is created readable by its owner only.
import json
import os
import stat
import subprocess
import sys

import pytest
from refserver import RefServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
RUNTIMES = ["micropython", "cpython"]
SECRET = "correct horse battery staple"


def sntp(runtime, *args, stdin="", cwd=None):
    env = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
    cmd = [SNTP] + (["--python"] if runtime == "cpython" else []) + list(args)
    return subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        cwd=cwd,
        preexec_fn=lambda: os.umask(0o022),  # the usual umask: the tool must not rely on it
    )


@pytest.fixture(scope="module")
def server():
    srv = RefServer(offset_ns=500_000_000).start()
    yield srv
    srv.stop()


CONFIGS = {
    "marked": {"kind": "sntp-config", "zone": "acme", "wifi_ssid": "net", "wifi_pass": SECRET},
    "older": {"zone": "acme", "wifi_ssid": "net", "wifi_pass": SECRET},  # no "kind"
    "servers only": {"servers": ["ntp.example.com"]},
}
STATES = {
    "marked": {"kind": "sntp-state", "v": 1, "rtc_offset_us": 5, "policy": {"v": 1}},
    "older": {"v": 1, "rtc_offset_us": 5, "policy": {"v": 1}, "servers": []},
    "hand-made": {"rtc_unix_s": 0},
}


def write(path, doc):
    with open(path, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    with open(path, "rb") as f:
        return f.read()


def refused(p, path, what):
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("sntp: {}: {}".format(path, what)), lines
    assert "left unchanged" in lines[0] and SECRET not in p.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("command", ["sync", "run", "status"])
def test_a_configuration_given_as_state_is_refused_and_kept(runtime, name, command, server,
                                                             tmp_path):  # fmt: skip
    path = str(tmp_path / "board.json")
    before = write(path, CONFIGS[name])
    args = [command, "--state", path]
    if command != "status":
        args += ["--server", "127.0.0.1:{}".format(server.port)]
    if command == "run":
        args += ["--for", "0.2", "--no-startup-delay"]
    p = sntp(runtime, *args)
    refused(p, path, "a configuration file, not a state file")
    assert "--config" in p.stderr
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.listdir(str(tmp_path)) == ["board.json"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", sorted(STATES))
def test_a_state_given_as_configuration_is_refused_and_kept(runtime, name, tmp_path):
    path = str(tmp_path / "state.json")
    before = write(path, STATES[name])
    p = sntp(runtime, "console", "--config", path, stdin="set zone acme\nsave\nexit\n")
    refused(p, path, "a state file, not a configuration file")
    with open(path, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_console_refuses_a_configuration_as_its_state(runtime, tmp_path):
    cfg, state = str(tmp_path / "c.json"), str(tmp_path / "s.json")
    before = write(state, CONFIGS["older"])
    p = sntp(runtime, "console", "--config", cfg, "--state", state, stdin="exit\n")
    refused(p, state, "a configuration file, not a state file")
    with open(state, "rb") as f:
        assert f.read() == before
    assert not os.path.exists(cfg)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", sorted(STATES))
def test_states_of_both_versions_are_read_and_saved_with_their_kind(runtime, name, server,
                                                                     tmp_path):  # fmt: skip
    path = str(tmp_path / "state.json")
    write(path, STATES[name])
    p = sntp(runtime, "sync", "--server", "127.0.0.1:{}".format(server.port), "--state", path)
    assert p.returncode == 0 and "clock set" in p.stdout, p.stderr
    with open(path) as f:
        doc = json.load(f)
    assert doc["kind"] == "sntp-state" and "policy" in doc
    p = sntp(runtime, "status", "--state", path)
    assert p.returncode == 0 and p.stdout.startswith("time "), p.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_configuration_of_both_versions_is_read_by_the_console(runtime, tmp_path):
    path = str(tmp_path / "c.json")
    write(path, CONFIGS["older"])
    p = sntp(runtime, "console", "--config", path, stdin="get zone\nset accuracy_ms 50\nsave\n")
    assert p.returncode == 0 and "zone=acme" in p.stdout, p.stderr
    with open(path) as f:
        assert json.load(f) == dict(CONFIGS["marked"], accuracy_ms=50)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_state_that_cannot_be_saved_is_an_error_not_clock_set(runtime, server, tmp_path):
    where = "127.0.0.1:{}".format(server.port)
    p = sntp(runtime, "sync", "--server", where, "--state", "/nonexistent/dir/s.json")
    assert p.returncode == 2 and p.stdout == "" and "no directory '/nonexistent/dir'" in p.stderr
    assert len(p.stderr.splitlines()) == 1
    folder = tmp_path / "s.json"
    folder.mkdir()  # a path that opens for nothing: every save fails
    p = sntp(runtime, "sync", "--server", where, "--state", str(folder))
    assert p.returncode == 1 and "clock set" not in p.stdout, (p.stdout, p.stderr)
    assert p.stderr.splitlines()[-1] == (
        "sntp: {}: the board clock and its state could not be saved there; nothing was "
        "kept".format(folder)
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_configuration_is_created_readable_by_its_owner_only(runtime, tmp_path):
    path = tmp_path / "c.json"
    script = "set wifi_ssid net\nset wifi_pass {}\nsave\nexit\n".format(SECRET)
    p = sntp(runtime, "console", "--config", str(path), stdin=script)
    assert p.returncode == 0, p.stderr
    # the file is its temporary file renamed: this mode is the one it was created with
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert json.loads(path.read_text())["wifi_pass"] == SECRET
    assert sorted(os.listdir(str(tmp_path))) == ["c.json"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_end_of_input_with_unsaved_changes_warns_and_fails(runtime, tmp_path):
    path = str(tmp_path / "c.json")
    p = sntp(runtime, "console", "--config", path, stdin="set zone acme\nset accuracy_ms 50\n")
    assert p.returncode == 1 and not os.path.exists(path), (p.returncode, p.stderr)
    assert p.stderr.splitlines()[-1] == (
        "sntp: end of input with unsaved changes (zone, accuracy_ms): not saved to " + path
    )
    # saved, discarded, or nothing changed: end of input is a normal end
    for script in ("set zone acme\nsave\n", "set zone acme\ndiscard\n", "show\n", ""):
        p = sntp(runtime, "console", "--config", path, stdin=script)
        assert p.returncode == 0 and "unsaved changes" not in p.stderr, (script, p.stderr)
