# runs-on: both
# The provisioning console's core (firmware/sntp/console.py), I/O-free, on both runtimes:
# every command and every error path, the passphrase never in a reply, a save cut by a power
# failure at every byte (and around the rename) leaving the old or the new configuration.
import json
import os
import sys

from fakes import (
    SERVER,
    START,
    FakeNet,
    LoopClock,
    StepRTC,
    exists,
    fresh_path,
    honest,
    rand,
    reply,
)

from sntp import config, console, service, store
from sntp.console import MAX_LINE, Console, serve
from sntp.timestamp import NTP_1970_S, format_utc

SECRET = "correct horse battery staple"


def fresh(name):
    # one folder per runtime: both runtimes' runs may share the work tree at once
    return fresh_path("test_console-" + sys.implementation.name, name)


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def make(name="c.json", doc=None, **kw):
    path = fresh(name)
    if doc is not None:
        with open(path, "w") as f:
            f.write(json.dumps(doc))
    warnings = []
    kw.setdefault("warn", warnings.append)
    return Console(path, **kw), path, warnings


def final(lines):
    return lines[-1]


def check_shape(lines):
    """A reply: at least one line, the last ok or err, no other line ok or err."""
    assert lines, lines
    assert lines[-1] == "ok" or lines[-1].startswith("err "), lines
    for line in lines[:-1]:
        assert line != "ok" and not line.startswith("err"), lines
        assert "\n" not in line and "\r" not in line, lines


def ask(con, text):
    out = con.handle(text.encode() if isinstance(text, str) else text)
    check_shape(out)
    return out


# ---- commands ------------------------------------------------------------------------------
def test_help_lists_every_command_and_every_key_with_its_rule():
    con, _, _ = make()
    out = ask(con, "help")
    assert out[-1] == "ok"
    text = "\n".join(out)
    for name, _, _ in console.COMMANDS:
        assert "\n  " + name in text, name
    for k in config.KEYS:
        assert "\n  " + k + " " in text and console.rule(k) in text, k
    assert ask(con, "help me")[-1].startswith("err ")


def test_show_and_get_the_defaults():
    con, _, warnings = make()
    out = ask(con, "show")
    assert out[:-1] == [k + "=" + config.text(k, config.defaults()[k]) for k in config.KEYS]
    assert "accuracy_ms=100" in out and "zone=" in out and "log_level=info" in out
    assert ask(con, "get accuracy_ms") == ["accuracy_ms=100", "ok"]
    assert warnings == []  # a missing file is the defaults, silently


def test_set_validates_normalizes_and_save_writes_the_file():
    con, path, _ = make()
    assert ask(con, "set zone ACME") == ["zone=acme", "ok"]
    assert ask(con, "set servers ntp1.example.com, ntp2.example.com:1123")[0] == (
        "servers=ntp1.example.com,ntp2.example.com:1123"
    )
    assert ask(con, "set factory_server 192.0.2.7") == ["factory_server=192.0.2.7", "ok"]
    assert ask(con, "set wifi_ssid Factory Net 2") == ["wifi_ssid=Factory Net 2", "ok"]
    assert ask(con, "set accuracy_ms 50") == ["accuracy_ms=50", "ok"]
    assert ask(con, "set poll_min_s 2048")[-1] == "ok"
    assert ask(con, "set poll_max_s 86400")[-1] == "ok"
    assert ask(con, "set log_level debug")[-1] == "ok"
    assert ask(con, "set country de") == ["country=DE", "ok"]
    assert ask(con, "set wifi_pass " + SECRET) == ["wifi_pass=" + config.MASK, "ok"]
    show = ask(con, "show")
    assert show[-2].startswith("unsaved changes: zone, servers") and show[-1] == "ok"
    assert not exists(path)  # nothing is written before save
    out = ask(con, "save")
    assert out[-1] == "ok" and out[0].startswith("saved zone, servers")
    values = config.load(path)
    assert values["zone"] == "acme" and values["country"] == "DE"
    assert values["servers"] == ["ntp1.example.com", "ntp2.example.com:1123"]
    assert values["wifi_pass"] == SECRET and values["poll_max_s"] == 86400
    assert "unsaved" not in "\n".join(ask(con, "show"))
    assert not exists(path + ".tmp")


