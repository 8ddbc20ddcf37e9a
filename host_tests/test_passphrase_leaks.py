# The Wi-Fi passphrase in the processes a person runs: tools/provision (through --exec, the
# unix board's console under both runtimes) and tools/sntp console, with a passphrase that
# holds quotes, a backslash and non-ASCII (repr() and JSON escape it), typed where it belongs
# and pasted where it does not. Nothing they print, on stdout or stderr, may hold it in any
# form (test_console_hostile.py does the same in process, on both runtimes; test_provision.py
# and test_console_pty.py with a plain passphrase).
import json
import os
import subprocess
import sys

import pytest
from test_console_hostile import SECRET, assert_never_shown
from test_console_pty import MICROPYTHON, ROOT

PROVISION = os.path.join(ROOT, "tools", "provision")
SNTP = os.path.join(ROOT, "tools", "sntp")
ENV = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
RUNTIMES = {"micropython": [SNTP], "cpython": [SNTP, "--python"]}


def provision(*args):
    p = subprocess.run(
        [sys.executable, PROVISION] + list(args),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert_never_shown(p.stdout + p.stderr)
    return p


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_provision_never_prints_the_passphrase(runtime, tmp_path):
    cfg = tmp_path / "board.json"
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text(SECRET + "\n")
    console = " ".join(RUNTIMES[runtime] + ["console", "--config", str(cfg)])
    p = provision("--exec", console, "--zone", "acme", "--wifi-pass-file", str(pass_file))
    assert p.returncode == 0, p.stderr
    p = provision("--exec", console, "--show", "--status")
    assert p.returncode == 0 and "wifi_pass=********" in p.stdout, p.stdout
    assert json.loads(cfg.read_text())["wifi_pass"] == SECRET
    # the passphrase where it does not belong: the device refuses it, and says why (provision
    # is given the passphrase too: it cannot hide a value it was not told is one)
    for key in ("servers", "factory_server", "zone", "wifi_ssid", "country"):
        spec = tmp_path / "spec.json"
        value = [SECRET] if key == "servers" else SECRET + ("x" * 40 if key == "wifi_ssid" else "")
        spec.write_text(json.dumps({key: value}))
        args = ["--merge", "--from", str(spec), "--wifi-pass-file", str(pass_file)]
        p = provision("--exec", console, *args)
        assert p.returncode == 1 and p.stderr, (key, p.stdout, p.stderr)


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_the_unix_console_never_prints_the_passphrase(runtime, tmp_path):
    cfg = tmp_path / "board.json"
    # pasted into the wrong fields too: the warnings at start-up name the field, not the value
    bad = {"wifi_pass": SECRET, "servers": [SECRET], "factory_server": SECRET, "zone": SECRET}
    cfg.write_text(json.dumps(bad))
    lines = ["show", "status", "get wifi_pass", "set servers " + SECRET, "query " + SECRET]
    lines += ["set factory_server " + SECRET, "set zone " + SECRET, SECRET, "save", "reboot"]
    lines += ["set wifi_pass " + SECRET[::-1], "show", "set servers " + SECRET[::-1], "discard"]
    lines += ["help", "status", "exit"]
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    p = subprocess.run(
        RUNTIMES[runtime] + ["console", "--config", str(cfg), "--timeout", "1"],
        input=data,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    out = p.stdout.decode("utf-8") + p.stderr.decode("utf-8")
    assert p.returncode == 0 and out.count("\nok\n") >= 5, out
    assert "config: servers:" in out  # the warning is there, without the value
    assert_never_shown(out)
    assert_never_shown(out, SECRET[::-1])  # a passphrase set in this session, never saved
