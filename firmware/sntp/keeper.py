# The Keeper: the one binding of policy, discipline and persisted state that every driver
# goes through (service.Service, aio.AsyncService, tools/simdev.py, tools/fleet). The drivers
# only do I/O and wait; whatever is decided, applied or saved is decided, applied or saved
# here, and what a console or a tool needs of the policy it asks here too (status, sync_now,
# subscribe): nothing outside policy.py sets a Policy field.
from . import state as saved
from .compat import const
from .discipline import Discipline
from .policy import Policy

_MAX_SLEEP_MS = const(60_000)  # a driver wakes at least once a minute
_SLEW_TICK_MS = const(1_000)  # and every second while a slew is in progress


class Keeper:
    """The one binding of policy, discipline and persisted state that every driver uses
    (service.Service, aio.AsyncService, tools/simdev.py, tools/fleet): the drivers only do
    I/O and wait; whatever is decided, applied or saved is decided, applied or saved here.

    wall_us: () -> the clock being set, Unix us. rtc: adjust(offset_us) moves that clock
    (False or an exception: it could not; .error may say why); None: corrections are only
    reported. store: load() -> dict or None, save(dict) -> bool; None: nothing persisted.
    discipline=False: corrections are stepped whole, with no slew and no drift estimate.
    Events (through policy.emit): every policy event, "clock" (applied, offset_us, how,
    detail), "drift" (the discipline's estimate after a correction), "store" (a save failed),
    "config" (a configuration warning, at boot).
    """

    def __init__(self, config, rand_below, wall_us, rtc=None, store=None, discipline=True):
        self.policy = Policy(config, rand_below)
        self.wall_us = wall_us
        self.rtc = rtc
        self.store = store
        self.disc = Discipline(config.accuracy_ms) if rtc is not None and discipline else None
        self.last_us = None  # the disciplined time last handed out (time_us)
        self.woke = False  # booted from a deep sleep

    def boot(self, now_ms, startup_delay=True, wake=False):
        """Load the saved state and schedule the first round (startup_delay=False: ask now).
        wake: True after a deep sleep (the RTC ran on: the drift for the time slept is
        applied, and corrections are stepped, not slewed, as the board sleeps again soon),
        None when the reset cause is unknown (a short boot), False after a power-on/reset."""
        p, d = self.policy, self.disc
        state = self.store.load() if self.store is not None else None
        wall = self.wall_us()
        self.woke = wake is True
        if d is not None:
            # the RTC ran on since the save: a wake; or a reboot with the clock valid then
            # and now (the bound goes on; a clock lost or set meanwhile says nothing)
            st = state.get("discipline") if isinstance(state, dict) else None
            at = st.get("at_us") if isinstance(st, dict) else None
            kept = self.woke or (
                type(at) is int and at >= p.floor_us and wall >= p.floor_us and wake is False
            )
            adj = d.load(st, wall if kept else None, self.woke)
            d.tick(now_ms)
            if adj:
                self._adjust(adj)
            if d.samples or d.sleep:  # a known drift lifts the interval's default ceiling
                p.set_interval_cap(d.interval_cap_s(), now_ms)
        p.start(now_ms, self.wall_us(), state, wake)
        for w in p.config.warnings + ([d.warning] if d is not None and d.warning else []):
            p.emit("config", warning=w)
        if d is not None and self.woke:  # asked when the error bound says, not before
            left = d.left_ms(now_ms)
            if left is not None:
                p.hurry(now_ms, left, self.wall_us())
        if not startup_delay:
            p.sync_now(now_ms)
        self.save()

    def tick(self, now_ms):
        """Apply the drift correction and the slew for the time since the last tick."""
        if self.disc is not None:
            adj = self.disc.tick(now_ms)
            if adj:
                why = self._adjust(adj)
                if why:
                    self.policy.emit("clock", applied=False, offset_us=adj, how="tick", detail=why)

    def wait_ms(self, now_ms):
        """How long a driver may sleep: until the policy's next wake-up, at most a minute
        (the drift correction is applied a minute at a time), a second while slewing."""
        due = self.policy.next_ms()
        top = _MAX_SLEEP_MS
        if self.disc is not None and self.disc.pending_us:
            top = _SLEW_TICK_MS
        return top if due is None else min(top, due - now_ms)

    def poll(self, now_ms):
        """The policy's next action: None, or a sources.Action (RESOLVE or QUERY)."""
        wall = self.wall_us()  # a big int on a 32-bit port: read once, for the save too
        action = self.policy.poll(now_ms, wall)
        self.save(wall)
        return action

    def resolved(self, src, addrs, now_ms, detail=None):
        self.policy.resolved(src, addrs, now_ms, detail)
        self.save()

    def result(self, src, addr, r, now_ms):
        """The outcome of a query: the Correction it led to (applied already), or None."""
        d = self.disc
        expect = None  # no discipline: nothing set (or stepped whole); the 1 s rule
        if d is not None:
            expect = d.bound_us(now_ms)
            budget = d.accuracy_ms * 1000
            # no sync since a power-on (the clock ran undisciplined), or a reboot's bound (a
            # loose guess): a lone reply counts within the budget at most
            if expect is None or (d.off_ms is not None and expect > budget):
                expect = budget
        corr = self.policy.result(src, addr, r, now_ms, self.wall_us(), expect)  # before it moves
        if corr is not None:
            self._apply(corr, now_ms)
        self.save()
        return corr

    def _apply(self, corr, now_ms):
        p, d = self.policy, self.disc
        applied, why, kind = False, None, None
        if self.rtc is not None:
            self.tick(now_ms)  # the drift correction up to this instant first
            step, kind = corr.offset_us, "step"
            if d is not None:
                wall = self.wall_us()
                step = d.correction(
                    corr.offset_us, wall, wall >= p.floor_us, corr.delay_us, corr.root_us
                )
                kind = d.last["kind"]
                if self.woke:  # asleep again soon: no time to slew
                    step += d.pending_us
                    d.pending_us = 0
                    kind = "step"
            why = self._adjust(step) if step else None
            applied = why is None
            if applied and step:
                self.last_us = None  # time_us() follows a step back at once
            if d is not None:
                if not applied:
                    d.pending_us = 0
                cap = d.interval_cap_s()
                p.set_interval_cap(cap, now_ms)
                self._budget(cap)
                p.changed()  # the discipline's state is saved with the policy's
                if p.hears("drift"):
                    p.emit(
                        "drift",
                        drift_ppb=d.drift_ppb,
                        measured_ppb=d.last["measured_ppb"],
                        sigma_ppb=d.sigma_ppb(),
                        interval_cap_s=cap,
                        interval_s=p.interval_s,
                    )
        if p.hears("clock"):
            p.emit("clock", applied=applied, offset_us=corr.offset_us, how=kind, detail=why)

    def _budget(self, cap_s):
        """Say once (and again when the figure doubles or halves) when accuracy_ms cannot be
        held at the poll floor, with the accuracy that can: no traffic chases it."""
        d, c = self.disc, self.policy.config
        if cap_s >= c.poll_min_s:
            d.warned_ms = 0
            return
        can_ms = d.can_ms(c.poll_min_s)
        w = d.warned_ms
        if w and w // 2 < can_ms < 2 * w:
            return
        d.warned_ms = can_ms
        self.policy.emit(
            "budget",
            warning="accuracy_ms {} cannot be held polling every {} s at most: about {} ms "
            "can".format(c.accuracy_ms, c.poll_min_s, can_ms),
            accuracy_ms=can_ms,
        )

    def bound_us(self, now_ms):
        """How wrong the clock may be now, us (None: it cannot say: no discipline, or no
        sync since a power-on)."""
        return self.disc.bound_us(now_ms) if self.disc is not None else None

    def health(self, now_ms):
        """A small dict for fleet telemetry (docs/health.md); builds nothing but the dict."""
        p, d = self.policy, self.disc
        b = self.bound_us(now_ms)
        since = None
        if d is not None and d.ref_unix_us is not None:
            since = (d.awake_now(now_ms) + d.slept_ms + (d.off_ms or 0)) // 1000
        sends = 0
        for s in p.sources:
            sends += s.sends
        ok = p.last_sync_unix_s is not None and self.wall_us() >= p.floor_us
        off = p.last_offset_us
        return {
            "set": ok,
            "since_s": since,
            "bound_ms": None if b is None else b // 1000,
            "offset_ms": None if off is None else off // 1000,
            "server": p.asked,
            "requests": sends,
            "kods": p.kods,
            "failed": p.failed,
            "trusted": ok and b is not None and b <= p.config.accuracy_ms * 1000,
        }

    def sleep(self, now_ms):
        """Just before a deep sleep: the drift up to now, then the state saved (the wake
        applies the sleep clock's drift from here)."""
        self.tick(now_ms)
        self.policy.changed()
        self.save()

    def _adjust(self, us):
        """None when the rtc moved the clock by us, else why not (a board RTC refuses with
        False and says why in .error; others raise)."""
        try:
            if self.rtc.adjust(us) is not False:
                return None
            e = getattr(self.rtc, "error", None)
        except (OSError, ValueError) as x:
            e = x
        return "cannot set the clock: {}".format(e)

    def save(self, wall=None):
        """Persist the state if it changed; a failed save is retried at the next change.
        wall: the clock now, when the caller has just read it (the clock did not move)."""
        p = self.policy
        if p.saved():
            if self.store is None:
                return  # nothing to persist: the state is not even built
            wall = self.wall_us() if wall is None else wall
            if getattr(self.store, "unread", False):  # at boot, no memory to read it
                doc = self.store.load()
                if isinstance(doc, dict) and not self.store.unread:
                    p.merge(doc, wall)
            state = saved.write(p, wall)
            if self.disc is not None:
                state["discipline"] = self.disc.state(wall)
            if not self.store.save(state):
                p.emit("store", ok=False, detail=getattr(self.store, "warning", None))

    def rebase(self, d_ms):
        """Every stored monotonic ms moves d_ms back, so that they stay small ints."""
        self.policy.rebase(d_ms)
        if self.disc is not None and self.disc.tick_ms is not None:
            self.disc.tick_ms -= d_ms

    # ---- what a console, a summary or a tool asks of the policy ---------------------------
    def subscribe(self, fn, skip=None):
        """fn(event dict) for every event (the policy's, the keeper's) whose kind is not in
        skip; an event nobody hears is not even built."""
        self.policy.subscribe(fn, skip)

    def unsubscribe(self, fn):
        self.policy.unsubscribe(fn)

    def sync_now(self, now_ms):
        """A person asked: a round now, within every floor and hold. False: no servers."""
        ok = self.policy.sync_now(now_ms)
        self.save()
        return ok

    def time_us(self, t_us):
        """The clock reading t_us made monotonic: a slew or a negative drift correction never
        makes it run backwards; only a step (the policy's agreement rules passed) moves it
        back, and then at once."""
        if self.last_us is not None and t_us < self.last_us:
            return self.last_us
        self.last_us = t_us
        return t_us
