# tools/provision end to end: it provisions the unix board (tools/sntp console under the
# unix-port MicroPython) through --exec, checks every ok, reads the configuration back, and
# stops with the device's reason on an err; then the board's console syncs from the factory
# server and shows its status. --port is run with a stand-in for mpremote that executes the
# script it would send to a board under the unix-port MicroPython (no board here). The Wi-Fi
# passphrase is read from a file and must never appear in any output, nor in an argument.
import json
import os
import subprocess
import sys

import pytest
from fakes import read_json
from test_console_pty import MICROPYTHON, ROOT, SECRET, Pty

PROVISION = os.path.join(ROOT, "tools", "provision")
SNTP = os.path.join(ROOT, "tools", "sntp")


def provision(*args, env=None, timeout=60):
    e = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable, **(env or {}))
    p = subprocess.run(
        [sys.executable, PROVISION] + list(args),
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )
    assert SECRET not in p.stdout + p.stderr
    return p


def console_cmd(cfg, state=None):
    cmd = "{} console --config {}".format(SNTP, cfg)
    return cmd + (" --state {}".format(state) if state else "")


@pytest.fixture
def pass_file(tmp_path):
    path = tmp_path / "wifi-pass.txt"
    path.write_text(SECRET + "\n")
    return str(path)


def test_provision_the_unix_board_then_sync_and_status(tmp_path, pass_file, server):
    cfg, state = tmp_path / "board.json", tmp_path / "state.json"
    state.write_text(json.dumps({"rtc_unix_s": 0}))  # the board believes it is 1970
    factory = "127.0.0.1:{}".format(server.port)
    p = provision(
        "--exec",
        console_cmd(cfg, state),
        "--zone",
        "Acme",
        "--server",
        "ntp1.example.com",
        "--server",
        "ntp2.example.com:1123",
        "--factory-server",
        factory,
        "--wifi-ssid",
        "factory-net",
        "--wifi-pass-file",
        pass_file,
        "--accuracy-ms",
        "50",
        "--country",
        "de",
        "--tz",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "--reboot",
        "--status",
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "zone=acme" in out and "country=DE" in out and "wifi_pass=********" in out
    assert "servers=ntp1.example.com,ntp2.example.com:1123" in out
    assert "tz=CET-1CEST,M3.5.0,M10.5.0/3" in out and "provisioned and read back (11 keys)" in out
    assert "clock      1970-01-01" in p.stdout and "not valid" in p.stdout  # --status
    assert any(line.startswith("server     " + factory) and "factory" in line for line in out)
    assert read_json(cfg) == {
        "kind": "sntp-config",
        "zone": "acme",
        "servers": ["ntp1.example.com", "ntp2.example.com:1123"],
        "factory_server": factory,
        "wifi_ssid": "factory-net",
        "wifi_pass": SECRET,
        "accuracy_ms": 50,
        "country": "DE",
        "tz": "CET-1CEST,M3.5.0,M10.5.0/3",
    }
    # the board, booted with its new configuration: sync from the factory server, status
    s = Pty(cfg, state)
    out = s.ask("sync")
    assert out[-1] == "ok" and out[0].startswith("clock set: +") and factory in out[0]
    text = "\n".join(s.ask("status"))
    assert "(valid)" in text and "last_sync  20" in text
    assert "\nlocal      20" in text and ("CET (UTC+01:00)" in text or "CEST (UTC+02:00)" in text)
    # after the first good sync the factory server is no longer used: the zone and servers are
    assert "server     0.acme.pool.ntp.org" in text and factory not in text
    assert s.ask("exit")[-1] == "ok" and s.close() == 0
    assert SECRET not in s.all_output()
    assert len(server.requests) == 1


def test_provision_from_a_file_with_options_over_it_and_merge(tmp_path, pass_file):
    cfg = tmp_path / "board.json"
    cfg.write_text(json.dumps({"zone": "old", "log_level": "debug", "poll_max_s": 86400}))
    spec = tmp_path / "acme.json"
    spec.write_text(json.dumps({"zone": "acme", "wifi_ssid": "from-file", "wifi_pass": SECRET}))
    p = provision("--exec", console_cmd(cfg), "--from", str(spec), "--wifi-ssid", "override")
    assert p.returncode == 0, p.stderr
    # exact by default: what was not given went back to its default
    assert read_json(cfg) == {
        "kind": "sntp-config",
        "zone": "acme",
        "wifi_ssid": "override",
        "wifi_pass": SECRET,
    }
    p = provision("--exec", console_cmd(cfg), "--merge", "--accuracy-ms", "20")
    assert p.returncode == 0, p.stderr
    assert read_json(cfg) == {
        "kind": "sntp-config",
        "zone": "acme",
        "wifi_ssid": "override",
        "wifi_pass": SECRET,
        "accuracy_ms": 20,
    }
    p = provision("--exec", console_cmd(cfg), "--show")
    assert p.returncode == 0 and "wifi_ssid=override" in p.stdout
    assert "wifi_pass=********" in p.stdout


def test_a_value_the_device_refuses_stops_with_its_reason_and_saves_nothing(tmp_path, pass_file):
    cfg = tmp_path / "board.json"
    cfg.write_text(json.dumps({"zone": "keep", "wifi_pass": SECRET}))
    before = cfg.read_bytes()
    cases = [
        (["--server", "192.0.2.1"], "192.0.2.1: a public IP address; give a name, or a private,"),
        (["--server", "[2001:db8::1]:123"], "2001:db8::1: a public IP address;"),
        (["--zone=-acme-"], "zone must be one DNS label such as acme"),
        (["--accuracy-ms", "0"], "accuracy_ms must be 1 to 60000"),
        (["--poll-min", "10"], "poll_min_s must be 64 to 131072"),
        (["--wifi-ssid", "x" * 40], "wifi_ssid must be 1 to 32 bytes"),
    ]
    for args, reason in cases:
        p = provision("--exec", console_cmd(cfg), "--wifi-pass-file", pass_file, *args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "device said 'err {}".format(reason) in p.stderr, (args, p.stderr)
        assert cfg.read_bytes() == before
    short = tmp_path / "short.txt"
    short.write_text("short\n")
    p = provision("--exec", console_cmd(cfg), "--wifi-pass-file", str(short))
    assert p.returncode == 1 and "wifi_pass must be 8 to 63 characters" in p.stderr
    assert "to 'set wifi_pass ********'" in p.stderr and "wifi_pass short" not in p.stderr
    assert cfg.read_bytes() == before


def test_a_site_server_by_private_address_is_provisioned(tmp_path, pass_file):
    # rule 3 refuses public addresses only: a factory or site server at a private,
    # link-local, unique-local or loopback address is configured (and never asked here)
    cfg = tmp_path / "board.json"
    servers = ["192.168.1.10", "10.0.0.2:1123", "[fd00::7]:123", "fe80::1"]
    args = [a for s in servers for a in ("--server", s)]
    p = provision("--exec", console_cmd(cfg), "--wifi-pass-file", pass_file, *args)
    assert p.returncode == 0, p.stderr
    assert read_json(str(cfg))["servers"] == servers
    before = cfg.read_bytes()
    # a second provisioning with no keys leaves it byte for byte
    p = provision("--exec", console_cmd(cfg))
    assert p.returncode == 2 and cfg.read_bytes() == before


def test_usage_errors_send_nothing(tmp_path, pass_file):
    cfg = tmp_path / "board.json"
    marker = tmp_path / "started"
    never = "sh -c 'touch {}; cat'".format(marker)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[1, 2]")
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"wifi_password": SECRET}))
    nl_pass = tmp_path / "nl.txt"
    nl_pass.write_bytes(SECRET.encode() + b"\nsave\n")
    cases = [
        ["--wifi-ssid", "net\nsave"],  # a line end would start a second command
        ["--wifi-ssid", "net\rx"],
        ["--wifi-pass-file", str(tmp_path / "missing.txt")],
        ["--wifi-pass-file", str(nl_pass)],
        ["--from", str(bad_json)],
        ["--from", str(typo)],
        ["--accuracy-ms", "fast"],
        ["--log-level", "loud"],
    ]
    for args in cases:
        p = provision("--exec", never, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith(("provision: ", "usage: ")), p.stderr
        assert not marker.exists()
    p = provision("--zone", "acme")  # neither --port nor --exec
    assert p.returncode == 2
    for args in ([], ["--merge"], ["--status"]):  # no keys: nothing to write, nothing sent
        p = provision("--exec", never, *args)
        assert p.returncode == 2 and p.stderr.startswith("provision: no keys given"), p.stderr
        assert not marker.exists()
    p = provision("--port", "/dev/null", "--exec", never)
    assert p.returncode == 2 and not cfg.exists()


def test_a_silent_or_vanishing_device_is_an_error(tmp_path):
    p = provision("--exec", "cat /dev/null", "--zone", "acme", "--timeout", "2")  # ends at once
    assert p.returncode == 1 and "closed the console" in p.stderr
    p = provision("--exec", "sleep 30", "--zone", "acme", "--timeout", "1")
    assert p.returncode == 1 and "no reply from the device within 1 s" in p.stderr
    p = provision("--exec", "no-such-program-here", "--zone", "acme")
    assert p.returncode == 1 and "cannot start" in p.stderr


# ---- --port, with a stand-in for mpremote -------------------------------------------------------
FAKE_MPREMOTE = """
import os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(repr(args) + "\\n")
assert args[0] == "connect" and args[1] == "/dev/ttyFAKE", args
if args[2] == "run":
    script = open(args[3]).read()
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write("mode {:o}\\n".format(os.stat(args[3]).st_mode & 0o777))
    env = dict(os.environ, MICROPYPATH=os.environ["FAKE_FIRMWARE"])
    sys.exit(subprocess.run([os.environ["MICROPYTHON"], args[3]], env=env).returncode)
if args[2] == "reset":
    sys.exit(0)
sys.exit(9)
"""


def fake_mpremote(tmp_path):
    script = tmp_path / "fake_mpremote.py"
    script.write_text(FAKE_MPREMOTE)
    log = tmp_path / "mpremote.log"
    env = {
        "MPREMOTE": "{} {}".format(sys.executable, script),
        "FAKE_LOG": str(log),
        "FAKE_FIRMWARE": os.path.join(ROOT, "firmware"),
    }
    return env, log


def test_port_mode_runs_the_console_on_the_board_through_mpremote(tmp_path, pass_file):
    env, log = fake_mpremote(tmp_path)
    cfg = tmp_path / "config.json"
    p = provision(
        "--port",
        "/dev/ttyFAKE",
        "--config-path",
        str(cfg),
        "--zone",
        "acme",
        "--wifi-ssid",
        "factory-net",
        "--wifi-pass-file",
        pass_file,
        "--factory-server",
        "192.0.2.10",
        "--status",
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert "zone=acme" in p.stdout and "provisioned and read back" in p.stdout
    assert "service    not running" in p.stdout  # no time service in the raw REPL
    assert read_json(cfg) == {
        "kind": "sntp-config",
        "zone": "acme",
        "wifi_ssid": "factory-net",
        "wifi_pass": SECRET,
        "factory_server": "192.0.2.10",
    }
    calls = log.read_text()
    assert SECRET not in calls  # the passphrase went in a file, not in an argument
    assert "mode 600" in calls
    lines = [line for line in calls.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and "'run'" in lines[0] and lines[1].endswith("'reset']")
    script = eval(lines[0])[3]
    assert not os.path.exists(script)  # the script (and the passphrase in it) is gone
    # a refusal: nothing saved, no reset, the device's reason
    log.write_text("")
    p = provision("--port", "/dev/ttyFAKE", "--config-path", str(cfg), "--country", "DEU", env=env)
    assert p.returncode == 1 and "country must be 2 letters, or empty" in p.stderr
    assert "reset" not in log.read_text()
    assert read_json(cfg)["zone"] == "acme"
    # mpremote failing (no board on the port)
    env["MPREMOTE"] = "false"
    p = provision("--port", "/dev/ttyFAKE", "--zone", "acme", env=env)
    assert p.returncode == 1 and "mpremote on /dev/ttyFAKE failed" in p.stderr
