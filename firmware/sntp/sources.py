# Whom the policy asks: the configured names (Source), what their lookups gave and how the
# lookups back off (R7 of policy.py), and each address's floor and Kiss-o'-Death holds (Peer,
# R1). Data and the arithmetic of their rules; when to ask is policy.py's.
from .compat import const
from .schema import MAX_SOURCES, POOL_SUFFIX, SCHEMA

MIN_GAP_MS = const(15_000)  # R1: RFC 4330 section 10 MUST: never two requests closer
# R1 across restarts: the persisted send times move with each correction at once, while the
# discipline slews one under its 128 ms step threshold over minutes: slack on the safe side.
SLEW_SLACK_MS = const(250)
# Kiss-o'-Death (rule 5). RATE: that address's gap becomes at least twice the poll interval
# and at least 10 min (chrony waits 4 polls, >= 256 s; ntpsec >= 9 x 64 s), doubled by each
# further RATE, never above 2**13 s from that alone (RFC 8633 5.4); and at least twice the
# gap the address had before the first kissed request (with servers in rotation that is
# several intervals: the rate it sees must still halve, rule 5's MUST), kept until a day
# after that gap has passed. DENY/RSTR: that address is not used for a day, across reboots.
_RATE_MIN_MS = const(600_000)
RATE_MAX_MS = const(8_192_000)
RATE_HOLD_MS = const(86_400_000)
RATE_GAP_TOP = const(262_144_000)  # 2 x the longest poll interval: the widest a RATE sets
DENY_HOLD_S = const(86_400)
# R7: a name that fails to resolve is retried after 1 min, 5 min, then at most hourly (rule
# 16). An address that failed twice in a row is dropped for the next one; a name is
# re-resolved at most hourly after failures, and once a day anyway (rule 4).
DNS_RETRY_FIRST_MS = const(60_000)
_DNS_RETRY_MAX_MS = const(3_600_000)
_RERESOLVE_MIN_MS = const(3_600_000)
_REFRESH_MS = const(86_400_000)
_ADDR_FAILS_SWITCH = const(2)


RESOLVE = const(1)  # Action.kind: look the source's name up (driver: resolved())
QUERY = const(2)  # ask the source at addr (driver: result())


class Action:
    """What poll() asks of the driver. One per Policy, reused: a driver does it before it
    polls again (poll() answers None while a request is in flight)."""

    def __init__(self):
        self.kind = QUERY  # RESOLVE or QUERY
        self.src = None  # the Source
        self.addr = None  # QUERY: the Address to ask


def key_text(key):
    ip, port = key
    return ("[{}]:{}" if ":" in ip else "{}:{}").format(ip, port)


class Source:
    """A configured name (or address) and what we know of it. Names are kept, not addresses."""

    MS = ("resolved_ms", "dns_next_ms")  # its time points (Policy.rebase moves them)

    def __init__(self, host, port):
        self.host = host  # name as configured
        self.port = port  # UDP port
        self.pool = host.endswith(POOL_SUFFIX)  # the pool's terms apply
        self.addrs = []  # driver Address objects (.key = (ip, port)), resolver order
        self.idx = 0  # index of the address in use
        self.addr_fails = 0  # consecutive failures of the address in use
        self.resolved_ms = None  # when addrs were last filled
        self.dns_fails = 0  # consecutive failed lookups
        self.dns_next_ms = 0  # no lookup before this
        self.want_resolve = False  # the address in use went bad
        self.sends = 0  # counters for status
        self.replies = 0
        self.kods = 0
        # how events and status name it: the host, with the port when it is not 123
        self.label = host if port == 123 else key_text((host, port))

    def needs_lookup(self, now_ms):
        if now_ms < self.dns_next_ms:
            return False
        if not self.addrs or self.want_resolve:
            return True
        return self.resolved_ms is not None and now_ms - self.resolved_ms >= _REFRESH_MS

    def lookup_failed(self):
        """The next lookup's delay, ms, before the jitter: 1 min, 5 min, ... an hour."""
        self.dns_fails += 1
        delay = DNS_RETRY_FIRST_MS
        for _ in range(self.dns_fails - 1):
            delay = min(_DNS_RETRY_MAX_MS, delay * 5)
        return delay

    def resolved(self, addrs, now_ms):
        self.addrs = list(addrs[:MAX_SOURCES])
        self.idx = self.addr_fails = self.dns_fails = 0
        self.resolved_ms = now_ms
        self.want_resolve = False
        self.dns_next_ms = now_ms + _RERESOLVE_MIN_MS  # rule 16: at most hourly from here

    def failed(self):
        """The address in use gave no good reply: the next one after two in a row, and a
        lookup (at most hourly: dns_next_ms)."""
        self.addr_fails += 1
        if self.addr_fails >= _ADDR_FAILS_SWITCH:
            self.addr_fails = 0
            if len(self.addrs) > 1:
                self.idx = (self.idx + 1) % len(self.addrs)
            self.want_resolve = True


