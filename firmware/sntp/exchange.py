# One SNTP exchange, free of I/O: the request's bytes, the reply header's fields, NTP
# timestamps as microseconds, every check of a reply, the offset.
#
# The driver owns the socket and the clock. It creates an Exchange with a fresh nonce and the
# local send time T1, sends request(), hands every datagram it receives to receive() with the
# local receive time T4 (best measured as T1 plus a ticks difference, so a clock step during
# the exchange cannot corrupt it), and calls expire() when its deadline passes.
#
# receive() answers None for a datagram that is not our reply (it is counted in `ignored` and
# the driver keeps waiting: a spoof or a late duplicate must not end the exchange), or a Result.
# The checks run in this order, each with a named reason (rule 6):
#   not our reply, ignored:   wrong-source, short, long, bad-origin
#   our reply, final:         bad-mode, bad-version, kiss (rule 5), unsynchronized,
#                             zero-timestamp, no-reference, too-far, bad-timestamps
# A KoD is recognized by stratum 0 alone, never by its timestamps, and its timestamps are
# never used (rule 5): ntpd/ntpsec send LI=3 with origin = receive = transmit = our nonce,
# which passes the origin check; other servers send LI=0 with zero timestamps.
#
# Offset sign: positive means the local clock is behind the server (RFC 5905 theta).
#
# Timestamps (RFC 5905 section 6), integers only:
#   timestamp  64 bits: seconds since 1900-01-01 (32 bits, wrapping) . fraction (32 bits)
#   short      32 bits: seconds (16) . fraction (16), for root delay and root dispersion
# Local times are microseconds since the port's epoch (1970 on unix/rp2/CPython, 2000 on
# ESP32), always Python ints: a float32 on the boards would only be good to about 2 minutes.
# Values above 2**30 are big ints on the boards (they take heap): fine at one exchange a
# minute, never used in a tight loop.
#
# Era (rule 9): the 32-bit seconds wrap on 2036-02-07 06:28:16 UTC. A wire timestamp is
# resolved to the unique full value in [pivot, pivot + 2**32 s), with the pivot 50 years
# before the firmware's build date (as chrony does): a build in 2026 decodes every time from
# 1976 until 2112 correctly, 2036+ server times included.
#
# (sntp.timestamp, outside the sync core, re-exports the timestamp names below beside the
# date formatting that only people need.)
import struct

from .compat import const

US_PER_S = const(1_000_000)

# Seconds from 1900-01-01 (the NTP prime epoch) to the port epochs.
NTP_1970_S = 2_208_988_800  # 70 years incl. 17 leap days
NTP_2000_S = 3_155_673_600  # 100 years incl. 24 leap days

# The firmware's build date, the clock floor of rule 10 and the anchor of the era pivot.
# Update it with each release (tools/sntp --version prints it). 2026-11-21 00:00:00 UTC.
BUILD_UNIX_S = 1_795_219_200
ERA_PIVOT_NTP_S = BUILD_UNIX_S + NTP_1970_S - 50 * 365 * 86400  # 50 years before the build


def _era_s(ts64, pivot_s):
    """A 64-bit wire timestamp's seconds since pivot_s, in [0, 2**32): its era resolved."""
    return ((ts64 >> 32) - pivot_s) % (1 << 32)  # 2**32 s: one era, 136 years


def _frac_us(hi, lo):
    """A timestamp's fraction of a second, given as its two 16-bit halves, in us rounded to
    the nearest: (fraction * 10**6 + 2**31) >> 32 in small integers only (10**6 / 2**32 is
    15625 / 2**26, and no step reaches 2**30), so that it allocates nothing on a board."""
    return (hi * 15625 + ((lo * 15625 + (1 << 25)) >> 16)) >> 10


def resolve_era(ts64, pivot_s):
    """A 64-bit wire timestamp -> the full NTP value in [pivot_s, pivot_s + 2**32) seconds."""
    return ((pivot_s + _era_s(ts64, pivot_s)) << 32) | (ts64 & 0xFFFF_FFFF)


def ntp_to_us(full, epoch_s):
    """A full NTP value -> us since the port epoch, rounded to the nearest microsecond."""
    return ((full >> 32) - epoch_s) * US_PER_S + _frac_us((full >> 16) & 0xFFFF, full & 0xFFFF)


