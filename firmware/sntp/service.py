# The blocking time service: the Policy driven in real time, with a network and a clock.
#
# The loop is policy.py's driver contract, as in sim.py but with real I/O:
#   sleep until policy.wakeup_ms() (at most MAX_SLEEP_MS at a time);
#   action = policy.poll(now_ms, wall_us); then
#     ('resolve', source)         -> net.resolve(); policy.resolved(...)
#     ('query', source, address)  -> client.exchange_with(); policy.result(...), which may
#                                    return a Correction: rtc.adjust(offset_us) applies it;
#   save policy.state() through the store whenever policy.dirty.
# now_ms is compat.Monotonic: ticks_ms extended so that it never wraps. wall_us is the clock
# (the device's clock) in Unix us. Every decision is the policy's; this file only does I/O.
#
# What is injected (all optional, for tests and for the boards):
#   net    net.Net()-like: resolve(host, port) -> [Address], udp(family)
#   clock  client.SystemClock()-like: now_us, ticks_us, ticks_ms, ticks_diff, sleep_ms,
#          random_bytes, epoch_s. The exchanges read it, so it must be the clock being set.
#   rtc    has adjust(offset_us): moves the clock by the signed offset (positive: forward,
#          the clock was behind). None: corrections are reported ("clock" event with
#          applied false) but nothing is changed.
#   store  load() -> dict or None; save(dict) -> bool (store.JsonStore). None: no persistence.
#
# Events: every policy event, plus "clock" (a correction: applied, offset_us), "store" (a save
# failed), "config" (a configuration warning). Each is a dict with "event" and "t_ms".
from . import client, compat
from .compat import const
from .discipline import Discipline, MonotonicTime
from .net import Net, NetError
from .policy import Config, Policy
from .timestamp import unix_us

MAX_SLEEP_MS = const(60_000)  # wake at least once a minute (Monotonic needs 6 days; stop())
STALL_MS = const(1_000)  # the policy had nothing to do at its own wake-up time: a bug, wait

# A sync() ends with a correction, or when the policy gives up for now with one of these.
GIVE_UP_EVENTS = ("backoff", "idle", "hold")
# A sync() does not wait for a next request further away than this (the floors of R1).
SYNC_MAX_WAIT_MS = const(20_000)
# While a slew is in progress the loop wakes this often to apply it (500 us a second at most);
# otherwise at MAX_SLEEP_MS, applying the drift correction a minute at a time (20 ppm: 1.2 ms).
SLEW_TICK_MS = const(1_000)