class Peer:
    """Per-address state: the hard floor and KoD holds (R1)."""

    MS = ("last_send_ms", "rate_until_ms", "denied_until_ms")  # time points (rebase)

    def __init__(self):
        self.last_send_ms = None
        self.gap_ms = 0  # between the last two requests to it (0: unknown)
        self.rate_gap_ms = 0  # the gap a RATE imposed
        self.rate_until_ms = 0  # kept until
        self.denied_until_ms = 0  # DENY/RSTR hold

    def sent(self, now_ms):
        if self.last_send_ms is not None:
            self.gap_ms = now_ms - self.last_send_ms
        self.last_send_ms = now_ms

    def sent_at(self, t_ms):
        """A send restored from the saved state: the latest one counts."""
        if self.last_send_ms is None or self.last_send_ms < t_ms:
            self.last_send_ms = t_ms

    def wait_ms(self, now_ms):
        """ms until this address may be asked (0: now): the floor, or a RATE's gap."""
        gap = MIN_GAP_MS
        if self.rate_until_ms > now_ms:
            gap = max(gap, self.rate_gap_ms)
        if self.last_send_ms is None:
            return 0
        return max(0, gap - (now_ms - self.last_send_ms))

    def rate(self, now_ms, interval_s):
        """A RATE kiss: the gap this address wants from now on, ms."""
        gap = min(max(_RATE_MIN_MS, 2 * interval_s * 1000, 2 * self.rate_gap_ms), RATE_MAX_MS)
        if self.rate_until_ms > now_ms:  # a further RATE: never shorter than the last
            self.rate_gap_ms = max(gap, self.rate_gap_ms)
        else:  # the first: the gap this address saw, doubled (not compounded after)
            top = SCHEMA["poll_max_s"][3] * 1000
            self.rate_gap_ms = max(gap, 2 * min(self.gap_ms, top))
        self.rate_until_ms = now_ms + self.rate_gap_ms + RATE_HOLD_MS
        return self.rate_gap_ms


def next_source(sources, rr, tried, peers, now_ms):
    """The next source of a round (tried: those asked), changing nothing: (i, its Source,
    index of the address to ask, None: look it up first), i counted from the rotation rr;
    or (None, ms to wait for a short floor, None), (None, None, None): nobody is left.
    peers: the policy's, address key -> Peer."""
    n = len(sources)
    short_wait = None
    for i in range(n):
        src = sources[(rr + i) % n]
        if src in tried:
            continue
        j = None  # the first usable (not denied) address from idx on
        for a in range(len(src.addrs)):
            k = (src.idx + a) % len(src.addrs)
            if peer_of(peers, src.addrs[k].key).denied_until_ms <= now_ms:
                j = k
                break
        if not src.addrs or src.want_resolve or j is None:  # (re)resolve first
            if now_ms >= src.dns_next_ms:
                return i, src, None
            if j is None:
                continue  # DNS backoff and nothing usable: skip it this round
        left = peer_of(peers, src.addrs[j].key).wait_ms(now_ms)
        if left:
            if left <= MIN_GAP_MS + SLEW_SLACK_MS:  # only the hard floor: worth waiting
                short_wait = left if short_wait is None else min(short_wait, left)
            continue
        return i, src, j
    return None, short_wait, None


def peer_by_text(peers, text):
    """The Peer of an address saved as text (peers are keyed by (ip, port) once asked, by
    ("text", text) until then)."""
    p = peers.get(("text", text))
    if p is None:
        for key, peer in peers.items():
            if key[0] != "text" and key_text(key) == text:
                return peer
        p = peers[("text", text)] = Peer()
    return p


def peer_of(peers, key):
    """The Peer of address key, the one saved as its text if there is one."""
    p = peers.get(key)
    if p is None:
        p = peers.pop(("text", key_text(key)), None) or Peer()
        peers[key] = p
    return p
