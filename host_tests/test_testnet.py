# The client against real servers on a private test network (tools/testnet): chronyd, ntpsec's
# ntpd (with real KoD RATE replies), dnsmasq serving the vendor zone acme.pool.ntp.org (with
# NXDOMAIN, SERVFAIL and silent names) and two misbehaving reference servers, on 127.0.0.1-.9
# inside private namespaces. The client is tools/sntp under the unix-port MicroPython; request
# counts come from nftables counters inside the network and from dnsmasq's query log.
# Needs root (skipped with one line otherwise; with CI=true, a failure instead).
#
# Address plan (tools/testnet/dns_hosts.in): .2 chronyd  .3 ntpsec rate limited  .4 ntpsec
# .5 dead  .6 refserver +3600 s (a liar)  .7 refserver KoD with zero timestamps  .8 ntpsec
import json
import os
import time

import pytest
import testnet_fixture

from sntp.timestamp import BUILD_UNIX_S

testnet = testnet_fixture.testnet  # the session fixture: one network for this module

ROOT = testnet_fixture.ROOT

OFF_A_MINUTE_US = 60_000_000  # a restart after the run: the board was off this long
RUN_FOR_S = 50  # the tools/sntp run scenarios, all at once: a second round comes at 30-37.5 s

# CPython inside the network: raw requests with a random transmit timestamp, raw replies.
PROBE = r"""
import json, os, socket, struct, sys
out = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    nonce = os.urandom(8)
    s.sendto(b"\x23" + bytes(39) + nonce, (sys.argv[1], 123))
    try:
        d = s.recv(512)
    except OSError:
        out.append(None)
        continue
    finally:
        s.close()
    f = struct.unpack("!BBbbII4sQQQQ", d[:48])
    out.append({"li": f[0] >> 6, "version": (f[0] >> 3) & 7, "mode": f[0] & 7,
                "stratum": f[1], "poll": f[2], "precision": f[3], "root_delay": f[4],
                "root_disp": f[5], "refid": f[6].hex(), "ref": f[7], "origin": f[8],
                "rx": f[9], "tx": f[10], "nonce": int.from_bytes(nonce, "big")})
print(json.dumps(out))
"""


def probe(net, addr, n=1):
    return json.loads(net.python(PROBE, addr, str(n)))


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before.get(k)}


def short(raw):
    """An NTP short (16.16) as tools/sntp prints it: seconds, 6 decimals."""
    return round(raw / 65536, 6)


