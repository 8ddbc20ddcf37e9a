# tools/mipinstall.py: a package file installed into a folder the way mip resolves it
# (relative sources against the package file's folder, full addresses, deps), offline.
import calendar
import json
import os
import re
import subprocess
import sys
import time

import pytest
from mipinstall import MipError, install

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "mipinstall.py")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def files_under(folder):
    out = []
    for d, _, names in os.walk(folder):
        out += [os.path.relpath(os.path.join(d, n), folder) for n in names]
    return sorted(out)


def test_the_core_package_installs_every_listed_file_byte_for_byte(tmp_path):
    lines = []
    done = install(os.path.join(ROOT, "package.json"), str(tmp_path), out=lines.append)
    with open(os.path.join(ROOT, "package.json")) as f:
        urls = json.load(f)["urls"]
    assert done == [d for d, _ in urls] and len(lines) == len(urls)
    assert files_under(tmp_path) == sorted(d for d, _ in urls)
    for dest, src in urls:
        with open(os.path.join(ROOT, src), "rb") as a, open(tmp_path / dest, "rb") as b:
            assert a.read() == b.read(), dest


def test_sources_are_relative_to_the_package_files_folder_not_the_current_one(tmp_path):
    repo = tmp_path / "repo"
    write(str(repo / "pkg" / "x.py"), "X = 1\n")
    write(str(repo / "x.py"), "X = 'wrong one'\n")
    write(str(repo / "pkg" / "package.json"), json.dumps({"urls": [["a/x.py", "x.py"]]}))
    install(str(repo / "pkg" / "package.json"), str(tmp_path / "lib"), out=lambda s: None)
    assert (tmp_path / "lib" / "a" / "x.py").read_text() == "X = 1\n"
    # a folder means its package.json, as with mip
    install(str(repo / "pkg"), str(tmp_path / "lib2"), out=lambda s: None)
    assert (tmp_path / "lib2" / "a" / "x.py").read_text() == "X = 1\n"


def test_github_addresses_and_deps_resolve_into_the_checkout_named_by_repo(tmp_path):
    root = tmp_path / "checkout"
    write(str(root / "core.py"), "CORE = 1\n")
    write(str(root / "extra.py"), "EXTRA = 1\n")
    write(str(root / "package.json"), json.dumps({"urls": [["m/core.py", "core.py"]]}))
    extra = {
        "urls": [["m/extra.py", "github:me/proj/extra.py"]],
        "deps": [["github:me/proj", "main"]],
    }
    write(str(root / "package-extra.json"), json.dumps(extra))
    lib = tmp_path / "lib"
    done = install(
        "github:me/proj/package-extra.json", str(lib), ("me/proj",), str(root), lambda s: None
    )
    assert done == ["m/extra.py", "m/core.py"]  # the package's own files, then its deps
    assert files_under(lib) == ["m/core.py", "m/extra.py"]
    with pytest.raises(MipError, match="download"):  # another repository: never fetched
        install("github:me/proj/package-extra.json", str(lib), ("you/proj",), str(root))


def test_what_needs_the_network_or_leaves_the_target_is_refused(tmp_path):
    with pytest.raises(MipError, match="index"):
        install("aioble", str(tmp_path))
    bad = tmp_path / "bad.json"
    for doc, why in (
        ({"urls": [["../evil.py", "x.py"]]}, "leaves"),
        ({"urls": [["x.py", "https://example.invalid/x.py"]]}, "download"),
        ({"urls": [["x.py", "missing.py"]]}, "no such file"),
        ({"urls": [["x.py"]]}, "pairs"),
        ({"deps": [["aioble", "latest"]]}, "index"),
        ([1, 2], "object"),
    ):
        bad.write_text(json.dumps(doc))
        with pytest.raises(MipError, match=why):
            install(str(bad), str(tmp_path / "lib"), out=lambda s: None)
    assert not (tmp_path / "evil.py").exists()


def test_hashes_are_reported_and_skipped(tmp_path):
    write(str(tmp_path / "x.py"), "X = 1\n")
    doc = {"hashes": [["h.py", "abcd1234"]], "urls": [["x.py", "x.py"]]}
    write(str(tmp_path / "p.json"), json.dumps(doc))
    lines = []
    install(str(tmp_path / "p.json"), str(tmp_path / "lib"), out=lines.append)
    assert files_under(tmp_path / "lib") == ["x.py"]
    assert lines[0].startswith("Skipped:") and "h.py" in lines[0]


def test_the_command_line_says_why_in_one_line_and_exits_1(tmp_path):
    r = subprocess.run(
        [sys.executable, TOOL, "github:someone/else", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "mipinstall: github:someone/else" in r.stderr
    r = subprocess.run(
        [sys.executable, TOOL, os.path.join(ROOT, "package.json"), str(tmp_path / "lib")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and "Installing: " in r.stdout
    assert (tmp_path / "lib" / "sntp" / "__init__.mpy").is_file()


# ---- the README's application example, installed as mip would, on the unix port ----------------
def test_the_example_runs_from_a_mip_install_alone_and_sets_its_clock(tmp_path):
    from refserver import RefServer

    lib = tmp_path / "lib"
    install(os.path.join(ROOT, "package.json"), str(lib), out=lambda s: None)
    assert not (lib / "sntp" / "console.py").exists()  # the core only
    srv = RefServer(offset_ns=12_500_000_000).start()  # 12.5 s ahead of this machine
    env = dict(os.environ, MICROPYPATH="{}:.frozen".format(lib))  # .frozen: asyncio
    p = subprocess.Popen(
        [
            os.path.join(ROOT, ".venv", "bin", "micropython"),
            os.path.join(ROOT, "examples", "app.py"),
            "127.0.0.1:{}".format(srv.port),
        ],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = p.stdout.readline()
        if first == "sntp: sntp_state.json: not found, starting without saved state\n":
            first = p.stdout.readline()  # its first run: nothing saved yet
        second = p.stdout.readline()
        host_unix_s = time.time()
    finally:
        p.kill()
        err = p.communicate(timeout=10)[1]
        srv.stop()
    assert first == "sync: ok\n", (first, second, err)
    m = re.fullmatch(r"time: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}) UTC\n", second)
    assert m, (second, err)
    shown = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e6
    # the example's clock reads the server's time, 12.5 s ahead of the host's (a few ms late:
    # the line was read after it was printed)
    assert abs(shown - (host_unix_s + 12.5)) < 0.5, (shown - host_unix_s, second)
    assert len(srv.requests) >= 1
    saved = json.loads((tmp_path / "sntp_state.json").read_text())  # kept for its restart
    assert saved["v"] == 1 and saved["boots"] == 1 and len(saved["sent"]) >= 1, saved
