# The time service end to end: tools/sntp sync / run / status over real UDP on 127.0.0.1
# against tools/refserver.py, under both runtimes, with the blocking and the asyncio driver.
# The board clock is the unix board's software RTC (host clock + an offset in the --state
# file): these tests read it back from the file, and the host clock is never touched.
import json
import os
import subprocess
import sys
import time

import pytest
from refserver import RefServer

from sntp.timestamp import BUILD_UNIX_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
RUNTIMES = ["micropython", "cpython"]
DRIVERS = ["blocking", "asyncio"]
TOL_S = 0.05  # loopback: every offset is good to a few ms


def sntp(runtime, *args, timeout=30):
    env = dict(os.environ, MICROPYTHON=MICROPYTHON, PYTHON=sys.executable)
    cmd = [SNTP] + (["--python"] if runtime == "cpython" else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def servers():
    """servers(offset_s, mode) -> a running RefServer; all stopped after the test."""
    started = []

    def start(offset_s=0.0, mode="normal"):
        srv = RefServer(offset_ns=int(offset_s * 1e9), mode=mode).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def addr(srv):
    return "127.0.0.1:{}".format(srv.port)


def server_args(*srvs):
    out = []
    for s in srvs:
        out += ["--server", addr(s)]
    return out


def state_file(tmp_path, doc=None):
    path = str(tmp_path / "state.json")
    if doc is not None:
        with open(path, "w") as f:
            json.dump(doc, f)
    return path


def read_state(path):
    with open(path) as f:
        return json.load(f)


def sync_json(runtime, driver, *args):
    extra = ["--asyncio"] if driver == "asyncio" else []
    p = sntp(runtime, "sync", "--json", *(list(args) + extra))
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, (p.stdout, p.stderr)
    return p, json.loads(lines[0])


def warnings_only(stderr):
    return [line for line in stderr.splitlines() if not line.startswith("sntp: warning: ")]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sync_sets_the_board_clock_from_one_server(runtime, driver, servers, tmp_path):
    srv = servers(7.25)
    path = state_file(tmp_path)
    host_before = time.time()
    wall_minus_mono = time.time() - time.monotonic()
    p, j = sync_json(runtime, driver, "--server", addr(srv), "--state", path, "--timeout", "2")
    host_after = time.time()
    assert p.returncode == 0 and warnings_only(p.stderr) == [], p.stderr
    assert j["ok"] and j["clock_set"] and j["error"] is None, j
    assert abs(j["offset"] - 7.25) < TOL_S
    assert j["server"] == addr(srv) and j["servers_tried"] == [addr(srv)]
    assert host_before + 7.25 - TOL_S < j["time"] < host_after + 7.25 + TOL_S
    assert len(srv.requests) == 1
    st = read_state(path)
    assert abs(st["rtc_offset_us"] - 7_250_000) < TOL_S * 1e6
    assert st["policy"]["last_sync_unix_s"] >= int(host_before + 7)
    assert st["policy"]["fails"] == 0
    # the host clock was not stepped: it still keeps pace with the monotonic clock
    assert abs((time.time() - time.monotonic()) - wall_minus_mono) < TOL_S


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_invalid_board_clock_is_set_and_status_reads_it_back(runtime, servers, tmp_path):
    srv = servers(0.0)
    path = state_file(tmp_path, {"rtc_unix_s": 0})  # the board believes it is 1970
    p = sntp(runtime, "status", "--state", path, "--json")
    before = json.loads(p.stdout)
    assert before["valid"] is False and before["time"] < 10 and before["last_sync"] is None
    p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
    assert p.returncode == 0 and j["clock_set"] and j["valid"], j
    assert abs(j["offset"] - time.time()) < 5  # about 56 years forward
    p = sntp(runtime, "status", "--state", path, "--json")
    after = json.loads(p.stdout)
    assert p.returncode == 0 and after["valid"] is True
    assert abs(after["time"] - time.time()) < 1 and after["last_sync"] >= BUILD_UNIX_S
    assert after["interval"] >= 64 and [s["server"] for s in after["servers"]] == [addr(srv)]
    assert after["servers"][0]["replies"] == 1
    h = after["health"]
    assert h["set"] and h["trusted"] and h["requests"] == 1 and h["server"] == addr(srv)
    assert 0 <= h["bound_ms"] <= 100 and abs(h["offset_ms"] / 1000 - j["offset"]) < 1
    p = sntp(runtime, "status", "--state", path)
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "time",
        "valid",
        "last_sync",
        "interval",
        "next",  # the next request (status shows what the state file holds)
        "health",  # svc.health() at the end of the run (docs/health.md)
        "servers",
    ]
    assert lines[1].split()[1] == "yes" and addr(srv) in lines[6]
    assert lines[5].startswith("health     trusted, error bound +/-")


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_falseticker_is_outvoted_by_two_honest_servers(runtime, driver, servers, tmp_path):
    liar, honest1, honest2 = servers(3600.0), servers(0.0), servers(0.0)
    path = state_file(tmp_path, {"rtc_offset_us": -5_000_000})  # board 5 s behind
    p, j = sync_json(runtime, driver, *server_args(liar, honest1, honest2), "--state", path)
    assert p.returncode == 0 and j["clock_set"], j
    assert abs(j["offset"] - 5.0) < TOL_S  # the honest servers' 5 s, not the liar's hour
    assert sorted(j["servers"]) == sorted([addr(honest1), addr(honest2)])
    assert j["servers_tried"] == [addr(liar), addr(honest1), addr(honest2)]
    assert {"server": addr(liar), "error": "disagree"} in j["failures"]
    assert abs(read_state(path)["rtc_offset_us"]) < TOL_S * 1e6


