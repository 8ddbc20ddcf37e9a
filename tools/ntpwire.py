# NTP on the wire for the host tools: Unix time <-> NTP timestamps, and the one reply builder
# of the reference server (tools/refserver.py), the simulators (tools/simdev.py, tools/fleet),
# the fuzzer's seeds (tools/fuzz) and the test fakes. Written apart from firmware/sntp, so a
# bug in the firmware's decoder cannot hide behind the same code here. Integers only; runs on
# CPython and on the unix-port MicroPython (the simulator runs there in make test-mp).
import struct

NTP_1970_S = 2_208_988_800  # 1900-01-01 to 1970-01-01: 70 years, 17 leap days
NTP_2000_S = 3_155_673_600  # 1900-01-01 to 2000-01-01: 100 years, 24 leap days
ERA = 1 << 32  # NTP seconds per era, and timestamp fraction units per second
US = 1_000_000
_MASK64 = (1 << 64) - 1


def ntp_full(t, per_s=US):
    """Unix time in units of 1/per_s s (us; ns with per_s=10**9) -> the full NTP value in
    2**-32 s since 1900, the era kept (its seconds may pass 2**32); the fraction truncated."""
    s, f = divmod(t, per_s)
    return ((s + NTP_1970_S) << 32) | ((f << 32) // per_s)


def ntp64(t, per_s=US):
    """The same as it travels on the wire: 64 bits, the era dropped."""
    return ntp_full(t, per_s) & _MASK64


def unix_us(full):
    """A full NTP value -> Unix microseconds, rounded to the nearest one."""
    return ((full >> 32) - NTP_1970_S) * US + (((full & (ERA - 1)) * US + (1 << 31)) >> 32)


def signed(byte):
    """A byte as a signed 8-bit field (poll, precision)."""
    return byte - 256 if byte > 127 else byte


def _ts(v):
    return v if isinstance(v, (bytes, bytearray)) else (v & _MASK64).to_bytes(8, "big")


_HEAD = "!BBbbII4s"


def reply(
    origin,
    rx,
    tx,
    ref=None,
    li=0,
    vn=4,
    mode=4,
    stratum=2,
    poll=6,
    precision=-20,
    root_delay=0x100,
    root_disp=0x200,
    refid=b"\x7f\x00\x00\x01",
):
    """A 48-byte server reply. origin: 8 bytes (the request's transmit field); rx, tx, ref:
    NTP values (ints, wrapped to 64 bits) or 8 bytes as they go out; ref: 16 s before rx."""
    if ref is None:
        ref = rx - (16 << 32)
    head = struct.pack(
        _HEAD, (li << 6) | (vn << 3) | mode, stratum, poll, precision, root_delay, root_disp, refid
    )
    return head + _ts(ref) + bytes(origin) + _ts(rx) + _ts(tx)


def kod(req, code, zero_form=False, origin=None):
    """A Kiss-o'-Death for request req: ntpd/ntpsec's form (LI 3, stratum 0, origin = receive
    = transmit = the request's transmit field), or zero_form (LI 0, timestamps 0). origin:
    another origin (a spoof)."""
    nonce = bytes(req[40:48])
    ts = bytes(8) if zero_form else nonce
    return reply(
        nonce if origin is None else origin,
        ts,
        ts,
        bytes(8),
        li=0 if zero_form else 3,
        stratum=0,
        poll=signed(req[2]),
        root_delay=0,
        root_disp=0,
        refid=code if isinstance(code, bytes) else code.encode(),
    )
