"""The on-wire rules for an SNTP reply, as an oracle written apart from firmware/sntp.

It imports nothing from the firmware: it decodes the header with its own struct format,
resolves the NTP era its own way and does its arithmetic in exact fractions of a second, from
RFC 5905 (sections 7.3, 8, 9.2), RFC 4330 (section 5) and docs/rules.md (rules 5, 6, 9),
with the limits docs/design.md's table "What a reply must pass" gives. The property tests
(host_tests/test_fuzz_replies.py) and the fuzz target (tools/fuzz/fuzz_replies.py) hold every
reply the firmware accepts to it: an accepted reply that breaks a rule here is a failure.

violations() lists every rule a datagram breaks, in docs/design.md's order, by the firmware's
reason names (the documented public names, written out here, not imported): the first one is
the reason the firmware must give.
"""

import struct
from fractions import Fraction

HEADER_LEN = 48
# RFC 5905 7.3: after the header, at most a MAC (a 4-byte key ID and a digest, 20 bytes with
# SHA-1); a longer datagram carries extension fields (RFC 7822), which no server sends to a
# request without any: docs/design.md's table calls it too long
MAX_REPLY_LEN = HEADER_LEN + 4 + 20
ERA = 1 << 32  # NTP seconds per era, and timestamp fraction units per second
NTP_1970_S = 2_208_988_800  # 1900-01-01 to 1970-01-01: 70 years, 17 leap days
NTP_2000_S = 3_155_673_600  # 1900-01-01 to 2000-01-01: 100 years, 24 leap days

MAX_ROOT_DISTANCE = Fraction(3, 2)  # s; docs/design.md: above 1.5 s is too-far (ntpd's limit)
DELAY_SLACK = Fraction(1, 1000)  # s; a round trip 1 ms shorter than processing passes
# The firmware works in integer microseconds, rounding T2 and T3 to the nearest one (half a
# microsecond each): its round-trip delay may differ from the exact one by less than 1 us.
# Only the delay limit gets this band, both ways (lenient / strict): every other rule is exact.
ROUNDING = Fraction(1, 1_000_000)

# In docs/design.md's order. The first four mean "not our reply": ignored, keep waiting.
IGNORED = ("wrong-source", "short", "long", "bad-origin")
FINAL = (
    "bad-mode",
    "bad-version",
    "kiss",
    "unsynchronized",
    "zero-timestamp",
    "no-reference",
    "too-far",
    "bad-timestamps",
)

# The fuzz target's fixed request (tools/fuzz/fuzz_replies.py); tools/fuzz/capture.py sends
# this nonce, so that the captured replies carry it as their origin and reach every check.
FUZZ_NONCE = bytes.fromhex("5a17c0debadc0ffe")
FUZZ_SERVER = ("192.0.2.1", 123)  # TEST-NET-1: never reached, the datagrams are handed over


class Fields:
    """The header of a reply, decoded by offset (RFC 5905 figure 8)."""

    def __init__(self, data):
        b0, self.stratum, self.poll, self.precision = struct.unpack(">BBbb", data[0:4])
        self.li, self.vn, self.mode = b0 >> 6, (b0 >> 3) & 7, b0 & 7
        self.root_delay, self.root_disp = struct.unpack(">II", data[4:12])  # 16.16 s
        self.refid = bytes(data[12:16])
        self.ref, self.origin, self.rx, self.tx = struct.unpack(">QQQQ", data[16:48])
        self.origin_bytes = bytes(data[24:32])