# No sync since this power-on, so no error bound yet: a lone reply counts within accuracy_ms
# (100 ms). 60 ms is within it: one honest server will do. 300 ms is not: a second must agree
# (a liar under a second can no longer move a valid clock alone).
@pytest.mark.parametrize("offset_s,asked", [(0.06, 2), (0.3, 3)])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_honest_server_is_enough_within_the_budget_on_a_valid_clock(
    runtime, offset_s, asked, servers, tmp_path
):
    liar, honest1, honest2 = servers(3600.0), servers(offset_s), servers(offset_s)
    path = state_file(tmp_path)
    p, j = sync_json(runtime, "blocking", *server_args(liar, honest1, honest2), "--state", path)
    assert p.returncode == 0 and j["clock_set"] and abs(j["offset"] - offset_s) < TOL_S, j
    assert j["servers_tried"] == [addr(s) for s in (liar, honest1, honest2)][:asked]
    assert j["server"] in [addr(honest1), addr(honest2)][: asked - 1]
    assert len(honest2.requests) == asked - 2


@pytest.mark.parametrize("mode,code", [("kod-rate", "RATE"), ("kod-deny", "DENY")])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_kiss_of_death_sets_nothing(runtime, mode, code, servers, tmp_path):
    srv = servers(100.0, mode)
    path = state_file(tmp_path, {"rtc_offset_us": -5_000_000})
    p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
    assert p.returncode == 1 and not j["ok"] and not j["clock_set"], j
    assert j["error"] == "kiss" and j["kiss"] == code and j["offset"] is None
    assert len(srv.requests) == 1
    st = read_state(path)
    assert st["rtc_offset_us"] == -5_000_000 and st["policy"]["fails"] == 1
    if code == "DENY":  # kept across runs: the next run does not ask that server at all
        assert list(st["policy"]["denied"]) == [addr(srv)]
        st["policy"]["up"] = 600_000  # that run lasted 10 min: no crash-loop guard
        with open(path, "w") as f:
            json.dump(st, f)
        p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
        assert p.returncode == 1 and j["error"] == "unavailable" and j["servers_tried"] == []
        assert len(srv.requests) == 1


