# The good-citizen policy: when to ask whom, backoff, Kiss-o'-Death, DNS, falseticker defence.
#
# Theory of operation. The Policy is a state machine without I/O: it never reads a clock,
# a socket or a file. keeper.Keeper drives it for every driver (service.py, aio.py and
# the simulators in tools/):
#   1. at due_ms (None: nothing to do until something changes), poll(now_ms, wall_us)
#      answers None, ("resolve", source) or ("query", source, address);
#   2. the driver does it and reports back: resolved(source, addresses, now_ms), or
#      result(source, address, exchange_result, now_ms, wall_us), which returns a
#      Correction when the clock should move.
# now_ms is a monotonic ms count (rebase() takes it back to keep it a small int); wall_us is
# the device's clock in Unix us, used only to tell whether it is valid (rule 10) and to
# persist deadlines across reboots (state(), start()).
#
# A round asks the sources in turn, each at most once, until the replies settle it (R5):
# then a Correction, and the next round one poll interval later (doubling per good sync up
# to max_interval_s(), with jitter); a round that cannot settle backs off (R4).
#
# Rules of this file (what holds whatever the events):
#  R1 Never two requests to one address less than _MIN_GAP_MS apart (rule 1); a RATE kiss
#     widens that address's gap (rule 5); DENY/RSTR stop it for DENY_HOLD_S. Both holds
#     are kept across reboots; a RATE hold as the ms left at the last save, which a clock
#     valid then and at boot counts down, and which otherwise starts again at boot.
#  R2 Never more than HOURLY_CAP requests in any hour in total, whatever the configuration.
#  R3 Every interval is randomized: a uniform 0-25 % on top (_JITTER_DIV), so nothing aligns
#     with the wall clock (rule 15). There is no cron-like schedule anywhere.
#  R4 A failed round backs off: 30 s doubling to 1 h while the clock is invalid or never
#     synced; a valid, synced clock waits a random time within the poll interval (so a
#     fleet comes back from an outage at about the rate it fell due, not in one burst).
#     The count of failed rounds is persisted *before* each round: reboots continue it.
#  R5 The clock moves only on a Correction from here: from one server when the clock is
#     valid and the offset is within the clock's own error bound (the Keeper's expect_us:
#     the discipline's bound, at most accuracy_ms before a power-on's first sync or after
#     a reboot; without a discipline, _AGREE_ABOVE_US); otherwise only from a group of at
#     least two servers that agree and are a strict majority of the replies (rule 11): an
#     invalid clock as soon as two or more replies all agree (a cold start asks two), else
#     once every source of the round has been asked. So a lone liar never moves it, nor do
#     two liars against two honest servers unless they agree and are the first two asked
#     of an invalid clock; except when exactly one server is configured. Never below the
#     build date (rule 10); never from a KoD (the exchange gives no time for one).
#  R6 No built-in server: with none configured, no traffic, and an 'idle' event says why.
#  R7 Names are stored, never addresses; DNS has its own backoff (rule 16).
#  R8 Restarts are no traffic: the last hour's sends are saved with the uptime since each, so
#     R1 and R2 hold with the clock in 1970; the k-th short boot in a row waits (below);
#     a wake from deep sleep is no boot, and asks only when due. Unreadable: a short boot.
# Everything here is integers (ms, us, s); randomness comes from the rand_below callable.
from . import exchange
from .compat import const, ints
from .exchange import BUILD_UNIX_S
from .schema import MAX_SOURCES, POOL_SUFFIX, SCHEMA

