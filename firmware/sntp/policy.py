# The good-citizen policy: when to ask whom, backoff, Kiss-o'-Death, DNS, falseticker defence.
#
# Theory of operation. The Policy is an I/O-free state machine (house-style.md: aioquic's
# shape). A driver (service.py blocking, aio.py asyncio, sim.py simulated time) loops:
#   1. wake at policy.wakeup_ms() (None: nothing to do until something changes);
#   2. action = policy.poll(now_ms, wall_us)  -> None, or ("resolve", source)
#                                                     or ("query", source, address);
#   3. perform it and report back: resolved(source, addresses, now_ms), or
#      result(source, address, exchange_result, now_ms, wall_us), which returns a
#      Correction when the clock should move; the driver applies it and goes on.
# now_ms is a monotonic millisecond count that never wraps (drivers extend ticks into it);
# wall_us is the device's clock in Unix microseconds, used only to judge validity (rule 10)
# and to persist deadlines across reboots. The policy itself never reads a clock.
#
# Rules of this file (what belongs here, and what holds whatever the events):
#  R1 Never two requests to one address less than MIN_GAP_MS apart (rule 1); a RATE kiss
#     widens that address's gap (rule 5); DENY/RSTR stop it for DENY_HOLD_S.
#  R2 Never more than HOURLY_CAP requests in any hour in total, whatever the configuration.
#  R3 Every interval is randomized: JITTER adds a uniform 0-25 %, so nothing aligns with the
#     wall clock (rule 15). There is no cron-like schedule anywhere.
#  R4 A round asks each usable source at most once; a failed round backs off exponentially
#     (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS; once synced, a random wait within the poll
#     interval), and the count of failed rounds is persisted *before* each round so that
#     reboots continue the backoff.
#  R5 The clock moves only on a correction this file returns: from one server when the clock
#     is valid and the offset is under AGREE_ABOVE_US; otherwise only once every source of
#     the round has been asked, from a group of at least two servers that agree and are a
#     strict majority of the replies (rule 11), so neither a lone liar nor two liars against
#     two honest servers move it; except when exactly one server is configured. Never below
#     the build date (rule 10); never from a KoD (the exchange gives no time for one).
#  R6 No built-in server: with none configured, no traffic, and an 'idle' event says why.
#  R7 Names are stored, never addresses; DNS has its own backoff (rule 16).
# Everything here is integers (ms, us, s); randomness comes from the rand_below callable.
from . import exchange
from .compat import const
from .timestamp import BUILD_UNIX_S

# R1: RFC 4330 section 10 MUST: at least 15 s between requests to one server.
MIN_GAP_MS = const(15_000)
# R2: hard ceiling on requests in any 3600 s window (a round is at most 4 requests).
HOURLY_CAP = const(12)
_HOUR_MS = const(3_600_000)
# R3: every wait is lengthened by a uniform fraction in [0, 1/JITTER_DIV): 0-25 %.
JITTER_DIV = const(4)

# Start-up (rule 12). A clock that is invalid (before the build date) wants time soon, but a
# fleet restored from a power cut must spread out: the first request after 0-60 s (RFC 4330
# suggests 1-5 min; lwIP's 0-5 s is too short). A valid clock can wait: 0-30 min.
STARTUP_INVALID_MS = const(60_000)
STARTUP_VALID_MS = const(1_800_000)
# Any boot after the first waits at least this long, so that a reboot cannot bring a second
# request to the same server within MIN_GAP_MS of one sent just before it.
REBOOT_MIN_MS = const(15_000)

# R4: failed rounds back off from 30 s, doubling, to 1 h (lwIP: 15 s to 150 s, too fast).
# Once the clock has been synced it is not in a hurry: a failed round is retried after a
# uniformly random wait from a quarter of the poll interval to the whole of it. Devices fall
# due at random times during a server outage; if each retried within minutes and then ever
# more slowly (1/t), the fleet's retries would pile up at the end of any outage, a burst
# many times the steady load when the servers come back; spread over the interval, the
# fleet comes back at about the rate it fell due. The same holds for a warm boot: a poll
# that fell due while the device was off is made at a random time within one interval.
BACKOFF_MIN_MS = const(30_000)
# R1 across restarts: the persisted send times move with each correction at once, while the
# discipline slews one under its 128 ms step threshold over minutes; this slack keeps the
# restored floor on the safe side of such a slew.
SLEW_SLACK_MS = const(250)
BACKOFF_MAX_MS = const(3_600_000)

