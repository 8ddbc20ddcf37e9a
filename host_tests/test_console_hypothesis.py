# Random and hostile console input, property-based (hypothesis): thousands of lines (commands
# with random keys and values, binary, huge lines, cut UTF-8, line ends and control characters
# injected into values) never change the configuration file unless a valid set (or unset)
# was followed by a save that answered ok; every reply has the protocol's shape; the
# passphrase never appears. In process on CPython, then the same kind of input through the
# unix-port MicroPython console, whose replies must match CPython's word for word.
import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from test_console_pty import MICROPYTHON, ROOT, SECRET

from sntp import config
from sntp.console import MAX_LINE, Console, serve

# hypothesis keeps its caches in build/, not in a .hypothesis folder of the work tree
set_hypothesis_home_dir(os.path.join(ROOT, "build", "hypothesis"))

KEYS = list(config.KEYS)
# keys whose rules use str.isdigit()/isalpha(): both runtimes agree on ASCII only (see the
# report on config.parse_value and policy.parse_server); free text may be any Unicode
ASCII_KEYS = ("zone", "servers", "factory_server", "accuracy_ms", "poll_min_s", "poll_max_s")
GOOD = {
    "zone": ["acme", "ACME", "vendor-1"],
    "servers": ["ntp.example.com", "a.example,b.example:1123"],
    "factory_server": ["192.0.2.1", "factory.example:123", "[::1]:123"],
    "wifi_ssid": ["net", "caf\u00e9 \u2603", '"  spaced  "'],
    "wifi_pass": [SECRET, "another secret"],
    "accuracy_ms": ["1", "100", "60000"],
    "poll_min_s": ["64", "2048"],
    "poll_max_s": ["86400"],
    "log_level": ["debug", "warn"],
    "country": ["de", "SE"],
    "tz": ["CET-1CEST,M3.5.0,M10.5.0/3", "<+0330>-3:30", "EST5EDT"],
    "wdt_s": ["2", "8"],
}
INJECT = ["\n", "\r", "\r\n", "\x00", "\x1b", "\x7f", "\nsave", "\rsave\n", "\x85", "\u2028"]


def ascii_text(max_size=40):
    return st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=max_size)


def value_for(key):
    base = ascii_text() if key in ASCII_KEYS else st.text(max_size=40)
    good = st.sampled_from(GOOD.get(key, ["x"]))
    injected = st.tuples(good, st.sampled_from(INJECT), good).map(lambda t: "".join(t))
    return st.one_of(good, base, injected)


@st.composite
def command(draw):
    verb = draw(st.sampled_from(["set", "set", "set", "unset", "get", "save", "discard", "show"]))
    key = draw(st.one_of(st.sampled_from(KEYS), ascii_text(12)))
    if verb == "set":
        k = key if key in config.SCHEMA else "zone"
        text = "set {} {}".format(key, draw(value_for(k)))
    elif verb in ("unset", "get"):
        text = "{} {}".format(verb, key)
    else:
        text = verb
    spaces = draw(st.sampled_from(["", " ", "   "]))
    return (spaces + text + spaces).encode("utf-8")


def cut_utf8(data):
    return data[:-1] if data and data[-1] >= 0x80 else data + b"\xe2\x82"


good_set = st.sampled_from(KEYS).flatmap(
    lambda k: st.sampled_from(GOOD[k]).map(lambda v: "set {} {}".format(k, v).encode())
)
hostile = st.one_of(
    good_set,
    command(),
    command(),
    command().map(cut_utf8),
    st.binary(max_size=300),
    st.integers(MAX_LINE - 2, 20_000).map(lambda n: b"set zone " + b"a" * n),
    st.sampled_from([b"save", b"save", b"discard", b"exit", b"reboot", b"", b"help"]),
)
ending = st.sampled_from([b"\n", b"\r\n", b"", b"\n\n"])


def line_is_save(raw):
    text = raw.rstrip(b"\n").rstrip(b"\r").strip(b" ")
    return text == b"save"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class Model:
    """What the file should hold: the last values a save answered ok for."""

    def __init__(self, path):
        self.path = path
        self.saved = config.load(path, lambda line: None)
        self.bytes = read(path)

    def after(self, con, raw, reply):
        assert reply and (reply[-1] == "ok" or reply[-1].startswith("err ")), reply
        for line in reply[:-1]:
            assert line != "ok" and not line.startswith("err"), reply
            assert "\n" not in line and "\r" not in line
        assert SECRET not in "\n".join(reply) and "another secret" not in "\n".join(reply)
        now = read(self.path)
        if now != self.bytes:
            # only a save that answered ok, of changes made by sets that answered ok
            assert line_is_save(raw) and reply[-1] == "ok", (raw[:60], reply)
            assert reply[0].startswith("saved ")
            assert con.pending != self.saved  # something had really changed
            loaded = config.load(self.path, lambda line: None)
            assert loaded == con.pending
            self.saved, self.bytes = loaded, now
        assert con.saved == self.saved


def fresh_config(tmp_path_factory, doc):
    d = tmp_path_factory.mktemp("hyp")
    path = str(d / "config.json")
    assert config.save(path, doc)
    return path