def test_a_site_server_may_be_a_private_address():
    # rule 3 is about public addresses; a factory or site server has a private,
    # link-local, unique-local or loopback one (configured here, never asked)
    con, path, _ = make()
    site = "192.168.1.10,10.2.3.4:1123,172.31.0.1,[fd12::1]:123"
    assert ask(con, "set servers " + site) == ["servers=" + site, "ok"]
    assert ask(con, "set servers 169.254.0.9,fe80::1,127.0.0.1")[-1] == "ok"
    assert ask(con, "set servers 172.32.0.1") == [
        "err 172.32.0.1: a public IP address; give a name, or a private, link-local,"
        " unique-local or loopback address (rule 3)"
    ]
    out = ask(con, "save")
    assert out[-1] == "ok"
    assert config.load(path)["servers"] == ["169.254.0.9", "fe80::1", "127.0.0.1"]


def test_every_bad_value_is_refused_and_changes_nothing():
    con, path, _ = make()
    bad = [
        ("zone", "-acme"),
        ("zone", "acme.example"),
        ("servers", "192.0.2.1"),  # rule 3: no public IP address
        ("servers", "ntp.example,2001:db8::1"),
        ("servers", "[::ffff:8.8.8.8]:123"),
        ("tz", "UTC"),  # POSIX wants an offset: UTC0
        ("servers", "a.example,b.example,c.example,d.example,e.example"),
        ("servers", "bad name!"),
        ("factory_server", "host:99999"),
        ("wifi_ssid", "x" * 33),
        ("wifi_pass", "short"),
        ("wifi_pass", "x" * 64),
        ("accuracy_ms", "0"),
        ("accuracy_ms", "1.5"),
        ("accuracy_ms", "-3"),
        ("poll_min_s", "63"),
        ("poll_max_s", "131073"),
        ("log_level", "verbose"),
        ("country", "DEU"),
    ]
    before = ask(con, "show")
    for key, value in bad:
        out = ask(con, "set {} {}".format(key, value))
        assert len(out) == 1 and out[0].startswith("err "), (key, value, out)
    assert ask(con, "show") == before
    assert ask(con, "save") == ["no changes to save", "ok"] and not exists(path)


def test_a_number_out_of_range_or_not_a_number_says_what_is_accepted():
    con, _, _ = make()
    for text in ("-5", "0", "60001", "1.5", "fast"):
        out = ask(con, "set accuracy_ms " + text)
        assert out == ["err accuracy_ms must be 1 to 60000"] or out == [
            "err accuracy_ms must be a whole number, 1 to 60000"
        ], (text, out)
    assert ask(con, "set poll_min_s -64") == ["err poll_min_s must be 64 to 131072"]


def test_wrong_arguments_and_unknown_commands_get_err():
    con, path, _ = make()
    for line in (
        "set",
        "set zone",
        "set nokey value",
        "get",
        "get nokey",
        "get zone extra",
        "unset",
        "unset nokey",
        "unset zone extra",
        "show all",
        "save now",
        "discard all",
        "status now",
        "query",
        "query a b",
        "query bad!host",
        "sync now",
        "reboot now",
        "exit now",
        "frobnicate",
        "SET zone acme",
        "  set",
    ):
        out = ask(con, line)
        assert len(out) == 1 and out[0].startswith("err "), (line, out)
    assert ask(con, "") == ["ok"] and ask(con, "   ") == ["ok"]
    assert con.changed() == [] and not exists(path)


def test_quotes_keep_leading_and_trailing_spaces_and_extra_spaces_are_ignored():
    con, path, _ = make()
    assert ask(con, 'set wifi_ssid "  my net "') == ["wifi_ssid=  my net ", "ok"]
    assert ask(con, "   set    zone    Acme   ") == ["zone=acme", "ok"]
    assert ask(con, 'set wifi_pass " spaced passphrase "')[-1] == "ok"
    assert ask(con, "save")[-1] == "ok"
    v = config.load(path)
    assert v["wifi_ssid"] == "  my net " and v["wifi_pass"] == " spaced passphrase "