# Poll interval after good syncs: from poll_min, doubling per good sync, up to poll_max.
# The NTP Pool's terms forbid SNTP clients polling more often than every 30 minutes
# (rule 14); other (local or factory) servers may be polled from 64 s.
POOL_POLL_MIN_S = const(1_800)
LOCAL_POLL_MIN_S = const(64)
DEFAULT_POLL_MAX_S = const(14_400)  # 4 h until the clock discipline knows the drift
POLL_MAX_LIMIT_S = const(131_072)  # 36 h: a configured maximum is clamped to this

# Kiss-o'-Death (rule 5). RATE: that address's gap becomes at least twice the current poll
# interval and at least 10 min (chrony waits 4 polls, >= 256 s; ntpsec >= 9 x 64 s), doubled
# by each further RATE, never above 2**13 s from RATE alone (RFC 8633 5.4); and at least
# twice the gap that address actually had before the first kissed request (with several
# servers in rotation that gap is several poll intervals, often beyond 2**13 s: the rate it
# sees must still halve, rule 5's MUST; a RATE-imposed gap is never doubled again), and
# kept until a day after that gap has passed.
# DENY/RSTR: that address is not used for a day, across reboots.
RATE_MIN_MS = const(600_000)
RATE_MAX_MS = const(8_192_000)
RATE_HOLD_MS = const(86_400_000)
DENY_HOLD_S = const(86_400)

# R5: falseticker defence. An offset above 1 s, or any offset while the clock is invalid,
# needs two servers that agree within AGREE_TOLERANCE_US plus half their two delays.
AGREE_ABOVE_US = const(1_000_000)
AGREE_TOLERANCE_US = const(250_000)
SAMPLE_MAX_AGE_MS = const(900_000)  # samples older than 15 min are not compared
MAX_SOURCES = const(4)  # the pool asks for no more than four servers at once (rule 17)

# R7: DNS. A name that fails to resolve is retried after 1 min, 5 min, then at most hourly
# (rule 16). An address that failed ADDR_FAILS_SWITCH times in a row is dropped for the next
# one; a name is re-resolved at most hourly after failures, and once a day anyway (rule 4).
DNS_RETRY_FIRST_MS = const(60_000)
DNS_RETRY_MAX_MS = const(3_600_000)
RERESOLVE_MIN_MS = const(3_600_000)
REFRESH_MS = const(86_400_000)
ADDR_FAILS_SWITCH = const(2)

POOL_SUFFIX = "pool.ntp.org"
_NO_REPLY = (exchange.TIMEOUT, exchange.BAD_ORIGIN, exchange.SHORT, exchange.WRONG_SOURCE)
_STATE_VERSION = const(1)


class Correction:
    """Move the clock by offset_us (positive: forward). step is always True until slewing."""

    def __init__(self, offset_us, servers, delay_us=None):
        self.offset_us = offset_us  # signed us
        self.servers = servers  # the source names that vouched for it
        self.delay_us = delay_us  # round trip of the measurement used, us
        self.step = True


class Source:
    """A configured name (or address) and what we know of it. Names are kept, not addresses."""

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

    def label(self):
        if self.port == 123:
            return self.host
        return key_text((self.host, self.port))  # [v6]:port


class Peer:
    """Per-address state: the hard floor and KoD holds (R1)."""

    def __init__(self):
        self.last_send_ms = None  # ms
        self.gap_ms = 0  # between the last two requests to it, ms (0: unknown)
        self.rate_gap_ms = 0  # extra gap after RATE
        self.rate_until_ms = 0  # RATE gap kept until
        self.denied_until_ms = 0  # DENY/RSTR hold (monotonic)


def key_text(key):
    ip, port = key
    return "[{}]:{}".format(ip, port) if ":" in ip else "{}:{}".format(ip, port)


def _digits(t):
    """ASCII digits only (str.isdigit() takes other scripts' digits on CPython)."""
    return bool(t) and all("0" <= c <= "9" for c in t)


