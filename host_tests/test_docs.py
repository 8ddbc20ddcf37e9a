# The documents hold: the README is short, its example is examples/app.py and its walkthrough
# runs as written (leaving no file in the repository and no server running); every rule the
# tree cites has its heading in docs/rules.md; every constant docs/design.md quotes is the
# code's value; no document links to a file (or a heading) that is not there; nothing refers to
# what lies outside the repository.
import os
import re
import socket
import subprocess
from fractions import Fraction

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIS = os.path.abspath(__file__)
DOCS = sorted(
    [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "boards", "unix", "README.md")]
    + [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))
       if n.endswith(".md")]
)  # fmt: skip
SECRET = "correct horse battery staple"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def tree_files(exts=(".py", ".md", ".mjs", ".toml", ".ini", ".json")):
    out = []
    for top in ("firmware", "tools", "host_tests", "boards", "docs", "examples"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            out += [os.path.join(dirpath, n) for n in names if n.endswith(exts)]
    out += [os.path.join(ROOT, n) for n in ("README.md", "Makefile", "pyproject.toml")]
    return [p for p in out if os.path.abspath(p) != THIS and "node_modules" not in p]


def between(text, begin, end):
    a = text.index(begin) + len(begin)
    return text[a : text.index(end, a)]


def test_the_readme_is_short():
    n = len(read(os.path.join(ROOT, "README.md")).splitlines())
    assert n <= 200, "README.md has {} lines".format(n)


def test_the_readme_example_is_examples_app_py():
    path = os.path.join(ROOT, "examples", "app.py")
    if not os.path.exists(path):
        pytest.skip("examples/app.py is not in the tree yet")
    block = between(read(os.path.join(ROOT, "README.md")), "<!-- example:examples/app.py -->\n",
                    "<!-- /example -->")  # fmt: skip
    assert block == "```python\n" + read(path) + "```\n"


# ---- rules --------------------------------------------------------------------------------
CITATION = re.compile(r"\b[Rr]ules? (\d+(?:(?:, | and | or |-)\d+)*)")
INVARIANT = re.compile(r"\bR(\d+)\b")


def cited():
    """{'rule 5': ['firmware/sntp/policy.py', ...], 'R1': [...]} over the tree."""
    out = {}
    for path in tree_files():
        text = read(path)
        where = os.path.relpath(path, ROOT)
        for m in CITATION.finditer(text):
            nums = re.split(r", | and | or ", m.group(1))
            for n in nums:
                lo, _, hi = n.partition("-")
                for k in range(int(lo), int(hi or lo) + 1):
                    out.setdefault("rule {}".format(k), set()).add(where)
        if path.endswith((".py", ".md")):
            for m in INVARIANT.finditer(text):
                out.setdefault("R" + m.group(1), set()).add(where)
    return out


def rule_headings():
    heads = set()
    for line in read(os.path.join(ROOT, "docs", "rules.md")).splitlines():
        m = re.match(r"## (Rule (\d+)|R(\d+)):", line)
        if m:
            heads.add("rule " + m.group(2) if m.group(2) else "R" + m.group(3))
    return heads


def test_every_rule_cited_in_the_tree_has_its_heading_in_docs_rules_md():
    found = cited()
    assert len(found) >= 20  # the scan sees the tree (rules 1-17, R1-R7)
    missing = {k: sorted(v) for k, v in found.items() if k not in rule_headings()}
    assert missing == {}


def test_the_rule_scan_finds_a_citation_that_does_not_resolve(tmp_path):
    # the check itself: a made-up number is reported
    assert "rule 99" not in rule_headings()
    m = CITATION.search("backs off (rules 4 and 16, rule 99)")
    assert m and m.group(1) == "4 and 16"


def test_every_rule_says_where_it_comes_from():
    text = read(os.path.join(ROOT, "docs", "rules.md"))
    sections = re.split(r"\n## ", text)[1:]
    for s in sections:
        if s.startswith("Rule"):
            source = r"Source:\s+(RFC\s+\d+|the\s+(IETF|NTP\s+Pool))"
            assert re.search(source, s), s.splitlines()[0]


# ---- constants ------------------------------------------------------------------------------
QUOTED = re.compile(r"`([A-Z][A-Z0-9_]{2,})` \(([\d,.]+) ?(us|ms|s|min|h|d|ppm|ppb)?\)")
UNIT = {"us": 1, "ms": 10**3, "s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6,
        "d": 86400 * 10**6, "ppb": 1, "ppm": 1000, None: 1}  # fmt: skip
SUFFIX = {"_US": "us", "_MS": "ms", "_S": "s", "_PPB": "ppb", "_PPM": "ppm"}


def constant(name):
    import importlib

    for mod in ("policy", "sources", "vote", "state", "schema", "keeper", "discipline",
                "exchange", "client", "service", "console", "config", "net", "timestamp", "aio",
                "dns"):  # fmt: skip
        m = importlib.import_module("sntp." + mod)
        for n in (name, "_" + name):  # a private const() is an attribute on CPython too
            if hasattr(m, n):
                return getattr(m, n)
    raise AssertionError("{} is in no firmware module".format(name))


def test_constants_quoted_in_the_docs_are_the_codes():
    seen = 0
    for path in DOCS:
        for m in QUOTED.finditer(read(path)):
            name, value, unit = m.group(1), Fraction(m.group(2).replace(",", "")), m.group(3)
            code = constant(name)
            own = next((u for s, u in SUFFIX.items() if name.endswith(s)), None)
            assert value * UNIT[unit] == code * UNIT[own], "{}: {} says {} {}, the code {}".format(
                os.path.relpath(path, ROOT), name, m.group(2), unit or "", code
            )
            seen += 1
    assert seen >= 20


# ---- links and references -------------------------------------------------------------------
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"`((?:firmware|tools|boards|host_tests|docs|examples)/[^`\s]*)`")