def short_to_us(v):
    """An NTP short (16.16 unsigned) -> microseconds, rounded."""
    return (v * US_PER_S + (1 << 15)) >> 16


def unix_us(t_us, epoch_s):
    """us since the port epoch -> us since 1970-01-01 (for output and for the 2000-epoch ports)."""
    if epoch_s == NTP_1970_S:
        return t_us  # the same (a sum would allocate a new big int on a 32-bit board)
    return t_us + (epoch_s - NTP_1970_S) * US_PER_S


# ---- the header (RFC 5905 section 7.3) ------------------------------------------------------
# Every field by byte offset, read with one struct.unpack_from (no slicing per field). Bytes
# past the 48-byte header, up to MAX_REPLY_LEN (a MAC: a 4-byte key ID and a digest of up to
# 20 bytes, RFC 5905 7.3 and RFC 8573), are ignored; a longer datagram is not our reply
# (no server sends extension fields to a request without any, RFC 7822 3): the drivers
# receive MAX_REPLY_LEN + 1 bytes at most (net.RECV_LEN), so a longer one, cut there, is
# still seen to be too long and never judged on its first bytes.
HEADER_LEN = const(48)
MAX_REPLY_LEN = const(72)
_OFF_LI_VN_MODE = const(0)  # LI (2 bits) | VN (3 bits) | mode (3 bits)
# 1 stratum: 0 = Kiss-o'-Death, 1 primary, 2-15 secondary, 16 unsynchronized
# 2 poll, 3 precision: signed log2 seconds; 4 root delay, 8 root dispersion: NTP short 16.16
_OFF_REFID = const(12)  # 4 bytes: KoD code when stratum is 0
_OFF_REF_TS = const(16)  # reference timestamp
_OFF_ORIGIN_TS = const(24)  # origin: must equal the transmit timestamp we sent
_OFF_RX_TS = const(32)  # receive: server time when our request arrived (T2)
_OFF_TX_TS = const(40)  # transmit: server time when the reply left (T3)
_REQUEST_BYTE0 = const(0x23)  # LI 0, VN 4, mode 3
# the whole header in one read: byte 0, stratum, poll, precision, root delay and dispersion,
# refid, then the reference, origin, receive and transmit timestamps (64 bits each)
_HEADER_FORMAT = "!BBbbII4sQQQQ"


def build_request(buf, nonce):
    """Fill buf (bytearray(48)) with a client request carrying nonce (8 bytes) as transmit time.

    Data minimization (rule 7): every field is zero except LI/VN/mode and the
    transmit timestamp, which holds random bits instead of our clock, so the request neither
    leaks the device's time nor lets an off-path attacker predict the origin of the reply.
    """
    for i in range(HEADER_LEN):
        buf[i] = 0
    buf[_OFF_LI_VN_MODE] = _REQUEST_BYTE0
    for i in range(8):
        buf[_OFF_TX_TS + i] = nonce[i]
    return buf


class Header:
    """The decoded fields of a reply header. Timestamps are raw 64-bit wire values."""

    def __init__(self, data):
        f = struct.unpack_from(_HEADER_FORMAT, data, _OFF_LI_VN_MODE)
        b0 = f[0]
        self.leap = b0 >> 6  # 0 no warning, 1/2 leap second pending, 3 unsynchronized
        self.version = (b0 >> 3) & 7
        self.mode = b0 & 7
        self.stratum = f[1]
        self.poll = f[2]  # log2 s; never used to schedule (an attacker could pin it)
        self.precision = f[3]  # log2 s
        self.root_delay = f[4]  # NTP short 16.16 s
        self.root_disp = f[5]  # NTP short 16.16 s
        self.refid = f[6]  # 4 bytes (_OFF_REFID)
        self.ref_ts = f[7]  # _OFF_REF_TS
        self.origin_ts = f[8]  # _OFF_ORIGIN_TS
        self.rx_ts = f[9]  # _OFF_RX_TS
        self.tx_ts = f[10]  # _OFF_TX_TS


def origin_matches(data, nonce):
    """True when the reply's origin field is exactly the nonce we sent (RFC 5905 8, 'bogus')."""
    for i in range(8):
        if data[_OFF_ORIGIN_TS + i] != nonce[i]:
            return False
    return True