def parse_server(text):
    """'host', 'host:port', '[v6]:port' -> (host, port). Raises ValueError."""
    host, port = text, 123
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed [ in {!r}".format(text))
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not _digits(rest[1:]):
                raise ValueError("bad port in {!r}".format(text))
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, p = text.split(":")
        if not _digits(p):
            raise ValueError("bad port in {!r}".format(text))
        port = int(p)
    if not 0 < port < 65536:
        raise ValueError("bad port in {!r}".format(text))
    if not host or len(host) > 253:
        raise ValueError("bad server name {!r}".format(text))
    for c in host:  # ASCII only: isalpha() takes any letter on CPython, not on the boards
        if not ("a" <= c.lower() <= "z" or "0" <= c <= "9" or c in ".-_:"):
            raise ValueError("bad server name {!r}".format(text))
    return host, port


def _int_in(d, key, lo, hi, default, warnings):
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        warnings.append("{}: not an integer, using {}".format(key, default))
        return default
    if v < lo or v > hi:
        c = lo if v < lo else hi
        warnings.append("{}: {} clamped to {}".format(key, v, c))
        return c
    return v


class Config:
    """Validated settings. from_dict() clamps or rejects every field and says why."""

    def __init__(self):
        self.servers = []  # [(host, port)], at most MAX_SOURCES
        self.factory = None  # (host, port) used alone until the first good sync, or None
        self.poll_min_s = POOL_POLL_MIN_S  # s, after clamping to the safe floor
        self.poll_max_s = DEFAULT_POLL_MAX_S  # s
        self.poll_max_explicit = False  # configured: the clock discipline may not exceed it
        self.accuracy_ms = 100  # how far the clock may wander between polls (discipline.py)
        self.warnings = []  # what was clamped or dropped, one sentence each

    @staticmethod
    def from_dict(d):
        c = Config()
        w = c.warnings
        names = []
        zone = d.get("zone")
        if zone is not None:
            if not isinstance(zone, str) or not zone or "." in zone or len(zone) > 63:
                w.append(
                    "zone: {!r} is not a vendor zone label (like 'acme'), ignored".format(zone)
                )
            else:
                names += ["{}.{}.pool.ntp.org".format(i, zone) for i in range(4)]
        servers = d.get("servers") or []
        if not isinstance(servers, list):
            w.append("servers: not a list, ignored")
            servers = []
        names += servers
        for text in names:
            try:
                if not isinstance(text, str):
                    raise ValueError("server {!r} is not a string".format(text))
                hp = parse_server(text)
            except ValueError as e:
                w.append("servers: {}, ignored".format(e.args[0]))
                continue
            if hp in c.servers:
                continue
            if len(c.servers) == MAX_SOURCES:
                w.append("servers: more than {}, {} ignored (rule 17)".format(MAX_SOURCES, text))
                continue
            c.servers.append(hp)
        factory = d.get("factory_server")
        if factory is not None:
            try:
                if not isinstance(factory, str):
                    raise ValueError("factory_server {!r} is not a string".format(factory))
                c.factory = parse_server(factory)  # an IP address is fine here
            except ValueError as e:
                w.append("factory_server: {}, ignored".format(e.args[0]))
        pool = False
        for h, _ in c.servers:
            pool = pool or h.endswith(POOL_SUFFIX)
        floor = POOL_POLL_MIN_S if pool else LOCAL_POLL_MIN_S
        c.poll_min_s = _int_in(d, "poll_min_s", floor, POLL_MAX_LIMIT_S, max(floor, 1024), w)
        c.poll_max_s = _int_in(
            d,
            "poll_max_s",
            c.poll_min_s,
            POLL_MAX_LIMIT_S,
            max(c.poll_min_s, DEFAULT_POLL_MAX_S),
            w,
        )
        c.poll_max_explicit = d.get("poll_max_s") is not None
        # 1 ms is below what SNTP over the Internet can hold; a minute is no target at all
        c.accuracy_ms = _int_in(d, "accuracy_ms", 1, 60_000, 100, w)
        return c


class Policy:
    """The scheduler. One instance per device; no module-level state (a fleet can run many)."""

    def __init__(self, config, rand_below, build_unix_s=BUILD_UNIX_S):
        self.config = config  # Config
        self.rand_below = rand_below  # callable n -> uniform int in [0, n)
        self.floor_us = build_unix_s * 1_000_000  # rule 10: valid clocks are after this
        self.normal_sources = [Source(h, p) for h, p in config.servers]
        # the factory server, alone, until the first good sync (then the configured set)
        self.factory_source = Source(*config.factory) if config.factory else None
        self.sources = self.normal_sources
        self.peers = {}  # address key -> Peer
        self.denied_wall = {}  # key text -> Unix s until which it is denied (persisted)
        self.listeners = []  # callables(event dict)
        self.sends_ms = []  # send times within the last hour (R2)
        self.sent_wall = []  # [key text, Unix ms] of the last HOURLY_CAP sends (persisted)
        self.interval_s = config.poll_min_s  # current poll interval, s
        self.cap_s = None  # the clock discipline's longest safe interval, s (None: unknown)
        self.fails = 0  # consecutive failed rounds (persisted before each round)
        self.boots = 0  # boots seen in the persisted state
        self.rr = 0  # rotation index into sources
        self.due_ms = None  # next time poll() has something to do; None: never
        self.round = None  # dict while a round runs: tried source indices, samples
        self.awaiting = None  # (source, key) of the request in flight
        self.last_sync_unix_s = None  # wall time of the last correction
        self.last_offset_us = None  # the offset applied by it
        self.next_due_unix_s = None  # wall time of due_ms, persisted
        self.dirty = False  # persisted state changed: the driver should save()
        self.kods = 0  # KoDs received, all kinds
        self.urgent = False  # a person asked for a sync: skip the start-up wait once
        self.now_ms = 0  # the last time we were told
        self.base_ms = 0  # what rebase() took off every ms: events count from the start

    # ---- events -------------------------------------------------------------------------
    def subscribe(self, fn):
        self.listeners.append(fn)

    def emit(self, kind, **fields):
        fields["event"] = kind
        fields["t_ms"] = self.base_ms + self.now_ms
        for fn in self.listeners:
            fn(fields)

    def rebase(self, d):
        """Move every stored ms d back (a driver whose ms count took d off its own), so that
        they stay small ints; anything older than d ago is kept as just that old."""
        self.base_ms += d
        self.now_ms -= d

        def back(t):
            return None if t is None else max(t - d, -d)

        self.due_ms = back(self.due_ms)
        self.sends_ms = [back(t) for t in self.sends_ms]
        for peer in self.peers.values():
            peer.last_send_ms = back(peer.last_send_ms)
            peer.rate_until_ms = back(peer.rate_until_ms)
            peer.denied_until_ms = back(peer.denied_until_ms)
        for src in self.normal_sources + ([self.factory_source] if self.factory_source else []):
            src.resolved_ms = back(src.resolved_ms)
            src.dns_next_ms = back(src.dns_next_ms)
        if self.round is not None:
            self.round["samples"] = [(back(x[0]),) + x[1:] for x in self.round["samples"]]

    # ---- start-up and persistence ---------------------------------------------------------
    def start(self, now_ms, wall_us, state=None):
        """Begin at now_ms, with the persisted state of the last run (a dict, or None)."""
        self.now_ms = now_ms
        self._load(state, now_ms, wall_us)
        self.boots += 1
        self.dirty = True
        if self.factory_source is not None and self.last_sync_unix_s is None:
            self.sources = [self.factory_source]
        if not self.sources:
            self.due_ms = None
            self.emit("idle", reason="no servers configured: no NTP traffic (rule 3)")
            return
        valid = wall_us >= self.floor_us
        delay = self.rand_below(STARTUP_VALID_MS if valid else STARTUP_INVALID_MS)
        if self.boots > 1:
            delay = max(delay, REBOOT_MIN_MS + self.rand_below(REBOOT_MIN_MS))
        if self.fails > 0:
            delay = max(delay, self._backoff_ms(valid))
        if valid and self.next_due_unix_s is not None:
            until_due = self.next_due_unix_s * 1000 - wall_us // 1000
            if until_due < 0 and self.last_sync_unix_s is not None:
                # fell due while off: a random time within one interval (R4's note)
                until_due = self.rand_below(self.interval_s * 1000)
            # No saved wait is longer than a jittered interval (or backoff, after failures)
            # or the start-up window: a deadline further off means the clock was set back
            # since the save (a user setting the RTC), and would postpone the sync that
            # puts it right by as much.
            longest = self.interval_s * 1000
            if self.fails > 0:
                longest = max(longest, BACKOFF_MAX_MS)
            longest = max(longest + longest // JITTER_DIV, STARTUP_VALID_MS)
            delay = max(delay, min(until_due, longest, POLL_MAX_LIMIT_S * 1000))
        self._schedule(now_ms, delay, wall_us, "start", clock_valid=valid)

    def sync_now(self, now_ms):
        """A person asked: start a round now. The floors (R1, R2) and KoD holds still apply."""
        self.now_ms = now_ms
        if self.sources:
            self.urgent = True
            self.due_ms = now_ms

    def _load(self, st, now_ms, wall_us):
        if not isinstance(st, dict) or st.get("v") != _STATE_VERSION:
            return
        w = []
        self.fails = _int_in(st, "fails", 0, 64, 0, w)
        self.boots = _int_in(st, "boots", 0, 1 << 30, 0, w)
        top = self.config.poll_max_s if self.config.poll_max_explicit else POLL_MAX_LIMIT_S
        self.interval_s = _int_in(
            st, "interval_s", self.config.poll_min_s, top, self.config.poll_min_s, w
        )
        self.last_sync_unix_s = _opt_int(st.get("last_sync_unix_s"))
        self.next_due_unix_s = _opt_int(st.get("next_due_unix_s"))
        sent = st.get("sent")
        if isinstance(sent, list) and wall_us >= self.floor_us:
            # R1, R2 across restarts: the last hour's sends, by wall time, while it is valid
            wall_ms = wall_us // 1000
            for item in sent[-HOURLY_CAP:]:
                if not (
                    isinstance(item, list)
                    and len(item) == 2
                    and isinstance(item[0], str)
                    and isinstance(item[1], int)
                ):
                    continue
                age_ms = wall_ms - item[1]
                if 0 <= age_ms < _HOUR_MS:
                    # +1: the saved time was truncated to the ms; and the saved times were
                    # moved by a whole correction at once, which the discipline may still be
                    # slewing in: the floor must not come short
                    sent_ms = now_ms - age_ms + 1 + SLEW_SLACK_MS
                    self.sends_ms.append(sent_ms)
                    self.sent_wall.append(item)
                    peer = self._peer_by_text(item[0])
                    if peer.last_send_ms is None or peer.last_send_ms < sent_ms:
                        peer.last_send_ms = sent_ms
            self.sends_ms.sort()
        denied = st.get("denied")
        if isinstance(denied, dict):
            wall_s = wall_us // 1_000_000
            valid = wall_us >= self.floor_us
            for k, until in denied.items():
                if not isinstance(until, int) or not isinstance(k, str):
                    continue
                # with an invalid clock we cannot tell how long is left: keep a full hold
                left_s = until - wall_s if valid else DENY_HOLD_S
                if left_s > 0:
                    self.denied_wall[k] = until
                    self._peer_by_text(k).denied_until_ms = (
                        now_ms + min(left_s, DENY_HOLD_S) * 1000
                    )

    def state(self):
        """The dict to persist (small, JSON-able). Call when self.dirty, then clear it."""
        return {
            "v": _STATE_VERSION,
            "fails": self.fails,
            "boots": self.boots,
            "interval_s": self.interval_s,
            "last_sync_unix_s": self.last_sync_unix_s,
            "next_due_unix_s": self.next_due_unix_s,
            "denied": dict(self.denied_wall),
            "sent": [list(x) for x in self.sent_wall],
        }

    def _peer_by_text(self, text):
        # denied entries are persisted as text; peers are keyed by (ip, port)
        for key, peer in self.peers.items():
            if key_text(key) == text:
                return peer
        p = Peer()
        self.peers[("text", text)] = p
        return p

    def _peer(self, key):
        p = self.peers.get(key)
        if p is None:
            p = self.peers.pop(("text", key_text(key)), None) or Peer()
            self.peers[key] = p
        return p

    # ---- the loop ------------------------------------------------------------------------
    def wakeup_ms(self):
        return self.due_ms

    def poll(self, now_ms, wall_us):
        """What to do now: None, ('resolve', source) or ('query', source, address)."""
        self.now_ms = now_ms
        if self.due_ms is None or now_ms < self.due_ms or self.awaiting is not None:
            return None
        if not self.sources:  # only a factory server was configured, and it has done its job
            self.due_ms = None
            self.emit("idle", reason="no servers configured after the factory server (rule 3)")
            return None
        if self.round is None:
            self.round = {"tried": [], "samples": []}
            self.fails += 1  # R4: counted before the round, undone by success
            self.dirty = True
        # R2: the hourly ceiling, whatever else happens
        while self.sends_ms and now_ms - self.sends_ms[0] >= _HOUR_MS:
            self.sends_ms.pop(0)
        if len(self.sends_ms) >= HOURLY_CAP:
            self.due_ms = self.sends_ms[0] + _HOUR_MS
            self.emit("hold", reason="hourly cap", cap=HOURLY_CAP, wait_ms=self.due_ms - now_ms)
            return None
        src, wait_ms = self._pick(now_ms)
        if src is None:
            if wait_ms is not None:
                self.due_ms = now_ms + wait_ms
                return None
            return self._round_failed(now_ms, wall_us)  # result() concludes rounds with replies
        if self._needs_resolve(src, now_ms):
            src.dns_next_ms = now_ms + DNS_RETRY_FIRST_MS  # no second lookup until reported
            return ("resolve", src)
        addr = src.addrs[src.idx]
        peer = self._peer(addr.key)
        if peer.last_send_ms is not None:
            peer.gap_ms = now_ms - peer.last_send_ms
        peer.last_send_ms = now_ms
        self.sends_ms.append(now_ms)
        self.sent_wall.append([key_text(addr.key), wall_us // 1000])
        if len(self.sent_wall) > HOURLY_CAP:
            self.sent_wall.pop(0)
        self.dirty = True  # a restart must know this send (R1, R2)
        self.round["tried"].append(src)
        self.awaiting = (src, addr.key)
        src.sends += 1
        self.emit("send", server=src.label(), address=key_text(addr.key))
        return ("query", src, addr)

    def _needs_resolve(self, src, now_ms):
        if now_ms < src.dns_next_ms:
            return False
        if not src.addrs or src.want_resolve:
            return True
        return src.resolved_ms is not None and now_ms - src.resolved_ms >= REFRESH_MS

    def _usable_addr(self, src, now_ms):
        """Index of the first usable address from src.idx on, or None."""
        n = len(src.addrs)
        for i in range(n):
            j = (src.idx + i) % n
            if self._peer(src.addrs[j].key).denied_until_ms <= now_ms:
                return j
        return None

    def _pick(self, now_ms, dry=False):
        """(source, None) to use now, (None, wait_ms) to wait for a short floor, (None, None).

        dry: only tell whether a source is left in this round, changing nothing."""
        n = len(self.sources)
        short_wait = None
        for i in range(n):
            src = self.sources[(self.rr + i) % n]
            if src in self.round["tried"]:
                continue
            if not src.addrs or src.want_resolve:
                if now_ms >= src.dns_next_ms:
                    if not dry:
                        self.rr = (self.rr + i + 1) % n
                    return src, None  # resolve first
                if not src.addrs:
                    continue  # DNS backoff: skip this round
            j = self._usable_addr(src, now_ms)
            if j is None:
                if now_ms >= src.dns_next_ms:
                    if not dry:
                        src.want_resolve = True
                        self.rr = (self.rr + i + 1) % n
                    return src, None
                continue
            if not dry:
                src.idx = j
            peer = self._peer(src.addrs[j].key)
            gap = MIN_GAP_MS
            if peer.rate_until_ms > now_ms:
                gap = max(gap, peer.rate_gap_ms)
            if peer.last_send_ms is not None and now_ms - peer.last_send_ms < gap:
                left = gap - (now_ms - peer.last_send_ms)
                if left <= MIN_GAP_MS + SLEW_SLACK_MS:  # only the hard floor: worth waiting for
                    short_wait = left if short_wait is None else min(short_wait, left)
                continue
            if not dry:
                self.rr = (self.rr + i + 1) % n
            return src, None
        return None, short_wait

    # ---- outcomes ------------------------------------------------------------------------
    def resolved(self, src, addrs, now_ms, detail=None):
        """The driver's lookup of src.host: a list of Address (empty or None: failed)."""
        self.now_ms = now_ms
        if not addrs:
            src.dns_fails += 1
            delay = DNS_RETRY_FIRST_MS
            for _ in range(src.dns_fails - 1):
                delay = min(DNS_RETRY_MAX_MS, delay * 5)
            src.dns_next_ms = now_ms + self._jitter(delay)
            self.emit(
                "resolve",
                server=src.label(),
                ok=False,
                detail=detail,
                retry_ms=src.dns_next_ms - now_ms,
            )
            if self.round is not None:
                self.round["tried"].append(src)
            return
        src.addrs = list(addrs[:MAX_SOURCES])
        src.idx = 0
        src.addr_fails = 0
        src.resolved_ms = now_ms
        src.dns_fails = 0
        src.want_resolve = False
        src.dns_next_ms = now_ms + RERESOLVE_MIN_MS  # rule 16: at most hourly from here
        self.emit(
            "resolve", server=src.label(), ok=True, addresses=[key_text(a.key) for a in src.addrs]
        )

    def result(self, src, addr, r, now_ms, wall_us):
        """The outcome of a query action. Returns a Correction to apply, or None."""
        self.now_ms = now_ms
        self.awaiting = None
        key = addr.key
        label = src.label()
        if r.ok:
            src.replies += 1
            src.addr_fails = 0
            self.emit(
                "reply",
                server=label,
                address=key_text(key),
                offset_us=r.offset_us,
                delay_us=r.delay_us,
                stratum=r.header.stratum,
            )
            if self.round is not None:
                self.round["samples"].append((now_ms, src, key, r.offset_us, r.delay_us))
                return self._decide(now_ms, wall_us)
            return None
        if r.error == exchange.KISS:
            self._kiss(src, key, r.kiss, now_ms, wall_us)
        else:
            # no reply of ours arrived (silence, or only spoofs): a timeout; else a rejection
            kind = "timeout" if r.error in _NO_REPLY else "reject"
            self.emit(kind, server=label, address=key_text(key), reason=r.error)
            src.addr_fails += 1
            if src.addr_fails >= ADDR_FAILS_SWITCH:
                src.addr_fails = 0
                if len(src.addrs) > 1:
                    src.idx = (src.idx + 1) % len(src.addrs)
                src.want_resolve = True  # at most hourly (dns_next_ms)
        if self.round is not None and self.round["samples"]:
            return self._decide(now_ms, wall_us)  # replies so far may settle the round
        self.due_ms = now_ms  # next source in this round, floors permitting
        return None

    def _kiss(self, src, key, code, now_ms, wall_us):
        src.kods += 1
        self.kods += 1
        peer = self._peer(key)
        if code == "RATE":
            gap = min(
                max(RATE_MIN_MS, 2 * self.interval_s * 1000, 2 * peer.rate_gap_ms), RATE_MAX_MS
            )
            if peer.rate_until_ms > now_ms:  # a further RATE: never shorter than the last
                peer.rate_gap_ms = max(gap, peer.rate_gap_ms)
            else:  # the first: the gap this address saw, doubled (not compounded after)
                peer.rate_gap_ms = max(gap, 2 * min(peer.gap_ms, POLL_MAX_LIMIT_S * 1000))
            peer.rate_until_ms = now_ms + peer.rate_gap_ms + RATE_HOLD_MS
            self.emit(
                "kod",
                server=src.label(),
                address=key_text(key),
                code=code,
                gap_ms=peer.rate_gap_ms,
            )
        elif code == "DENY" or code == "RSTR":
            peer.denied_until_ms = now_ms + DENY_HOLD_S * 1000
            self.denied_wall[key_text(key)] = wall_us // 1_000_000 + DENY_HOLD_S
            self.dirty = True
            src.want_resolve = True
            self.emit(
                "kod", server=src.label(), address=key_text(key), code=code, hold_s=DENY_HOLD_S
            )
        else:  # unknown or X...: no protocol meaning, a failed exchange (with backoff)
            src.addr_fails += 1
            self.emit("kod", server=src.label(), address=key_text(key), code=code)

    def _decide(self, now_ms, wall_us):
        """R5: a Correction when the samples of this round justify one."""
        samples = [s for s in self.round["samples"] if now_ms - s[0] <= SAMPLE_MAX_AGE_MS]
        self.round["samples"] = samples
        if not samples:
            self.due_ms = now_ms
            return None
        latest = samples[-1]
        valid = wall_us >= self.floor_us
        single = len(self.sources) == 1
        chosen = None
        if single or (valid and abs(latest[3]) <= AGREE_ABOVE_US):
            chosen = [latest]
        elif self._pick(now_ms, dry=True) != (None, None):
            self.due_ms = now_ms  # a large step waits until every source has been asked
            return None
        else:
            chosen = self._majority(samples)
            if chosen is None:
                if len(samples) >= 2:
                    self.emit(
                        "disagree",
                        offsets_us=[s[3] for s in samples],
                        servers=[s[1].label() for s in samples],
                    )
                return self._round_failed(now_ms, wall_us)
        pick = chosen[0]
        for s in chosen:
            if s[4] < pick[4]:
                pick = s  # the smallest round trip is the best measurement
        offset = pick[3]
        outliers = [
            s for s in samples if abs(s[3] - offset) > AGREE_TOLERANCE_US + (s[4] + pick[4]) // 2
        ]
        if outliers:  # falsetickers: reported, never followed
            self.emit(
                "disagree",
                offsets_us=[s[3] for s in outliers],
                servers=[s[1].label() for s in outliers],
                chosen_us=offset,
            )
        if wall_us + offset < self.floor_us:
            self.emit("reject", server=pick[1].label(), reason="before-build-date")
            self.round["samples"] = [s for s in samples if s not in chosen]
            self.due_ms = now_ms
            return None
        # success: the interval grows toward its maximum (R3 jitter on top)
        if self.last_sync_unix_s is not None:
            self.interval_s = min(self.max_interval_s(), self.interval_s * 2)
        self.fails = 0
        self.round = None
        self.urgent = False
        for k in self.denied_wall:  # holds are wall deadlines: they move with the clock
            self.denied_wall[k] += offset // 1_000_000
        for item in self.sent_wall:
            item[1] += offset // 1000
        self.last_sync_unix_s = (wall_us + offset) // 1_000_000
        self.last_offset_us = offset
        self.dirty = True
        self.emit("step", offset_us=offset, servers=[s[1].label() for s in chosen])
        if self.sources is not self.normal_sources:  # the factory server's job is done
            self.sources = self.normal_sources
            self.rr = 0
            self.emit("config", note="first sync done: factory server no longer used")
        self._schedule(now_ms, self.interval_s * 1000, wall_us + offset, "poll")
        return Correction(offset, [s[1].label() for s in chosen], pick[4])

    def _majority(self, samples):
        """The largest group of distinct addresses agreeing with one another within the
        tolerance, if it has at least two members and more than all the other replies."""
        best = []
        for a in samples:
            group = []
            for b in samples:
                near = abs(a[3] - b[3]) <= AGREE_TOLERANCE_US + (a[4] + b[4]) // 2
                if near and b[2] not in [c[2] for c in group]:
                    group.append(b)
            if len(group) > len(best):
                best = group
        distinct = []
        for s in samples:
            if s[2] not in distinct:
                distinct.append(s[2])
        if len(best) >= 2 and 2 * len(best) > len(distinct):
            return best
        return None

    def max_interval_s(self):
        """The interval's ceiling: poll_max_s, or what the clock discipline allows (up to
        POLL_MAX_LIMIT_S when the drift is well known) unless poll_max_s was configured."""
        c = self.config
        if self.cap_s is None:
            return c.poll_max_s
        top = c.poll_max_s if c.poll_max_explicit else POLL_MAX_LIMIT_S
        return max(c.poll_min_s, min(self.cap_s, top))

    def set_interval_cap(self, cap_s, now_ms):
        """The discipline's longest safe interval. Growth toward it comes a sync at a time;
        a cap below the current interval takes effect at once (an earlier poll)."""
        self.cap_s = cap_s
        top = self.max_interval_s()
        if self.interval_s > top:
            self.interval_s = top
            if self.round is None and self.due_ms is not None:
                if self.due_ms - now_ms > top * 1000:
                    self.due_ms = now_ms + self._jitter(top * 1000)

    def _round_failed(self, now_ms, wall_us):
        self.round = None
        self.urgent = False
        valid = wall_us >= self.floor_us
        self._schedule(now_ms, self._backoff_ms(valid), wall_us, "backoff", fails=self.fails)
        return None

    def _backoff_ms(self, clock_valid):
        """R4. A clock that is invalid now (lost in a power cut) wants time soon, synced
        before or not: only a valid, synced clock takes the long, spread wait."""
        iv = self.interval_s * 1000
        if clock_valid and self.last_sync_unix_s is not None and iv > BACKOFF_MAX_MS:
            return iv // 4 + self.rand_below(iv - iv // 4)
        d, top = BACKOFF_MIN_MS, BACKOFF_MAX_MS
        for _ in range(max(0, self.fails - 1)):
            d = min(top, d * 2)
            if d == top:
                break
        return d

    def _jitter(self, ms):
        return ms + self.rand_below(ms // JITTER_DIV + 1)

    def _schedule(self, now_ms, delay_ms, wall_us, why, **fields):
        delay_ms = self._jitter(delay_ms) if why != "start" else delay_ms
        self.due_ms = now_ms + delay_ms
        self.next_due_unix_s = (wall_us // 1000 + delay_ms) // 1000
        self.dirty = True
        self.emit(why, wait_ms=delay_ms, interval_s=self.interval_s, **fields)

    # ---- status --------------------------------------------------------------------------
    def status(self, now_ms):
        out = []
        for s in self.sources:
            addr = key_text(s.addrs[s.idx].key) if s.addrs else None
            out.append(
                {
                    "server": s.label(),
                    "address": addr,
                    "sends": s.sends,
                    "replies": s.replies,
                    "kods": s.kods,
                    "pool": s.pool,
                    "dns_failures": s.dns_fails,
                }
            )
        return {
            "interval_s": self.interval_s,
            "fails": self.fails,
            "kods": self.kods,
            "next_ms": None if self.due_ms is None else max(0, self.due_ms - now_ms),
            "servers": out,
            "last_sync_unix_s": self.last_sync_unix_s,
        }


def _opt_int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None