def slug(heading):
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path):
    return {slug(line.lstrip("#")) for line in read(path).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_dangling_links_or_paths(path):
    text = read(path)
    here = os.path.dirname(path)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(here, file)) if file else path
        if not os.path.exists(dest):
            bad.append(target)
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            bad.append(target)
    for p in PATH.findall(text):
        p = p.rstrip(".,:;")
        if any(c in p for c in "*$") or re.search(r"[A-Z]{4,}", p):
            continue  # a pattern (lib/sntp/*.py) or a placeholder (boards/BOARD/main.py)
        if not os.path.exists(os.path.join(ROOT, p.split(":")[0])):
            bad.append(p)
    assert bad == []


FORBIDDEN = re.compile(
    r"micropython-pitfalls|client-rules|house-style|seeds/|shared/reference|discipline issue"
    r"|\b[Ii]ssues? \d"
)
# in the documents only: the board module has no time_us() (the board program's Board does)
FORBIDDEN_IN_DOCS = re.compile(r"board\.time_us")


def test_nothing_refers_to_what_is_not_in_the_repository():
    found = []
    for path in tree_files():
        for i, line in enumerate(read(path).splitlines(), 1):
            if FORBIDDEN.search(line) or (path.endswith(".md") and FORBIDDEN_IN_DOCS.search(line)):
                found.append("{}:{}: {}".format(os.path.relpath(path, ROOT), i, line.strip()))
    assert found == []


# ---- the walkthrough ------------------------------------------------------------------------
def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def git_status():
    r = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--ignored"],
                       capture_output=True, text=True)  # fmt: skip
    return r.stdout if r.returncode == 0 else None


def test_the_readme_walkthrough_runs_as_written():
    script = between(read(os.path.join(ROOT, "README.md")), "<!-- walkthrough -->\n```sh\n",
                     "```\n<!-- /walkthrough -->")  # fmt: skip
    assert script.count("12300") >= 2
    port = free_port()
    before = git_status()
    env = dict(os.environ, MICROPYTHON=os.path.join(ROOT, ".venv", "bin", "micropython"))
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    r = subprocess.run(["bash", "-e", "-c", script.replace("12300", str(port))], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = r.stdout
    assert "provisioned and read back" in out
    assert "(not valid: before" in out and "clock set: " in out and "(valid)" in out
    assert out.index("(not valid") < out.index("clock set") < out.index("0.acme.pool.ntp.org")
    assert SECRET not in out + r.stderr
    assert git_status() == before  # nothing left in the repository, ignored files included
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))  # the reference server it started is gone
    finally:
        s.close()


# ---- claims about the code that drifted once ----------------------------------------------
def test_the_footprint_docs_list_the_cores_modules_as_packaged():
    import json

    with open(os.path.join(ROOT, "package.json")) as f:
        core = sorted(os.path.basename(d).split(".")[0] for d, _ in json.load(f)["urls"])
    row = [x for x in read(os.path.join(ROOT, "docs", "footprint.md")).splitlines()
           if x.startswith("| sync core |")]  # fmt: skip
    assert len(row) == 1
    assert row[0].rstrip(" |").rsplit("`", 2)[-2].split() == core


def test_the_reliability_docs_say_what_the_state_file_keeps():
    # the keys it names are the policy's persisted state; nothing says a hold is lost
    import sys

    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    from sntp import policy, schema, state

    text = read(os.path.join(ROOT, "docs", "reliability.md"))
    claim = between(text, "- restarts (", "\n- ")
    named = re.findall(r"\(`(\w+)`\)", claim)
    assert sorted(named) == ["denied", "rate"], claim
    st = state.write(policy.Policy(schema.Config.from_dict({"zone": "acme"}), lambda n: 0))
    assert set(named) | {"sent"} <= set(st)
    for doc in DOCS:
        stale = re.search(r"not persisted|sends are dated by the wall clock", read(doc))
        assert stale is None, (doc, stale and stale.group(0))


def test_the_licence_is_mit_and_named_where_it_is_shipped():
    assert read(os.path.join(ROOT, "LICENSE")).startswith("MIT License\n")
    assert "[MIT licence](LICENSE)" in read(os.path.join(ROOT, "README.md"))


def test_the_examples_own_command_runs_as_written(tmp_path):
    # examples/app.py's header gives the command for a computer: run from a folder laid out
    # as the repository (its firmware, examples and .venv), with a reference server of ours
    # in place of the one it names
    import sys
    import time

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from refserver import RefServer

    text = read(os.path.join(ROOT, "examples", "app.py"))
    m = re.search(r"^#   (MICROPYPATH=(\S+) (\S+) examples/app\.py) (\S+)$", text, re.M)
    assert m, "examples/app.py does not say how to run it on a computer"
    for d in ("firmware", "examples", ".venv"):
        os.symlink(os.path.join(ROOT, d), str(tmp_path / d))
    srv = RefServer().start()
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    cmd = "{} 127.0.0.1:{}".format(m.group(1), srv.port)
    p = subprocess.Popen(
        cmd, shell=True, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        lines = []
        while len(lines) < 2 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if line and not line.startswith("sntp: "):  # the first run's "not found"
                lines.append(line)
    finally:
        p.kill()
        p.wait()
        srv.stop()
    assert lines[0] == "sync: ok\n", lines
    assert re.fullmatch(r"time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC\n", lines[1]), lines