def test_unset_discard_and_save_without_changes():
    con, path, _ = make()
    ask(con, "set zone acme")
    ask(con, "set accuracy_ms 20")
    assert ask(con, "save")[-1] == "ok"
    saved = read_bytes(path)
    assert ask(con, "unset accuracy_ms") == ["accuracy_ms=100", "ok"]
    assert ask(con, "set zone other")[-1] == "ok"
    assert ask(con, "discard") == ["dropped 2 changes", "ok"]
    assert ask(con, "get zone") == ["zone=acme", "ok"]
    assert ask(con, "save") == ["no changes to save", "ok"]
    assert read_bytes(path) == saved
    assert ask(con, "unset zone")[-1] == "ok" and ask(con, "save")[-1] == "ok"
    assert config.load(path)["zone"] is None and config.load(path)["accuracy_ms"] == 20


def test_a_broken_file_loads_as_defaults_with_warnings_and_save_cleans_it():
    con, path, warnings = make(doc={"zone": "acme", "accuracy_ms": "fast", "typo": 1})
    assert len(warnings) == 2 and "accuracy_ms" in warnings[0] + warnings[1]
    assert ask(con, "get zone") == ["zone=acme", "ok"]
    assert ask(con, "get accuracy_ms") == ["accuracy_ms=100", "ok"]
    out = ask(con, "save")  # nothing pending, but the file had problems: rewritten clean
    assert out[-1] == "ok" and "cleaned" in out[0]
    assert json.loads(read_bytes(path)) == {"kind": "sntp-config", "zone": "acme"}


def test_a_file_that_is_not_json_is_named_as_the_configuration_not_as_state():
    path = fresh_path("test_console", "not-json.json")
    with open(path, "w") as f:
        f.write("{broken")
    warnings = []
    assert config.load(path, warnings.append) == config.defaults()
    assert warnings == ["config: {}: not JSON, ignored: the defaults are used".format(path)]
    con, _, _ = make()
    assert ask(con, "set tz UTC") == ["err tz: offset expected at 3 (POSIX writes UTC as UTC0)"]


def test_the_passphrase_never_appears_in_a_reply():
    con, path, _ = make(doc={"wifi_pass": SECRET, "wifi_ssid": "net"})
    said = []
    for line in (
        "show",
        "get wifi_pass",
        "set wifi_pass " + SECRET,
        "set servers " + SECRET,  # the servers' error would repeat the name
        "set zone " + SECRET,
        "query " + SECRET,
        SECRET,
        "get " + SECRET,
        "set wifi_ssid " + SECRET[:20] + " x",
        "set wifi_pass another passphrase",
        "discard",
        "set servers another passphrase",  # no longer pending: still never repeated
        "show",
        "status",
        "help",
    ):
        said += ask(con, line)
    text = "\n".join(said)
    assert SECRET not in text and "another passphrase" not in text
    assert "wifi_pass=" + config.MASK in text


# ---- hostile lines ---------------------------------------------------------------------------
TOO_LONG = "err line too long"
CONTROL = "err control character in line"
NOT_UTF8 = "err line is not UTF-8"


def hostile_lines():
    """(line, the start of its err reply)."""
    lines = [(b"x" * (MAX_LINE + 1), TOO_LONG), (b"set zone " + b"a" * MAX_LINE, TOO_LONG)]
    lines += [(b"\x00", CONTROL), (b"\x7f", CONTROL), (b"save\x00", CONTROL)]
    for c in list(range(0x20)) + [0x7F]:
        if c != 0x0A:
            lines.append((b"set zone ac" + bytes([c]) + b"me", CONTROL))
            if c != 0x0D:  # save\r is save with a bare carriage return as its line end
                lines.append((b"save" + bytes([c]), CONTROL))
    lines += [
        (b"set zone acme\rsave", CONTROL),  # a carriage return in the middle
        (b"set zone acme\nsave", CONTROL),  # a line end inside what handle() sees as one line
        (b"set wifi_ssid \xc0\x80", NOT_UTF8),  # overlong NUL
        (b"set wifi_ssid \xed\xa0\x80", NOT_UTF8),  # a surrogate
        (b"set wifi_ssid \xf5\x80\x80\x80", NOT_UTF8),  # beyond U+10FFFF
        (b"set wifi_ssid caf\xc3", NOT_UTF8),  # cut short
        (b"set wifi_ssid \x80abc", NOT_UTF8),  # a lone continuation byte
        (b"set wifi_ssid \xff\xfe", NOT_UTF8),
        (b"\xef\xbb\xbfset zone acme", "err unknown command"),  # a byte-order mark
    ]
    return lines


