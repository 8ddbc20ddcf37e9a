# The blocking time service: the policy driven in real time, with a network and a clock.
#
# The loop, one turn of which is _step() (aio.py's run() takes the same turns, awaiting
# instead of blocking); every decision, correction and save is the keeper.Keeper's,
# this file only does I/O and waits:
#   keeper.tick(now): the drift correction and slew since the last wake-up;
#   sleep keeper.wait_ms(now) (at most a minute; a second while slewing), or else
#   action = keeper.poll(now) ->
#     ('resolve', source)         -> net.resolve(); keeper.resolved(...)
#     ('query', source, address)  -> client.exchange_with(); keeper.result(...), which
#                                    applies a correction through the rtc and saves.
# now is loop_ms(): ticks_ms extended by ticks_diff so that it never wraps (ticks_ms wraps
# every 2**30 ms, 12.4 days, on the boards; each call adds the ticks_diff since the last one,
# so it must come at least every 2**29 ms: the loop wakes at least once a minute), taken back
# by _REBASE_MS (with every time the keeper holds) before it reaches 2**30: an idle wake-up
# computes in small ints only, and allocates nothing on a 32-bit port. now_ms() (the public
# count, as in events' t_ms) is that plus what was taken back.
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
from .exchange import unix_us
from .keeper import Keeper
from .net import Net, NetError
from .schema import Config
from .sources import RESOLVE

_STALL_MS = const(1_000)  # the policy had nothing to do at its own wake-up time: a bug, wait
_REBASE_AT_MS = const(1 << 29)  # 6.2 days: then
_REBASE_MS = const(1 << 28)  # every ms is taken back by 3.1 days