START = dict(config.defaults(), zone="start", wifi_pass=SECRET, wifi_ssid="net")


@settings(
    max_examples=250,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(st.tuples(hostile, ending), min_size=20, max_size=60))
def test_random_lines_change_the_file_only_through_a_valid_set_and_save(tmp_path_factory, lines):
    path = fresh_config(tmp_path_factory, START)
    model = Model(path)
    con = Console(path, reboot=lambda: None, warn=lambda line: None)
    for body, end in lines:
        raw = body + end
        reply = con.handle(raw)
        model.after(con, raw, reply)
        con.run_after()
    assert config.load(path, lambda line: None) == model.saved


@settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(st.tuples(hostile, ending), min_size=1, max_size=30),
    size=st.integers(1, 700),
)
def test_a_random_stream_in_random_pieces_keeps_the_same_rule(tmp_path_factory, lines, size):
    """Through serve(): the stream is cut into lines at each \\n (a line end injected into a
    value makes two commands, each judged on its own) and read in pieces of any size."""
    path = fresh_config(tmp_path_factory, START)
    model = Model(path)
    con = Console(path, warn=lambda line: None)
    data = b"".join(b + e for b, e in lines)
    pieces = []
    for i in range(0, len(data), size):
        part = data[i : i + size]
        while b"\n" in part[:-1]:
            j = part.index(b"\n")
            pieces.append(part[: j + 1])
            part = part[j + 1 :]
        pieces.append(part)
    stream_lines = data.split(b"\n")
    replies = [[]]

    def write(text):
        assert text.endswith("\n")
        replies[-1].append(text[:-1])
        if text[:-1] == "ok" or text.startswith("err"):
            raw = stream_lines[len(replies) - 1]
            model.after(con, raw, replies[-1])
            replies.append([])

    serve(con, lambda: pieces.pop(0) if pieces else b"", write)
    assert replies[-1] == []
    answered = len(replies) - 1
    expected = len(stream_lines) - (1 if data.endswith(b"\n") or not data else 0)
    if con.done:
        assert answered <= expected
    else:
        assert answered == expected


# ---- the same input under MicroPython: identical replies ---------------------------------------
DRIVER = """
import sys
from sntp.console import Console
con = Console(sys.argv[1], reboot=lambda: None, warn=lambda line: None)
data = open(sys.argv[2], "rb").read()
for line in data.split(b"\\x00SEP\\x00"):
    for text in con.handle(line):
        print(text)
    print("\\x01")  # a control character: never in a reply, so a safe separator
    con.run_after()
"""


def run_micropython(path, lines, tmp):
    driver = os.path.join(tmp, "driver.py")
    with open(driver, "w") as f:
        f.write(DRIVER)
    feed = os.path.join(tmp, "lines.bin")
    with open(feed, "wb") as f:
        f.write(b"\x00SEP\x00".join(lines))
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "firmware"))
    p = subprocess.run([MICROPYTHON, driver, path, feed], capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode("utf-8").split("\x01\n")
    # split at \n only: str.splitlines() would also split at U+0085, U+2028 and others,
    # which a value may hold (they are not control characters of the protocol)
    return [chunk[:-1].split("\n") if chunk else [] for chunk in out[:-1]]


@settings(
    max_examples=10,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # once found: U+0085 and U+2028 are line breaks to str.splitlines(), not to us
    lines=[(b"set wifi_ssid \xc2\x85", b"\n"), (b"set wifi_ssid a\xe2\x80\xa8b", b"\n")]
    + [(b"show", b"\n"), (b"save", b"\n"), (b"get wifi_ssid", b"\r\n")]
)
@given(lines=st.lists(st.tuples(hostile, ending), min_size=100, max_size=150))
def test_micropython_answers_random_lines_exactly_as_cpython(tmp_path_factory, lines):
    raws = [b + e for b, e in lines if b"\x00SEP\x00" not in b + e]
    mp_path = fresh_config(tmp_path_factory, START)
    py_path = fresh_config(tmp_path_factory, START)
    con = Console(py_path, reboot=lambda: None, warn=lambda line: None)
    expected = []
    for raw in raws:
        expected.append([t.replace(py_path, "PATH") for t in con.handle(raw)])
        con.run_after()
    got = run_micropython(mp_path, raws, os.path.dirname(mp_path))
    got = [[t.replace(mp_path, "PATH") for t in reply] for reply in got]
    assert len(got) == len(expected)
    for raw, a, b in zip(raws, got, expected, strict=True):
        assert a == b, raw[:80]
    with open(mp_path) as f:
        assert config.validate(json.load(f))[0] == config.load(py_path, lambda line: None)
    assert SECRET not in repr(got)


def test_hypothesis_is_the_pinned_version():
    import hypothesis

    with open(os.path.join(ROOT, "requirements-dev.txt")) as f:
        pins = [line.strip() for line in f if line.startswith("hypothesis==")]
    assert pins == ["hypothesis==" + hypothesis.__version__], pins
    assert sys.implementation.name == "cpython"