class Service:
    """One device's time service. Construct, then run() (forever, or until_ms), or sync()."""

    def __init__(
        self,
        config,
        net=None,
        clock=None,
        rtc=None,
        store=None,
        rand_below=None,
        timeout_ms=client.DEFAULT_TIMEOUT_MS,
    ):
        if not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config = config  # policy.Config
        self.net = net if net is not None else Net()
        self.clock = clock if clock is not None else client.SystemClock()
        self.rtc = rtc  # adjust(offset_us), or None
        self.store = store  # load()/save(dict), or None
        self.timeout_ms = client.clamp_timeout_ms(timeout_ms)  # per exchange, ms
        rand = rand_below if rand_below is not None else compat.random_below
        self.policy = Policy(config, rand)
        # the clock discipline (step/slew, drift) applies corrections only where there is an rtc
        self.disc = Discipline(config.accuracy_ms) if rtc is not None else None
        self.time = MonotonicTime(self.clock.now_us)  # the disciplined time API (time_us())
        self.mono = compat.Monotonic(self.clock.ticks_ms, self.clock.ticks_diff)
        self.listeners = []  # callables(event dict)
        self.booted = False  # boot() ran: state loaded, first round scheduled
        self.policy.subscribe(self._fan_out)

    # ---- clocks and events ---------------------------------------------------------------
    def now_ms(self):
        """Monotonic ms since this service was made: the policy's time, and run()'s until_ms."""
        return self.mono.now()

    def wall_us(self):
        """The clock being disciplined, in Unix us."""
        return unix_us(self.clock.now_us(), self.clock.epoch_s)

    def time_us(self):
        """The disciplined time for the application: us since the port epoch, never running
        backwards under a slew (only a step, after the policy's agreement rules, moves it
        back). The RTC itself is kept right too, so plain time.time() stays right."""
        return self.time.now_us()

    def subscribe(self, fn):
        """fn(event dict) for every event; raising in fn stops the loop (keep it simple)."""
        self.listeners.append(fn)

    def unsubscribe(self, fn):
        if fn in self.listeners:
            self.listeners.remove(fn)

    def _fan_out(self, event):
        for fn in list(self.listeners):
            fn(event)

    # ---- start-up --------------------------------------------------------------------------
    def boot(self, startup_delay=True):
        """Load the saved state and schedule the first round (once; later calls do nothing).

        startup_delay=False asks at once instead of after the randomized start-up delay of
        rule 12: for a person waiting at a console, never for a fleet's default.
        """
        if self.booted:
            return
        self.booted = True
        state = self.store.load() if self.store is not None else None
        now = self.now_ms()
        if self.disc is not None:
            self.disc.load(state.get("discipline") if isinstance(state, dict) else None)
            self.disc.tick(now)
            if self.disc.samples:
                self.policy.set_interval_cap(self.disc.interval_cap_s(), now)
        self.policy.start(now, self.wall_us(), state)
        for w in self.config.warnings:
            self.policy.emit("config", warning=w)
        if not startup_delay:
            self.policy.sync_now(now)
        self._save()

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, until_ms=None, stop=None):
        """Serve until now_ms() reaches until_ms (None: forever) or stop() is true.

        Blocks the caller; returns now_ms() at the end. Never raises on network errors.
        """
        self.boot()
        while True:
            now = self.now_ms()
            self._tick(now)
            if self._finished(now, until_ms, stop):
                break
            wait_ms = self._wait_ms(now, until_ms)
            if wait_ms > 0:
                self.clock.sleep_ms(wait_ms)
                continue
            action = self._poll(now)
            if action is None:
                if self._stalled(now):
                    self.clock.sleep_ms(STALL_MS)
            elif action[0] == "resolve":
                self._resolve(action[1])
            else:
                r = client.exchange_with(self.net, self.clock, action[2], self.timeout_ms)
                self._result(action[1], action[2], r)
        self._save()
        return self.now_ms()

    def sync(self, until_ms=None):
        """Ask now (policy.sync_now), and run until a correction or until the policy gives up.

        Returns a dict: ok (the policy decided on a correction), clock_set (the rtc applied
        it), offset_us, server (whose measurement was used), servers (that vouched for it),
        servers_tried, error and detail (why not), kiss (the last KoD code), failures.
        The policy's floors, holds and hourly cap still apply: this asks, it does not force.
        """
        watch = self._sync_begin()
        if not watch.done:
            self.run(until_ms, watch.finished)
        return self._sync_end(watch)

    # Shared with aio.AsyncService: everything but the waiting.
    def _sync_begin(self):
        watch = SyncWatch(self)
        self.subscribe(watch)
        self.boot(startup_delay=False)
        now = self.now_ms()
        self.policy.sync_now(now)
        if self.policy.wakeup_ms() is None:  # no servers: nothing to ask
            watch.done = True
            if watch.error is None:
                watch.fail("no-servers", "no servers configured (rule 3: no built-in default)")
        return watch

    def _sync_end(self, watch):
        self.unsubscribe(watch)
        self._save()
        return watch.summary()

    def _finished(self, now, until_ms, stop):
        return (stop is not None and stop()) or (until_ms is not None and now >= until_ms)

    def _tick(self, now):
        """Apply the discipline's drift correction and slew for the time since the last tick."""
        if self.disc is None:
            return
        adj = self.disc.tick(now)
        if adj:
            try:
                ok = self.rtc.adjust(adj) is not False  # board RTCs answer False, not raise
            except (OSError, ValueError):
                ok = False
            if not ok:
                self.policy.emit(
                    "clock",
                    applied=False,
                    offset_us=adj,
                    how="tick",
                    detail=getattr(self.rtc, "error", None),
                )

    def _wait_ms(self, now, until_ms):
        due = self.policy.wakeup_ms()
        top = SLEW_TICK_MS if self.disc is not None and self.disc.pending_us else MAX_SLEEP_MS
        wait_ms = top if due is None else min(top, due - now)
        if until_ms is not None:
            wait_ms = min(wait_ms, until_ms - now)
        return wait_ms

    def _poll(self, now):
        action = self.policy.poll(now, self.wall_us())
        self._save()
        return action

    def _stalled(self, now):
        due = self.policy.wakeup_ms()
        return due is not None and due <= now

    def _resolve(self, src):
        detail = None
        try:
            addrs = self.net.resolve(src.host, src.port)
        except NetError as e:
            addrs, detail = None, e.message
        self.policy.resolved(src, addrs, self.now_ms(), detail)
        self._save()

    def _result(self, src, addr, r):
        # wall_us before any correction: the policy computes the new time from it
        corr = self.policy.result(src, addr, r, self.now_ms(), self.wall_us())
        if corr is not None:
            self._apply(corr)
        self._save()

    def _apply(self, corr):
        applied, detail, kind = False, None, None
        if self.rtc is not None:
            now = self.now_ms()
            self._tick(now)  # bring the drift correction up to this instant first
            wall = self.wall_us()
            valid = wall >= self.policy.floor_us
            step = self.disc.correction(corr.offset_us, wall, valid, corr.delay_us)
            kind = self.disc.last["kind"]
            try:
                applied = not step or self.rtc.adjust(step) is not False
                if not applied:  # a board RTC refuses with False and says why in .error
                    detail = "cannot set the clock: {}".format(getattr(self.rtc, "error", None))
            except (OSError, ValueError) as e:
                detail = "cannot set the clock: {}".format(e)
            if applied and step:
                self.time.stepped()
            if not applied:
                self.disc.pending_us = 0
            self.policy.set_interval_cap(self.disc.interval_cap_s(), now)
            self.policy.dirty = True  # the discipline's state is saved with the policy's
            info = self.disc.last
            self.policy.emit(
                "drift",
                drift_ppb=info["drift_ppb"],
                measured_ppb=info["measured_ppb"],
                sigma_ppb=info["sigma_ppb"],
                interval_cap_s=info["interval_cap_s"],
                interval_s=self.policy.interval_s,
            )
        self.policy.emit(
            "clock", applied=applied, offset_us=corr.offset_us, how=kind, detail=detail
        )

    def _save(self):
        if not self.policy.dirty:
            return
        self.policy.dirty = False  # a failed save is retried at the next change, not at once
        state = self.policy.state()
        if self.disc is not None:
            state["discipline"] = self.disc.state()
        if self.store is not None and not self.store.save(state):
            self.policy.emit("store", ok=False, detail=getattr(self.store, "warning", None))

    def status(self):
        return self.policy.status(self.now_ms())