def full_ntp(ts64, pivot_s):
    """A wire timestamp as exact NTP seconds (since 1900) in the era window
    [pivot_s, pivot_s + 2**32) of rule 9."""
    sec, frac = ts64 >> 32, ts64 & (ERA - 1)
    eras_up = -((sec - pivot_s) // ERA)  # how many eras to add to land at or above the pivot
    return Fraction(sec + eras_up * ERA) + Fraction(frac, ERA)


class Request:
    """What the client knows of its request: where it went, the nonce it carried, when it left
    (t1_us, microseconds since the port epoch, which starts epoch_s after 1900)."""

    def __init__(self, server, nonce, t1_us, epoch_s, pivot_s):
        self.server = server
        self.nonce = bytes(nonce)
        self.t1_us = t1_us
        self.epoch_s = epoch_s
        self.pivot_s = pivot_s

    def local(self, ts64):
        """A wire timestamp as exact seconds since the port epoch."""
        return full_ntp(ts64, self.pivot_s) - self.epoch_s

    def times(self, f, t4_us):
        """Exact (T1, T2, T3, T4) in seconds since the port epoch."""
        t1 = Fraction(self.t1_us, 1_000_000)
        t4 = Fraction(t4_us, 1_000_000)
        return t1, self.local(f.rx), self.local(f.tx), t4


def violations(req, data, source, t4_us, band=1):
    """Every on-wire rule that datagram `data` from `source`, received at t4_us, breaks.

    band: +1 lenient (the delay may be ROUNDING below the limit: what the firmware may accept),
    -1 strict (it must be ROUNDING above it: what the firmware must accept).
    """
    out = []
    if source != req.server:  # RFC 4330 5: the reply comes from where the request went
        out.append("wrong-source")
    if data is None or len(data) < HEADER_LEN:  # RFC 5905 7.3: a header is 48 bytes
        out.append("short")
        return out
    if len(data) > MAX_REPLY_LEN:  # more than a header and a MAC
        out.append("long")
        return out
    f = Fields(data)
    if f.origin_bytes != req.nonce:  # RFC 5905 8: origin != our transmit: bogus
        out.append("bad-origin")
    if f.mode != 4:  # RFC 4330 5: mode 4 (server)
        out.append("bad-mode")
    if f.vn not in (3, 4):  # rule 6: we send version 4 and take 3 or 4
        out.append("bad-version")
    if f.stratum == 0:  # rule 5: Kiss-o'-Death, whatever its other fields say
        out.append("kiss")
    if f.li == 3 or f.stratum > 15:  # RFC 4330 5: LI 3 or stratum 16+ is not synchronized
        out.append("unsynchronized")
    if f.rx == 0 or f.tx == 0:  # RFC 4330 5: a zero receive or transmit timestamp
        out.append("zero-timestamp")
    if f.ref == 0:  # docs/design.md: a server that was never synchronized
        out.append("no-reference")
    # RFC 5905 9.2 (root distance = root delay / 2 + root dispersion), docs/design.md's limit 1.5 s
    if Fraction(f.root_delay, 2 << 16) + Fraction(f.root_disp, 1 << 16) > MAX_ROOT_DISTANCE:
        out.append("too-far")
    t1, t2, t3, t4 = req.times(f, t4_us)
    delay = (t4 - t1) - (t3 - t2)  # RFC 5905 8: delta
    # transmit before receive, or a round trip shorter than the server's own processing
    if t3 < t2 or delay < -DELAY_SLACK - band * ROUNDING:
        out.append("bad-timestamps")
    return out


def accepted_problems(req, data, source, t4_us, result):
    """Why an accepted result should not have been accepted, or does not say what the reply
    says: an empty list when it is right. Offsets per RFC 5905 8:
    theta = ((T2 - T1) + (T3 - T4)) / 2, delta = (T4 - T1) - (T3 - T2); the firmware's
    integer microseconds are within 1.5 us of theta (T2, T3 rounded, then halved and floored)
    and 1 us of delta (clamped at 0 within the slack)."""
    out = ["rule: " + v for v in violations(req, data, source, t4_us, band=1)]
    if out:
        return out
    f = Fields(data)
    t1, t2, t3, t4 = req.times(f, t4_us)
    theta = ((t2 - t1) + (t3 - t4)) / 2
    delta = max(Fraction(0), (t4 - t1) - (t3 - t2))
    us = Fraction(1, 1_000_000)
    if not (result.ok and result.error is None and result.kiss is None):
        out.append("ok={} error={} kiss={}".format(result.ok, result.error, result.kiss))
    checks = (
        ("offset_us", result.offset_us, theta, Fraction(3, 2)),
        ("delay_us", result.delay_us, delta, Fraction(1)),
        ("t2_us", result.t2_us, t2, Fraction(1, 2)),
        ("t3_us", result.t3_us, t3, Fraction(1, 2)),
        ("t3_us", result.t3_us, t3, Fraction(1, 2)),
    )
    for name, got, exact, tolerance_us in checks:
        if not isinstance(got, int) or abs(got * us - exact) > tolerance_us * us:
            out.append("{}={} but exact {} us".format(name, got, float(exact / us)))
    if result.t1_us != req.t1_us or result.t4_us != t4_us:
        out.append("t1/t4 not the local send/receive times")
    distance = Fraction(f.root_delay, 2 << 16) + Fraction(f.root_disp, 1 << 16)
    got = result.root_distance_us
    # each short rounded to the nearest us, the delay's half floored: within 1.75 us
    if not isinstance(got, int) or abs(got * us - distance) > 2 * us:
        out.append("root_distance_us={} but exact {} us".format(got, float(distance / us)))
    return out