def kiss_code(refid):
    """The 4-character KoD code of a refid, with anything but printable ASCII shown as '?'."""
    out = ""
    for c in refid:
        out += chr(c) if 0x20 < c < 0x7F else "?"
    return out


# ---- the checks ---------------------------------------------------------------------------
# Reasons. Strings, so that events, JSON and the console print them as they are.
WRONG_SOURCE = "wrong-source"  # from another address or port than the one we asked
SHORT = "short"  # fewer than 48 bytes
LONG = "long"  # more than MAX_REPLY_LEN bytes: extension fields, or a datagram cut there
BAD_ORIGIN = "bad-origin"  # origin is not our nonce: a spoof, or a reply to an older request
IGNORED = (WRONG_SOURCE, SHORT, LONG, BAD_ORIGIN)  # not our reply; expire() names the last
BAD_MODE = "bad-mode"  # not mode 4 (server)
BAD_VERSION = "bad-version"  # not version 3 or 4
KISS = "kiss"  # Kiss-o'-Death (stratum 0); the code is in Result.kiss
UNSYNCHRONIZED = "unsynchronized"  # LI = 3 or stratum >= 16
ZERO_TIMESTAMP = "zero-timestamp"  # receive or transmit timestamp is zero
NO_REFERENCE = "no-reference"  # reference timestamp is zero: never synchronized
TOO_FAR = "too-far"  # root distance above _MAX_ROOT_DISTANCE_US
BAD_TIMESTAMPS = "bad-timestamps"  # transmit before receive, or a negative round-trip delay
TIMEOUT = "timeout"  # nothing that was our reply arrived before the deadline

# Root distance limit: root delay / 2 + root dispersion, the server's own bound on its error.
# RFC 5905 uses 1 s (MAXDIST); ntpd raised its default to 1.5 s, which we take: a server that
# cannot vouch for its time to 1.5 s is no use to a device that wants 100 ms.
_MAX_ROOT_DISTANCE_US = const(1_500_000)

# A round trip shorter than the server's own processing time is a lie, past this slack for
# the rounding of both sides' clocks to their resolution; within it the delay counts as 0.
_DELAY_SLACK_US = const(1_000)

_MODE_SERVER = const(4)
_LEAP_UNSYNC = const(3)  # LI 3: the server's clock is not synchronized
_STRATUM_UNSYNC = const(16)  # and stratum 16 says the same; stratum 0 is a KoD
_VERSION_MIN = const(3)  # we send v4 and accept the v3 replies of older servers
_VERSION_MAX = const(4)


class Result:
    """The outcome of one exchange. ok is True only when every check passed.

    Times are microseconds since the port epoch (t1..t4; t3_us is the server's time);
    offset_us and delay_us are signed microseconds. header is None for a timeout, kiss is
    the KoD code.
    """

    def __init__(self, server, error, header=None):
        self.server = server  # (ip, port) asked
        self.ok = error is None
        self.error = error  # None or one of the reasons above
        self.header = header  # Header or None
        self.kiss = None  # 4-character KoD code when error == KISS
        self.t1_us = None  # local send time
        self.t2_us = None  # server receive time
        self.t3_us = None  # server transmit time: the server's time
        self.t4_us = None  # local receive time
        self.offset_us = None  # server minus local clock
        self.delay_us = None  # round-trip delay minus server processing time
        self.root_distance_us = None  # root delay / 2 + root dispersion
        self.ignored = None  # {reason: count} of datagrams that were not our reply
        self.detail = None  # a sentence for 'resolve' and 'network' failures


