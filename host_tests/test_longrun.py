# The 40-day run (host_tests/longrun.py) on the three runtimes gives the same decisions: the
# digest of every send, correction and wake-up is the same under CPython (here), the unix-port
# MicroPython (64-bit) and the WebAssembly MicroPython (32-bit: 31-bit small ints, ticks
# wrapping at 2**30). CPython only: it runs the two MicroPythons as subprocesses.
import os
import re
import subprocess

import longrun
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
WASM = os.path.join(
    ROOT, ".venv/node/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
)
LINE = re.compile(r"^longrun: .* digest ([0-9a-f]{64})$", re.M)


def need(path, what):
    if not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail("{} missing at {} (make setup installs it)".format(what, path))
        pytest.skip("{} missing at {}: run make setup".format(what, path))


def summary(cmd, env=None):
    out = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    found = LINE.findall(out.stdout)
    assert out.returncode == 0 and len(found) == 1, (out.stdout[-2000:], out.stderr)
    return LINE.search(out.stdout).group(0)


@pytest.fixture(scope="module")
def cpython_line():
    return longrun.run()


def test_the_run_crosses_the_era_and_the_ticks_wraps_and_meets_every_server_fault(cpython_line):
    line = cpython_line
    assert "era crossed True" in line and "ticks_ms wraps 4" in line, line
    sends = int(re.search(r"(\d+) sends", line).group(1))
    assert 40 <= sends <= 2 * 40 * 4, line  # a pool zone's few requests a day, not a flood
    err = int(re.search(r"final error (-?\d+) us", line).group(1))
    assert abs(err) < 100_000, line  # the default accuracy holds after 40 days


def test_the_unix_port_makes_the_same_decisions(cpython_line):
    need(MICROPYTHON, "the unix-port MicroPython")
    env = dict(os.environ, MICROPYPATH="firmware:boards/unix:tools:.frozen")
    line = summary([MICROPYTHON, "-X", "heapsize=64M", "host_tests/longrun.py"], env)
    assert line == cpython_line


def test_the_32_bit_webassembly_port_makes_the_same_decisions(cpython_line):
    need(WASM, "the WebAssembly MicroPython")
    line = summary(["node", "host_tests/wasmrun.mjs", "--run", "host_tests/longrun.py"])
    assert line == cpython_line


def test_the_32_bit_footprint_runs_and_reports_every_figure():
    # make footprint-wasm32 (make bench): the figures are printed, not checked here
    need(WASM, "the WebAssembly MicroPython")
    out = subprocess.run(
        ["node", "host_tests/wasmrun.mjs", "--run", "tools/wasm/footprint.py", "--print-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr)
    for what in ("importing the sync core", "built and synced", "per idle wake-up", "per sync"):
        assert re.search(what + r".*: \d+ bytes", out.stdout), (what, out.stdout)