class SyncWatch:
    """Listens to one sync(): what was asked, what failed, and whether the clock moved."""

    def __init__(self, service):
        self.service = service
        self.done = False  # the sync is over
        self.ok = False  # the policy decided on a correction
        self.clock_set = False  # and the rtc applied it
        self.offset_us = None  # the correction, us
        self.server = None  # whose measurement was used
        self.servers = []  # who vouched for it
        self.tried = []  # labels of the servers asked, in order
        self.replies = []  # (server, offset_us) of every good reply
        self.failures = []  # {"server", "error"} of every failed step
        self.error = None  # the last failure's reason
        self.detail = None  # a sentence about it
        self.kiss = None  # the last KoD code

    def fail(self, error, detail, server=None):
        self.error, self.detail = error, detail
        self.failures.append({"server": server, "error": error})

    def __call__(self, e):
        kind = e["event"]
        server = e.get("server")
        if kind == "send":
            if server not in self.tried:
                self.tried.append(server)
        elif kind == "reply":
            self.replies.append((server, e["offset_us"]))
        elif kind == "step":
            self.servers = e["servers"]
        elif kind == "clock":
            self.done = True
            self.ok = True
            self.clock_set = e["applied"]
            self.offset_us = e["offset_us"]
            self.server = self.servers[0] if self.servers else None
            for s, off in self.replies:
                if off == self.offset_us:
                    self.server = s  # the measurement the policy picked
            if not self.clock_set:
                self.error, self.detail = "not-applied", e["detail"] or "no rtc to set"
        elif kind == "timeout":
            self.fail("timeout", "{}: no reply".format(server), server)
        elif kind == "reject":
            self.fail(e["reason"], "{}: reply rejected ({})".format(server, e["reason"]), server)
        elif kind == "kod":
            self.kiss = e["code"]
            self.fail("kiss", "{}: Kiss-o'-Death {}".format(server, e["code"]), server)
        elif kind == "resolve" and not e["ok"]:
            self.fail("resolve", e.get("detail") or "cannot resolve {}".format(server), server)
        elif kind == "disagree":  # falsetickers, or no majority at all
            for s in e["servers"]:
                self.fail("disagree", "{}: disagrees with the other servers".format(s), s)
        elif kind == "hold":
            self.fail("hourly-cap", "request cap of {} an hour reached".format(e["cap"]))
        elif kind == "idle":
            self.fail("no-servers", e.get("reason") or "no servers configured")
        if kind in GIVE_UP_EVENTS:
            self.done = True

    def finished(self):
        if self.done:
            return True
        svc = self.service
        due = svc.policy.wakeup_ms()
        if due is not None and due - svc.now_ms() > SYNC_MAX_WAIT_MS:
            self.done = True  # the next request is further away than a person should wait
            self.fail(
                "deferred", "next request allowed in {} s".format((due - svc.now_ms()) // 1000)
            )
        return self.done

    def summary(self):
        error, detail = self.error, self.detail
        if self.ok:
            if self.clock_set:
                error, detail = None, None
        elif error is None:
            error = "unavailable"
            detail = "no server could be asked now (Kiss-o'-Death hold or DNS backoff)"
        return {
            "ok": self.ok,
            "error": error,
            "detail": detail,
            "offset_us": self.offset_us,
            "server": self.server,
            "servers": self.servers,
            "clock_set": self.clock_set,
            "servers_tried": self.tried,
            "kiss": self.kiss,
            "failures": self.failures,
        }