_MIN_GAP_MS = const(15_000)  # R1: RFC 4330 section 10 MUST
HOURLY_CAP = const(12)  # R2: requests in any 3600 s (a round is at most 4)
HOUR_MS = const(3_600_000)
_JITTER_DIV = const(4)  # R3: a wait is lengthened by a uniform [0, 1/4)
# Start-up (rule 12): an invalid clock (before the build date) wants time soon, but a fleet
# restored from a power cut must spread out: the first request after 0-60 s (RFC 4330: 1-5
# min; lwIP's 0-5 s is too short). A valid clock can wait 0-30 min. A reboot waits at least
# 15 s, so that it cannot bring a second request within _MIN_GAP_MS of one sent before it.
_STARTUP_INVALID_MS = const(60_000)
_STARTUP_VALID_MS = const(1_800_000)
_REBOOT_MIN_MS = const(15_000)
# Crash-loop guard (R8): a boot is short when the one before it saved less than LONG_BOOT_MS of
# uptime, or died with a request in flight. The k-th short boot in a row sends nothing until
# min(15 s x 2**k, 1 h), jittered, has passed since the last request, counted in uptime (a
# lower bound of real time that needs no valid clock: the time the board was off counts as
# nothing). The uptime is saved at 15 s, 30 s, 60 s ... up to LONG_BOOT_MS of each boot.
LONG_BOOT_MS = const(600_000)
_MARK_FIRST_MS = const(15_000)
_CRASH_SHIFT_TOP = const(8)  # 15 s x 2**8 is past the hour
SHORT_MAX = const(64)  # the count of short boots stops there
_BACKOFF_MIN_MS = const(30_000)  # R4 (lwIP: 15 s to 150 s, too fast)
_BACKOFF_MAX_MS = const(3_600_000)
# R1 across restarts: the persisted send times move with each correction at once, while the
# discipline slews one under its 128 ms step threshold over minutes: slack on the safe side.
SLEW_SLACK_MS = const(250)
# Poll interval: the schema's bounds (schema.py: the pool's 30 min floor, rule 14, 64 s for
# other servers, 4 h until the discipline knows the drift); 36 h at most in any case.
_POLL_TOP_S = SCHEMA["poll_max_s"][3]
# Kiss-o'-Death (rule 5). RATE: that address's gap becomes at least twice the poll interval
# and at least 10 min (chrony waits 4 polls, >= 256 s; ntpsec >= 9 x 64 s), doubled by each
# further RATE, never above 2**13 s from that alone (RFC 8633 5.4); and at least twice the
# gap the address had before the first kissed request (with servers in rotation that is
# several intervals: the rate it sees must still halve, rule 5's MUST), kept until a day
# after that gap has passed. DENY/RSTR: that address is not used for a day, across reboots.
_RATE_MIN_MS = const(600_000)
RATE_MAX_MS = const(8_192_000)
RATE_HOLD_MS = const(86_400_000)
RATE_GAP_TOP = const(262_144_000)  # 2 x _POLL_TOP_S: the widest gap a RATE can set
DENY_HOLD_S = const(86_400)
# R5: an offset above 1 s, or any offset while the clock is invalid, needs two servers that
# agree within _AGREE_TOLERANCE_US plus half their two round trips.
_AGREE_ABOVE_US = const(1_000_000)
_AGREE_TOLERANCE_US = const(250_000)
_SAMPLE_MAX_AGE_MS = const(900_000)  # older replies are not compared
# R7: a name that fails to resolve is retried after 1 min, 5 min, then at most hourly (rule
# 16). An address that failed twice in a row is dropped for the next one; a name is
# re-resolved at most hourly after failures, and once a day anyway (rule 4).
_DNS_RETRY_FIRST_MS = const(60_000)
_DNS_RETRY_MAX_MS = const(3_600_000)
_RERESOLVE_MIN_MS = const(3_600_000)
_REFRESH_MS = const(86_400_000)
_ADDR_FAILS_SWITCH = const(2)

_NO_REPLY = (exchange.TIMEOUT, exchange.BAD_ORIGIN, exchange.SHORT, exchange.WRONG_SOURCE)


class Correction:
    """Move the clock by offset_us (positive: forward), as servers vouched."""

    def __init__(self, offset_us, servers, delay_us, root_us=0):
        self.offset_us = offset_us  # signed us
        self.servers = servers  # the source labels that vouched for it
        self.delay_us = delay_us  # round trip of the measurement used, us
        self.root_us = root_us  # its server's root distance, us


