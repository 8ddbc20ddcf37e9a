# tools/sntp end to end over real UDP on 127.0.0.1 against tools/refserver.py, in every one of
# its modes, under both runtimes: the unix-port MicroPython (default) and CPython (--python).
import json
import os
import re
import subprocess
import sys
import time

import pytest
from refserver import RefServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
RUNTIMES = ["micropython", "cpython"]
OFFSET_S = 3.25  # the reference server runs this far ahead (test arithmetic only)


def sntp(runtime, *args, timeout=30):
    env = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
    cmd = [SNTP] + (["--python"] if runtime == "cpython" else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def server():
    srv = RefServer(offset_ns=3_250_000_000, delay_s=0.3).start()
    yield srv
    srv.stop()


def query_json(runtime, server, mode, timeout="0.5"):
    server.mode = mode
    p = sntp(runtime, "query", "127.0.0.1:{}".format(server.port), "--json", "--timeout", timeout)
    assert p.stderr == "", p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    return p.returncode, json.loads(lines[0])


# mode -> (error, kiss); None error means the reply must be accepted
EXPECT = {
    "normal": (None, None),
    "long": (None, None),  # a MAC after the header is ignored
    "duplicate": (None, None),
    "spoof-then-real": (None, None),
    "slow": (None, None),  # 0.3 s late, within the 0.5 s timeout
    "kod-rate": ("kiss", "RATE"),  # ntpsec form: LI 3, origin = rx = tx = our nonce
    "kod-rate-zero": ("kiss", "RATE"),  # LI 0, zero timestamps (the 1900 incident)
    "kod-deny": ("kiss", "DENY"),
    "kod-rstr": ("kiss", "RSTR"),
    "kod-xcode": ("kiss", "XFOO"),
    "kod-spoof": ("bad-origin", None),
    "bad-origin": ("bad-origin", None),
    "zero-origin": ("bad-origin", None),
    "garbage": ("bad-origin", None),
    "wrong-port": ("wrong-source", None),
    "short": ("short", None),
    "empty": ("short", None),
    "unsync": ("unsynchronized", None),
    "stratum16": ("unsynchronized", None),
    "mode3": ("bad-mode", None),
    "mode5": ("bad-mode", None),
    "version2": ("bad-version", None),
    "version5": ("bad-version", None),
    "zero-rx": ("zero-timestamp", None),
    "zero-tx": ("zero-timestamp", None),
    "zero-ref": ("no-reference", None),
    "far": ("too-far", None),
    "far-delay": ("too-far", None),
    "backwards": ("bad-timestamps", None),
    "silent": ("timeout", None),
}


def test_every_server_mode_is_covered():
    import refserver

    assert set(EXPECT) == set(refserver.MODES)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("mode", sorted(EXPECT))
def test_query_json_against_each_mode(runtime, server, mode):
    error, kiss = EXPECT[mode]
    before = time.time()
    rc, j = query_json(runtime, server, mode)
    assert j["error"] == error and j["kiss"] == kiss, j
    assert j["ok"] is (error is None) and rc == (0 if error is None else 1)
    assert j["server"] == "127.0.0.1:{}".format(server.port)
    if error is None:
        assert abs(j["offset"] - OFFSET_S) < 0.05
        assert 0 <= j["delay"] < 0.05
        assert abs(j["server_time"] - (before + OFFSET_S)) < 1.0
        assert (j["stratum"], j["leap"], j["version"], j["mode"]) == (2, 0, 4, 4)
        assert j["refid"] == "127.0.0.1"
    else:
        # nothing from a rejected reply is offered as a time
        assert j["offset"] is None and j["delay"] is None and j["server_time"] is None
    if mode == "spoof-then-real":
        assert j["ignored"] == {"bad-origin": 1}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_slow_reply_after_the_timeout_is_a_timeout(runtime, server):
    rc, j = query_json(runtime, server, "slow", timeout="0.15")
    assert rc == 1 and j["error"] == "timeout"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_server_past_the_2036_rollover(runtime):
    start_ns = (2085978496 + 3600) * 10**9  # an hour into NTP era 1
    srv = RefServer(start_time_ns=start_ns).start()
    try:
        p = sntp(runtime, "query", "127.0.0.1:{}".format(srv.port), "--json", "--timeout", "2")
    finally:
        srv.stop()
    j = json.loads(p.stdout)
    assert j["ok"], j
    assert 2085978496 + 3600 <= j["server_time"] < 2085978496 + 3700  # 2036, not 1900


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_human_output_decodes_every_field(runtime, server):
    server.mode = "normal"
    p = sntp(runtime, "query", "127.0.0.1:{}".format(server.port))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for field in (
        "leap       0 (no warning)",
        "version    4",
        "mode       4 (server)",
        "stratum    2 (secondary)",
        "precision  -20",
        "root delay 0.003906 s",
        "root disp. 0.007813 s",
        "refid      127.0.0.1",
        "reference ",
        "origin ",
        "receive ",
        "transmit ",
        "offset     +3.2",
        "delay      0.0",
    ):
        assert field in out, (field, out)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_human_output_of_a_kod_is_one_error_line(runtime, server):
    server.mode = "kod-rate-zero"
    p = sntp(runtime, "query", "127.0.0.1:{}".format(server.port))
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "sntp: 127.0.0.1:{}: kiss (Kiss-o'-Death RATE; its timestamps are not used)".format(
            server.port
        )
    ]
    assert "kiss code  RATE" in p.stdout and "offset" not in p.stdout