def test_hostile_lines_get_err_and_change_nothing():
    con, path, _ = make(doc={"zone": "keep"})
    before = read_bytes(path)
    for line, reason in hostile_lines():
        for end in (b"\n", b"\r\n", b""):
            out = ask(con, line + end)
            assert len(out) == 1 and out[0].startswith(reason), (line, out)
    assert con.changed() == [] and ask(con, "save") == ["no changes to save", "ok"]
    assert read_bytes(path) == before


def test_line_limits_and_line_ends():
    con, _, _ = make()
    assert ask(con, b"x" * MAX_LINE) == ["err unknown command (type help)"]
    assert ask(con, b"x" * (MAX_LINE + 1))[0].startswith("err line too long")
    assert ask(con, b"get zone\r\n") == ["zone=", "ok"]
    assert ask(con, b"get zone\r") == ["zone=", "ok"]
    assert ask(con, "set wifi_ssid caf\u00e9 \u2603") == ["wifi_ssid=caf\u00e9 \u2603", "ok"]
    assert ask(con, b"set wifi_ssid \xf0\x9f\x95\x90")[-1] == "ok"  # 4-byte UTF-8


def test_utf8_check():
    good = [b"", b"abc", b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf"]
    good += [b"\xee\x80\x80", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", "caf\u00e9".encode()]
    bad = [b"\x80", b"\xc1\xbf", b"\xc2", b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xf0\x8f\xbf\xbf"]
    bad += [b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xc2\x41", b"\xff"]
    for b in good:
        assert console.utf8_ok(b), b
    for b in bad:
        assert not console.utf8_ok(b), b


# ---- status, query, sync, reboot, exit --------------------------------------------------------
def running_service(responder=None):
    clock = LoopClock(START - 3_000_000)
    net = FakeNet(clock, responder or honest(START))
    svc = service.Service(
        {"servers": ["ntp.example"]},
        net=net,
        clock=clock,
        rtc=StepRTC(clock),
        rand_below=rand,
        timeout_ms=1_000,
    )
    svc.boot()
    return svc


def test_status_without_a_service_says_so():
    con, _, _ = make(doc={"zone": "acme", "factory_server": "192.0.2.9"})
    out = ask(con, "status")
    assert out[-1] == "ok" and out[0].startswith("service    not running")
    assert "192.0.2.9 (factory" in out[1] and "acme.pool.ntp.org" in out[1]
    assert ask(con, "sync")[0].startswith("err no time service")


def test_status_of_a_running_service_before_and_after_a_sync():
    svc = running_service()
    con, _, _ = make(service=svc, sync=svc.sync)
    out = ask(con, "status")
    text = "\n".join(out)
    assert "last_sync  never" in text and "offset     none since boot" in text
    assert "server     ntp.example address=- state=unresolved sends=0 replies=0" in text
    assert "kods       0" in text and "(valid)" in text
    out = ask(con, "sync")
    assert out[-1] == "ok" and out[0].startswith("clock set: +3.0") and "ntp.example" in out[0]
    text = "\n".join(ask(con, "status"))
    assert "last_sync  20" in text and "offset     +3.0" in text and "(step at the" in text
    assert "address=192.0.2.1:123 state=ok sends=1 replies=1 kods=0" in text
    assert "drift      +0.000 ppm (0 measurements)" in text and "interval   " in text


def test_status_counts_kods_and_shows_the_hold():
    def kod(req, dst, mono):
        return [(5_000, reply(req[40:48], 0, 0, stratum=0, refid=b"RATE", rx=0, tx=0), SERVER)]

    svc = running_service(kod)
    con, _, _ = make(service=svc, sync=svc.sync)
    out = ask(con, "sync")
    assert out == ["err sync: kiss (192.0.2.1:123: Kiss-o'-Death RATE)"] or (
        out[0].startswith("err sync: kiss")
    ), out
    text = "\n".join(ask(con, "status"))
    assert "kods       1" in text and "state=rate-limited-gap-" in text and "kods=1" in text
    assert "last_sync  never" in text


def test_status_shows_the_local_time_beside_utc_when_a_tz_is_set():
    svc = running_service()
    con, _, _ = make(service=svc)
    assert not [line for line in ask(con, "status") if line.startswith("local")]
    for rule, east_s, shown in (
        ("AEST-10AEDT,M10.1.0,M4.1.0/3", 11 * 3600, "AEDT (UTC+11:00)"),  # January: summer
        ("<-03>3<-02>,M3.2.0/-2,M11.1.0/-1", -3 * 3600, "-03 (UTC-03:00)"),
        ("<+0545>-5:45", 5 * 3600 + 45 * 60, "+0545 (UTC+05:45)"),
    ):
        assert ask(con, "set tz " + rule)[-1] == "ok" and ask(con, "save")[-1] == "ok"
        out = ask(con, "status")
        assert out[0].startswith("clock      ") and out[1].startswith("local      "), out
        local = svc.wall_us() + east_s * 1_000_000
        assert out[1] == "local      {} {}".format(format_utc(local, NTP_1970_S)[:19], shown)
    # a zone name is refused, with what to use instead
    assert ask(con, "set tz Europe/Berlin")[-1].startswith("err tz: a zone name, not a rule")
    assert ask(con, "set tz CET-1CEST,M3.5.0")[-1] == "err tz: , expected at 16"
    assert ask(con, "get tz") == ["tz=<+0545>-5:45", "ok"]


def test_sync_without_a_blocking_driver_asks_the_policy():
    svc = running_service()
    con, _, _ = make(service=svc)
    svc.policy.due_ms = svc.loop_ms() + 3_600_000
    out = ask(con, "sync")
    assert out[-1] == "ok" and out[0].startswith("sync requested")
    assert svc.policy.due_ms == svc.loop_ms()
    # the floors still hold: a request within 15 s of the last one waits
    svc.sync()
    ask(con, "sync")
    action = svc.policy.poll(svc.now_ms(), svc.wall_us())
    assert action is None and svc.policy.due_ms > svc.now_ms()


def test_sync_with_no_servers_says_so():
    clock = LoopClock(START)
    svc = service.Service({}, net=FakeNet(clock, honest(START)), clock=clock, rand_below=rand)
    svc.boot()
    con, _, _ = make(service=svc)
    assert ask(con, "sync")[0].startswith("err no servers configured")


class FakeResult:
    def __init__(self, ok, error=None, kiss=None, detail=None, offset_us=None, delay_us=None):
        self.ok, self.error, self.kiss, self.detail = ok, error, kiss, detail
        self.offset_us, self.delay_us = offset_us, delay_us
        self.server = ("192.0.2.5", 1123)

        class H:
            stratum = 2

        self.header = H() if ok else None


def test_query_reports_one_exchange_and_its_failures():
    asked = []

    def q(host, port):
        asked.append((host, port))
        if host == "good.example":
            return FakeResult(True, offset_us=-1_500, delay_us=20_250)
        if host == "kod.example":
            return FakeResult(False, "kiss", kiss="RATE")
        return FakeResult(False, "resolve", detail="cannot resolve nx.example")

    con, _, _ = make(query=q)
    out = ask(con, "query good.example:1123")
    assert out == [
        "server     192.0.2.5:1123",
        "stratum    2",
        "offset     -0.001500 s (positive: this clock is behind)",
        "delay      0.020250 s",
        "ok",
    ]
    assert ask(con, "query kod.example") == ["err query 192.0.2.5:1123: kiss RATE"]
    assert ask(con, "query nx.example")[0].endswith("resolve (cannot resolve nx.example)")
    assert asked == [("good.example", 1123), ("kod.example", 123), ("nx.example", 123)]
    assert ask(con, "query [::1]:123x")[0] == "err not a host name or address"


def test_reboot_and_exit_refuse_unsaved_changes_and_reboot_runs_after_the_reply():
    booted = []
    con, _, _ = make()
    assert ask(con, "reboot") == ["err reboot is not available here"]
    con, _, _ = make(reboot=lambda: booted.append(1))
    ask(con, "set zone acme")
    assert ask(con, "reboot") == ["err unsaved changes: save or discard first"]
    assert ask(con, "exit") == ["err unsaved changes: save or discard first"]
    assert not con.done and booted == []
    ask(con, "save")
    assert ask(con, "reboot") == ["rebooting", "ok"] and booted == []
    con.run_after()
    assert booted == [1]
    con.run_after()
    assert booted == [1]
    assert ask(con, "exit") == ["bye", "ok"] and con.done


def test_an_internal_error_is_an_err_reply():
    def broken(host, port):
        raise KeyError("boom")

    con, _, _ = make(query=broken)
    assert ask(con, "query x.example") == ["err internal error (KeyError)"]


# ---- serve: the stream runner ------------------------------------------------------------------
def chunks(data, size):
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    out = []
    for p in parts:  # readline(): never past a line end
        while b"\n" in p[:-1]:
            i = p.index(b"\n")
            out.append(p[: i + 1])
            p = p[i + 1 :]
        out.append(p)
    return out


def test_serve_answers_line_by_line_until_exit():
    con, path, _ = make(reboot=lambda: written.append("<reboot>"))
    data = b"set zone acme\n" + b"y" * 1000 + b"\nsave\nreboot\nget zone\nexit\nget zone\n"
    feed = chunks(data, 64)
    written = []
    serve(con, lambda: feed.pop(0) if feed else b"", written.append)
    assert written == [
        "zone=acme\n",
        "ok\n",
        "err line too long (at most {} bytes)\n".format(MAX_LINE),
        "saved zone to {}; used from the next reboot\n".format(path),
        "ok\n",
        "rebooting\n",
        "ok\n",
        "<reboot>",  # after its reply was written
        "zone=acme\n",
        "ok\n",
        "bye\n",
        "ok\n",
    ]  # nothing after exit


def test_serve_answers_a_last_line_without_its_end_and_stops_at_the_end():
    con, _, _ = make()
    feed = [b"get accuracy_ms\n", b"get log", b"_level"]
    written = []
    serve(con, lambda: feed.pop(0) if feed else b"", written.append)
    assert written == ["accuracy_ms=100\n", "ok\n", "log_level=info\n", "ok\n"]


# ---- a power cut during a save ------------------------------------------------------------------
class PowerCut(BaseException):
    """The power going: not an error anything may catch."""


OLD = {"zone": "old", "wifi_ssid": "old-net", "wifi_pass": "old passphrase", "accuracy_ms": 40}


def new_values():
    v = config.defaults()
    v.update({"zone": "newzone", "servers": ["ntp.example.com"], "wifi_ssid": "new-net"})
    v.update({"wifi_pass": SECRET, "factory_server": "192.0.2.1", "country": "SE"})
    return v


def old_values():
    v = config.defaults()
    v.update(OLD)
    return v


def start(name):
    path = fresh(name)
    assert config.save(path, old_values())
    return path


def loads_as(path):
    problems = []
    v = config.load(path, problems.append)
    assert problems == [], problems
    return v


def test_a_power_cut_at_every_byte_of_a_save_leaves_the_old_configuration():
    path = start("cut.json")
    text = json.dumps({k: v for k, v in new_values().items() if v != config.SCHEMA[k][1]})
    real = store.JsonStore._write
    n = 0
    try:
        for cut in range(len(text) + 1):

            def write(self, f, text, cut=cut):
                f.write(text[:cut])
                raise PowerCut()

            store.JsonStore._write = write
            try:
                config.save(path, new_values())
                raise AssertionError("the save went through")
            except PowerCut:
                pass
            store.JsonStore._write = real
            assert loads_as(path) == old_values(), cut
            n += 1
    finally:
        store.JsonStore._write = real
    assert n > 100
    assert config.save(path, new_values()) and loads_as(path) == new_values()
    assert not exists(path + ".tmp")


def test_a_power_cut_before_and_after_the_rename():
    path = start("rename.json")
    real = store._replace

    def cut_before(src, dst):
        raise PowerCut()

    def cut_after(src, dst):
        real(src, dst)
        raise PowerCut()

    for fn, expect in ((cut_before, old_values()), (cut_after, new_values())):
        store._replace = fn
        try:
            config.save(path, new_values())
        except PowerCut:
            pass
        finally:
            store._replace = real
        assert loads_as(path) == expect
        assert config.save(path, old_values()) and loads_as(path) == old_values()


class FatOs:
    """os for store.py on a FAT file system: rename will not replace a file. cut_after names
    the call after which the power goes ('remove': between removing the old file and the
    rename, the one moment FAT leaves no file at the path)."""

    def __init__(self, cut_after=None, skip=0):
        self.cut_after = cut_after
        self.skip = skip  # renames to let through before the cut

    def rename(self, src, dst):
        if exists(dst):
            raise OSError(17)  # EEXIST
        os.rename(src, dst)
        if self.cut_after == "rename":
            if self.skip == 0:
                raise PowerCut()
            self.skip -= 1

    def remove(self, path):
        os.remove(path)
        if self.cut_after == "remove" and not path.endswith(".tmp"):
            raise PowerCut()

    def __getattr__(self, name):
        return getattr(os, name)


def test_on_fat_a_power_cut_between_remove_and_rename_loads_the_new_file():
    path = start("fat.json")
    real = store.os
    try:
        store.os = FatOs()
        assert config.save(path, new_values()) and loads_as(path) == new_values()
        store.os = FatOs("remove")
        try:
            config.save(path, old_values())
            raise AssertionError("no power cut")
        except PowerCut:
            pass
        assert not exists(path) and exists(path + ".tmp")
        assert loads_as(path) == old_values()  # from the complete temporary file
        store.os = FatOs("rename", skip=1)  # the first rename puts PATH.tmp in place
        try:
            config.save(path, new_values())
        except PowerCut:
            pass
        assert loads_as(path) == new_values()
    finally:
        store.os = real


def test_the_console_save_cut_by_the_power_then_a_reboot():
    path = start("console-cut.json")
    real = store.JsonStore._write

    def write(self, f, text):
        f.write(text[: len(text) // 2])
        raise PowerCut()

    con = Console(path, warn=lambda line: None)
    ask(con, "set zone other")
    store.JsonStore._write = write
    try:
        con.handle(b"save\n")
        raise AssertionError("no power cut")
    except PowerCut:
        pass
    finally:
        store.JsonStore._write = real
    con = Console(path, warn=lambda line: None)  # the reboot
    assert ask(con, "get zone") == ["zone=old", "ok"] and con.clean


def test_a_save_that_fails_or_reads_back_wrong_is_an_err():
    con, path, _ = make()
    con.path = fresh("no-such-dir") + "/x/config.json"
    ask(con, "set zone acme")
    out = ask(con, "save")
    assert out[0].startswith("err cannot save: ") and con.changed() == ["zone"]
    con.path = path
    real = store.JsonStore._write

    def wrong(self, f, text):
        f.write(text.replace("acme", "acmf"))

    store.JsonStore._write = wrong
    try:
        assert ask(con, "save") == ["err the saved configuration reads back differently"]
    finally:
        store.JsonStore._write = real
    assert con.changed() == ["zone"]
    assert ask(con, "save")[-1] == "ok" and con.changed() == []


def test_a_configuration_unread_for_want_of_memory_is_never_saved_over():
    # the heap had no block for the file (store.read_saved says OUT_OF_MEMORY): the file may
    # be good, so save refuses to put the defaults and a change over it until it has been read
    good = {"kind": config.KIND, "zone": "acme", "wifi_ssid": "factory-net"}
    real = config.read_saved
    config.read_saved = lambda path: (None, store.OUT_OF_MEMORY)
    try:
        con, path, warnings = make(doc=good)
        assert any("out of memory" in w for w in warnings), warnings
        assert final(ask(con, "set accuracy_ms 50")) == "ok"
        reply = ask(con, "save")
        assert final(reply).startswith("err ") and "out of memory" in final(reply), reply
        assert json.loads(read_bytes(path)) == good  # untouched
    finally:
        config.read_saved = real
    assert final(ask(con, "discard")) == "ok"  # memory again: the file is read
    assert con.saved["zone"] == "acme" and final(ask(con, "set accuracy_ms 50")) == "ok"
    assert final(ask(con, "save")) == "ok"
    assert json.loads(read_bytes(path))["accuracy_ms"] == 50
