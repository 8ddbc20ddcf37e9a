#!/usr/bin/env python3
"""refserver -- a small, honest local NTP server for tests and demos.

It serves this machine's clock (plus an optional fixed offset) over UDP on a
loopback address, and can misbehave in named ways so that an SNTP client's
reply checks can be exercised end to end.  It never changes the host clock,
only binds loopback addresses and never contacts any other host.

Time source: ``time.time_ns()`` + offset, or -- with ``--start-time`` -- a
clock that starts at the given Unix time when the server starts and then runs
at the real rate (``time.monotonic_ns()``), + offset.  Timestamps are encoded
with integer arithmetic only: NTP seconds = ``(unix_s + 2208988800) % 2**32``
(so times after 2036-02-07 06:28:16 UTC wrap to small numbers, era 1) and
fraction = ``(ns_remainder << 32) // 10**9``.

Honest reply (mode ``normal``), 48 bytes big-endian:

    LI=0, VN=request's VN if 3 or 4 else 4, mode=4 (server)
    stratum=--stratum (default 2), poll=request's poll, precision=-20
    root delay=0x00000100, root dispersion=0x00000200 (NTP short 16.16)
    reference ID=127.0.0.1 (b"LOCL" for stratum 1)
    reference ts=now-16 s, origin ts=request's transmit ts (bytes 40-47
    verbatim), receive ts=time of arrival, transmit ts=time just before send

Requests shorter than 48 bytes or whose mode is not 3 (client) are recorded
but never answered, whatever the mode.

Modes (``--mode``; ``RefServer.mode`` may be changed while running):

    ===============  ==========================================================
    mode             reply
    ===============  ==========================================================
    normal           the honest reply described above
    kod-rate         KoD (ntpd style): LI=3, stratum 0, refid RATE, origin =
                     receive = transmit = client's transmit ts, reference 0,
                     root delay/dispersion 0
    kod-rate-zero    KoD (other form): LI=0, stratum 0, refid RATE, origin =
                     client's transmit ts, reference = receive = transmit = 0
    kod-deny         like kod-rate but refid DENY
    kod-rstr         like kod-rate but refid RSTR
    kod-xcode        like kod-rate but unknown refid XFOO
    kod-spoof        KoD RATE (LI=0, stratum 0) with a random origin ts (a
                     spoof the client must ignore)
    spoof-then-real  honest-looking reply with a random origin, then 50 ms
                     later the real honest reply
    bad-origin       one honest-looking reply with a random origin only
    zero-origin      honest reply but origin ts 0
    wrong-port       honest reply sent from another UDP socket (other port)
    unsync           honest timestamps but LI=3 (stratum as configured)
    stratum16        honest timestamps, stratum 16
    mode3            honest timestamps but mode 3 (client) in byte 0
    mode5            honest timestamps but mode 5 (broadcast) in byte 0
    version2         honest timestamps but VN=2
    version5         honest timestamps but VN=5
    zero-rx          honest reply but receive ts 0
    zero-tx          honest reply but transmit ts 0
    zero-ref         honest reply but reference ts 0
    far              honest reply but root dispersion 10 s (0x000A0000)
    far-delay        honest reply but root delay 12 s (0x000C0000)
    backwards        transmit ts 1 s earlier than receive ts
    short            only the first 40 bytes of an honest reply
    long             honest 48 bytes + 20-byte MAC (key id 1, 16 x 0xAA) = 68
    duplicate        the honest reply sent twice, 20 ms apart
    slow             honest reply after --delay s (receive ts at arrival,
                     transmit ts at sending)
    silent           never replies (the request is still recorded)
    garbage          48 random bytes
    empty            a 0-byte datagram
    ===============  ==========================================================

Command line::

    tools/refserver.py [--host 127.0.0.1] [--port 0] [--offset SECONDS]
        [--start-time UNIX_SECONDS] [--mode MODE] [--stratum N]
        [--delay SECONDS] [--for SECONDS] [--log] [--list-modes]

Once bound it prints ``listening HOST PORT`` on stdout (flushed), then serves
until SIGTERM/SIGINT or ``--for`` seconds elapse, and exits 0.  ``--log``
prints one line per request on stderr.

In-process use (add tools/ to sys.path)::

    from refserver import RefServer
    srv = RefServer(port=0, mode="normal")
    srv.start(); ...; srv.mode = "kod-rate"; ...; srv.stop()
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Self

import ntpwire

NS = 10**9

ROOT_DELAY = 0x00000100
ROOT_DISPERSION = 0x00000200
PRECISION = -20
REFID_LOOPBACK = bytes([127, 0, 0, 1])
REFID_STRATUM1 = b"LOCL"
MAC = struct.pack(">I", 1) + b"\xaa" * 16
ZERO_TS = bytes(8)

MODES: dict[str, str] = {
    "normal": "honest reply: host clock (+offset), origin = client's transmit",
    "kod-rate": "KoD LI=3 stratum 0 RATE, origin=receive=transmit=client's transmit",
    "kod-rate-zero": "KoD LI=0 stratum 0 RATE, origin=client's transmit, other timestamps 0",
    "kod-deny": "like kod-rate but refid DENY",
    "kod-rstr": "like kod-rate but refid RSTR",
    "kod-xcode": "like kod-rate but unknown refid XFOO",
    "kod-spoof": "KoD RATE (LI=0, stratum 0) with a random origin (spoof to ignore)",
    "spoof-then-real": "reply with random origin, then 50 ms later the honest reply",
    "bad-origin": "single honest-looking reply with a random origin",
    "zero-origin": "honest reply with origin timestamp 0",
    "wrong-port": "honest reply sent from a different UDP source port",
    "unsync": "honest timestamps but LI=3 (unsynchronised)",
    "stratum16": "honest timestamps but stratum 16",
    "mode3": "honest timestamps but mode 3 (client) in byte 0",
    "mode5": "honest timestamps but mode 5 (broadcast) in byte 0",
    "version2": "honest timestamps but VN=2",
    "version5": "honest timestamps but VN=5",
    "zero-rx": "honest reply but receive timestamp 0",
    "zero-tx": "honest reply but transmit timestamp 0",
    "zero-ref": "honest reply but reference timestamp 0",
    "far": "honest reply but root dispersion 10 s (0x000A0000)",
    "far-delay": "honest reply but root delay 12 s (0x000C0000)",
    "backwards": "transmit timestamp 1 s earlier than receive timestamp",
    "short": "only the first 40 bytes of an honest reply",
    "long": "honest 48 bytes + 20-byte MAC (key id 1, 16 x 0xAA) = 68 bytes",
    "duplicate": "the honest reply sent twice, 20 ms apart",
    "slow": "honest reply after --delay seconds (transmit ts at sending)",
    "silent": "never replies (request still recorded)",
    "garbage": "48 random bytes",
    "empty": "a 0-byte datagram",
}


def to_ntp(unix_ns: int) -> bytes:
    """Encode Unix time in integer nanoseconds as an 8-byte NTP timestamp."""
    return ntpwire.ntp64(unix_ns, NS).to_bytes(8, "big")


def parse_seconds_ns(text: str) -> int:
    """Parse a decimal number of seconds exactly into integer nanoseconds."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return round(Fraction(value) * NS)