BAD_ARGS = [
    (["query"], "query needs a SERVER"),
    (["query", "127.0.0.1:0"], "bad port"),
    (["query", "127.0.0.1:99999"], "bad port"),
    (["query", "[::1"], "unclosed ["),
    (["query", "a b"], "bad server name"),
    (["query", "x", "--timeout"], "--timeout needs a value"),
    (["query", "x", "--timeout", "-1"], "--timeout wants seconds"),
    (["query", "x", "--timeout", "0"], "above 0"),
    (["query", "x", "--timeout", "61"], "at most 60"),
    (["query", "x", "--timeout", "1e3"], "--timeout wants seconds"),
    (["query", "x", "--frobnicate"], "unknown option"),
    (["query", "x", "y"], "one server only"),
    (["bogus"], "unknown command"),
    (["query", "127.0.0.1:12400:5"], "give a name (like ntp.example.com), an IPv4 address"),
    (["query", "-x"], "unknown option '-x' (see: sntp query --help)"),
    (["query", "999.1.1.1"], "give a name"),
    (["query", "a..b"], "give a name"),
    (["query", "-bad.example"], "unknown option"),
    (["query", "x", "--timeout=0"], "above 0"),
    (["query", "x", "--json=yes"], "--json takes no value"),
    (["help", "bogus"], "no command 'bogus'"),
    (["query", "::1:123"], "::1:123 is one IPv6 address: write [::1]:123 for port 123 of ::1"),
    (["sync", "--server", "fe80::1:123"], "--server: fe80::1:123 is one IPv6 address: write"),
    # rule 3: a configured server is a name, or an address of the site (never asked here)
    (["sync", "--server", "8.8.8.8", "--state", "/nonexistent/s.json"], "a public IP address"),
    (["run", "--server", "[2001:db8::5]:123"], "--server: 2001:db8::5: a public IP address"),
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("args,message", BAD_ARGS)
def test_bad_arguments_give_one_line_and_status_2(runtime, args, message):
    p = sntp(runtime, *args)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sntp: ") and message in lines[0], p.stderr


COMMANDS = ["query", "sync", "run", "status", "console"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runtime, command):
    import sntpcli

    for args in ([command, "--help"], [command, "-h"], ["help", command], [command, "x", "-h"]):
        p = sntp(runtime, *args)
        assert p.returncode == 0 and p.stderr == "", (args, p.stderr)
        assert "sntp {} ".format(command) in p.stdout, p.stdout
        for option in sntpcli.COMMAND_OPTIONS[command]:
            assert "\n  {} ".format(option) in p.stdout, (option, p.stdout)
        others = set(sntpcli.COMMAND_OPTIONS) - {command}
        assert not any("\n  sntp {} ".format(c) in p.stdout for c in others), p.stdout
        # only this command's notes: no "sync, run:" labels, no "(run: ...)" elsewhere
        options = p.stdout.split("\n\n")[-1]
        for c in sorted(sntpcli.COMMAND_OPTIONS):
            assert not re.search(r"\b{}(, \w+)*: ".format(c), options), (c, options)
            assert c == command or "`{}`".format(c) not in options, (c, options)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_options_take_their_value_after_an_equals_sign(runtime, server):
    server.mode = "normal"
    p = sntp(runtime, "query", "127.0.0.1:{}".format(server.port), "--json", "--timeout=2")
    assert p.returncode == 0 and json.loads(p.stdout)["ok"], p.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_version_shows_the_build_date_as_a_date(runtime):
    import re

    p = sntp(runtime, "--version")
    assert p.returncode == 0
    assert re.fullmatch(r"sntp \d+\.\d+\.\d+ \(build date \d{4}-\d\d-\d\d, runtime \w+\)\n",
                        p.stdout), p.stdout  # fmt: skip


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_closed_port_is_reported_at_once(runtime):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.monotonic()
    p = sntp(runtime, "query", "127.0.0.1:{}".format(port), "--timeout", "10")
    took = time.monotonic() - t0
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "sntp: 127.0.0.1:{}: network (nothing listens at that port: ICMP port " \
        "unreachable)\n".format(port)  # fmt: skip
    assert took < 5, took


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_unresolvable_name_is_one_line(runtime):
    p = sntp(runtime, "query", "no-such-host.invalid", "--timeout", "1")
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "resolve" in lines[0] and "no-such-host.invalid" in lines[0]
    assert "addrinfo" not in lines[0] and "error -" not in lines[0], lines[0]


def test_resolver_codes_in_words():
    import sntpcli

    assert sntpcli.in_words("cannot resolve x: [addrinfo error -2]") == (
        "cannot resolve x: no such name (NXDOMAIN)"
    )
    assert sntpcli.in_words("cannot resolve x: [addrinfo error -3]").startswith(
        "cannot resolve x: temporary failure"
    )
    assert sntpcli.in_words("cannot resolve x: [addrinfo error -77]") == (
        "cannot resolve x: resolver error -77"
    )
    assert sntpcli.in_words("cannot resolve x: Name or service not known") == (
        "cannot resolve x: Name or service not known"
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ipv6_loopback(runtime):
    srv = RefServer(host="::1", offset_ns=3_250_000_000).start()
    try:
        p = sntp(runtime, "query", "[::1]:{}".format(srv.port), "--json", "--timeout", "2")
    finally:
        srv.stop()
    j = json.loads(p.stdout)
    assert j["ok"] and j["server"] == "[::1]:{}".format(srv.port)
    assert abs(j["offset"] - OFFSET_S) < 0.05


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_sync_not_yet_allowed_on_a_valid_clock_succeeds_and_status_shows_the_file(
    runtime, server, tmp_path
):
    # a second sync seconds after a good one: the clock is set and valid, the next request
    # is not allowed yet: exit 0, saying when; status shows the counts the file holds
    server.mode = "normal"
    state = str(tmp_path / "s.json")
    where = "127.0.0.1:{}".format(server.port)
    p = sntp(runtime, "sync", "--server", where, "--state", state)
    assert p.returncode == 0 and p.stdout.startswith("clock set: "), p.stderr
    p = sntp(runtime, "sync", "--server", where, "--state", state)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert re.fullmatch(
        r"clock valid, nothing to do now: next request allowed in \d+ s \(board clock .*\)\n",
        p.stdout,
    ), p.stdout
    p = sntp(runtime, "status", "--state", state)
    assert "servers    {} (sent 1, replies 1, KoD 0)".format(where) in p.stdout, p.stdout
    assert re.search(r"\nnext       \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ", p.stdout), p.stdout
    # the same with the board clock lost (--no-rtc): not set, and that is a failure
    p = sntp(runtime, "sync", "--server", where, "--state", state, "--no-rtc")
    assert p.returncode == 1 and "clock not set: deferred" in p.stderr, p.stderr


@pytest.mark.parametrize("code", ["RATE", "DENY"])
def test_status_shows_the_kod_holds_the_state_file_keeps(server, tmp_path, code):
    server.mode = "kod-" + code.lower()
    state = str(tmp_path / "s.json")
    where = "127.0.0.1:{}".format(server.port)
    p = sntp("micropython", "sync", "--server", where, "--state", state)
    assert p.returncode == 1 and "Kiss-o'-Death " + code in p.stderr, p.stderr
    p = sntp("micropython", "status", "--state", state)
    holds = [x for x in p.stdout.splitlines() if x.startswith("hold ")]
    if code == "RATE":
        pattern = r"hold       {} RATE: at most one request per .+ until \d{{4}}-.+ UTC"
    else:
        pattern = r"hold       {} DENY: no request until \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert len(holds) == 1 and re.fullmatch(pattern.format(re.escape(where)), holds[0]), holds
    assert "(sent 1, replies 0, KoD 1)" in p.stdout, p.stdout
    doc = json.loads(sntp("micropython", "status", "--state", state, "--json").stdout)
    assert list(doc["rate" if code == "RATE" else "denied"]) == [where], doc