class Sample:
    """A good reply of the round in progress."""

    def __init__(self, t_ms, src, key, offset_us, delay_us, root_us=0):
        self.t_ms = t_ms  # when it came
        self.src = src  # Source
        self.key = key  # (ip, port) it came from
        self.offset_us = offset_us
        self.delay_us = delay_us  # round trip
        self.root_us = root_us  # the server's root distance


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
        # how events and status name it: the host, with the port when it is not 123
        self.label = host if port == 123 else key_text((host, port))


class Peer:
    """Per-address state: the hard floor and KoD holds (R1)."""

    def __init__(self):
        self.last_send_ms = None
        self.gap_ms = 0  # between the last two requests to it (0: unknown)
        self.rate_gap_ms = 0  # the gap a RATE imposed
        self.rate_until_ms = 0  # kept until
        self.denied_until_ms = 0  # DENY/RSTR hold


def key_text(key):
    ip, port = key
    return ("[{}]:{}" if ":" in ip else "{}:{}").format(ip, port)


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
        # [key text, Unix ms, ms] of the last HOURLY_CAP sends, oldest first (R1, R2; persisted)
        self.sent = []
        self.interval_s = config.poll_min_s  # current poll interval, s
        self.cap_s = None  # the clock discipline's longest safe interval, s (None: unknown)
        self.fails = 0  # consecutive failed rounds (persisted before each round)
        self.boots = 0  # boots seen in the persisted state
        self.short = 0  # consecutive short boots, this one included (the crash-loop guard)
        self.boot_ms = 0  # when this boot started
        self.mark_ms = None  # the next uptime checkpoint (a save), None: past LONG_BOOT_MS
        self.quiet_ms = None  # the crash-loop guard: no request before this
        self.rr = 0  # rotation index into sources
        self.due_ms = None  # next time poll() has something to do; None: never
        self.tried = None  # the sources asked in the round in progress (None: no round)
        self.samples = []  # its good replies (Sample)
        self.awaiting = False  # a request is in flight
        self.last_sync_unix_s = None  # wall time of the last correction
        self.last_offset_us = None  # the offset applied by it
        self.next_due_unix_s = None  # wall time of due_ms, persisted
        self.dirty = False  # persisted state changed: the driver should save state()
        self.kods = 0  # KoDs received, all kinds
        self.failed = 0  # rounds failed since this boot
        self.asked = None  # the label of the server asked last
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
        """Move every stored ms d back (the driver took d off its count) to keep them small
        ints; anything older than d ago is kept as just that old."""
        self.base_ms += d
        self.now_ms -= d

        def back(t):
            return None if t is None else max(t - d, -d)

        self.due_ms = back(self.due_ms)
        self.boot_ms = back(self.boot_ms)
        self.mark_ms = back(self.mark_ms)
        self.quiet_ms = back(self.quiet_ms)
        for x in self.sent:
            x[2] = back(x[2])
        for p in self.peers.values():
            p.last_send_ms = back(p.last_send_ms)
            p.rate_until_ms = back(p.rate_until_ms)
            p.denied_until_ms = back(p.denied_until_ms)
        for s in self.normal_sources + ([self.factory_source] if self.factory_source else []):
            s.resolved_ms = back(s.resolved_ms)
            s.dns_next_ms = back(s.dns_next_ms)
        for s in self.samples:
            s.t_ms = back(s.t_ms)

    # ---- start-up and persistence ---------------------------------------------------------
    def start(self, now_ms, wall_us, saved=None, wake=False):
        """Begin at now_ms, with the persisted state of the last run (a state.Saved; None:
        nothing saved).

        wake: True, a wake from deep sleep (the RTC ran on); None, the reset cause is unknown
        (counted as a short boot); False, a power-on or reset."""
        self.now_ms = self.boot_ms = now_ms
        self.mark_ms = now_ms + _MARK_FIRST_MS
        valid = wall_us >= self.floor_us
        woke = wake is True  # the RTC ran on: its differences hold, valid or not
        short = self._restore(saved) if saved is not None else wake is None
        if not woke:
            self.boots += 1
            self.short = min(self.short + 1, SHORT_MAX) if short else 0
        self.dirty = True
        if self.factory_source is not None and self.last_sync_unix_s is None:
            self.sources = [self.factory_source]
        if not self.sources:
            self.due_ms = None
            self.emit("idle", reason="no servers configured: no NTP traffic (rule 3)")
            return
        delay = 0  # a wake: when the saved state says (below), at once if past
        if not woke:
            delay = self.rand_below(_STARTUP_VALID_MS if valid else _STARTUP_INVALID_MS)
            if self.boots > 1:
                delay = max(delay, _REBOOT_MIN_MS + self.rand_below(_REBOOT_MIN_MS))
            if self.fails > 0:
                delay = max(delay, self._backoff_ms(valid))
            if self.short and self.sent:  # the crash-loop guard, from the last request
                wait = self._jitter(
                    min(_MARK_FIRST_MS << min(self.short, _CRASH_SHIFT_TOP), HOUR_MS)
                )
                self.quiet_ms = self.sent[-1][2] + wait
                delay = max(delay, self.quiet_ms - now_ms)
        if (valid or woke) and self.next_due_unix_s is not None:
            until_due = self.next_due_unix_s * 1000 - wall_us // 1000
            if until_due < 0 and self.last_sync_unix_s is not None and not woke:
                # fell due while off: a random time within one interval (R4)
                until_due = self.rand_below(self.interval_s * 1000)
            # No saved wait is longer than a jittered interval (or backoff, after failures)
            # or the start-up window: a deadline further off means the clock was set back
            # since the save (a user setting the RTC), and would postpone the sync that
            # puts it right by as much.
            longest = self.interval_s * 1000
            if self.fails > 0:
                longest = max(longest, _BACKOFF_MAX_MS)
            longest = max(longest + longest // _JITTER_DIV, _STARTUP_VALID_MS)
            delay = max(delay, min(until_due, longest, _POLL_TOP_S * 1000))
        self._schedule(
            now_ms, max(0, delay), wall_us, "start", clock_valid=valid, short=self.short
        )

    def sync_now(self, now_ms):
        """A person asked: start a round now. The floors (R1, R2), KoD holds and the crash-loop
        guard still apply."""
        self.now_ms = now_ms
        if self.sources:
            self.due_ms = max(now_ms, self.quiet_ms or now_ms)

    def next_ms(self):
        """When the driver must call poll() next: the due time or an uptime checkpoint."""
        d, m = self.due_ms, self.mark_ms
        return m if d is None or (m is not None and m < d) else d

    def due(self, now_ms):
        """ms until a request may be due (0: now), from the state alone; None: never."""
        d = self.due_ms
        if d is None:
            return None
        if len(self.sent) >= HOURLY_CAP:
            d = max(d, self.sent[0][2] + HOUR_MS)
        return max(0, d - now_ms)

    def _restore(self, sv):
        """Take a saved state (state.Saved) in; True when the boot before this one was short
        (or cannot be told: an unreadable state, an older one, an unknown reset cause)."""
        self.fails, self.boots, self.short, self.rr = sv.fails, sv.boots, sv.shorts, sv.rr
        if not sv.first:
            self.interval_s = sv.interval_s or self.interval_s
            self.last_sync_unix_s = sv.last_sync_unix_s
            self.next_due_unix_s = sv.next_due_unix_s
        self.sent = sv.sent
        for text, _, sent_ms in sv.sent:
            peer = self._peer_by_text(text)
            if peer.last_send_ms is None or peer.last_send_ms < sent_ms:
                peer.last_send_ms = sent_ms
        for text, until_s, until_ms in sv.denied:
            self.denied_wall[text] = until_s
            self._peer_by_text(text).denied_until_ms = until_ms
        for text, gap, until_ms, sent_ms in sv.rate:
            peer = self._peer_by_text(text)
            peer.rate_gap_ms, peer.rate_until_ms = gap, until_ms
            if peer.last_send_ms is None or peer.last_send_ms < sent_ms:
                peer.last_send_ms = sent_ms
        if sv.warnings:
            self.emit("config", warning="state: " + "; ".join(sv.warnings))
        return sv.short

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
    def poll(self, now_ms, wall_us):
        """What to do now: None, ('resolve', source) or ('query', source, address)."""
        self.now_ms = now_ms
        m = self.mark_ms
        if m is not None and now_ms >= m:  # an uptime checkpoint: save it
            self.dirty = True
            m -= self.boot_ms
            self.mark_ms = None if m >= LONG_BOOT_MS else self.boot_ms + 2 * m
        if self.due_ms is None or now_ms < self.due_ms or self.awaiting:
            return None
        if not self.sources:  # only a factory server was configured, and it has done its job
            self.due_ms = None
            self.emit("idle", reason="no servers configured after the factory server (rule 3)")
            return None
        if self.tried is None:
            self.tried, self.samples = [], []
            self.fails += 1  # R4: counted before the round, undone by success
            self.dirty = True
        # R2: the hourly ceiling, whatever else happens (sent holds the last HOURLY_CAP)
        sent = self.sent
        if len(sent) >= HOURLY_CAP and now_ms - sent[0][2] < HOUR_MS:
            self.due_ms = sent[0][2] + HOUR_MS
            self.emit("hold", reason="hourly cap", cap=HOURLY_CAP, wait_ms=self.due_ms - now_ms)
            return None
        src, wait_ms = self._pick(now_ms)
        if src is None:
            if wait_ms is not None:
                self.due_ms = now_ms + wait_ms
                self.emit("wait", wait_ms=wait_ms, reason="floor")  # R1, before the next
                return None
            return self._round_failed(now_ms, wall_us)  # result() concludes rounds with replies
        if self._needs_resolve(src, now_ms):
            src.dns_next_ms = now_ms + _DNS_RETRY_FIRST_MS  # no second lookup until reported
            return ("resolve", src)
        addr = src.addrs[src.idx]
        peer = self._peer(addr.key)
        if peer.last_send_ms is not None:
            peer.gap_ms = now_ms - peer.last_send_ms
        peer.last_send_ms = now_ms
        sent.append([key_text(addr.key), wall_us // 1000, now_ms])
        if len(sent) > HOURLY_CAP:
            sent.pop(0)
        self.dirty = True  # a restart must know this send (R1, R2)
        self.tried.append(src)
        self.awaiting = True
        src.sends += 1
        self.asked = src.label
        self.emit("send", server=src.label, address=key_text(addr.key))
        return ("query", src, addr)

    def _needs_resolve(self, src, now_ms):
        if now_ms < src.dns_next_ms:
            return False
        if not src.addrs or src.want_resolve:
            return True
        return src.resolved_ms is not None and now_ms - src.resolved_ms >= _REFRESH_MS

    def _pick(self, now_ms, dry=False):
        """(source, None) to use now, (None, wait_ms) to wait for a short floor, (None, None).

        dry: only tell whether a source is left in this round, changing nothing."""
        n = len(self.sources)
        short_wait = None
        for i in range(n):
            src = self.sources[(self.rr + i) % n]
            if src in self.tried:
                continue
            resolve = not src.addrs or src.want_resolve
            j = None  # the first usable (not denied) address from idx on
            for a in range(len(src.addrs)):
                k = (src.idx + a) % len(src.addrs)
                if self._peer(src.addrs[k].key).denied_until_ms <= now_ms:
                    j = k
                    break
            if resolve or j is None:  # (re)resolve first, unless DNS backs off
                if now_ms >= src.dns_next_ms:
                    if not dry:
                        if src.addrs:
                            src.want_resolve = True  # the addresses it has are all denied
                        # a first lookup: asked next, once resolved (not the next name:
                        # a boot would look up every name before its first query); a
                        # lookup after failures: the next name is asked first
                        self.rr = (self.rr + i + (1 if src.addrs else 0)) % n
                    return src, None
                if j is None:
                    continue  # DNS backoff and nothing usable: skip it this round
            if not dry:
                src.idx = j
            peer = self._peer(src.addrs[j].key)
            gap = _MIN_GAP_MS
            if peer.rate_until_ms > now_ms:
                gap = max(gap, peer.rate_gap_ms)
            if peer.last_send_ms is not None and now_ms - peer.last_send_ms < gap:
                left = gap - (now_ms - peer.last_send_ms)
                if left <= _MIN_GAP_MS + SLEW_SLACK_MS:  # only the hard floor: worth waiting
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
        label = src.label
        if not addrs:
            src.dns_fails += 1
            delay = _DNS_RETRY_FIRST_MS
            for _ in range(src.dns_fails - 1):
                delay = min(_DNS_RETRY_MAX_MS, delay * 5)
            src.dns_next_ms = now_ms + self._jitter(delay)
            self.emit(
                "resolve", server=label, ok=False, detail=detail, retry_ms=src.dns_next_ms - now_ms
            )
            if self.tried is not None:
                self.tried.append(src)
            return
        src.addrs = list(addrs[:MAX_SOURCES])
        src.idx = src.addr_fails = src.dns_fails = 0
        src.resolved_ms = now_ms
        src.want_resolve = False
        src.dns_next_ms = now_ms + _RERESOLVE_MIN_MS  # rule 16: at most hourly from here
        self.emit("resolve", server=label, ok=True, addresses=[key_text(a.key) for a in src.addrs])

    def result(self, src, addr, r, now_ms, wall_us, expect_us=None):
        """The outcome of a query action. Returns a Correction to apply, or None.
        expect_us: how wrong the clock may be by its own error bound (None: unknown)."""
        self.now_ms = now_ms
        self.awaiting = False
        key = addr.key
        label = src.label
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
            if self.tried is None:
                return None
            self.samples.append(
                Sample(now_ms, src, key, r.offset_us, r.delay_us, r.root_distance_us or 0)
            )
            return self._decide(now_ms, wall_us, expect_us)
        if r.error == exchange.KISS:
            self._kiss(src, key, r.kiss, now_ms, wall_us)
        else:
            # no reply of ours arrived (silence, or only spoofs): a timeout; else a rejection
            kind = "timeout" if r.error in _NO_REPLY else "reject"
            self.emit(kind, server=label, address=key_text(key), reason=r.error)
            src.addr_fails += 1
            if src.addr_fails >= _ADDR_FAILS_SWITCH:
                src.addr_fails = 0
                if len(src.addrs) > 1:
                    src.idx = (src.idx + 1) % len(src.addrs)
                src.want_resolve = True  # at most hourly (dns_next_ms)
        if self.tried is not None and self.samples:
            return self._decide(now_ms, wall_us, expect_us)  # replies may settle the round
        self.due_ms = now_ms  # next source in this round, floors permitting
        return None

    def _kiss(self, src, key, code, now_ms, wall_us):
        src.kods += 1
        self.kods += 1
        peer = self._peer(key)
        fields = {}
        if code == "RATE":
            gap = min(
                max(_RATE_MIN_MS, 2 * self.interval_s * 1000, 2 * peer.rate_gap_ms), RATE_MAX_MS
            )
            if peer.rate_until_ms > now_ms:  # a further RATE: never shorter than the last
                peer.rate_gap_ms = max(gap, peer.rate_gap_ms)
            else:  # the first: the gap this address saw, doubled (not compounded after)
                peer.rate_gap_ms = max(gap, 2 * min(peer.gap_ms, _POLL_TOP_S * 1000))
            peer.rate_until_ms = now_ms + peer.rate_gap_ms + RATE_HOLD_MS
            self.dirty = True  # kept across reboots (R1)
            fields["gap_ms"] = peer.rate_gap_ms
        elif code == "DENY" or code == "RSTR":
            peer.denied_until_ms = now_ms + DENY_HOLD_S * 1000
            self.denied_wall[key_text(key)] = wall_us // 1_000_000 + DENY_HOLD_S
            self.dirty = True
            src.want_resolve = True
            fields["hold_s"] = DENY_HOLD_S
        else:  # unknown or X...: no protocol meaning, a failed exchange (with backoff)
            src.addr_fails += 1
        self.emit("kod", server=src.label, address=key_text(key), code=code, **fields)

    def _decide(self, now_ms, wall_us, expect_us):
        """R5: a Correction when the samples of this round justify one."""
        samples = [s for s in self.samples if now_ms - s.t_ms <= _SAMPLE_MAX_AGE_MS]
        self.samples = samples
        self.due_ms = now_ms  # unless settled below: the next source, floors permitting
        if not samples:
            return None
        latest = samples[-1]
        valid = wall_us >= self.floor_us
        # an offset within the clock's own error bound is no surprise: one server will do;
        # one outside it needs a majority (so a liar moves the clock only within the bound)
        agree_us = _AGREE_ABOVE_US
        if expect_us is not None:
            agree_us = expect_us + latest.delay_us // 2
        if len(self.sources) == 1 or (valid and abs(latest.offset_us) <= agree_us):
            chosen = [latest]
        else:
            chosen = _majority(samples)
            if self._pick(now_ms, dry=True) != (None, None):
                # a large step waits until every source has been asked; an invalid clock
                # stops as soon as two or more replies all agree (a cold start asks two)
                if valid or chosen is None or len(chosen) < len(samples):
                    return None
            elif chosen is None:
                if len(samples) >= 2:
                    self._disagree(samples)
                return self._round_failed(now_ms, wall_us)
        pick = chosen[0]
        for s in chosen:
            if s.delay_us < pick.delay_us:
                pick = s  # the smallest round trip is the best measurement
        offset = pick.offset_us
        outliers = [s for s in samples if not _near(s, pick)]
        if outliers:  # falsetickers: reported, never followed
            self._disagree(outliers, chosen_us=offset)
        if wall_us + offset < self.floor_us:
            self.emit("reject", server=pick.src.label, reason="before-build-date")
            self.samples = [s for s in samples if s not in chosen]
            return None
        # success: the interval grows toward its maximum (R3 jitter on top)
        if self.last_sync_unix_s is not None:
            self.interval_s = min(self.max_interval_s(), self.interval_s * 2)
        self.fails = 0
        self.tried = None
        for k in self.denied_wall:  # holds are wall deadlines: they move with the clock
            self.denied_wall[k] += offset // 1_000_000
        for item in self.sent:
            item[1] += offset // 1000
        self.last_sync_unix_s = (wall_us + offset) // 1_000_000
        self.last_offset_us = offset
        self.dirty = True
        servers = [s.src.label for s in chosen]
        self.emit("step", offset_us=offset, servers=servers)
        if self.sources is not self.normal_sources:  # the factory server's job is done
            self.sources = self.normal_sources
            self.rr = 0
            self.emit("config", note="first sync done: factory server no longer used")
        self._schedule(now_ms, self.interval_s * 1000, wall_us + offset, "poll")
        return Correction(offset, servers, pick.delay_us, pick.root_us)

    def _disagree(self, samples, **fields):
        self.emit(
            "disagree",
            offsets_us=[s.offset_us for s in samples],
            servers=[s.src.label for s in samples],
            **fields,
        )

    def max_interval_s(self):
        """The interval's ceiling: poll_max_s, or what the clock discipline allows (up to
        _POLL_TOP_S when the drift is well known) unless poll_max_s was configured."""
        c = self.config
        if self.cap_s is None:
            return c.poll_max_s
        top = c.poll_max_s if c.poll_max_explicit else _POLL_TOP_S
        return max(c.poll_min_s, min(self.cap_s, top))

    def set_interval_cap(self, cap_s, now_ms):
        """The discipline's longest safe interval. Growth toward it comes a sync at a time;
        a cap below the current interval takes effect at once (an earlier poll)."""
        self.cap_s = cap_s
        top = self.max_interval_s()
        if self.interval_s > top:
            self.interval_s = top
            if self.tried is None and self.due_ms is not None:
                if self.due_ms - now_ms > top * 1000:
                    self.due_ms = now_ms + self._jitter(top * 1000)

    def hurry(self, now_ms, within_ms, wall_us):
        """The clock's error bound reaches its budget within within_ms: the next round is
        due then if it was later, but never sooner than poll_min_s after the last sync
        (rule 14), and within every floor, cap and hold as ever."""
        d = self.due_ms
        if self.tried is not None or d is None or d - now_ms <= within_ms:
            return
        t = within_ms - self.rand_below(within_ms // _JITTER_DIV + 1)  # R3: a little early
        if self.last_sync_unix_s is not None:
            t = max(t, (self.last_sync_unix_s + self.config.poll_min_s) * 1000 - wall_us // 1000)
        if t < d - now_ms:
            self._due(now_ms, t, wall_us, "bound")

    def _round_failed(self, now_ms, wall_us):
        self.tried = None
        self.failed += 1
        valid = wall_us >= self.floor_us
        self._schedule(now_ms, self._backoff_ms(valid), wall_us, "backoff", fails=self.fails)
        return None

    def _backoff_ms(self, clock_valid):
        """R4. A clock that is invalid now (lost in a power cut) wants time soon, synced
        before or not: only a valid, synced clock takes the long, spread wait."""
        iv = self.interval_s * 1000
        if clock_valid and self.last_sync_unix_s is not None and iv > _BACKOFF_MAX_MS:
            return iv // 4 + self.rand_below(iv - iv // 4)
        d = _BACKOFF_MIN_MS
        for _ in range(min(self.fails - 1, 7)):  # 30 s * 2**7 is past the hour
            d = min(_BACKOFF_MAX_MS, d * 2)
        return d

    def _jitter(self, ms):
        return ms + self.rand_below(ms // _JITTER_DIV + 1)

    def _schedule(self, now_ms, delay_ms, wall_us, why, **fields):
        if why != "start":
            delay_ms = self._jitter(delay_ms)
        self._due(now_ms, delay_ms, wall_us, why, **fields)

    def _due(self, now_ms, delay_ms, wall_us, why, **fields):
        """The next round delay_ms from now (persisted by the wall clock), said as why."""
        self.due_ms = now_ms + delay_ms
        self.next_due_unix_s = (wall_us // 1000 + delay_ms) // 1000
        self.dirty = True
        self.emit(why, wait_ms=delay_ms, interval_s=self.interval_s, **fields)

    # ---- status --------------------------------------------------------------------------
    def status(self, now_ms):
        return {
            "interval_s": self.interval_s,
            "fails": self.fails,
            "kods": self.kods,
            "next_ms": None if self.due_ms is None else max(0, self.due_ms - now_ms),
            "servers": [
                {
                    "server": s.label,
                    "address": key_text(s.addrs[s.idx].key) if s.addrs else None,
                    "sends": s.sends,
                    "replies": s.replies,
                    "kods": s.kods,
                    "pool": s.pool,
                    "dns_failures": s.dns_fails,
                }
                for s in self.sources
            ],
            "last_sync_unix_s": self.last_sync_unix_s,
        }


def _near(a, b):
    """Two replies agree: within the tolerance plus half their two round trips (R5)."""
    return abs(a.offset_us - b.offset_us) <= _AGREE_TOLERANCE_US + (a.delay_us + b.delay_us) // 2


def _majority(samples):
    """The largest group of distinct addresses agreeing with one another within the
    tolerance, if it has at least two members and more than all the other replies."""
    best = []
    for a in samples:
        group = []
        for b in samples:
            if _near(a, b) and b.key not in [c.key for c in group]:
                group.append(b)
        if len(group) > len(best):
            best = group
    distinct = []
    for s in samples:
        if s.key not in distinct:
            distinct.append(s.key)
    return best if len(best) >= 2 and 2 * len(best) > len(distinct) else None