@pytest.mark.parametrize(
    "runtime,clock", [("micropython", "lost"), ("cpython", "lost"), ("micropython", "kept")]
)
def test_a_rate_kiss_is_kept_across_runs(runtime, clock, servers, tmp_path):
    # Each run is a restart of the board. lost: no RTC, the board clock reads 1970 at each
    # boot (the hold starts again at each boot); kept: the clock runs on, and the second
    # run comes 16 s later, past the 15 s floor, so that only the RATE hold keeps it quiet.
    srv = servers(0.0, "kod-rate")
    lost = {"rtc_unix_s": 0}
    path = state_file(tmp_path, lost if clock == "lost" else None)
    p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
    assert p.returncode == 1 and j["error"] == "kiss" and j["kiss"] == "RATE", j
    st = read_state(path)
    gap_ms, hold_ms, _ = st["policy"]["rate"][addr(srv)]
    assert hold_ms > 15_000 and gap_ms >= 600_000, st  # rule 5: at least 10 minutes
    st["policy"]["up"] = 600_000  # that run lasted 10 min: only the hold can stop this one
    if clock == "lost":
        st.update(lost)
    else:
        time.sleep(16)
    with open(path, "w") as f:
        json.dump(st, f)
    p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
    assert p.returncode == 1 and not j["clock_set"] and j["servers_tried"] == [], j
    assert len(srv.requests) == 1  # the server saw one request, not two


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_silent_servers_are_each_tried_once_then_it_gives_up(runtime, driver, servers, tmp_path):
    a, b = servers(0.0, "silent"), servers(0.0, "silent")
    path = state_file(tmp_path, {"rtc_offset_us": -5_000_000})
    t0 = time.monotonic()
    p, j = sync_json(runtime, driver, *server_args(a, b), "--timeout", "0.3", "--state", path)
    elapsed = time.monotonic() - t0
    assert p.returncode == 1 and not j["clock_set"] and j["error"] == "timeout", j
    assert j["servers_tried"] == [addr(a), addr(b)]
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert elapsed < 3  # two timeouts of 0.3 s; the 30 s backoff is not waited for
    st = read_state(path)
    assert st["rtc_offset_us"] == -5_000_000 and st["policy"]["fails"] == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_human_output_is_one_line(runtime, servers, tmp_path):
    good, bad = servers(2.0), servers(0.0, "silent")
    p = sntp(runtime, "sync", "--server", addr(good))
    assert p.returncode == 0 and p.stderr == ""
    words = p.stdout.split()
    assert len(p.stdout.splitlines()) == 1 and words[:2] == ["clock", "set:"], p.stdout
    assert abs(float(words[2]) - 2.0) < TOL_S and words[3:6] == ["s", "from", addr(good)]
    p = sntp(runtime, "sync", "--server", addr(bad), "--timeout", "0.2")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        "sntp: clock not set: timeout ({}: no reply)".format(addr(bad))
    ]


