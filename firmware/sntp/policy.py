# The good-citizen policy, the scheduler: when to ask, backoff, the rounds and their outcome.
# Whom to ask is sources.py; which replies to believe, vote.py; what survives a restart and
# how long a boot waits, state.py; the settings, schema.py.
#
# The Policy is a state machine without I/O: it never reads a clock, a socket or a file.
# keeper.Keeper drives it for every driver (service.py, aio.py, the simulators in tools/): at
# due_ms, poll(now_ms, wall_us) answers None or an Action (RESOLVE its source, or QUERY it at
# its address); the driver does it and reports back with resolved() or result(), which
# returns a Correction when the clock should move. now_ms is a monotonic ms count (rebase()
# keeps it a small int); wall_us is the device's clock in Unix us, used only to tell whether
# it is valid (rule 10) and to persist deadlines across reboots.
# A round asks the sources in turn, each at most once, until the replies settle it (R5):
# then a Correction, and the next round one poll interval later (doubling per good sync up
# to max_interval_s(), with jitter); a round that cannot settle backs off (R4).
#
# Rules of this file (what holds whatever the events):
#  R1 Never two requests to one address less than MIN_GAP_MS apart (rule 1); a RATE kiss
#     widens that address's gap (rule 5); DENY/RSTR stop it for DENY_HOLD_S; across reboots.
#  R2 Never more than HOURLY_CAP requests in any hour in total, whatever the configuration.
#  R3 Every interval is randomized: a uniform 0-25 % on top (JITTER_DIV), so nothing aligns
#     with the wall clock (rule 15). There is no cron-like schedule anywhere.
#  R4 A failed round backs off: 30 s doubling to 1 h while the clock is invalid or never
#     synced; a valid, synced clock waits a random time within the poll interval (so a
#     fleet comes back from an outage at about the rate it fell due, not in one burst).
#     The count of failed rounds is persisted *before* each round: reboots continue it.
#  R5 The clock moves only on a Correction from here: from one server when the clock is
#     valid and the offset is within the clock's own error bound (the Keeper's expect_us;
#     without a discipline, AGREE_ABOVE_US), else only from a majority of at least two
#     (vote.py); never below the build date (rule 10); never from a KoD.
#  R6 No built-in server: with none configured, no traffic, and an 'idle' event says why.
#  R7 Names are stored, never addresses; DNS has its own backoff (rule 16).
#  R8 Restarts are no traffic: the last hour's sends are saved with the uptime since each, so
#     R1 and R2 hold with the clock in 1970; the k-th short boot in a row waits (state.py);
#     a wake from deep sleep is no boot, and asks only when due. Unreadable: a short boot.
# Everything here is integers (ms, us, s); randomness comes from the rand_below callable.
from . import exchange, sources, state
from .compat import const
from .exchange import BUILD_UNIX_S
from .schema import SCHEMA
from .sources import DENY_HOLD_S, Action, Source, key_text, next_source, peer_by_text, peer_of
from .state import BACKOFF_MAX_MS, HOUR_MS, HOURLY_CAP, JITTER_DIV
from .vote import AGREE_ABOVE_US, Correction, Sample, best, choose, near

_BACKOFF_MIN_MS = const(30_000)  # R4 (lwIP: 15 s to 150 s, too fast)
# The longest poll interval in any case (the schema's top: 36 h; its floors: rule 14).
_POLL_TOP_S = SCHEMA["poll_max_s"][3]
_SAMPLE_MAX_AGE_MS = const(900_000)  # R5: older replies are not compared
_NO_REPLY = (exchange.TIMEOUT,) + exchange.IGNORED  # no reply of ours: a timeout


class Emitter:
    """The events of a policy: listeners, and nothing built for an event nobody hears."""

    def __init__(self):
        self.listeners = []  # [callable(event dict), kinds it skips or None]
        self.base_ms = 0  # what rebase() took off every ms: events count from the start
        self.now_ms = 0  # the last time we were told

    def subscribe(self, fn, skip=None):
        """fn(event dict) for every event but those whose kind is in skip."""
        self.listeners.append([fn, skip])

    def unsubscribe(self, fn):
        self.listeners = [x for x in self.listeners if x[0] != fn]

    def hears(self, kind):
        for _, skip in self.listeners:
            if skip is None or kind not in skip:
                return True
        return False

    def emit(self, kind, **fields):
        fields["event"] = kind
        fields["t_ms"] = self.base_ms + self.now_ms
        for fn, skip in self.listeners:
            if skip is None or kind not in skip:
                fn(fields)


