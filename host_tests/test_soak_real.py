# 20,000 real UDP exchanges on the unix-port MicroPython (.venv/bin/micropython) against the
# reference server (tools/refserver.py, one per mode, on 127.0.0.1): 10,000 through
# sntp.client.query cycling through the misbehaving modes (KoDs, unsynchronized, wrong mode
# or version, zero timestamps, too far, backwards, spoofs, wrong port, short, garbage,
# duplicates, a spoof before the real reply...), and 10,000 through one long-lived
# sntp.service.Service doing sync() after sync() against four servers (two honest, one
# always RATE, one unsynchronized), its waits simulated (host_tests/soak_probe.py: WarpClock;
# the policy's 15 s floor and hourly cap pass in simulated time, every exchange is real).
# Asserted:
#   - the heap in use after gc.collect(), sampled every 1,000 exchanges after a warm-up,
#     never more than GROWTH_BYTES above the first sample (no leak);
#   - the count of open file descriptors never changes (no socket left open), and every
#     exchange gets its socket (none fails with 'network');
#   - every exchange has exactly one result, the one its server's mode calls for; the
#     servers received exactly as many requests as were sent; the service's per-server
#     counters, its events and the servers' counts agree.
# The figures (exchanges, heap, fds, runtime) are printed. About 10 s.
import json
import os
import subprocess
import time

import pytest
from refserver import RefServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
PROBE = os.path.join(ROOT, "host_tests", "soak_probe.py")
N_QUERY = 10_000
N_SERVICE = 10_000
EVERY = 1_000
GROWTH_BYTES = 256  # what the heap may grow by over the run, after the warm-up sample
ANSWER_MS = 1_000  # timeout for a server that answers (the result comes as soon as it does)
IGNORED_MS = 10  # timeout for one whose datagrams are all ignored (the result is the timeout)

# mode -> (how many in each cycle of the plan, timeout, the results it may give)
MODES = {
    "normal": (160, ANSWER_MS, {"ok"}),
    "long": (2, ANSWER_MS, {"ok"}),  # 68 bytes: the extra ones are ignored
    "duplicate": (2, ANSWER_MS, {"ok"}),  # the second copy reaches a closed socket
    "spoof-then-real": (1, ANSWER_MS, {"ok"}),
    "kod-rate": (2, ANSWER_MS, {"kiss RATE"}),
    "kod-rate-zero": (1, ANSWER_MS, {"kiss RATE"}),
    "kod-deny": (2, ANSWER_MS, {"kiss DENY"}),
    "kod-rstr": (1, ANSWER_MS, {"kiss RSTR"}),
    "kod-xcode": (1, ANSWER_MS, {"kiss XFOO"}),
    "unsync": (2, ANSWER_MS, {"unsynchronized"}),
    "stratum16": (1, ANSWER_MS, {"unsynchronized"}),
    "mode3": (1, ANSWER_MS, {"bad-mode"}),
    "mode5": (1, ANSWER_MS, {"bad-mode"}),
    "version2": (1, ANSWER_MS, {"bad-version"}),
    "version5": (1, ANSWER_MS, {"bad-version"}),
    "zero-rx": (1, ANSWER_MS, {"zero-timestamp"}),
    "zero-tx": (1, ANSWER_MS, {"zero-timestamp"}),
    "zero-ref": (1, ANSWER_MS, {"no-reference"}),
    "far": (1, ANSWER_MS, {"too-far"}),
    "far-delay": (1, ANSWER_MS, {"too-far"}),
    "backwards": (1, ANSWER_MS, {"bad-timestamps"}),
    # ignored datagrams: their reason when one came before the deadline, else a timeout
    "bad-origin": (1, IGNORED_MS, {"bad-origin", "timeout"}),
    "zero-origin": (1, IGNORED_MS, {"bad-origin", "timeout"}),
    "kod-spoof": (1, IGNORED_MS, {"bad-origin", "timeout"}),
    "garbage": (1, IGNORED_MS, {"bad-origin", "short", "timeout"}),
    "wrong-port": (1, IGNORED_MS, {"wrong-source", "timeout"}),
    "short": (1, IGNORED_MS, {"short", "timeout"}),
    "empty": (1, IGNORED_MS, {"short", "timeout"}),
    "silent": (1, IGNORED_MS, {"timeout"}),
}
SERVICE_MODES = ["normal", "kod-rate", "normal", "unsync"]


