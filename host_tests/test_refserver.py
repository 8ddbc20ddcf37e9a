"""Tests for tools/refserver.py: real UDP on loopback, replies decoded independently."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import refserver  # tools/ is on sys.path (conftest.py)
from refserver import RefServer

TOOLS = Path(__file__).resolve().parent.parent / "tools"

SCRIPT = TOOLS / "refserver.py"
DELTA = 2208988800
HDR = ">BBbbII4s8s8s8s8s"
LOOPBACK_ID = bytes([127, 0, 0, 1])
TOL_NS = 10**9  # "within 1 s of expected time"


# -- independent helpers -------------------------------------------------------


def decode(pkt: bytes) -> dict:
    assert len(pkt) >= 48, len(pkt)
    b0, stratum, poll, prec, rdelay, rdisp, refid, ref, org, rx, tx = struct.unpack(HDR, pkt[:48])
    return {
        "li": b0 >> 6,
        "vn": (b0 >> 3) & 7,
        "mode": b0 & 7,
        "stratum": stratum,
        "poll": poll,
        "precision": prec,
        "root_delay": rdelay,
        "root_disp": rdisp,
        "refid": refid,
        "ref": ref,
        "org": org,
        "rx": rx,
        "tx": tx,
    }


def ts_to_unix_ns(ts: bytes) -> int:
    """NTP timestamp -> Unix ns, assuming era 0 (fine for present-day host clocks)."""
    secs, frac = struct.unpack(">II", ts)
    return (secs - DELTA) * 10**9 + ((frac * 10**9) >> 32)


def make_request(vn: int = 4, mode: int = 3, poll: int = 6) -> tuple[bytes, bytes]:
    tx = os.urandom(8)
    while tx == bytes(8):
        tx = os.urandom(8)
    req = bytes([(vn << 3) | mode, 0, poll & 0xFF, 0xEC]) + bytes(36) + tx
    assert len(req) == 48
    return req, tx


def collect(
    sock: socket.socket, window: float, stop_after_first: bool = False
) -> list[tuple[float, bytes, tuple]]:
    """Datagrams arriving within `window` seconds: (monotonic time, data, source)."""
    out = []
    deadline = time.monotonic() + window
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return out
        r, _, _ = select.select([sock], [], [], remaining)
        if r:
            data, addr = sock.recvfrom(2048)
            out.append((time.monotonic(), data, addr))
            if stop_after_first:
                return out


@pytest.fixture
def client():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


@pytest.fixture
def server():
    srv = RefServer(port=0)
    srv.start()
    yield srv
    srv.stop()


def query(sock, srv, mode=None, window=None, **reqkw):
    """Send one request; collect replies for `window` s, or (default) until the
    first reply (max 1 s) plus 50 ms to catch any unexpected extra datagram."""
    if mode is not None:
        srv.mode = mode
    req, tx = make_request(**reqkw)
    sent_ns = time.time_ns()
    sock.sendto(req, ("127.0.0.1", srv.port))
    if window is not None:
        return req, tx, sent_ns, collect(sock, window)
    got = collect(sock, 1.0, stop_after_first=True)
    if got:
        got += collect(sock, 0.05)
    return req, tx, sent_ns, got


def one_reply(sock, srv, mode, offset_ns=0, **reqkw):
    req, tx, sent_ns, got = query(sock, srv, mode, **reqkw)
    assert len(got) == 1, f"expected exactly one reply, got {len(got)}"
    _, data, addr = got[0]
    assert addr == ("127.0.0.1", srv.port)
    return req, tx, sent_ns + offset_ns, data


def assert_near(ts: bytes, expected_ns: int, tol_ns: int = TOL_NS) -> None:
    assert ts != bytes(8)
    got = ts_to_unix_ns(ts)
    assert abs(got - expected_ns) < tol_ns, (got - expected_ns) / 1e9


def assert_honest(d: dict, tx: bytes, expected_ns: int, *, li=0, vn=4, mode=4, stratum=2):
    assert (d["li"], d["vn"], d["mode"]) == (li, vn, mode)
    assert d["stratum"] == stratum
    assert d["poll"] == 6
    assert d["precision"] == -20
    assert d["root_delay"] == 0x100
    assert d["root_disp"] == 0x200
    assert d["refid"] == (b"LOCL" if stratum == 1 else LOOPBACK_ID)
    assert d["org"] == tx
    assert_near(d["ref"], expected_ns - 16 * 10**9)
    assert_near(d["rx"], expected_ns)
    assert_near(d["tx"], expected_ns)
    assert ts_to_unix_ns(d["tx"]) >= ts_to_unix_ns(d["rx"])


# -- normal replies --------------------------------------------------------------


def test_normal_reply_is_honest(client, server):
    req, tx, now, data = one_reply(client, server, "normal")
    assert len(data) == 48
    assert_honest(decode(data), tx, now)
    # the exact request was recorded with its source
    assert len(server.requests) == 1
    mono, src, raw = server.requests[0]
    assert raw == req and src == client.getsockname() and isinstance(mono, int)


@pytest.mark.parametrize("req_vn, want_vn", [(3, 3), (4, 4), (2, 4), (5, 4), (1, 4)])
def test_version_echo(client, server, req_vn, want_vn):
    _, tx, now, data = one_reply(client, server, "normal", vn=req_vn)
    assert_honest(decode(data), tx, now, vn=want_vn)


def test_poll_echo_signed(client, server):
    _, tx, _, data = one_reply(client, server, "normal", poll=-3)
    assert data[2] == (-3) & 0xFF
    assert decode(data)["org"] == tx


def test_stratum1_uses_locl():
    with RefServer(stratum=1) as srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        _, tx, now, data = one_reply(c, srv, None)
        assert_honest(decode(data), tx, now, stratum=1)


def test_offset_applies_to_every_timestamp(client):
    off = 12_500_000_000
    with RefServer(offset_ns=off) as srv:
        _, tx, now, data = one_reply(client, srv, None, offset_ns=off)
        assert_honest(decode(data), tx, now)
        # and not merely near the host clock
        assert ts_to_unix_ns(decode(data)["tx"]) - time.time_ns() > 11 * 10**9


def test_start_time_after_era_rollover(client):
    with RefServer(start_time_ns=2085978496 * 10**9 + 3 * 10**9) as srv:
        _, tx, _, data = one_reply(client, srv, None)
        d = decode(data)
        secs_tx = struct.unpack(">I", d["tx"][:4])[0]
        secs_rx = struct.unpack(">I", d["rx"][:4])[0]
        secs_ref = struct.unpack(">I", d["ref"][:4])[0]
        assert 3 <= secs_rx <= secs_tx <= 5
        # reference = now - 16 s, i.e. still in era 0 just before the wrap
        assert secs_ref >= 2**32 - 14
        assert d["org"] == tx


def test_start_time_runs_at_real_rate(client):
    with RefServer(start_time_ns=1_000_000_000 * 10**9) as srv:
        time.sleep(0.2)
        _, _, _, data = one_reply(client, srv, None)
        elapsed = ts_to_unix_ns(decode(data)["tx"]) - 1_000_000_000 * 10**9
        assert 0.15e9 < elapsed < 1.0e9


def test_to_ntp_exact_encoding():
    assert refserver.to_ntp(0) == struct.pack(">II", DELTA, 0)
    assert refserver.to_ntp(500_000_000) == struct.pack(">II", DELTA, 2**31)
    assert refserver.to_ntp(2085978496 * 10**9) == bytes(8)
    assert refserver.to_ntp(-(10**9)) == struct.pack(">II", DELTA - 1, 0)


@pytest.mark.parametrize(
    "text, ns",
    [("12.5", 12_500_000_000), ("-3.25", -3_250_000_000), ("0.1", 100_000_000), ("7", 7 * 10**9)],
)
def test_parse_seconds_exact(text, ns):
    assert refserver.parse_seconds_ns(text) == ns


def test_ignores_short_and_non_client_requests(client, server):
    req, _ = make_request()
    client.sendto(req[:47], ("127.0.0.1", server.port))
    for bad_mode in (1, 2, 4, 5, 0):
        client.sendto(make_request(mode=bad_mode)[0], ("127.0.0.1", server.port))
    assert collect(client, 0.3) == []
    assert len(server.requests) == 6
    assert server.requests[0][2] == req[:47]


def test_mode_switch_applies_to_next_request(client, server):
    _, tx, now, data = one_reply(client, server, "normal")
    assert_honest(decode(data), tx, now)
    _, tx, _, data = one_reply(client, server, "kod-rate")
    assert decode(data)["refid"] == b"RATE"
    _, tx, now, data = one_reply(client, server, "normal")
    assert_honest(decode(data), tx, now)


def test_unknown_mode_and_non_loopback_rejected():
    with pytest.raises(ValueError):
        RefServer(mode="nope")
    srv = RefServer()
    with pytest.raises(ValueError):
        srv.mode = "nope"
    with pytest.raises(ValueError):
        RefServer(host="8.8.8.8")
    with pytest.raises(ValueError):
        RefServer(host="0.0.0.0")


# -- Kiss-o'-Death -----------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, code",
    [("kod-rate", b"RATE"), ("kod-deny", b"DENY"), ("kod-rstr", b"RSTR"), ("kod-xcode", b"XFOO")],
)
def test_kod_ntpd_style(client, server, mode, code):
    _, tx, _, data = one_reply(client, server, mode)
    assert len(data) == 48
    d = decode(data)
    assert (d["li"], d["vn"], d["mode"], d["stratum"]) == (3, 4, 4, 0)
    assert d["refid"] == code
    assert d["org"] == d["rx"] == d["tx"] == tx
    assert d["ref"] == bytes(8)
    assert d["root_delay"] == d["root_disp"] == 0


def test_kod_rate_zero(client, server):
    _, tx, _, data = one_reply(client, server, "kod-rate-zero")
    d = decode(data)
    assert (d["li"], d["mode"], d["stratum"]) == (0, 4, 0)
    assert d["refid"] == b"RATE"
    assert d["org"] == tx
    assert d["ref"] == d["rx"] == d["tx"] == bytes(8)


def test_kod_spoof(client, server):
    _, tx, _, data = one_reply(client, server, "kod-spoof")
    d = decode(data)
    assert (d["li"], d["mode"], d["stratum"], d["refid"]) == (0, 4, 0, b"RATE")
    assert d["org"] != tx and d["org"] != bytes(8)


# -- origin / source problems ------------------------------------------------------


def test_spoof_then_real(client, server):
    _, tx, now, got = query(client, server, "spoof-then-real", window=0.3)
    assert len(got) == 2
    (t1, spoof, a1), (t2, real, a2) = got
    assert a1 == a2 == ("127.0.0.1", server.port)
    ds = decode(spoof)
    assert ds["org"] != tx and ds["org"] != bytes(8)
    assert (ds["li"], ds["mode"], ds["stratum"]) == (0, 4, 2)
    assert_near(ds["tx"], now)
    assert_honest(decode(real), tx, now)
    assert 0.035 <= t2 - t1 <= 0.2


def test_bad_origin_single_reply(client, server):
    _, tx, now, got = query(client, server, "bad-origin", window=0.3)
    assert len(got) == 1
    d = decode(got[0][1])
    assert d["org"] != tx and d["org"] != bytes(8)
    assert_near(d["tx"], now)


def test_zero_origin(client, server):
    _, _, now, data = one_reply(client, server, "zero-origin")
    d = decode(data)
    assert d["org"] == bytes(8)
    assert_near(d["rx"], now)
    assert_near(d["tx"], now)


def test_wrong_port(client, server):
    _, tx, now, got = query(client, server, "wrong-port", window=0.2)
    assert len(got) == 1
    _, data, addr = got[0]
    assert addr[0] == "127.0.0.1"
    assert addr[1] != server.port
    assert_honest(decode(data), tx, now)


# -- header anomalies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, changes",
    [
        ("unsync", {"li": 3}),
        ("stratum16", {"stratum": 16}),
        ("mode3", {"mode": 3}),
        ("mode5", {"mode": 5}),
        ("version2", {"vn": 2}),
        ("version5", {"vn": 5}),
        ("far", {"root_disp": 0x000A0000}),
        ("far-delay", {"root_delay": 0x000C0000}),
        ("zero-rx", {"rx": bytes(8)}),
        ("zero-tx", {"tx": bytes(8)}),
        ("zero-ref", {"ref": bytes(8)}),
    ],
)
def test_single_field_anomalies(client, server, mode, changes):
    _, tx, now, data = one_reply(client, server, mode)
    assert len(data) == 48
    d = decode(data)
    expected = {
        "li": 0,
        "vn": 4,
        "mode": 4,
        "stratum": 2,
        "poll": 6,
        "precision": -20,
        "root_delay": 0x100,
        "root_disp": 0x200,
        "refid": LOOPBACK_ID,
        "org": tx,
    }
    expected.update(changes)
    for key, want in expected.items():
        assert d[key] == want, key
    for key, shift in (("ref", -16 * 10**9), ("rx", 0), ("tx", 0)):
        if key in changes:
            continue
        assert_near(d[key], now + shift)


def test_backwards(client, server):
    _, tx, now, data = one_reply(client, server, "backwards")
    d = decode(data)
    assert d["org"] == tx
    assert_near(d["rx"], now)
    diff = ts_to_unix_ns(d["rx"]) - ts_to_unix_ns(d["tx"])
    assert abs(diff - 10**9) <= 1  # 1 s earlier, up to fraction rounding


# -- lengths and repetitions ----------------------------------------------------------


def test_short(client, server):
    _, tx, now, data = one_reply(client, server, "short")
    assert len(data) == 40
    assert data[24:32] == tx
    assert_near(data[32:40], now)
    assert data[0] == 0x24 and data[1] == 2


def test_long_has_mac(client, server):
    _, tx, now, data = one_reply(client, server, "long")
    assert len(data) == 68
    assert_honest(decode(data), tx, now)
    assert data[48:52] == struct.pack(">I", 1)
    assert data[52:] == b"\xaa" * 16


def test_duplicate(client, server):
    _, tx, now, got = query(client, server, "duplicate", window=0.3)
    assert len(got) == 2
    (t1, d1, a1), (t2, d2, a2) = got
    assert d1 == d2 and a1 == a2 == ("127.0.0.1", server.port)
    assert_honest(decode(d1), tx, now)
    assert 0.012 <= t2 - t1 <= 0.2


def test_slow(client):
    with RefServer(delay_s=0.3, mode="slow") as srv:
        req, tx = make_request()
        t0 = time.monotonic()
        now = time.time_ns()
        client.sendto(req, ("127.0.0.1", srv.port))
        assert collect(client, 0.2) == []
        got = collect(client, 0.5)
        assert len(got) == 1
        arrived, data, _ = got[0]
        assert 0.27 <= arrived - t0 <= 0.6
        d = decode(data)
        assert_honest(d, tx, now)
        held = ts_to_unix_ns(d["tx"]) - ts_to_unix_ns(d["rx"])
        assert 0.28e9 <= held <= 0.5e9


def test_silent(client, server):
    req, _, _, got = query(client, server, "silent", window=0.3)
    assert got == []
    assert [r[2] for r in server.requests] == [req]


def test_garbage(client, server):
    _, tx, _, d1 = one_reply(client, server, "garbage")
    _, _, _, d2 = one_reply(client, server, "garbage")
    assert len(d1) == len(d2) == 48
    assert d1 != d2  # random each time
    assert d1[24:32] != tx


def test_empty(client, server):
    _, _, _, data = one_reply(client, server, "empty")
    assert data == b""


# -- documentation ----------------------------------------------------------------------


def test_every_mode_documented_and_listed():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--list-modes"],
        check=False,
        capture_output=True,
        text=True,
        timeout=5,
    )
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert listed == list(refserver.MODES)
    assert len(listed) == 30
    doc = refserver.__doc__
    for name in refserver.MODES:
        assert f"\n    {name} " in doc, name


# -- command line ----------------------------------------------------------------------------


def _start_cli(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    parts = line.split()
    assert parts[:2] == ["listening", "127.0.0.1"], line
    assert len(parts) == 3
    return proc, int(parts[2])


def _cli_query(port: int) -> tuple[bytes, bytes, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        req, tx = make_request()
        now = time.time_ns()
        s.sendto(req, ("127.0.0.1", port))
        got = collect(s, 2.0, stop_after_first=True)
        got += collect(s, 0.05)
    assert len(got) == 1
    return got[0][1], tx, now


def test_cli_offset_and_sigterm():
    proc, port = _start_cli("--port", "0", "--offset", "12.5", "--log")
    try:
        data, tx, now = _cli_query(port)
        d = decode(data)
        assert d["org"] == tx
        assert abs(ts_to_unix_ns(d["tx"]) - (now + 12_500_000_000)) < 0.5e9
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert "mode=normal" in err  # --log line for our request


def test_cli_start_time_rollover():
    proc, port = _start_cli("--start-time", "2085978496", "--port", "0")
    try:
        data, tx, _ = _cli_query(port)
        d = decode(data)
        assert d["org"] == tx
        assert struct.unpack(">I", d["tx"][:4])[0] < 100
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_cli_for_exits_by_itself():
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--for", "0.3"],
        check=False,
        capture_output=True,
        text=True,
        timeout=5,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("listening 127.0.0.1 ")
    assert 0.3 <= time.monotonic() - t0 < 4


@pytest.mark.parametrize(
    "args",
    [["--mode", "bogus"], ["--offset", "abc"], ["--host", "8.8.8.8"], ["--stratum", "300"]],
)
def test_cli_bad_arguments(args):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=5,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
