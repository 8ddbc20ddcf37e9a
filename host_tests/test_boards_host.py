# The board code's packaging and tooling, on CPython only: the package files (mip) and the
# manifests (freezing) list exactly the firmware modules, each in one package; the board code
# keeps to integer time, every deployed file compiles with mpy-cross and loads under the unix
# MicroPython, and the make targets that need a board refuse to run without one.
import json
import os
import subprocess
import sys

import manifestcheck  # tools/: the manifest language, as MicroPython's tool reads it
import pytest
from test_integer_time import float_uses

import sntp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
# The mip packages and their freeze manifests: the core (package.json, manifest.py) and each
# optional extra, name -> modules, in package-NAME.json and manifest-NAME.py. The console's
# package holds the console and the configuration schema, which only it and the board
# program's settings use.
EXTRAS = {"console": ("console.py",), "dns": ("dns.py",), "tz": ("tz.py",)}


def firmware_modules():
    """Every device module (make deploy puts them all on a board): all of firmware/sntp/."""
    names = os.listdir(os.path.join(ROOT, "firmware", "sntp"))
    return sorted(n for n in names if n.endswith(".py"))


def core_modules():
    """The core's modules: the device modules but the extras'."""
    extra = [m for mods in EXTRAS.values() for m in mods]
    return [m for m in firmware_modules() if m not in extra]


def board_files():
    out = []
    folder = os.path.join(ROOT, "boards", "common")  # one board.py and main.py for both boards
    out += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".py")]
    return out


def package_files():
    """{package file: its firmware modules} for every package*.json at the root."""
    out = {}
    for name in sorted(os.listdir(ROOT)):
        if name.startswith("package") and name.endswith(".json"):
            with open(os.path.join(ROOT, name)) as f:
                doc = json.load(f)
            assert set(doc) <= {"urls", "version", "deps"}, name
            assert doc["version"] == sntp.__version__, name
            dests = [u[0] for u in doc["urls"]]
            assert len(set(dests)) == len(dests), name
            for dest, src in doc["urls"]:
                assert dest.startswith("sntp/") and dest.endswith(".mpy"), (name, dest)
                assert src == "mpy/" + dest, (name, src)  # relative: mip resolves it so
                assert os.path.isfile(os.path.join(ROOT, src)), (name, src)
                assert os.path.isfile(os.path.join(ROOT, "firmware", dest[:-4] + ".py")), dest
            out[name] = sorted(d[len("sntp/") : -len(".mpy")] + ".py" for d in dests)
    return out


def frozen(*extras, **options):
    """The files a board manifest that includes this repository's manifest.py and requires
    the given extras freezes: {frozen path: source relative to the repository}, by
    tools/manifestcheck.py (the manifest language as MicroPython's tool reads it)."""
    lines = ["include({!r})".format(os.path.join(ROOT, "manifest.py"))]
    for e in extras:
        kw = "".join(", {}={!r}".format(k, v) for k, v in sorted(options.items()))
        lines.append('require("sntp-{}", library="sntp"{})'.format(e, kw if e == "board" else ""))
    return manifestcheck_run("\n".join(lines) + "\n")


def manifestcheck_run(text):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "manifest.py")
        with open(path, "w") as f:
            f.write(text)
        m = manifestcheck.check(path)
    return {t: os.path.relpath(src, ROOT) for t, src in m.files.items()}


def test_the_packages_together_hold_each_firmware_module_once():
    pk = package_files()
    # a new package is named in EXTRAS, with its manifest
    assert set(pk) == {"package.json"} | {"package-{}.json".format(e) for e in EXTRAS}
    every = sorted(m for files in pk.values() for m in files)
    assert every == firmware_modules()  # each module in exactly one package
    assert pk["package.json"] == core_modules()
    assert "rtc.py" in pk["package.json"]  # mip installs the board RTC adapter with the core
    with open(os.path.join(ROOT, "package.json")) as f:
        assert "deps" not in json.load(f)  # the core needs nothing else


def sntp_files(extras):
    mods = core_modules() + [m for e in extras for m in EXTRAS.get(e, ())]
    return {"sntp/" + m: "firmware/sntp/" + m for m in mods}