def state_file(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_network_is_up(testnet):
    # dnsmasq, chronyd, ntpsec (root distance under the client's 1.5 s) and the refservers
    # answered before READY; bring-up is quick
    print("test network up in {:.1f} s".format(testnet.startup_s))
    assert testnet.startup_s < 60
    assert testnet.counters()["ntp_127_0_0_5"] == 0


# ---- query: real chrony and ntpsec replies, decoded field by field -------------------------
@pytest.mark.parametrize(
    "addr, stratum, refid",
    [("127.0.0.2", 8, "127.127.1.1"), ("127.0.0.4", 1, "GPS"), ("127.0.0.8", 1, "GPS")],
    ids=["chrony", "ntpsec", "ntpsec-2"],
)
def test_query_decodes_a_real_server(testnet, addr, stratum, refid):
    raw = probe(testnet, addr)[0]
    before = testnet.counters()
    rc, j, err = testnet.sntp_json("query", addr, "--timeout", "2")
    host_now = time.time()
    assert (rc, err) == (0, ""), (j, err)
    assert delta(before, testnet.counters()) == {"ntp_" + addr.replace(".", "_"): 1}
    assert j["ok"] is True and j["error"] is None and j["kiss"] is None
    assert j["server"] == addr + ":123"
    # the fields a server sets the same way in every reply, against a raw decode
    assert (j["stratum"], j["leap"], j["version"], j["mode"]) == (stratum, 0, 4, 4)
    assert (raw["stratum"], raw["li"], raw["version"], raw["mode"]) == (stratum, 0, 4, 4)
    assert j["precision"] == raw["precision"] and j["poll"] == raw["poll"]
    assert j["refid"] == refid
    assert raw["refid"] == ("7f7f0101" if stratum == 8 else refid.encode().ljust(4, b"\0").hex())
    assert j["root_delay"] == short(raw["root_delay"])
    assert 0 <= j["root_dispersion"] < 1.0  # ready means under the client's 1.5 s limit
    # the same clock on both ends: a small offset, a small positive delay
    assert abs(j["offset"]) < 0.05
    assert 0 <= j["delay"] < 0.05
    assert abs(j["server_time"] - host_now) < 1.0


def test_query_real_ntpsec_kod_rate(testnet):
    """A burst to the rate-limited ntpsec address: answers first, then a real KoD RATE."""
    before = testnet.counters()
    answers = []
    for _ in range(6):
        rc, j, err = testnet.sntp_json("query", "127.0.0.3", "--timeout", "1")
        answers.append((rc, j))
        if j["error"] is not None:
            break
    *good, (rc, kod) = answers
    assert good, "ntpsec's rate limit kissed the first request"
    for grc, g in good:
        assert grc == 0 and g["ok"] and (g["stratum"], g["refid"]) == (1, "GPS")
    # exactly as ntpsec sends it: LI 3, stratum 0, refid RATE; its timestamps are not used
    assert rc == 1 and err == ""
    assert (kod["ok"], kod["error"], kod["kiss"]) == (False, "kiss", "RATE")
    assert (kod["leap"], kod["stratum"], kod["refid"]) == (3, 0, "RATE")
    assert (kod["version"], kod["mode"], kod["server"]) == (4, 4, "127.0.0.3:123")
    assert kod["offset"] is None and kod["delay"] is None and kod["server_time"] is None
    assert delta(before, testnet.counters()) == {"ntp_127_0_0_3": len(answers)}
    # and the raw KoD is the ntpsec form: origin = receive = transmit = the request's nonce
    raw = probe(testnet, "127.0.0.3")[0]
    assert (raw["li"], raw["stratum"], raw["refid"]) == (3, 0, b"RATE".hex())
    assert raw["origin"] == raw["rx"] == raw["tx"] == raw["nonce"]


def test_query_dead_address_is_reported_at_once(testnet):
    # nothing listens at 127.0.0.5:123: the ICMP port unreachable ends the query at once,
    # with that reason, instead of the timeout
    before = testnet.counters()
    t0 = time.monotonic()
    rc, j, _ = testnet.sntp_json("query", "dead.acme.pool.ntp.org", "--timeout", "5")
    assert time.monotonic() - t0 < 3
    assert (rc, j["ok"], j["error"], j["server"]) == (1, False, "network", "127.0.0.5:123")
    assert "nothing listens at that port" in j["detail"]
    d = delta(before, testnet.counters())
    assert d.pop("ntp_127_0_0_5") == 1 and set(d) <= {"dns_127_0_0_1"}


# ---- DNS through the client's resolver --------------------------------------------------
def test_dns_name_with_several_addresses(testnet):
    code = (
        "from sntp import net\n"
        "print(sorted(a.key for a in net.Net().resolve('0.acme.pool.ntp.org', 123)))"
    )
    mp = testnet.run(
        "env",
        "MICROPYPATH=" + os.path.join(ROOT, "firmware"),
        testnet_fixture.MICROPYTHON,
        "-c",
        code,
    )
    assert mp.stdout.strip() == "[('127.0.0.2', 123), ('127.0.0.8', 123)]", mp
    rc, j, _ = testnet.sntp_json("query", "0.acme.pool.ntp.org", "--timeout", "2")
    assert rc == 0 and j["server"] in ("127.0.0.2:123", "127.0.0.8:123")


@pytest.mark.parametrize(
    "name, slowest_s",
    [
        ("nope.acme.pool.ntp.org", 1.5),  # NXDOMAIN at once
        ("x.servfail.acme.pool.ntp.org", 1.5),  # SERVFAIL relayed by dnsmasq
        ("x.timeout.acme.pool.ntp.org", 4.0),  # no answer: resolv.conf timeout:1 attempts:1
    ],
    ids=["nxdomain", "servfail", "timeout"],
)
def test_dns_failure_is_a_resolve_error(testnet, name, slowest_s):
    before = testnet.counters()
    t0 = time.monotonic()
    rc, j, err = testnet.sntp_json("query", name, "--timeout", "1")
    took = time.monotonic() - t0
    assert (rc, j["ok"], j["error"], err) == (1, False, "resolve", "")
    assert name in j["detail"] and j["stratum"] is None
    assert took < slowest_s
    if "timeout" in name:
        assert took > 0.9
    d = delta(before, testnet.counters())
    assert not [k for k in d if k.startswith("ntp_")], d  # no NTP packet at all
    assert 1 <= d.get("dns_127_0_0_1", 0) <= 4  # A and AAAA, once each (and no retry storm)


# ---- DNS that never blocks: sntp.dns beside a 10 ms ticker (tools/stall_probe.py) ---------
# Each case is one AsyncService sync under the unix-port MicroPython with a 10 ms ticker task
# in the same event loop; stall_ms is the longest gap between ticks, less the 10 ms. All the
# cases run at once (about 6 s in all). getaddrinfo, the baseline, blocks the loop for the
# system resolver's timeout (this network's resolv.conf: 1 s, one attempt).
STALL_MAX_MS = 200  # loopback and a shared machine: far below any lookup's timeout
RELAYS = {"slow": ["--port", "5355", "--delay-ms", "3000"], "spoof": ["--port", "5356", "--spoof"]}
DNS_CASES = {  # case -> (DNS server, name asked)
    "normal": ("127.0.0.1:53", "0.acme.pool.ntp.org"),
    "slow": ("127.0.0.9:5355", "0.acme.pool.ntp.org"),
    "spoof": ("127.0.0.9:5356", "chrony.acme.pool.ntp.org"),
    "servfail": ("127.0.0.1:53", "x.servfail.acme.pool.ntp.org"),
    "nxdomain": ("127.0.0.1:53", "nope.acme.pool.ntp.org"),
    "silent": ("127.0.0.1:53", "x.timeout.acme.pool.ntp.org"),
    "getaddrinfo-silent": ("getaddrinfo", "x.timeout.acme.pool.ntp.org"),
}


@pytest.fixture(scope="module")
def dns_runs(testnet):
    relays = []
    for args in RELAYS.values():
        relays.append(
            testnet.popen("python3", os.path.join(ROOT, "tools/testnet/dns_relay.py"), *args)
        )
        assert relays[-1].stdout.readline().strip() == "ready"
    before = testnet.counters()
    log0 = len(testnet.dns_log())
    path = ":".join([os.path.join(ROOT, d) for d in ("firmware", "tools")] + [".frozen"])
    procs = {
        k: testnet.popen(
            "env",
            "MICROPYPATH=" + path,
            testnet_fixture.MICROPYTHON,
            "-m",
            "stall_probe",
            server,
            "20000",
            name + ":123",
        )
        for k, (server, name) in DNS_CASES.items()
    }
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, (k, stdout, stderr)
        out[k] = json.loads(stdout.strip().splitlines()[-1])
        print("{}: {}".format(k, out[k]))
    for r in relays:
        r.kill()
        r.communicate()
    return {
        "runs": out,
        "counts": delta(before, testnet.counters()),
        "log": testnet.dns_log()[log0:],
    }


def test_dns_lookups_never_stall_the_loop(dns_runs):
    runs = dns_runs["runs"]
    for k, r in runs.items():
        if k != "getaddrinfo-silent":
            assert r["stall_ms"] < STALL_MAX_MS, (k, r)
    # what the resolver saves the loop: getaddrinfo holds it for the whole timeout
    assert runs["getaddrinfo-silent"]["stall_ms"] >= 900, runs["getaddrinfo-silent"]


def test_dns_answers_normal_and_slow_give_the_zone_addresses(dns_runs):
    runs = dns_runs["runs"]
    for k in ("normal", "slow"):
        r = runs[k]
        assert r["ok"] and len(r["resolves"]) == 1 and r["resolves"][0][0], (k, r)
        assert sorted(r["resolves"][0][1]) == ["127.0.0.2:123", "127.0.0.8:123"], (k, r)
    assert runs["slow"]["sync_ms"] >= 3_000  # the answer came 3 s late, and was taken
    # the same lookups as getaddrinfo makes (tools/sntp: A and AAAA, once each); the relay's
    # own queries to dnsmasq come from 127.0.0.9
    log = dns_runs["log"]
    for qtype in ("A", "AAAA"):
        line = " query[{}] 0.acme.pool.ntp.org from 127.0.0.1\n".format(qtype)
        assert log.count(line) == 1, (qtype, log)


def test_dns_failures_are_resolve_errors_in_their_bound(dns_runs):
    runs = dns_runs["runs"]
    for k, why in (("servfail", "servfail"), ("nxdomain", "nxdomain"), ("silent", "timeout")):
        r = runs[k]
        assert not r["ok"] and r["resolves"] == [[False, []]], (k, r)
        assert r["error"] == "resolve" and why in r["detail"], (k, r)
    assert runs["servfail"]["sync_ms"] < 1_000 and runs["nxdomain"]["sync_ms"] < 1_000
    assert 5_000 <= runs["silent"]["sync_ms"] < 6_000  # the resolver's 5 s bound


def test_dns_spoofs_racing_the_server_are_dropped(dns_runs):
    r = dns_runs["runs"]["spoof"]
    assert r["ok"] and r["resolves"] == [[True, ["127.0.0.2:123"]]], r
    d = r["dropped"]
    for why in ("wrong-source", "wrong-id", "wrong-question", "not-answer"):
        assert d.get(why, 0) >= 1, d
    assert "ntp_127_0_0_6" not in dns_runs["counts"]  # the liar the forgeries named: never asked


# ---- sync: the time service sets the board's software clock --------------------------------
def test_sync_vendor_zone_sets_the_clock(testnet, tmp_path):
    state = state_file(tmp_path, "board.json", {"rtc_unix_s": 0})  # an invalid clock
    before = testnet.counters()
    log0 = testnet.dns_log()
    rc, j, err = testnet.sntp_json("sync", "--zone", "acme", "--state", state, "--timeout", "1")
    host_now = time.time()
    assert rc == 0, (j, err)
    assert j["ok"] and j["clock_set"] and j["valid"]
    assert abs(j["time"] - host_now) < 1.0  # the honest servers' time, not the liar's
    assert j["offset"] > host_now - BUILD_UNIX_S  # from 1970 to now in one step
    zone = ["{}.acme.pool.ntp.org".format(i) for i in range(4)]
    # an invalid clock asks two servers first; chrony or ntpsec (0.) and ntpsec (1.) agree,
    # which is a strict majority of the replies: the dead (2.) and the liar (3.) are not asked
    assert j["servers_tried"] == zone[:2]
    assert sorted(j["servers"]) == zone[:2]
    assert j["failures"] == []
    d = delta(before, testnet.counters())
    assert d.get("ntp_127_0_0_2", 0) + d.get("ntp_127_0_0_8", 0) == 1
    assert (d.get("ntp_127_0_0_4"), d.get("ntp_127_0_0_5"), d.get("ntp_127_0_0_6")) == (
        1,
        None,
        None,
    )
    log = testnet.dns_log()[len(log0) :]
    assert [testnet.dns_queries(n, log=log) for n in zone[:2]] == [1, 1]
    assert all(testnet.dns_queries(n, log=log) <= 1 for n in zone[2:])
    p = testnet.sntp("status", "--state", state, "--json")
    st = json.loads(p.stdout)
    assert st["valid"] is True and abs(st["last_sync"] - host_now) < 2


@pytest.mark.parametrize("board_s", [-5, 5], ids=["board-behind", "board-ahead"])
@pytest.mark.parametrize("server", ["chrony", "ntpsec"])
def test_sync_offset_sign_with_a_real_server(testnet, tmp_path, server, board_s):
    # positive offset: the local clock is behind
    state = state_file(tmp_path, "board.json", {"rtc_offset_us": board_s * 1_000_000})
    name = server + ".acme.pool.ntp.org"
    rc, j, err = testnet.sntp_json("sync", "--server", name, "--state", state, "--timeout", "2")
    assert rc == 0 and j["clock_set"], (j, err)
    assert j["server"] == name
    assert abs(j["offset"] + board_s) < 0.1
    assert abs(j["time"] - time.time()) < 0.5


def test_sync_kod_with_zero_timestamps_never_sets_1900(testnet, tmp_path):
    state = state_file(tmp_path, "board.json", {"rtc_unix_s": 0})
    servers = ["kodzero", "chrony", "ntpsec"]
    args = [x for s in servers for x in ("--server", s + ".acme.pool.ntp.org")]
    rc, j, err = testnet.sntp_json("sync", *args, "--state", state, "--timeout", "1")
    assert rc == 0 and j["clock_set"], (j, err)
    assert abs(j["time"] - time.time()) < 1.0
    assert "kodzero.acme.pool.ntp.org" not in j["servers"]


# ---- run: the service in real time, request counts over a short run ------------------------
@pytest.fixture(scope="module")
def runs(testnet, tmp_path_factory):
    """Three `tools/sntp run` scenarios at once, RUN_FOR_S each; their events and counts."""
    tmp = tmp_path_factory.mktemp("runs")
    # a server leaving the pool: leave.acme points at an address that no longer answers
    hosts = testnet.hosts()
    testnet.set_hosts(hosts + ["127.0.0.5 leave.acme.pool.ntp.org"])
    # ntpsec's score for 127.0.0.3 (decays over about a minute): raise it, so that the
    # client's very first request gets a KoD RATE
    prime = probe(testnet, "127.0.0.3", 3)
    assert prime[-1] is not None and prime[-1]["refid"] == b"RATE".hex(), prime
    before = testnet.counters()
    log0 = len(testnet.dns_log())
    common = ["--no-startup-delay", "--for", str(RUN_FOR_S), "--timeout", "1"]
    scenarios = {
        "kod": ["--server", "127.0.0.3"],
        "dns": [
            "--server",
            "nope.acme.pool.ntp.org",
            "--server",
            "x.servfail.acme.pool.ntp.org",
            "--server",
            "x.timeout.acme.pool.ntp.org",
        ],
        "leave": ["--server", "leave.acme.pool.ntp.org"],
    }
    procs = {
        k: testnet.popen(
            testnet_fixture.SNTP,
            "run",
            "--json",
            *v,
            *common,
            "--state",
            state_file(tmp, k + ".json", {}),
        )
        for k, v in scenarios.items()
    }
    # once the client has looked leave.acme up, DNS hands out a new, working address
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if testnet.dns_queries("leave.acme.pool.ntp.org", log=testnet.dns_log()[log0:]):
            break
        time.sleep(0.05)
    testnet.set_hosts(hosts + ["127.0.0.4 leave.acme.pool.ntp.org"])
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=RUN_FOR_S + 30)
        assert p.returncode == 0 and stderr == "", (k, stderr)
        out[k] = [json.loads(line) for line in stdout.splitlines()]
    counts = delta(before, testnet.counters())
    dns_log = testnet.dns_log()[log0:]
    # after the run: a restart resolves the names again and finds the new address. The run
    # was a short boot, so the restart is the crash-loop guard's first: nothing until 30-37.5 s
    # after the last request (which `sync` waits out only up to 20 s). The board stays off a
    # minute: its clock runs on, and was valid at the save and is now, so the minute counts.
    leave = tmp / "leave.json"
    doc = json.loads(leave.read_text())
    doc["rtc_offset_us"] = doc.get("rtc_offset_us", 0) + OFF_A_MINUTE_US
    leave.write_text(json.dumps(doc))
    rc, after_restart, _ = testnet.sntp_json(
        "sync",
        "--server",
        "leave.acme.pool.ntp.org",
        "--state",
        str(leave),
        "--timeout",
        "1",
    )
    testnet.set_hosts(hosts)
    return {"events": out, "counts": counts, "dns_log": dns_log, "restart": after_restart}


