# One SNTP exchange, free of I/O: build the request, judge each datagram, compute the offset.
#
# The driver owns the socket and the clock. It creates an Exchange with a fresh nonce and the
# local send time T1, sends request(), hands every datagram it receives to receive() with the
# local receive time T4 (best measured as T1 plus a ticks difference, so a clock step during
# the exchange cannot corrupt it), and calls expire() when its deadline passes.
#
# receive() answers None for a datagram that is not our reply (it is counted in `ignored` and
# the driver keeps waiting: a spoof or a late duplicate must not end the exchange), or a Result.
# The checks run in this order, each with a named reason (rule 6):
#   not our reply, ignored:   wrong-source, short, bad-origin
#   our reply, final:         bad-mode, bad-version, kiss (rule 5), unsynchronized,
#                             zero-timestamp, no-reference, too-far, bad-timestamps
# A KoD is recognized by stratum 0 alone, never by its timestamps, and its timestamps are
# never used (rule 5): ntpd/ntpsec send LI=3 with origin = receive = transmit = our nonce,
# which passes the origin check; other servers send LI=0 with zero timestamps.
#
# Offset sign: positive means the local clock is behind the server (RFC 5905 theta).
from . import packet
from .compat import const
from .timestamp import ERA_PIVOT_NTP_S, ntp_to_us, resolve_era, short_to_us

# Reasons. Strings, so that events, JSON and the console print them as they are.
WRONG_SOURCE = "wrong-source"  # from another address or port than the one we asked
SHORT = "short"  # fewer than 48 bytes
BAD_ORIGIN = "bad-origin"  # origin is not our nonce: a spoof, or a reply to an older request
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

    Times are microseconds since the port epoch (t1..t4, server_time_us); offset_us and
    delay_us are signed microseconds. header is None for a timeout, kiss is the KoD code.
    """

    def __init__(self, server, error, header=None):
        self.server = server  # (ip, port) asked
        self.ok = error is None
        self.error = error  # None or one of the reasons above
        self.header = header  # packet.Header or None
        self.kiss = None  # 4-character KoD code when error == KISS
        self.t1_us = None  # local send time
        self.t2_us = None  # server receive time
        self.t3_us = None  # server transmit time
        self.t4_us = None  # local receive time
        self.offset_us = None  # server minus local clock
        self.delay_us = None  # round-trip delay minus server processing time
        self.root_distance_us = None  # root delay / 2 + root dispersion
        self.ignored = None  # {reason: count} of datagrams that were not our reply
        self.detail = None  # a sentence for 'resolve' and 'network' failures

    @property
    def server_time_us(self):
        return self.t3_us


class Exchange:
    """One request and its reply. epoch_s: seconds from 1900 to the port epoch."""

    def __init__(
        self, server, nonce, t1_us, epoch_s, pivot_s=ERA_PIVOT_NTP_S, max_root_distance_us=None
    ):
        self.server = server  # (ip, port) the request goes to
        self.nonce = bytes(nonce)  # 8 random bytes, our transmit timestamp on the wire
        self.t1_us = t1_us  # true local send time, us since the port epoch; never sent
        self.epoch_s = epoch_s  # s from 1900 to the port epoch
        self.pivot_s = pivot_s  # NTP seconds: era pivot
        self.max_root_distance_us = (
            _MAX_ROOT_DISTANCE_US if max_root_distance_us is None else max_root_distance_us
        )
        self.ignored = {}  # reason -> count of datagrams that were not our reply
        self.result = None  # the final Result once there is one

    def request(self, buf=None):
        """The 48-byte request (into buf when given, a preallocated bytearray(48))."""
        return packet.build_request(buf if buf is not None else bytearray(48), self.nonce)

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
        if data is None or len(data) < packet.HEADER_LEN:
            return self._ignore(SHORT)
        if not packet.origin_matches(data, self.nonce):
            return self._ignore(BAD_ORIGIN)
        return self._finish(self._judge(packet.Header(data), t4_us))

    def expire(self):
        """The deadline passed: a timeout, or the last reason a datagram was ignored for."""
        if self.result is not None:
            return self.result
        error = TIMEOUT
        for reason in (WRONG_SOURCE, SHORT, BAD_ORIGIN):
            if reason in self.ignored:
                error = reason
        return self._finish(Result(self.server, error))

    def _finish(self, result):
        result.t1_us = self.t1_us
        result.ignored = self.ignored
        self.result = result
        return result

    def _judge(self, h, t4_us):
        # Origin matched: this is the server's answer to our request. Every check is final.
        if h.mode != _MODE_SERVER:
            return Result(self.server, BAD_MODE, h)
        if h.version < _VERSION_MIN or h.version > _VERSION_MAX:
            return Result(self.server, BAD_VERSION, h)
        if h.stratum == 0:
            r = Result(self.server, KISS, h)
            r.kiss = packet.kiss_code(h.refid)
            return r  # its timestamps are never looked at
        if h.leap == _LEAP_UNSYNC or h.stratum >= _STRATUM_UNSYNC:
            return Result(self.server, UNSYNCHRONIZED, h)
        if h.rx_ts == 0 or h.tx_ts == 0:
            return Result(self.server, ZERO_TIMESTAMP, h)
        if h.ref_ts == 0:
            return Result(self.server, NO_REFERENCE, h)
        r = Result(self.server, None, h)
        r.root_distance_us = short_to_us(h.root_delay) // 2 + short_to_us(h.root_disp)
        if r.root_distance_us > self.max_root_distance_us:
            r.ok, r.error = False, TOO_FAR
            return r
        t1 = self.t1_us
        rx_full = resolve_era(h.rx_ts, self.pivot_s)
        tx_full = resolve_era(h.tx_ts, self.pivot_s)
        t2 = ntp_to_us(rx_full, self.epoch_s)
        t3 = ntp_to_us(tx_full, self.epoch_s)
        delay = (t4_us - t1) - (t3 - t2)
        # transmit before receive is judged on the wire values: rounded to microseconds, a
        # transmit less than 1 us before the receive could round to the same one and pass
        if tx_full < rx_full or delay < -_DELAY_SLACK_US:
            r.ok, r.error = False, BAD_TIMESTAMPS
            return r
        if delay < 0:
            delay = 0
        r.t2_us, r.t3_us, r.t4_us = t2, t3, t4_us
        r.offset_us = ((t2 - t1) + (t3 - t4_us)) // 2
        r.delay_us = delay
        return r