# Every combination a fleet builds: the core alone, with each extra, with both, and with the
# board program (which brings the console: its settings need sntp.config).
@pytest.mark.parametrize("extras", [(), ("console",), ("tz",), ("console", "tz")])
def test_each_freezing_combination_builds_exactly_its_modules(extras):
    assert frozen(*extras) == sntp_files(extras)


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_the_board_program_freezes_with_the_core_and_the_console(board):
    names = ("app.py", "board.py", "serialconsole.py", "settings.py", "wifi.py")
    glue = {n: "boards/common/" + n for n in names}  # the same files for both boards
    expected = dict(sntp_files(("console", "tz")), **glue)
    assert frozen("console", "tz", "board", board=board) == expected
    assert frozen("board", board=board) == dict(sntp_files(("console",)), **glue)
    assert frozen("board") == dict(sntp_files(("console",)), **glue)  # board= may be left out
    with pytest.raises(manifestcheck.ManifestError, match="board="):
        frozen("board", board="esp8266")  # a board the program knows no RTC of


def test_every_package_manifest_names_its_version_and_licence():
    names = sorted(os.listdir(os.path.join(ROOT, "manifests")))
    assert names == ["sntp", "sntp-board"] + ["sntp-" + e for e in sorted(EXTRAS)]
    m = manifestcheck.check(os.path.join(ROOT, "manifest.py"))
    for e in sorted(EXTRAS):
        m.require("sntp-" + e, library="sntp")
    m.require("sntp-board", library="sntp", board="rp2")
    seen = {p.name: p.metadata for p in m.packages[1:]}
    assert sorted(seen) == names
    for name, meta in seen.items():
        assert meta["license"] == "MIT" and meta["version"] == sntp.__version__, name
    root = [n for n in os.listdir(ROOT) if n.startswith("manifest") and n.endswith(".py")]
    assert root == ["manifest.py"]  # the extras are required by name, never include()d


def test_the_manifest_check_refuses_what_micropythons_tool_refuses(tmp_path):
    # include() runs a manifest in the includer's package context: the core and an extra
    # included side by side (the old README's advice) are two metadata() calls in one
    core = os.path.join(ROOT, "manifests", "sntp", "manifest.py")
    tz = os.path.join(ROOT, "manifests", "sntp-tz", "manifest.py")
    text = "add_library('sntp', {!r})\ninclude({!r})\ninclude({!r})\n".format(
        os.path.join(ROOT, "manifests"), core, tz
    )
    with pytest.raises(manifestcheck.ManifestError, match="Duplicate call to metadata"):
        manifestcheck_run(text)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "manifest.py").write_text("metadata(version='1')\nmodule('gone.py')\n")
    with pytest.raises(manifestcheck.ManifestError, match="Cannot stat .*gone.py"):
        manifestcheck.check(str(tmp_path / "pkg" / "manifest.py"))
    (tmp_path / "top.py").write_text("require('nothere', library='sntp')\n")
    with pytest.raises(manifestcheck.ManifestError, match="Unknown library"):
        manifestcheck.check(str(tmp_path / "top.py"))


def test_the_mip_packages_mpy_files_are_what_the_sources_compile_to(tmp_path):
    # mpy/sntp/ is committed for mip (make mip-mpy): each file must be the pinned
    # mpy-cross's output for its source now, and nothing else lies there
    committed = sorted(os.listdir(os.path.join(ROOT, "mpy", "sntp")))
    assert committed == sorted(m[:-3] + ".mpy" for m in firmware_modules())
    for m in firmware_modules():
        out = tmp_path / (m[:-3] + ".mpy")
        src = os.path.join(ROOT, "firmware", "sntp", m)
        cmd = [os.path.join(VENV_BIN, "mpy-cross"), "-O1", "-s", "sntp/" + m, "-o", str(out), src]
        subprocess.run(cmd, check=True, capture_output=True)
        with open(os.path.join(ROOT, "mpy", "sntp", m[:-3] + ".mpy"), "rb") as f:
            assert f.read() == out.read_bytes(), "mpy/sntp/{}.mpy is stale: make mip-mpy".format(
                m[:-3]
            )
        # bytecode only, .mpy version 6, 31-bit small ints: any port of MicroPython >= 1.19
        assert out.read_bytes()[:4] == b"M\x06\x00\x1f", m


def test_the_core_does_not_import_the_optional_packages():
    import re

    optional = {
        m[:-3] for name, files in package_files().items() if name != "package.json" for m in files
    }
    for m in package_files()["package.json"]:
        with open(os.path.join(ROOT, "firmware", "sntp", m)) as f:
            text = f.read()
        # an import whose try: falls back on ImportError works without the package (aio: dns)
        guarded = r"try:\n\s+from \.\w+ import .*\n(?:.*\n){0,3}?\s*except ImportError"
        text = re.sub(guarded, "", text)
        used = set(re.findall(r"^\s*from \.(\w+) import", text, re.M))
        for names in re.findall(r"^\s*from \. import ([\w, ]+)", text, re.M):
            used |= {x.strip() for x in names.split(",")}
        used |= set(re.findall(r"^\s*(?:from|import) sntp\.(\w+)", text, re.M))
        assert not used & optional, (m, used & optional)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_package_lists_exactly_its_modules(extra):
    with open(os.path.join(ROOT, "package-{}.json".format(extra))) as f:
        doc = json.load(f)
    mpy = [m[:-3] + ".mpy" for m in EXTRAS[extra]]
    assert doc["urls"] == [["sntp/" + m, "mpy/sntp/" + m] for m in mpy]
    assert doc["version"] == sntp.__version__ and set(doc) <= {"urls", "version", "deps"}