def events(run, kind, **match):
    return [e for e in run if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_run_real_kod_rate_holds_that_address(runs):
    ev = runs["events"]["kod"]
    sends = events(ev, "send")
    kods = events(ev, "kod", address="127.0.0.3:123", code="RATE")
    assert len(sends) == 1 and len(kods) == 1, ev
    assert kods[0]["gap_ms"] >= 600_000  # at least 10 min before that address again
    assert not events(ev, "reply")
    # a second round came (and a third would be later), but nothing was sent in it
    assert len(events(ev, "backoff")) >= 2, ev
    assert runs["counts"].get("ntp_127_0_0_3") == 1  # the wire agrees: one request in all


def test_run_dns_failures_back_off(runs):
    ev = runs["events"]["dns"]
    names = ["nope", "x.servfail", "x.timeout"]
    for n in names:
        name = n + ".acme.pool.ntp.org"
        failed = events(ev, "resolve", server=name, ok=False)
        assert len(failed) == 1, (name, ev)  # looked up once in the whole run
        assert failed[0]["retry_ms"] >= 60_000  # the next try a minute later at the earliest
        assert runs["dns_log"].count(" query[A] {} from ".format(name)) == 1
    assert len(events(ev, "backoff")) >= 2, ev  # a second round came, without a lookup
    assert not events(ev, "send")
    # on the wire: one A and one AAAA query per name, at most
    assert runs["counts"].get("dns_127_0_0_1", 0) <= 2 * len(names) + 2  # + leave.acme
    # (dnsmasq itself may forward a query to the silent stub more than once: not counted)


def test_run_server_leaving_the_pool(runs):
    """The address stops answering, and DNS already hands out a new one.

    Within a minute the client asks the old address twice (15 s floor, 30 s backoff) and does
    not look the name up again: re-resolution after failures is at most hourly (rule 16),
    which a test of minutes cannot reach. A restart, which keeps names and not addresses,
    resolves again and uses the new address."""
    ev = runs["events"]["leave"]
    assert len(events(ev, "resolve", ok=True)) == 1, ev
    assert len(events(ev, "timeout", address="127.0.0.5:123")) == 2, ev
    assert runs["counts"].get("ntp_127_0_0_5") == 2
    assert runs["dns_log"].count(" query[A] leave.acme.pool.ntp.org from ") == 1
    sends = [e["t_ms"] for e in events(ev, "send")]
    assert len(sends) == 2 and sends[1] - sends[0] >= 30_000
    assert runs["restart"]["clock_set"] and runs["restart"]["server"] == "leave.acme.pool.ntp.org"
