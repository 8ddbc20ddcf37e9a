# What a person sees from tools/sntp: `run` prints one readable line per event (the board's
# UTC time, offsets in us/ms/s/days, each wait with how long, until when and why), JSON only
# with --json; --no-startup-delay shows no start-up wait; a blocking wait of more than a few
# seconds (the 15 s floor between two requests to one address) says why it waits.
import json
import os
import re
import subprocess
import sys

import pytest
import sntpcli
from refserver import RefServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
RUNTIMES = ["micropython", "cpython"]
LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \S")


def sntp(runtime, *args):
    env = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
    cmd = [SNTP] + (["--python"] if runtime == "cpython" else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def server():
    srv = RefServer(offset_ns=1_500_000_000).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_prints_a_readable_line_per_event(runtime, server, tmp_path):
    state = str(tmp_path / "s.json")
    where = "127.0.0.1:{}".format(server.port)
    p = sntp(runtime, "run", "--server", where, "--state", state, "--for", "1",
             "--no-startup-delay")  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines and all(LINE.match(x) for x in lines), p.stdout
    assert "{" not in p.stdout and "wait_ms" not in p.stdout and "_us" not in p.stdout
    text = [x[21:] for x in lines]
    assert text[0] == "start: board clock valid; asking now (no start-up delay)"
    assert "request to {}".format(where) in text
    assert any(re.fullmatch(r"reply from {}: offset \+1\.[45]\d+ s, delay \d+(\.\d+)? [um]s, "
                            r"stratum 2".format(where), x) for x in text), text  # fmt: skip
    assert any(re.match(r"correction \+1\.[45]\d+ s agreed by ", x) for x in text), text
    assert any(re.fullmatch(r"clock stepped by \+1\.[45]\d+ s", x) for x in text), text
    polls = [x for x in text if x.startswith("synced; next request in ")]
    assert len(polls) == 1 and re.search(r" in \d+ min( \d+ s)? at \d\d:\d\d:\d\dZ "
                                         r"\(poll interval \d+ s\)$", polls[0]), text  # fmt: skip
    # and JSON only when asked
    p = sntp(runtime, "run", "--json", "--server", where, "--for", "0.3", "--no-startup-delay")
    events = [json.loads(x) for x in p.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["wait_ms"] == 0, events[0]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_the_start_up_delay_says_when_and_why(runtime, server):
    where = "127.0.0.1:{}".format(server.port)
    p = sntp(runtime, "run", "--server", where, "--for", "0.3")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1, p.stdout
    assert re.fullmatch(
        r"\S+ \S+Z start: board clock valid; next request in \d+(\.\d)? (min|s|h).* "
        r"at \d\d:\d\d:\d\dZ "
        r"\(the start-up delay: random, spreads a fleet's requests\)\n",
        p.stdout,
    ), p.stdout


def test_a_sync_that_waits_for_the_floor_says_why(server, tmp_path):
    state = str(tmp_path / "s.json")
    where = "127.0.0.1:{}".format(server.port)
    p = sntp("micropython", "sync", "--server", where, "--state", state)
    assert p.returncode == 0 and p.stderr.count("\n") <= 1, p.stderr  # "not found" warning
    with open(state) as f:
        doc = json.load(f)
    doc["policy"]["up"] = 600_000  # that run lasted 10 min: the floor, not the crash guard
    with open(state, "w") as f:
        json.dump(doc, f)
    p = sntp("micropython", "sync", "--server", where, "--state", state)
    assert p.returncode == 0 and "clock set" in p.stdout
    assert re.fullmatch(
        r"sntp: waiting 1\d\.\d s: at most one request per 15 s to each server address "
        r"\(rule 1\)\n",
        p.stderr,
    ), p.stderr


def test_event_lines():
    now = 1_796_000_000 * 10**6  # 2026-11-30 00:53:20 UTC
    step = {"event": "clock", "applied": True, "how": "step", "offset_us": 1796021886234691}
    clock = sntpcli.event_text(dict(step, t_ms=5, detail=None), now)
    assert clock.endswith(" clock stepped by +20787 days (1796021886 s)"), clock
    slew = sntpcli.event_text(
        {"event": "clock", "applied": True, "how": "slew", "offset_us": -1461, "detail": None}, now
    )
    assert slew.endswith(" clock slewed by -1.461 ms (gradually, at most 0.5 ms a second)")
    poll = sntpcli.event_text({"event": "poll", "wait_ms": 1_020_000, "interval_s": 1024}, now)
    assert poll == "2026-11-30 00:53:20Z synced; next request in 17 min at 01:10:20Z (poll " \
        "interval 1024 s)"  # fmt: skip
    back = sntpcli.event_text({"event": "backoff", "wait_ms": 30_500, "fails": 1}, now)
    assert back.endswith(" round failed (1 in a row); next request in 30.5 s at 00:53:50Z "
                         "(backoff, rule 4)")  # fmt: skip
    odd = sntpcli.event_text({"event": "new-kind", "t_ms": 1, "x": 2}, now)
    assert odd.endswith(" new-kind: x=2")
    assert [sntpcli.duration(ms) for ms in (13_700, 60_000, 174_798, 3_840_000, 90_000_000)] == [
        "13.7 s", "1 min", "2 min 54 s", "1 h 4 min", "1 d 1 h"]  # fmt: skip
    assert [sntpcli.offset_text(us) for us in (956, -1461, 2_000_044, 0)] == [
        "+956 us", "-1.461 ms", "+2.000044 s", "+0 us"]  # fmt: skip
