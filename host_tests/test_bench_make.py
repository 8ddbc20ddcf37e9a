# make bench writes results/ only; make bench-docs also writes docs/fleet.md between its
# markers; a fleet size that is not a whole number above 0 is a usage error before anything in
# the output folder is removed.
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "size",
    [
        "FLEET_DEVICES=0",
        "FLEET_DEVICES=abc",
        "FLEET_BASELINE_DEVICES=1e3",
        "FLEET_DEVICES=",
        "FLEET_DEVICES=-5",
    ],  # fmt: skip
)
@pytest.mark.parametrize("target", ["bench", "bench-docs"])
def test_a_bad_fleet_size_is_a_usage_error_and_deletes_nothing(target, size, tmp_path):
    old = tmp_path / "fleet.json"
    old.write_text('{"kept": true}\n')
    r = make(target, size, "FLEET_ARGS=--out " + str(tmp_path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "must be a whole number above 0" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(old.read_text()) == {"kept": True}


@pytest.mark.parametrize("args", [["--devices", "0"], ["--baseline-devices", "x"],
                                  ["--procs", "0"]])  # fmt: skip
def test_the_simulator_refuses_bad_sizes_before_touching_results(args, tmp_path):
    old = tmp_path / "fleet.md"
    old.write_text("kept\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tools"))
    r = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "python"), "-m", "fleet", "bench", "--out",
         str(tmp_path), *args], env=env, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert r.returncode == 2 and "a whole number above 0" in r.stderr, r.stderr
    assert old.read_text() == "kept\n"


def test_make_bench_writes_no_tracked_file_and_bench_docs_does():
    bench = make("-n", "bench", "FLEET_DEVICES=10").stdout
    assert "-m fleet bench" in bench and "--docs" not in bench and "--readme" not in bench
    docs = make("-n", "bench-docs", "FLEET_DEVICES=10").stdout
    assert "-m fleet bench" in docs and "--docs" in docs


def test_bench_docs_writes_between_the_markers_of_docs_fleet_md(tmp_path):
    from fleet import __main__ as fleet

    with open(fleet.DOCS_PATH) as f:
        text = f.read()
    assert text.count(fleet.DOCS_BEGIN) == 1 and text.count(fleet.DOCS_END) == 1
    with open(os.path.join(ROOT, "README.md")) as f:
        assert "fleet-bench:" not in f.read()  # the figures live in docs/fleet.md only
    page = tmp_path / "fleet.md"
    page.write_text(
        "before\n" + fleet.DOCS_BEGIN + "\nSTALE-FIGURES\n" + fleet.DOCS_END + "\nafter\n"
    )
    out = tmp_path / "results"
    out.mkdir()
    (out / "load-outage.png").write_bytes(b"png")
    doc = {"figures": {}, "targets": [], "runs": {}}
    fleet.update_docs(str(out), doc, None, [], path=str(page))
    new = page.read_text()
    assert new.startswith("before\n" + fleet.DOCS_BEGIN) and new.endswith(
        fleet.DOCS_END + "\nafter\n"
    )
    assert "STALE-FIGURES" not in new and "](fleet-load-outage.png)" in new
    assert (tmp_path / "fleet-load-outage.png").read_bytes() == b"png"