class Policy(Emitter):
    """The scheduler. One instance per device; no module-level state (a fleet can run many)."""

    MS = ("due_ms", "boot_ms", "mark_ms", "quiet_ms")  # its time points (rebase moves them)

    def __init__(self, config, rand_below, build_unix_s=BUILD_UNIX_S):
        Emitter.__init__(self)
        self.config = config  # schema.Config
        self.rand_below = rand_below  # callable n -> uniform int in [0, n)
        self.floor_us = build_unix_s * 1_000_000  # rule 10: valid clocks are after this
        self.normal_sources = [Source(h, p) for h, p in config.servers]
        # the factory server, alone, until the first good sync (then the configured set)
        self.factory_source = Source(*config.factory) if config.factory else None
        self.sources = self.normal_sources
        self.peers = {}  # address key -> Peer
        self.denied_wall = {}  # key text -> Unix s until which it is denied (persisted)
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
        self.dirty = False  # persisted state changed: the keeper saves it (state.write)
        self.kods = 0  # KoDs received, all kinds
        self.failed = 0  # rounds failed since this boot
        self.asked = None  # the label of the server asked last
        self.action = Action()

    def changed(self):
        """Something outside the policy's own state changed (the discipline's): save."""
        self.dirty = True

    def saved(self):
        """The keeper took the state: True when it had changed."""
        d, self.dirty = self.dirty, False
        return d

    def rebase(self, d):
        """Move every stored ms d back (the driver took d off its count) to keep them small
        ints; anything older than d ago is kept as just that old. The time points are the
        MS names of each object's class."""
        self.base_ms += d
        self.now_ms -= d
        _back([self, self.factory_source] + list(self.peers.values()), d)
        _back(self.samples + self.normal_sources, d)
        for x in self.sent:
            x[2] = max(x[2] - d, -d)

    # ---- start-up ------------------------------------------------------------------------
    def start(self, now_ms, wall_us, saved=None, wake=False):
        """Begin at now_ms with the state a store saved (a dict; None: none). wake: True, the
        RTC ran on (deep sleep); None, the reset cause is unknown; False, a power-on."""
        self.now_ms = self.boot_ms = now_ms
        self.mark_ms = now_ms + state.MARK_FIRST_MS
        valid = wall_us >= self.floor_us
        woke = wake is True  # the RTC ran on: its differences hold, valid or not
        short = self._restore(state.read(saved, now_ms, wall_us, self.floor_us, self.config, wake))
        if not woke:
            self.boots += 1
            self.short = min(self.short + 1, state.SHORT_MAX) if short else 0
        self.dirty = True
        if self.factory_source is not None and self.last_sync_unix_s is None:
            self.sources = [self.factory_source]
        if not self.sources:
            self.due_ms = None
            self.emit("idle", reason="no servers configured: no NTP traffic (rule 3)")
            return
        delay, self.quiet_ms = state.boot_delay(self, now_ms, wall_us, valid, woke)
        self._due(now_ms, max(0, delay), wall_us, "start", clock_valid=valid, short=self.short)

    def _restore(self, sv):
        """Take a state.Saved in; True when the boot before was short (or cannot be told)."""
        self.fails, self.boots, self.short, self.rr = sv.fails, sv.boots, sv.shorts, sv.rr
        if not sv.first:
            self.interval_s = sv.interval_s or self.interval_s
            self.last_sync_unix_s = sv.last_sync_unix_s
            self.next_due_unix_s = sv.next_due_unix_s
        _hold(self, sv)
        if sv.warnings:
            self.emit("config", warning="state: " + "; ".join(sv.warnings))
        return sv.short

    def merge(self, st, wall_us):
        """A saved state read only now (at boot there was no memory for it): its failures,
        sends and holds join this boot's, so that R1, R2 and the holds span the restart."""
        sv = state.read(st, self.now_ms, wall_us, self.floor_us, self.config)
        self.fails = max(self.fails, sv.fails)
        _hold(self, sv)
        self.dirty = True
        self.emit("config", note="state: read at last; its sends and holds kept")

    def sync_now(self, now_ms):
        """A person asked: start a round now. The floors (R1, R2), KoD holds and the crash-loop
        guard still apply. False when there is nobody to ask."""
        self.now_ms = now_ms
        if self.sources:
            self.due_ms = max(now_ms, self.quiet_ms or now_ms)
        return bool(self.sources)

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

    # ---- the loop ------------------------------------------------------------------------
    def poll(self, now_ms, wall_us):
        """What to do now: None, or self.action (RESOLVE or QUERY; see sources.Action)."""
        self.now_ms = now_ms
        m = self.mark_ms
        if m is not None and now_ms >= m:  # an uptime checkpoint: save it
            self.dirty = True
            m -= self.boot_ms
            self.mark_ms = None if m >= state.LONG_BOOT_MS else self.boot_ms + 2 * m
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
        i, src, j = next_source(self.sources, self.rr, self.tried, self.peers, now_ms)
        if i is None:
            if src is not None:  # src: the short floor to wait for (R1), before the next
                self.due_ms = now_ms + src
                if self.hears("wait"):
                    self.emit("wait", wait_ms=src, reason="floor")
                return None
            return self._round_failed(now_ms, wall_us)  # result() concludes rounds with replies
        n = len(self.sources)
        a = self.action
        a.src = src
        if j is None or src.needs_lookup(now_ms):
            if j is None:
                if src.addrs:
                    src.want_resolve = True  # the addresses it has are all denied
                # a first lookup: asked next, once resolved (not the next name: a boot
                # would look up every name before its first query); a lookup after
                # failures: the next name is asked first
                self.rr = (self.rr + i + (1 if src.addrs else 0)) % n
            else:
                src.idx = j
                self.rr = (self.rr + i + 1) % n
            # no second lookup until this one is reported
            src.dns_next_ms = now_ms + sources.DNS_RETRY_FIRST_MS
            a.kind = sources.RESOLVE
            return a
        src.idx = j
        self.rr = (self.rr + i + 1) % n
        addr = a.addr = src.addrs[j]
        peer_of(self.peers, addr.key).sent(now_ms)
        sent.append([key_text(addr.key), wall_us // 1000, now_ms])
        if len(sent) > HOURLY_CAP:
            sent.pop(0)
        self.dirty = True  # a restart must know this send (R1, R2)
        self.tried.append(src)
        self.awaiting = True
        src.sends += 1
        self.asked = src.label
        if self.hears("send"):
            self.emit("send", server=src.label, address=sent[-1][0])
        a.kind = sources.QUERY
        return a

    # ---- outcomes ------------------------------------------------------------------------
    def resolved(self, src, addrs, now_ms, detail=None):
        """The driver's lookup of src.host: a list of Address (empty or None: failed)."""
        self.now_ms = now_ms
        if not addrs:
            src.dns_next_ms = now_ms + self.jitter(src.lookup_failed())
            self.emit(
                "resolve",
                server=src.label,
                ok=False,
                detail=detail,
                retry_ms=src.dns_next_ms - now_ms,
            )
            if self.tried is not None:
                self.tried.append(src)
            return
        src.resolved(addrs, now_ms)
        if self.hears("resolve"):
            texts = [key_text(a.key) for a in src.addrs]
            self.emit("resolve", server=src.label, ok=True, addresses=texts)

    def result(self, src, addr, r, now_ms, wall_us, expect_us=None):
        """The outcome of a query action. Returns a Correction to apply, or None.
        expect_us: how wrong the clock may be by its own error bound (None: unknown)."""
        self.now_ms = now_ms
        self.awaiting = False
        key = addr.key
        if r.ok:
            src.replies += 1
            src.addr_fails = 0
            if self.hears("reply"):
                self.emit(
                    "reply",
                    server=src.label,
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
            self.emit(kind, server=src.label, address=key_text(key), reason=r.error)
            src.failed()
        if self.tried is not None and self.samples:
            return self._decide(now_ms, wall_us, expect_us)  # replies may settle the round
        self.due_ms = now_ms  # next source in this round, floors permitting
        return None

    def _kiss(self, src, key, code, now_ms, wall_us):
        src.kods += 1
        self.kods += 1
        peer = peer_of(self.peers, key)
        text = key_text(key)
        if code == "RATE":
            self.dirty = True  # kept across reboots (R1)
            gap = peer.rate(now_ms, self.interval_s)
            return self.emit("kod", server=src.label, address=text, code=code, gap_ms=gap)
        if code == "DENY" or code == "RSTR":
            peer.denied_until_ms = now_ms + DENY_HOLD_S * 1000
            self.denied_wall[text] = wall_us // 1_000_000 + DENY_HOLD_S
            self.dirty = True
            src.want_resolve = True
            return self.emit("kod", server=src.label, address=text, code=code, hold_s=DENY_HOLD_S)
        src.addr_fails += 1  # unknown or X...: no protocol meaning, a failed exchange (backoff)
        self.emit("kod", server=src.label, address=text, code=code)

    def _decide(self, now_ms, wall_us, expect_us):
        """R5 (vote.py): a Correction when the samples of this round justify one."""
        samples = [s for s in self.samples if now_ms - s.t_ms <= _SAMPLE_MAX_AGE_MS]
        self.samples = samples
        self.due_ms = now_ms  # unless settled below: the next source, floors permitting
        if not samples:
            return None
        valid = wall_us >= self.floor_us
        # an offset within the clock's own error bound is no surprise: one server will do;
        # one outside it needs a majority (so a liar moves the clock only within the bound)
        agree_us = AGREE_ABOVE_US
        if expect_us is not None:
            agree_us = expect_us + samples[-1].delay_us // 2
        more = next_source(self.sources, self.rr, self.tried, self.peers, now_ms) != (
            None,
            None,
            None,
        )
        chosen = choose(samples, valid, agree_us, len(self.sources) == 1, more)
        if chosen is None:
            return None  # more replies are needed
        if not chosen:
            if len(samples) >= 2:
                self._disagree(samples)
            return self._round_failed(now_ms, wall_us)
        pick = best(chosen)
        offset = pick.offset_us
        outliers = [s for s in samples if not near(s, pick)]
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
        if self.hears("step"):
            self.emit("step", offset_us=offset, servers=servers)
        if self.sources is not self.normal_sources:  # the factory server's job is done
            self.sources = self.normal_sources
            self.rr = 0
            self.emit("config", note="first sync done: factory server no longer used")
        self._schedule(now_ms, self.interval_s * 1000, wall_us + offset, "poll")
        return Correction(offset, servers, pick.delay_us, pick.root_us)

    def _disagree(self, samples, **chosen):
        servers = [s.src.label for s in samples]
        self.emit("disagree", offsets_us=[s.offset_us for s in samples], servers=servers, **chosen)

    # ---- intervals -----------------------------------------------------------------------
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
                    self.due_ms = now_ms + self.jitter(top * 1000)

    def hurry(self, now_ms, within_ms, wall_us):
        """The clock's error bound reaches its budget within within_ms: the next round is
        due then if it was later, but never sooner than poll_min_s after the last sync
        (rule 14), and within every floor, cap and hold as ever."""
        d = self.due_ms
        if self.tried is not None or d is None or d - now_ms <= within_ms:
            return
        t = within_ms - self.rand_below(within_ms // JITTER_DIV + 1)  # R3: a little early
        if self.last_sync_unix_s is not None:
            t = max(t, (self.last_sync_unix_s + self.config.poll_min_s) * 1000 - wall_us // 1000)
        if t < d - now_ms:
            self._due(now_ms, t, wall_us, "bound")

    def _round_failed(self, now_ms, wall_us):
        self.tried = None
        self.failed += 1
        valid = wall_us >= self.floor_us
        self._schedule(now_ms, self.backoff_ms(valid), wall_us, "backoff", fails=self.fails)
        return None

    def backoff_ms(self, clock_valid):
        """R4. A clock that is invalid now (lost in a power cut) wants time soon, synced
        before or not: only a valid, synced clock takes the long, spread wait."""
        iv = self.interval_s * 1000
        if clock_valid and self.last_sync_unix_s is not None and iv > BACKOFF_MAX_MS:
            return iv // 4 + self.rand_below(iv - iv // 4)
        d = _BACKOFF_MIN_MS
        for _ in range(min(self.fails - 1, 7)):  # 30 s * 2**7 is past the hour
            d = min(BACKOFF_MAX_MS, d * 2)
        return d

    def jitter(self, ms):
        return ms + self.rand_below(ms // JITTER_DIV + 1)

    def _schedule(self, now_ms, delay_ms, wall_us, why, **fields):
        """The next round delay_ms from now, randomized (R3)."""
        self._due(now_ms, self.jitter(delay_ms), wall_us, why, **fields)

    def _due(self, now_ms, delay_ms, wall_us, why, **fields):
        """The next round delay_ms from now (persisted by the wall clock), said as why."""
        self.due_ms = now_ms + delay_ms
        self.next_due_unix_s = (wall_us // 1000 + delay_ms) // 1000
        self.dirty = True
        if self.hears(why):
            self.emit(why, wait_ms=delay_ms, interval_s=self.interval_s, **fields)


def _back(things, d):
    """Every time point of things (each class names its own in MS) d ms back, at most to -d."""
    for o in things:
        for name in o.MS if o else ():
            t = getattr(o, name)
            if t is not None:
                setattr(o, name, max(t - d, -d))


def _hold(p, sv):
    """The sends and holds of saved state sv join policy p's: the later of each."""
    sent = p.sent
    sent[:] = sorted(sent + [x for x in sv.sent if x not in sent], key=lambda x: x[2])
    del sent[: -state.HOURLY_CAP]
    for text, _, sent_ms in sv.sent:
        peer_by_text(p.peers, text).sent_at(sent_ms)
    for text, until_s, until_ms in sv.denied:
        p.denied_wall[text] = max(until_s, p.denied_wall.get(text, 0))
        peer = peer_by_text(p.peers, text)
        peer.denied_until_ms = max(until_ms, peer.denied_until_ms)
    for text, gap, until_ms, sent_ms in sv.rate:
        peer = peer_by_text(p.peers, text)
        peer.rate_gap_ms = max(gap, peer.rate_gap_ms)
        peer.rate_until_ms = max(until_ms, peer.rate_until_ms)
        peer.sent_at(sent_ms)