def _random_origin(avoid: bytes) -> bytes:
    while True:
        origin = os.urandom(8)
        if origin != avoid and origin != ZERO_TS:
            return origin


def _check_loopback(host: str) -> str:
    if host == "localhost":
        host = "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address, not {host!r}") from None
    if not addr.is_loopback:
        raise ValueError(f"refusing to bind non-loopback address {host}")
    return str(addr)


class RefServer:
    """Local NTP reference server serving in a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        offset_ns: int = 0,
        mode: str = "normal",
        stratum: int = 2,
        delay_s: float = 2.0,
        start_time_ns: int | None = None,
        log: bool = False,
    ) -> None:
        self.host = _check_loopback(host)
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"bad port {port}")
        if not 0 <= int(stratum) <= 255:
            raise ValueError(f"stratum must be 0..255, not {stratum}")
        if delay_s < 0:
            raise ValueError("delay must be >= 0")
        self._port_req = int(port)
        self.offset_ns = int(offset_ns)
        self.stratum = int(stratum)
        self.delay_s = float(delay_s)
        self.start_time_ns = None if start_time_ns is None else int(start_time_ns)
        self.log = log
        self.mode = mode
        self.requests: list[tuple[int, tuple, bytes]] = []
        self.port: int | None = None
        self._sock: socket.socket | None = None
        self._family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._pending: list[tuple[int, int, object]] = []  # (due_mono_ns, seq, action)
        self._seq = 0
        self._mono_base = time.monotonic_ns()

    # -- mode ------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; known: {', '.join(MODES)}")
        self._mode = value

    # -- clock -----------------------------------------------------------
    def now_ns(self) -> int:
        """Server time as Unix nanoseconds (host clock or started clock, + offset)."""
        if self.start_time_ns is None:
            return time.time_ns() + self.offset_ns
        return self.start_time_ns + (time.monotonic_ns() - self._mono_base) + self.offset_ns

    # -- lifecycle -------------------------------------------------------
    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("already started")
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._port_req))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._mono_base = time.monotonic_ns()
        self._thread = threading.Thread(target=self._serve, name="refserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in (self._sock, self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving loop ----------------------------------------------------
    def _schedule(self, delay_s: float, action) -> None:
        self._seq += 1
        due = time.monotonic_ns() + int(delay_s * NS)
        heapq.heappush(self._pending, (due, self._seq, action))

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            timeout = None
            if self._pending:
                timeout = max(0.0, (self._pending[0][0] - time.monotonic_ns()) / NS)
            try:
                ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
            except OSError:
                break
            if self._stopping.is_set():
                break
            if sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:  # e.g. ICMP port unreachable from an earlier send
                    data = None
                if data is not None:
                    rx_ns = self.now_ns()
                    self.requests.append((time.monotonic_ns(), addr, data))
                    try:
                        self._handle(data, addr, rx_ns)
                    except OSError as exc:
                        self._log(f"{_fmt_addr(addr)} error: {exc}")
            now = time.monotonic_ns()
            while self._pending and self._pending[0][0] <= now:
                _, _, action = heapq.heappop(self._pending)
                try:
                    action()
                except OSError as exc:
                    self._log(f"delayed send failed: {exc}")

    def _log(self, text: str) -> None:
        if self.log:
            print(f"refserver: {text}", file=sys.stderr, flush=True)

    def _send(self, payload: bytes, addr: tuple, sock: socket.socket | None = None) -> None:
        (sock or self._sock).sendto(payload, addr)

    # -- reply construction ----------------------------------------------
    def _reply(
        self,
        req: bytes,
        rx_ns: int,
        *,
        vn: int | None = None,
        stratum: int | None = None,
        refid: bytes | None = None,
        ref: bytes | None = None,
        origin: bytes | None = None,
        rx: bytes | None = None,
        tx: bytes | None = None,
        tx_ns: int | None = None,
        **fields,
    ) -> bytes:
        req_vn = (req[0] >> 3) & 7
        if vn is None:
            vn = req_vn if req_vn in (3, 4) else 4
        if stratum is None:
            stratum = self.stratum
        if refid is None:
            refid = REFID_STRATUM1 if stratum == 1 else REFID_LOOPBACK
        now = self.now_ns()
        return ntpwire.reply(
            req[40:48] if origin is None else origin,
            to_ntp(rx_ns) if rx is None else rx,
            to_ntp(now if tx_ns is None else tx_ns) if tx is None else tx,
            to_ntp(now - 16 * NS) if ref is None else ref,
            vn=vn & 7,
            stratum=stratum,
            poll=ntpwire.signed(req[2]),
            precision=PRECISION,
            refid=refid,
            **fields,
        )

    def _kod(self, req: bytes, refid: bytes, *, zero_form: bool = False, origin=None) -> bytes:
        return ntpwire.kod(req, refid, zero_form, origin)

    def _handle(self, req: bytes, addr: tuple, rx_ns: int) -> None:
        src = _fmt_addr(addr)
        if len(req) < 48:
            self._log(f"{src} ignored: {len(req)}-byte request (< 48)")
            return
        if req[0] & 7 != 3:
            self._log(f"{src} ignored: request mode {req[0] & 7} is not 3 (client)")
            return
        mode = self._mode
        client_tx = req[40:48]
        what = self._dispatch(mode, req, addr, rx_ns, client_tx)
        self._log(f"{src} mode={mode} origin={client_tx.hex()} {what}")

    def _dispatch(self, mode: str, req: bytes, addr: tuple, rx_ns: int, client_tx: bytes) -> str:
        send = self._send
        reply = self._reply
        if mode == "normal":
            payload = reply(req, rx_ns)
        elif mode == "kod-rate":
            payload = self._kod(req, b"RATE")
        elif mode == "kod-rate-zero":
            payload = self._kod(req, b"RATE", zero_form=True)
        elif mode == "kod-deny":
            payload = self._kod(req, b"DENY")
        elif mode == "kod-rstr":
            payload = self._kod(req, b"RSTR")
        elif mode == "kod-xcode":
            payload = self._kod(req, b"XFOO")
        elif mode == "kod-spoof":
            payload = self._kod(req, b"RATE", zero_form=True, origin=_random_origin(client_tx))
        elif mode == "spoof-then-real":
            payload = reply(req, rx_ns, origin=_random_origin(client_tx))
            send(payload, addr)
            self._schedule(0.05, lambda: send(reply(req, rx_ns), addr))
            return f"sent spoof {_describe(payload)}; honest reply in 50 ms"
        elif mode == "bad-origin":
            payload = reply(req, rx_ns, origin=_random_origin(client_tx))
        elif mode == "zero-origin":
            payload = reply(req, rx_ns, origin=ZERO_TS)
        elif mode == "wrong-port":
            payload = reply(req, rx_ns)
            with socket.socket(self._family, socket.SOCK_DGRAM) as other:
                other.bind((self.host, 0))
                other.sendto(payload, addr)
                port = other.getsockname()[1]
            return f"sent {_describe(payload)} from port {port}"
        elif mode == "unsync":
            payload = reply(req, rx_ns, li=3)
        elif mode == "stratum16":
            payload = reply(req, rx_ns, stratum=16)
        elif mode == "mode3":
            payload = reply(req, rx_ns, mode=3)
        elif mode == "mode5":
            payload = reply(req, rx_ns, mode=5)
        elif mode == "version2":
            payload = reply(req, rx_ns, vn=2)
        elif mode == "version5":
            payload = reply(req, rx_ns, vn=5)
        elif mode == "zero-rx":
            payload = reply(req, rx_ns, rx=ZERO_TS)
        elif mode == "zero-tx":
            payload = reply(req, rx_ns, tx=ZERO_TS)
        elif mode == "zero-ref":
            payload = reply(req, rx_ns, ref=ZERO_TS)
        elif mode == "far":
            payload = reply(req, rx_ns, root_disp=0x000A0000)
        elif mode == "far-delay":
            payload = reply(req, rx_ns, root_delay=0x000C0000)
        elif mode == "backwards":
            payload = reply(req, rx_ns, tx_ns=rx_ns - NS)
        elif mode == "short":
            payload = reply(req, rx_ns)[:40]
        elif mode == "long":
            payload = reply(req, rx_ns) + MAC
        elif mode == "duplicate":
            payload = reply(req, rx_ns)
            send(payload, addr)
            self._schedule(0.02, lambda: send(payload, addr))
            return f"sent {_describe(payload)}; duplicate in 20 ms"
        elif mode == "slow":
            delay = self.delay_s
            self._schedule(delay, lambda: send(reply(req, rx_ns), addr))
            return f"honest reply scheduled in {delay} s"
        elif mode == "silent":
            return "sent nothing"
        elif mode == "garbage":
            payload = os.urandom(48)
        elif mode == "empty":
            payload = b""
        else:  # pragma: no cover - the mode setter rejects unknown names
            raise AssertionError(mode)
        send(payload, addr)
        return f"sent {_describe(payload)}"


def _fmt_addr(addr: tuple) -> str:
    return f"{addr[0]}:{addr[1]}"


def _describe(payload: bytes) -> str:
    if len(payload) < 48:
        return f"{len(payload)} bytes"
    li, vn, mode = payload[0] >> 6, (payload[0] >> 3) & 7, payload[0] & 7
    refid = payload[12:16]
    shown = refid.decode("ascii") if refid.isalpha() else ".".join(map(str, refid))
    return (
        f"{len(payload)} bytes LI={li} VN={vn} mode={mode} stratum={payload[1]} "
        f"refid={shown} ref={payload[16:24].hex()} org={payload[24:32].hex()} "
        f"rx={payload[32:40].hex()} tx={payload[40:48].hex()}"
    )


# -- command line -----------------------------------------------------------


def _arg_seconds_ns(text: str) -> int:
    try:
        return parse_seconds_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arg_nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _arg_stratum(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"stratum must be 0..255: {text!r}")
    return value


def _arg_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535: {text!r}")
    return value


def _arg_host(text: str) -> str:
    try:
        return _check_loopback(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arg_mode(text: str) -> str:
    if text not in MODES:
        raise argparse.ArgumentTypeError(f"unknown mode {text!r} (see --list-modes)")
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (no usage block)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="refserver.py",
        description="Local loopback NTP server serving the host clock, with misbehaving modes.",
    )
    p.add_argument("--host", type=_arg_host, default="127.0.0.1", help="loopback address")
    p.add_argument("--port", type=_arg_port, default=0, help="UDP port (0 = pick a free one)")
    p.add_argument(
        "--offset", type=_arg_seconds_ns, default=0, metavar="SECONDS", help="added to clock"
    )
    p.add_argument(
        "--start-time",
        type=_arg_seconds_ns,
        default=None,
        metavar="UNIX_SECONDS",
        help="start the served clock at this Unix time instead of the host clock",
    )
    p.add_argument("--mode", type=_arg_mode, default="normal", help="behaviour (--list-modes)")
    p.add_argument("--stratum", type=_arg_stratum, default=2, metavar="N")
    p.add_argument(
        "--delay", type=_arg_nonneg_float, default=2.0, metavar="SECONDS", help="for mode slow"
    )
    p.add_argument(
        "--for",
        dest="duration",
        type=_arg_nonneg_float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds",
    )
    p.add_argument("--log", action="store_true", help="log each request on stderr")
    p.add_argument("--list-modes", action="store_true", help="list modes and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_modes:
        width = max(map(len, MODES))
        for name, desc in MODES.items():
            print(f"{name:<{width}}  {desc}")
        return 0

    stop = threading.Event()

    def _on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = RefServer(
        host=args.host,
        port=args.port,
        offset_ns=args.offset,
        mode=args.mode,
        stratum=args.stratum,
        delay_s=args.delay,
        start_time_ns=args.start_time,
        log=args.log,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"refserver.py: error: cannot bind {args.host} {args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"listening {server.host} {server.port}", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            if deadline is None:
                time.sleep(0.1)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(0.1, remaining))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