def test_tz_installs_and_runs_on_its_own(tmp_path):
    # what mip puts on a board from package-tz.json alone: lib/sntp/tz.py, nothing else
    (tmp_path / "lib" / "sntp").mkdir(parents=True)
    out = tmp_path / "lib" / "sntp" / "tz.mpy"
    src = os.path.join(ROOT, "firmware", "sntp", "tz.py")
    subprocess.run([os.path.join(VENV_BIN, "mpy-cross"), "-O1", "-o", str(out), src], check=True)
    script = "import sntp.tz; print(sntp.tz.parse('CET-1CEST,M3.5.0,M10.5.0/3').utcoffset(0))"
    r = micropython(script, str(tmp_path / "lib"), tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "3600", r.stderr


def test_the_board_program_on_a_core_only_firmware_reads_its_settings(tmp_path):
    # sntp with the core's modules only (as frozen alone): the board program starts and
    # reads its settings with sntp.schema (the core's), so its time service runs too
    lib = tmp_path / "lib"
    (lib / "sntp").mkdir(parents=True)
    for m in core_modules():
        with open(os.path.join(ROOT, "firmware", "sntp", m)) as src:
            (lib / "sntp" / m).write_text(src.read())
    script = (
        "import app, settings\n"
        "print(settings.load('/nonexistent/config.json'))\n"
        "import hil\n"
        "print('imported')\n"
    )
    path = "{}:{}:.frozen".format(lib, os.path.join(ROOT, "boards", "common"))
    r = micropython(script, path, ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "config: /nonexistent/config.json not found: no Wi-Fi, no NTP servers"
    assert lines[1].startswith("{") and "'wifi_ssid': ''" in lines[1], r.stdout
    assert lines[2:] == ["imported"], r.stdout


def micropython(script, path, cwd):
    """Run script under the unix-port MicroPython with MICROPYPATH=path, in cwd."""
    return subprocess.run(
        [os.path.join(VENV_BIN, "micropython"), "-c", script],
        env=dict(os.environ, MICROPYPATH=path),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("path", board_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_float_in_board_code(path):
    with open(path) as f:
        found = float_uses(f.read())
    assert found == [], "{}: {}".format(os.path.relpath(path, ROOT), found)


def test_the_float_scan_sees_board_code():
    assert len(board_files()) >= 7  # app board hil main serialconsole settings wifi


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_deployed_files_compile_and_load_under_micropython(arch, tmp_path):
    lib = tmp_path / "lib"
    (lib / "sntp").mkdir(parents=True)
    sources = [os.path.join(ROOT, "firmware", "sntp", m) for m in firmware_modules()]
    sources += [p for p in board_files() if not p.endswith(("/hil.py", "/main.py"))]
    for src in sources:
        dest = lib / "sntp" if "/firmware/" in src else lib
        out = dest / (os.path.basename(src)[:-3] + ".mpy")
        cmd = [os.path.join(VENV_BIN, "mpy-cross"), "-O1", "-march=" + arch, "-o", str(out), src]
        subprocess.run(cmd, check=True, capture_output=True)
    for main in (
        os.path.join(ROOT, "boards", "common", "main.py"),
        os.path.join(ROOT, "boards", "common", "hil.py"),
    ):
        cmd = [os.path.join(VENV_BIN, "mpy-cross"), "-o", str(tmp_path / "x.mpy"), main]
        subprocess.run(cmd, check=True, capture_output=True)
    # Bytecode runs on any architecture: the unix port imports what the board would.
    script = "import app, board, settings, wifi, sntp.aio, sntp.rtc; print(board.NAME)"
    r = micropython(script, "{}:.frozen".format(lib), tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "linux", r.stderr  # the port's name


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
    assert "boards/common/main.py :main.py" in r.stdout
    assert "config.example.json :config.json" in r.stdout
    assert "boards/common/hil.py" not in r.stdout.split("mpremote")[0]


def test_make_deploy_refuses_an_unknown_board():
    r = make("deploy", "BOARD=esp8266", "PORT=/dev/null")
    assert r.returncode == 2 and "esp32 or rp2" in r.stderr


def test_rtc_make_picks_the_board_rtc_by_platform(monkeypatch):
    from sntp import rtc

    class FakeMachineRTC:
        def datetime(self, dt=None):
            return (2026, 11, 30, 0, 9, 0, 0, 0)

    class Machine:
        RTC = FakeMachineRTC

    monkeypatch.setitem(sys.modules, "machine", Machine)
    for platform, res in (("esp32", rtc.US_RESOLUTION), ("rp2", rtc.SECOND_RESOLUTION)):
        monkeypatch.setattr(sys, "platform", platform)
        clock = rtc.make()
        assert isinstance(clock, rtc.BoardRTC) and clock.resolution_us == res, platform
        assert isinstance(clock.rtc, FakeMachineRTC)
    for platform in ("linux", "darwin", "webassembly"):
        monkeypatch.setattr(sys, "platform", platform)
        clock = rtc.make()
        assert type(clock) is rtc.ProcessClock, platform


FAKE_MPREMOTE = """#!{python}
# a stand-in for mpremote: records its arguments, one JSON list a call
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + chr(10))
"""


def deploy_with_fake_mpremote(tmp_path, *args):
    log = tmp_path / "mpremote.log"
    fake = tmp_path / "mpremote"
    fake.write_text(FAKE_MPREMOTE.format(python=os.path.join(VENV_BIN, "python3"), log=str(log)))
    fake.chmod(0o755)
    r = make("deploy", "MPREMOTE=" + str(fake), *args)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return r, calls


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_make_deploy_sends_valid_python_and_removes_stale_modules(board, tmp_path):
    r, calls = deploy_with_fake_mpremote(
        tmp_path, "BOARD=" + board, "PORT=/dev/ttyFAKE", "CONFIG=boards/common/config.example.json"
    )
    assert r.returncode == 0, r.stderr
    assert len(calls) == 1, calls
    argv = calls[0]
    assert argv[:3] == ["connect", "/dev/ttyFAKE", "exec"]
    copied = []
    for a in argv[4:]:
        if a == "+":
            copied.append([])
        else:
            copied[-1].append(a)
    assert copied[0] == ["fs", "cp", "-r", "build/mpy-{}/lib/sntp".format(board), ":lib/"]
    glue = sorted(os.path.basename(p) for p in copied[1][2:-1])
    assert copied[1][:2] == ["fs", "cp"] and copied[1][-1] == ":lib/"
    assert glue == [
        "app.mpy",
        "board.mpy",
        "serialconsole.mpy",
        "settings.mpy",
        "wifi.mpy",
    ]
    assert copied[2] == ["fs", "cp", "boards/common/main.py", ":main.py"]
    assert copied[3] == ["fs", "cp", "boards/common/config.example.json", ":config.json"]
    assert copied[4] == ["reset"]
    built = sorted(os.listdir(os.path.join(ROOT, "build", "mpy-" + board, "lib", "sntp")))
    assert built == [m[:-3] + ".mpy" for m in firmware_modules()]

    # The exact text mpremote would send, run by the unix-port MicroPython in a folder that
    # stands for the board's filesystem: an old install of .py files and a newer of .mpy.
    board_fs = tmp_path / "board"
    (board_fs / "lib" / "sntp").mkdir(parents=True)
    stale = [
        "lib/sntp/policy.py",
        "lib/sntp/policy.mpy",
        "lib/sntp/gone.py",
        "lib/app.py",
        "lib/wifi.mpy",
        "lib/boardrtc.mpy",  # glue of an earlier version, now sntp/rtc
    ]
    kept = ["lib/other.py", "lib/sntp/notes.txt", "main.py"]
    for p in stale + kept:
        (board_fs / p).write_text("x = 1\n")
    code = argv[3]
    for _ in range(2):  # the second time on a clean board
        out = micropython(code, "", board_fs)  # the board's own modules only
        assert out.returncode == 0, out.stderr
        assert sorted(
            str(p.relative_to(board_fs)) for p in board_fs.rglob("*") if p.is_file()
        ) == sorted(kept)
    # and on an empty board it makes lib/sntp
    empty = tmp_path / "empty"
    empty.mkdir()
    out = micropython(code, "", empty)
    assert out.returncode == 0 and (empty / "lib" / "sntp").is_dir(), out.stderr
    assert "removed 0 old files" in out.stdout
    assert "deploy: done" in r.stdout and "remove the old lib/sntp" in r.stdout


def test_make_deploy_without_config_keeps_the_boards(tmp_path):
    r, calls = deploy_with_fake_mpremote(tmp_path, "BOARD=esp32", "PORT=/dev/ttyFAKE")
    assert r.returncode == 0, r.stderr
    assert ":config.json" not in calls[0] and "config.json left as it is" in r.stdout