RUN_FOR = {"blocking": "3", "asyncio": "1"}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_prints_one_json_event_per_line(runtime, driver, servers, tmp_path):
    srv = servers(1.5)
    path = state_file(tmp_path)
    args = ["run", "--json", "--server", addr(srv), "--state", path, "--no-startup-delay"]
    args += ["--for", RUN_FOR[driver]] + (["--asyncio"] if driver == "asyncio" else [])
    t0 = time.monotonic()
    p = sntp(runtime, *args)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[:1] == ["start"]
    for k in ("send", "reply", "step", "clock", "poll"):
        assert k in kinds, kinds
    assert kinds.index("send") < kinds.index("reply") < kinds.index("clock")
    clock = events[kinds.index("clock")]
    assert clock["applied"] is True and abs(clock["offset_us"] - 1_500_000) < TOL_S * 1e6
    t = [e["t_ms"] for e in events]
    assert t == sorted(t)
    assert len(srv.requests) == 1  # then the next poll is 64 s or more away
    assert int(RUN_FOR[driver]) <= elapsed < int(RUN_FOR[driver]) + 2
    assert abs(read_state(path)["rtc_offset_us"] - 1_500_000) < TOL_S * 1e6


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_waits_for_the_startup_delay_and_a_kod_is_an_event(runtime, servers, tmp_path):
    srv = servers(0.0, "kod-rate")
    # an invalid clock would wait 0-60 s, but six failed rounds are saved: R4's backoff holds
    # (an older version's state: no RATE holds in it, which one config event says)
    saved = {"v": 1, "boots": 3, "fails": 6}
    path = state_file(tmp_path, {"rtc_unix_s": 0, "policy": saved})
    p = sntp(runtime, "run", "--json", "--server", addr(srv), "--state", path, "--for", "0.5")
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and [e["event"] for e in events] == ["config", "start"], p.stdout
    assert events[0]["warning"] == (
        "state: no uptime saved, counted as a short boot; rate: none restored"
    )
    assert events[1]["wait_ms"] >= 30_000 * 2**5 and srv.requests == []
    p = sntp(runtime, "run", "--json", "--server", addr(srv), "--for", "0.5", "--no-startup-delay")
    events = [json.loads(line) for line in p.stdout.splitlines()]
    kods = [e for e in events if e["event"] == "kod"]
    assert len(kods) == 1 and kods[0]["code"] == "RATE" and kods[0]["server"] == addr(srv)
    assert [e["event"] for e in events][-1] == "backoff" and "clock" not in events


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_broken_state_file_is_one_warning_and_then_replaced(runtime, servers, tmp_path):
    srv = servers(0.5)
    path = state_file(tmp_path)
    with open(path, "w") as f:
        f.write("{ this is not json")
    p, j = sync_json(runtime, "blocking", "--server", addr(srv), "--state", path)
    assert p.returncode == 0 and j["clock_set"]
    assert p.stderr.splitlines() == ["sntp: warning: {}: not JSON, ignored ".format(path)
                                     + "(starting without saved state)"]  # fmt: skip
    assert abs(read_state(path)["rtc_offset_us"] - 500_000) < TOL_S * 1e6