@pytest.fixture
def servers():
    started = {}
    try:
        for mode in list(MODES) + ["service-" + m + str(i) for i, m in enumerate(SERVICE_MODES)]:
            real = mode.split("-", 1)[1][:-1] if mode.startswith("service-") else mode
            started[mode] = RefServer(mode=real, delay_s=0.05).start()
        yield started
    finally:
        for s in started.values():
            s.stop()


def plan(servers):
    """One cycle of [mode, port, timeout_ms], the modes spread through it."""
    out = []
    left = {m: n for m, (n, _, _) in MODES.items()}
    while any(left.values()):
        for m in MODES:
            if left[m]:
                left[m] -= 1
                out.append([m, servers[m].port, MODES[m][1]])
    return out


def test_twenty_thousand_real_exchanges_on_micropython_keep_the_heap_and_the_fds(
    servers, tmp_path
):
    cycle = plan(servers)
    spec = {
        "plan": cycle,
        "n_query": N_QUERY,
        "service_ports": [
            servers["service-{}{}".format(m, i)].port for i, m in enumerate(SERVICE_MODES)
        ],
        "service_timeout_ms": ANSWER_MS,
        "n_service": N_SERVICE,
        "every": EVERY,
    }
    env = dict(
        os.environ,
        MICROPYPATH="{}:{}".format(
            os.path.join(ROOT, "firmware"), os.path.join(ROOT, "boards", "unix")
        ),
    )
    spec_file = tmp_path / "spec.json"  # not an argument: see soak_probe.py
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    p = subprocess.run(
        [MICROPYTHON, PROBE, str(spec_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])

    # client.query: each mode gave only the results it may, every exchange once
    q = out["query"]
    total = 0
    for mode, got in q["counts"].items():
        assert set(got) <= MODES[mode][2], (mode, got)
        total += sum(got.values())
        # the server saw exactly the requests sent to it
        assert len(servers[mode].requests) == sum(got.values()), mode
    assert total == N_QUERY and set(q["counts"]) == set(MODES)
    assert sum(q["counts"]["normal"].values()) == q["counts"]["normal"]["ok"]

    # Service.sync: events, the policy's counters and the servers agree
    s = out["service"]
    sent = sum(s["sends"].values())
    assert sent >= N_SERVICE
    for i, m in enumerate(SERVICE_MODES):
        srv = servers["service-{}{}".format(m, i)]
        addr = "127.0.0.1:{}".format(srv.port)
        n = s["sends"].get(addr, 0)
        assert len(srv.requests) == n, (m, n, len(srv.requests))
        outcomes = s["outcomes"].get(addr, {})
        assert sum(outcomes.values()) == n, (m, outcomes)  # one outcome for every send
        expected = {
            "normal": {"reply"},
            "kod-rate": {"kod RATE"},
            "unsync": {"reject unsynchronized"},
        }
        assert set(outcomes) <= expected[m], (m, outcomes)
        sends, replies, kods = s["counters"][addr]
        assert sends == n and replies == outcomes.get("reply", 0)
        assert kods == outcomes.get("kod RATE", 0)
    assert s["kods"] == sum(o.get("kod RATE", 0) for o in s["outcomes"].values())
    assert s["syncs"].get("ok", 0) > 0.9 * sum(s["syncs"].values()), s["syncs"]

    # the heap and the file descriptors
    figures = []
    for name, rows in (("query", q["samples"]), ("service", s["samples"])):
        assert len(rows) >= 10, rows
        warm = rows[1]  # after the first 1,000: imports, interned strings, caches
        heaps = [h for _, h, _ in rows[1:]]
        fds = {f for _, _, f in rows}
        assert max(heaps) - warm[1] <= GROWTH_BYTES, (name, rows)
        assert len(fds) == 1 and -1 not in fds, (name, rows)
        figures.append(
            "{}: {} exchanges, heap {} -> {} bytes (max {}), {} fds".format(
                name, rows[-1][0], warm[1], heaps[-1], max(heaps), fds.pop()
            )
        )
    results = {}
    for got in q["counts"].values():
        for reason, n in got.items():
            results[reason] = results.get(reason, 0) + n
    print("soak on MicroPython, client.query results: {}".format(sorted(results.items())))
    print("soak on MicroPython, Service outcomes by server: {}".format(s["outcomes"]))
    print(
        "soak on MicroPython: {}; service: {} syncs {}, {} s simulated; query part {:.1f} s, "
        "service part {:.1f} s, whole run {:.1f} s".format(
            "; ".join(figures),
            sum(s["syncs"].values()),
            s["syncs"],
            s["simulated_s"],
            out["query_ms"] / 1000,
            out["service_ms"] / 1000,
            elapsed,
        )
    )
