# tools/sntp, the launcher: an argument of 256 bytes or more is refused with one line and
# status 2 before any runtime starts (the unix-port MicroPython aborts on one with "FATAL:
# uncaught NLR"); shorter ones reach the runtime unchanged. CPython only (it runs tools/sntp).
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


@pytest.fixture
def fake_runtime(tmp_path):
    """A stand-in runtime that writes its arguments to a file: (its path, that file)."""
    mark = tmp_path / "args"
    exe = tmp_path / "runtime"
    exe.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "{}"\n'.format(mark))
    exe.chmod(0o755)
    return str(exe), mark


def sntp(args, runtime=None, shell="sh"):
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    if runtime is not None:
        env["MICROPYTHON"] = env["PYTHON"] = runtime
    return subprocess.run(
        [shell, SNTP, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("python", [False, True])
def test_an_argument_of_256_bytes_is_refused_before_the_runtime_starts(
    fake_runtime, shell, python
):
    exe, mark = fake_runtime
    flag = ["--python"] if python else []
    for arg, nbytes in (("x" * 300, 300), ("\u00e9" * 128, 256)):  # 128 characters, 256 bytes
        r = sntp(flag + ["query", "127.0.0.1", "--timeout", arg], exe, shell)
        n = 4 + len(flag)
        assert r.returncode == 2 and r.stdout == "", r
        assert r.stderr == "sntp: argument {} is {} bytes long; at most 255 bytes\n".format(
            n, nbytes
        )
        assert not mark.exists()  # the runtime never started


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_255_bytes_reach_the_runtime_unchanged(fake_runtime, shell):
    exe, mark = fake_runtime
    long_arg = "\u00e9" * 127 + "x"  # 255 bytes
    r = sntp(["query", "127.0.0.1", "--timeout", "x" * 255, long_arg], exe, shell)
    assert r.returncode == 0, r
    lines = mark.read_text(encoding="utf-8").split("\n")
    assert lines[-6:] == ["query", "127.0.0.1", "--timeout", "x" * 255, long_arg, ""]


def test_the_unix_port_gets_a_clear_error_not_an_abort():
    if not os.path.exists(MICROPYTHON):
        pytest.skip("no unix-port MicroPython: run make setup")
    r = sntp(["query", "127.0.0.1:9", "--timeout", "x" * 256])
    assert r.returncode == 2 and "FATAL" not in r.stdout + r.stderr, r
    assert r.stderr.count("\n") == 1 and "256 bytes" in r.stderr
    # one byte less reaches the command line's own check of --timeout (no request is sent)
    r = sntp(["query", "127.0.0.1:9", "--timeout", "x" * 255])
    assert r.returncode == 2 and "FATAL" not in r.stdout + r.stderr, r
    assert r.stderr.startswith("sntp: --timeout wants seconds"), r