BAD_ARGS = [
    (["sync", "--server"], 2, "--server needs a value"),
    (["sync", "--server", "127.0.0.1:0"], 2, "bad port"),
    (["sync", "--server", "a b"], 2, "bad server name"),
    (["sync", "--zone", "acme.example"], 2, "--zone wants your NTP Pool vendor zone, one DNS"),
    (["sync", "--server", "-x"], 2, "--server: bad server name '-x': give a name"),
    (["sync", "--server=127.0.0.1:12400:5"], 2, "give a name (like ntp.example.com)"),
    (["sync", "--server", "a", "--accuracy-ms", "0"], 2, "from 1 to 60000, not '0'"),
    (["sync", "--server", "a", "--accuracy-ms=-5"], 2, "from 1 to 60000, not '-5'"),
    (["run", "--server", "a", "--poll-min", "10"], 2, "--poll-min wants whole seconds from 64"),
    (["run", "--zone", "acme", "--poll-min", "100"], 2, "at least 1800 s with pool.ntp.org"),
    (["sync", "--server", "a", "--for", "3"], 2, "--for is not an option of sync"),
    (["sync", "127.0.0.1"], 2, "unexpected argument"),
    (["sync", "--server", "a", "--timeout", "0"], 2, "above 0"),
    (
        ["sync"] + " ".join("--server 127.0.0.1:{}".format(i) for i in range(1, 6)).split(),
        2,
        "more than 4",
    ),
    (["run", "--server", "a", "--for", "0"], 2, "--for must be above 0"),
    (["run", "--server", "a", "--for", "x"], 2, "--for wants seconds"),
    (["status", "--state", "s.json", "--for", "1"], 2, "--for is not an option of status"),
    (["status"], 2, "status needs --state FILE"),
    (["status", "--state", "/nonexistent/state.json"], 1, "not found"),
    (["sync"], 1, "no servers configured"),
    (["run", "--for", "1"], 1, "no servers configured"),
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("args,status,message", BAD_ARGS)
def test_mistakes_are_one_line(runtime, args, status, message):
    p = sntp(runtime, *args)
    assert p.returncode == status and p.stdout == "", (p.returncode, p.stdout)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sntp: ") and message in lines[0], p.stderr
    # a refusal never reads like a warning about something that went ahead anyway
    assert not any(w in lines[0] for w in ("ignored", "clamped", "warning")), lines[0]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_status_shows_the_local_time_of_the_configurations_tz(runtime, tmp_path):
    path = state_file(tmp_path, {"rtc_unix_s": 1_800_000_000})  # 2027-01-15 08:00:00 UTC
    cfg = tmp_path / "board.json"
    cfg.write_text(json.dumps({"tz": "AEST-10AEDT,M10.1.0,M4.1.0/3"}))  # January: summer
    p = sntp(runtime, "status", "--state", path, "--config", str(cfg), "--json")
    j = json.loads(p.stdout)
    summer = time.gmtime(int(j["time"]) + 11 * 3600)
    assert j["local"] == time.strftime("%Y-%m-%d %H:%M:%S", summer) + " AEDT (UTC+11:00)", j
    p = sntp(runtime, "status", "--state", path, "--config", str(cfg))
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and lines[1].startswith("local      2027-01-15 19:00:0"), lines
    assert lines[1].endswith(" AEDT (UTC+11:00)")
    cfg.write_text(json.dumps({"zone": "acme"}))  # no tz: no local time
    p = sntp(runtime, "status", "--state", path, "--config", str(cfg), "--json")
    assert json.loads(p.stdout)["local"] is None
    p = sntp(runtime, "status", "--state", path, "--config", str(cfg))
    assert not [line for line in p.stdout.splitlines() if line.startswith("local")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_status_of_a_broken_file_is_one_line(runtime, tmp_path):
    path = state_file(tmp_path)
    with open(path, "w") as f:
        f.write("[1, 2]")
    p = sntp(runtime, "status", "--state", path)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == ["sntp: {}: not a JSON object".format(path)]


def test_back_to_back_syncs_keep_the_15_s_floor_across_runs(servers, tmp_path):
    # Each run of tools/sntp is a restart of the board: the state file carries the last
    # hour's sends, so a second sync right after the first waits out the floor (rule 1).
    # Found by the real-server tests before the policy persisted its sends. The first run
    # ended within seconds: a short boot, so the second is the crash-loop guard's first
    # step too (30-37.5 s after the last request), past the floor: sync defers.
    srv = servers()
    path = state_file(tmp_path)
    p1, j1 = sync_json("micropython", "blocking", "--server", addr(srv), "--state", path)
    p2, j2 = sync_json("micropython", "blocking", "--server", addr(srv), "--state", path)
    assert j1["clock_set"] and j2["error"] == "deferred", (j1, j2)
    wait_s = int(j2["detail"].split()[-2])
    assert 15 <= wait_s <= 38 and len(srv.requests) == 1, j2


def test_run_with_a_simulated_drift_shows_the_estimate_converging(servers, tmp_path):
    # The unix board's clock runs 200 ppm slow; against one honest local server polled every
    # 64 s, the second sync measures the drift and the "drift" event reports it. (200 ppm, not
    # a crystal's 25: over a 64-80 s base, a machine's ms of loopback jitter is ppm of noise,
    # which only a large drift makes small beside it. 15-20 ppm was seen on a quiet machine;
    # 30-50 ppm, as 2.1-3.5 ms over the 70 s, in full runs of make test: within 30 % here,
    # still far from no estimate at all or one of the wrong sign.)
    srv = servers()
    path = state_file(tmp_path)
    p = sntp(
        "micropython",
        "run",
        "--json",
        "--server",
        addr(srv),
        "--state",
        path,
        "--drift-ppm",
        "200",
        "--poll-min",
        "64",
        "--no-startup-delay",
        "--for",
        "100",
        "--timeout",
        "2",
        timeout=130,
    )
    assert p.returncode == 0, p.stderr
    drift = [json.loads(line) for line in p.stdout.splitlines() if '"drift"' in line]
    assert len(drift) >= 2, p.stdout
    assert drift[0]["measured_ppb"] is None  # the first sync only sets the reference
    measured = drift[-1]["measured_ppb"]
    assert measured is not None and abs(measured - 200_000) <= 60_000, drift
    assert abs(drift[-1]["drift_ppb"] - 200_000) <= 60_000
    st = read_state(path)
    assert st["policy"]["discipline"]["drift_ppb"] == drift[-1]["drift_ppb"]  # persisted
