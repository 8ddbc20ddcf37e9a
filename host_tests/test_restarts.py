# The restart rules in real time: each run of tools/sntp is one boot of the unix board, its
# state file kept between runs, and (--no-rtc) its clock back in 1970 at each boot, as on a
# board without a battery-backed clock. Servers are tools/refserver.py on 127.0.0.1.
#   - a restart loop asks once, then the crash-loop guard defers (k-th short boot: 15 s x 2**k)
#   - the 15 s floor, the hourly cap and a RATE hold hold with the clock in 1970
#   - a cold start asks two servers, not four
#   - a deep-sleep wake (--wake) decides from the state alone: no network until due
import json

from test_service import addr, read_state, server_args, servers, sntp, state_file, sync_json

__all__ = ["servers"]  # the fixture, used by name

RUNTIME = "micropython"


def edit(path, **policy):
    st = read_state(path)
    st["policy"].update(policy)
    with open(path, "w") as f:
        json.dump(st, f)


def test_a_restart_loop_without_a_clock_asks_once_then_backs_off(servers, tmp_path):
    srv = servers()
    path = state_file(tmp_path)
    waits = []
    for k in range(4):  # four boots in a row, each sync at once, the clock in 1970 each time
        p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
        if k == 0:
            assert j["clock_set"] and j["valid"], j
        else:
            assert p.returncode == 1 and j["error"] == "deferred", j
            waits.append(int(j["detail"].split()[-2]))
    assert len(srv.requests) == 1, srv.requests
    # the k-th short boot: 15 s x 2**k, up to a quarter more, since the last request
    for k, w in enumerate(waits, 1):
        assert 15 * 2**k - 10 <= w <= 15 * 2**k * 5 // 4, waits
    st = read_state(path)["policy"]
    assert st["short"] == 3 and st["boots"] == 4 and len(st["sent"]) == 1, st


def test_the_15_s_floor_holds_across_a_restart_with_the_clock_in_1970(servers, tmp_path):
    srv = servers()
    path = state_file(tmp_path)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
    assert j["clock_set"], j
    edit(path, up=900_000)  # that boot ran long: no crash-loop guard, only the floor
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
    assert j["clock_set"], j  # sync waits out a floor (under 20 s), then asks
    (t1, _, _), (t2, _, _) = srv.requests
    assert t2 - t1 >= 15_000_000_000, (t2 - t1) / 1e9  # on the server's clock


def test_the_hourly_cap_holds_with_the_clock_in_1970(servers, tmp_path):
    srv = servers()
    path = state_file(tmp_path)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
    assert j["clock_set"], j
    # eleven more sends in the last 40 minutes of uptime, as earlier boots saved them; the
    # boot before this one ran long (no crash-loop guard): only the cap can stop it
    sent = read_state(path)["policy"]["sent"]
    sent += [[addr(srv), 0, 200_000 * i] for i in range(1, 12)]
    edit(path, sent=sent, up=900_000)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
    assert p.returncode == 1 and j["error"] == "hourly-cap" and not j["valid"], j
    assert len(srv.requests) == 1


def test_a_rate_hold_outlives_restarts_with_the_clock_in_1970(servers, tmp_path):
    srv = servers(0.0, "kod-rate")
    path = state_file(tmp_path)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
    assert j["kiss"] == "RATE", j
    for _ in range(3):
        edit(path, up=900_000)  # each boot ran long: only the hold can keep it quiet
        p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--no-rtc")
        assert p.returncode == 1 and j["servers_tried"] == [] and not j["valid"], j
    assert len(srv.requests) == 1


def test_a_cold_start_asks_two_servers_when_they_agree(servers, tmp_path):
    four = [servers(0.0) for _ in range(4)]
    path = state_file(tmp_path)
    p, j = sync_json(RUNTIME, "blocking", *server_args(*four), "--state", path, "--no-rtc")
    assert j["clock_set"] and len(j["servers"]) == 2, j
    assert sum(len(s.requests) for s in four) == 2


def test_a_wake_from_deep_sleep_uses_no_network_until_a_request_is_due(servers, tmp_path):
    srv = servers()
    path = state_file(tmp_path)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path)
    assert j["clock_set"], j
    boots = read_state(path)["policy"]["boots"]
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--wake")
    assert p.returncode == 0 and j["error"] == "not-due", j
    assert int(j["detail"].split()[-2]) >= 1024  # one poll interval (at least 1024 s)
    assert len(srv.requests) == 1
    # fell due while asleep: one exchange at once (no start-up delay, no crash-loop guard)
    st = read_state(path)["policy"]
    assert st["boots"] == boots  # a wake is not a boot
    edit(path, next_due_unix_s=st["last_sync_unix_s"] - 1)
    p, j = sync_json(RUNTIME, "blocking", "--server", addr(srv), "--state", path, "--wake")
    assert j["clock_set"] and j["servers_tried"] == [addr(srv)], j
    assert len(srv.requests) == 2
    p = sntp(RUNTIME, "sync", "--server", addr(srv), "--wake", "--no-rtc")
    assert p.returncode == 2 and "give one" in p.stderr