class Exchange:
    """One request and its reply. epoch_s: seconds from 1900 to the port epoch."""

    def __init__(self, server, nonce, t1_us, epoch_s, pivot_s=ERA_PIVOT_NTP_S):
        self.server = server  # (ip, port) the request goes to
        self.nonce = bytes(nonce)  # 8 random bytes, our transmit timestamp on the wire
        self.t1_us = t1_us  # true local send time, us since the port epoch; never sent
        self.epoch_s = epoch_s  # s from 1900 to the port epoch
        self.pivot_s = pivot_s  # NTP seconds: era pivot
        self.ignored = {}  # reason -> count of datagrams that were not our reply
        self.result = None  # the final Result once there is one

    def request(self, buf=None):
        """The 48-byte request (into buf when given, a preallocated bytearray(48))."""
        return build_request(buf if buf is not None else bytearray(48), self.nonce)

    def _ignore(self, reason):
        self.ignored[reason] = self.ignored.get(reason, 0) + 1
        return None

    def receive(self, data, source, t4_us):
        """Judge one datagram from source ((ip, port)) received at local time t4_us.

        None: not our reply, keep waiting. A Result: the exchange is over (ok or not).
        Never raises on any bytes; after a final Result every datagram is ignored (duplicates).
        """
        if self.result is not None:
            return self._ignore("duplicate")
        if source != self.server:
            return self._ignore(WRONG_SOURCE)
        if data is None or len(data) < HEADER_LEN:
            return self._ignore(SHORT)
        if len(data) > MAX_REPLY_LEN:
            return self._ignore(LONG)
        if not origin_matches(data, self.nonce):
            return self._ignore(BAD_ORIGIN)
        return self._finish(self._judge(Header(data), data, t4_us))

    def expire(self):
        """The deadline passed: a timeout, or the last reason a datagram was ignored for."""
        if self.result is not None:
            return self.result
        error = TIMEOUT
        for reason in IGNORED:
            if reason in self.ignored:
                error = reason
        return self._finish(Result(self.server, error))

    def _finish(self, result):
        result.t1_us = self.t1_us
        result.ignored = self.ignored
        self.result = result
        return result

    def _judge(self, h, data, t4_us):
        # Origin matched: this is the server's answer to our request. Every check is final.
        if h.mode != _MODE_SERVER:
            return Result(self.server, BAD_MODE, h)
        if h.version < _VERSION_MIN or h.version > _VERSION_MAX:
            return Result(self.server, BAD_VERSION, h)
        if h.stratum == 0:
            r = Result(self.server, KISS, h)
            r.kiss = kiss_code(h.refid)
            return r  # its timestamps are never looked at
        if h.leap == _LEAP_UNSYNC or h.stratum >= _STRATUM_UNSYNC:
            return Result(self.server, UNSYNCHRONIZED, h)
        if h.rx_ts == 0 or h.tx_ts == 0:
            return Result(self.server, ZERO_TIMESTAMP, h)
        if h.ref_ts == 0:
            return Result(self.server, NO_REFERENCE, h)
        r = Result(self.server, None, h)
        r.root_distance_us = short_to_us(h.root_delay) // 2 + short_to_us(h.root_disp)
        if r.root_distance_us > _MAX_ROOT_DISTANCE_US:
            r.ok, r.error = False, TOO_FAR
            return r
        t1 = self.t1_us
        # resolve_era() then ntp_to_us(), in fewer big-integer steps (each one allocates on
        # a 32-bit board): seconds into the era window, and the fraction from its 16-bit
        # halves (receive's two, the transmit seconds' two, transmit's two)
        rx_s = _era_s(h.rx_ts, self.pivot_s)
        tx_s = _era_s(h.tx_ts, self.pivot_s)
        f = struct.unpack_from("!HHHHHH", data, _OFF_RX_TS + 4)  # small ints only
        base_s = self.pivot_s - self.epoch_s  # the window's start, s since the port epoch
        t2 = (base_s + rx_s) * US_PER_S + _frac_us(f[0], f[1])
        t3 = (base_s + tx_s) * US_PER_S + _frac_us(f[4], f[5])
        delay = (t4_us - t1) - (t3 - t2)
        # transmit before receive is judged on the wire values: rounded to microseconds, a
        # transmit less than 1 us before the receive could round to the same one and pass
        before = tx_s < rx_s or (tx_s == rx_s and (f[4] < f[0] or (f[4] == f[0] and f[5] < f[1])))
        if before or delay < -_DELAY_SLACK_US:
            r.ok, r.error = False, BAD_TIMESTAMPS
            return r
        if delay < 0:
            delay = 0
        r.t2_us, r.t3_us, r.t4_us = t2, t3, t4_us
        r.offset_us = ((t2 - t1) + (t3 - t4_us)) // 2
        r.delay_us = delay
        return r