class Service:
    """One device's time service. Construct, then run() (forever, or until_ms), or sync()."""

    awaits_lookups = False  # True in aio.py: _step() hands it a RESOLVE action to await

    def __init__(
        self,
        config,
        net=None,
        clock=None,
        rtc=None,
        store=None,
        rand_below=None,
        timeout_ms=client.DEFAULT_TIMEOUT_MS,
        wake=False,
    ):
        if not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config = config  # schema.Config
        self.net = net if net is not None else Net()
        self.clock = clock if clock is not None else client.SystemClock()
        self.rtc = rtc  # adjust(offset_us), or None
        self.store = store  # load()/save(dict), or None
        self.timeout_ms = client.clamp_timeout_ms(timeout_ms)  # per exchange, ms
        rand = rand_below if rand_below is not None else compat.random_below
        self.keeper = Keeper(config, rand, self.wall_us, rtc, store)
        self.policy = self.keeper.policy
        self.ticks = self.clock.ticks_ms()  # ticks_ms at the last loop_ms()
        self.ms = 0  # ms counted since then, never wrapping (loop_ms)
        self.booted = False  # boot() ran: state loaded, first round scheduled
        self.wake = wake  # True: woke from deep sleep; None: reset cause unknown (rtc.woke())

    # ---- clocks and events ---------------------------------------------------------------
    def loop_ms(self):
        """The ms the policy and the keeper count in: small ints, taken back by _REBASE_MS
        now and then (see the top); now_ms() is the same instant in the public count."""
        t = self.clock.ticks_ms()
        d = self.clock.ticks_diff(t, self.ticks)
        self.ticks = t
        if d > 0:  # ticks never run backwards; a negative step would be a ticks bug
            self.ms += d
        if self.ms >= _REBASE_AT_MS:
            self.ms -= _REBASE_MS
            self.keeper.rebase(_REBASE_MS)
        return self.ms

    def now_ms(self):
        """Monotonic ms since this service was made: events' t_ms, and run()'s until_ms."""
        ms = self.loop_ms()  # first: a rebase in it moves base_ms
        return self.policy.base_ms + ms

    def wall_us(self):
        """The clock being disciplined, in Unix us."""
        return unix_us(self.clock.now_us(), self.clock.epoch_s)

    def time_us(self):
        """The disciplined time for the application: us since the port epoch, never running
        backwards under a slew (only a step, after the policy's agreement rules, moves it
        back). The RTC itself is kept right too, so plain time.time() stays right."""
        return self.keeper.time_us(self.clock.now_us())

    def subscribe(self, fn, skip=None):
        """fn(event dict) for every event whose kind is not in skip (an event nobody hears
        is not even built); raising in fn stops the loop (keep it simple)."""
        self.keeper.subscribe(fn, skip)

    def unsubscribe(self, fn):
        self.keeper.unsubscribe(fn)

    def sync_now(self):
        """Ask as soon as the floors and holds allow (a running loop does it). False: there
        is no server to ask."""
        return self.keeper.sync_now(self.loop_ms())

    # ---- start-up --------------------------------------------------------------------------
    def boot(self, startup_delay=True):
        """Load the saved state and schedule the first round (once; later calls do nothing).

        startup_delay=False asks at once instead of after the randomized start-up delay of
        rule 12: for a person waiting at a console, never for a fleet's default.
        """
        if not self.booted:
            self.booted = True
            self.keeper.boot(self.loop_ms(), startup_delay, self.wake)

    def due(self):
        """ms until a request is due (0: now; None: none scheduled), from the saved state
        alone: a board woken from deep sleep brings its network up only when this is 0."""
        self.boot()
        return self.policy.due(self.loop_ms())

    def save(self):
        """Persist the state now: call it before a deep sleep (the drift is applied from
        the last save on at the wake)."""
        self.keeper.sleep(self.loop_ms())

    def health(self):
        """For telemetry: set, since_s, bound_ms, offset_ms, server, requests, kods, failed,
        trusted (docs/health.md). Cheap: an idle board can publish it as often as it likes."""
        return self.keeper.health(self.loop_ms())

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, until_ms=None, stop=None):
        """Serve until now_ms() reaches until_ms (None: forever) or stop() is true.

        Blocks the caller; returns now_ms() at the end. Never raises on network errors.
        """
        self.boot()
        while True:
            w = self._step(until_ms, stop)
            if w is None:
                break
            if isinstance(w, int):
                if w > 0:
                    self.clock.sleep_ms(w)
            else:
                r = client.exchange_with(self.net, self.clock, w.addr, self.timeout_ms)
                self.keeper.result(w.src, w.addr, r, self.loop_ms())
        self.keeper.save()
        return self.now_ms()

    def _step(self, until_ms, stop):
        """One turn of the loop, for run() here and in aio.py, which differ only in how they
        wait: None (stop), ms to sleep (0: turn again), or a query action to carry out."""
        now = self.loop_ms()
        k = self.keeper
        k.tick(now)
        wait_ms = self._wait_ms(now, until_ms, stop)
        if wait_ms is None or wait_ms > 0:
            return wait_ms
        action = k.poll(now)
        if action is None:
            due = self.policy.due_ms
            return _STALL_MS if due is not None and due <= now else 0
        if action.kind == RESOLVE and not self.awaits_lookups:  # blocks (net.resolve)
            src, detail = action.src, None
            try:
                addrs = self.net.resolve(src.host, src.port)
            except NetError as e:
                addrs, detail = None, e.message
            k.resolved(src, addrs, self.loop_ms(), detail)
            return 0
        return action

    def sync(self, until_ms=None):
        """Ask now (policy.sync_now), and run until a correction or until the policy gives up.

        Returns a dict: ok (the policy decided on a correction), clock_set (the rtc applied
        it), offset_us, server (whose measurement was used), servers (that vouched for it),
        servers_tried, error and detail (why not), kiss (the last KoD code), failures
        ({"server", "error"} of every failed step).
        The policy's floors, holds and hourly cap still apply: this asks, it does not force.
        """
        from .summary import begin, end  # loaded by the first sync(): run() needs none of it

        watch = begin(self)
        self.run(until_ms, watch[0])
        return end(self, watch)

    def _wait_ms(self, now, until_ms, stop):
        """ms to wait before the next poll (0 or less: poll now), or None: stop serving."""
        if stop is not None and stop():
            return None
        wait_ms = self.keeper.wait_ms(now)
        if until_ms is not None:  # a count that may pass 2**30: only when asked for
            left = until_ms - self.policy.base_ms - now
            if left <= 0:
                return None
            wait_ms = min(wait_ms, left)
        return wait_ms

    def status(self):
        """The policy's record for status lines (summary.status)."""
        from .summary import status

        return status(self.keeper, self.loop_ms())
