# The simulated world of the fleet: crystals, servers, network, DNS, and the counters a server
# operator would read. Nothing here decides when a device sends: that is the clients' job
# (clients.py: the real Policy for this client, small models for the baselines).
#
# Time: every device's monotonic clock (ticks) is true time in ms since the start of the
# run (t = 0 is T0_US, a Monday 00:00 UTC); its wall clock is true time + clock_error_us.
# A crystal error moves the wall clock (Oscillator), not the ticks: on the boards both come
# from crystals, and 20 ppm on an hourly timer is 72 ms, below the counters' 1 s bins.
import math
from array import array

import simdev as sim

from . import ROOT  # noqa: F401  (puts firmware/ on sys.path)

T0_US = 1_800_230_400_000_000  # 2027-01-18 00:00:00 UTC, a Monday (after the build date)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_MS = 60_000


class FastOscillator(sim.Oscillator):
    """sim.Oscillator (the crystal model of the clock discipline: base + daily triangle
    wander + hourly bounded random walk) with lag_us integrated in closed form instead of a
    minute at a time: the triangle's integral is exact, the walk is piecewise constant per
    hour. Same parameters, same random walk (same rand calls); within a few us a day of the
    original (host_tests/test_fleet.py checks it). sim.Oscillator's minute loop would cost
    43,200 steps per device-month, more than everything else in a fleet run."""

    def _tri2(self, p):
        # 2Q x the integral of the triangle from 0 to phase p (ppb*ms); zero over a period
        a = self.wander_ppb
        q = self.period_ms // 4
        if p < q:
            return a * p * p
        if p < 3 * q:
            d = p - q
            return a * q * q + 2 * a * q * d - a * d * d
        d = p - 3 * q
        return a * q * q - 2 * a * q * d + a * d * d

    def lag_us(self, t0_ms, t1_ms):
        if t1_ms <= t0_ms:
            return 0
        total = self.frac + self.base_ppb * (t1_ms - t0_ms)
        if self.wander_ppb:
            p = self.period_ms
            total += (self._tri2(t1_ms % p) - self._tri2(t0_ms % p)) // (p // 2)
        if self.walk_ppb and self.rand is not None:
            hour = t0_ms // HOUR_MS
            if t1_ms <= (hour + 1) * HOUR_MS and self.walk_hour >= hour:
                total += self.walk * (t1_ms - t0_ms)  # within one hour: the common case
            else:
                t = t0_ms
                while t < t1_ms:
                    hour = t // HOUR_MS
                    while self.walk_hour < hour:
                        self.walk_hour += 1
                        self.walk += self.rand(2 * self.walk_ppb + 1) - self.walk_ppb
                        bound = 4 * self.walk_ppb
                        self.walk = max(-bound, min(bound, self.walk))
                    end = min(t1_ms, (hour + 1) * HOUR_MS)
                    total += self.walk * (end - t)
                    t = end
        whole = total // 1_000_000
        self.frac = total - whole * 1_000_000
        return whole


class SleepClock:
    """The clock a device keeps time on while it is in deep sleep (the RTC slow clock: on an
    ESP32 the internal RC oscillator unless a 32 kHz crystal is fitted), separate from the
    awake crystal (FastOscillator). Its rate in ppb (+: the clock runs slow, as
    sim.Oscillator) is the sum of
      offset_ppb  a per-device constant (the RC's error against the rate the chip calibrated
                  awake, or a crystal's tolerance),
      swing_ppb   the amplitude of a smooth daily temperature swing: a sinusoid of period
                  DAY_MS and the device's own phase (rad),
      noise_ppb   the amplitude of the cycle-to-cycle noise: one value drawn uniformly in
                  +/- noise_ppb at each fall asleep (new_sleep) and constant through that
                  sleep (self-heating by the radio, drafts: what nobody can predict).
    rng: the device's own random source (its draws are the same whatever the client).
    Floats: tools only; the integral is in closed form, its remainder kept (frac)."""

    def __init__(self, offset_ppb, swing_ppb, phase, noise_ppb, rng):
        self.offset_ppb = offset_ppb  # ppb
        self.swing_ppb = swing_ppb  # ppb, amplitude of the daily sinusoid
        self.phase = phase  # rad
        self.noise_ppb = noise_ppb  # ppb, amplitude of the per-sleep noise
        self.rng = rng  # random.Random of the device
        self.cycle_ppb = 0.0  # this sleep's noise, ppb
        self.frac = 0.0  # lag not yet whole us, ppb*ms

    def new_sleep(self):
        """The device falls asleep: this sleep's noise is drawn."""
        n = self.noise_ppb
        self.cycle_ppb = self.rng.uniform(-n, n) if n else 0.0

    def rate_ppb(self, t_ms):
        w = 2 * math.pi / DAY_MS
        return self.offset_ppb + self.swing_ppb * math.sin(w * t_ms + self.phase) + self.cycle_ppb

    def known_ppb_ms(self, t0_ms, t1_ms):
        """The integral of offset + swing over [t0, t1] (ppb*ms): what an oracle knows."""
        w = 2 * math.pi / DAY_MS
        c0, c1 = math.cos(w * t0_ms + self.phase), math.cos(w * t1_ms + self.phase)
        swing = self.swing_ppb / w * (c0 - c1)
        return self.offset_ppb * (t1_ms - t0_ms) + swing

    def lag_us(self, t0_ms, t1_ms):
        """How many us the clock falls behind true time from t0 to t1 (negative: gains):
        the integral of rate_ppb, whole us, the rest carried to the next call."""
        if t1_ms <= t0_ms:
            return 0
        total = self.frac + self.known_ppb_ms(t0_ms, t1_ms) + self.cycle_ppb * (t1_ms - t0_ms)
        whole = math.floor(total / 1_000_000)
        self.frac = total - whole * 1_000_000
        return whole


class RateLimit:
    """A server's per-client rate limit with Kiss-o'-Death, after ntpd's `restrict ...
    limited kod` and `discard average A minimum M` (ntpd 4.2.8 ntp_monitor.c, ntp_monitor():
    a leaky bucket per client address). Each packet adds head_ms (2**A s, ntpd default 8 s)
    to the client's bucket, which drains at 1 ms per ms; a packet is limited when it comes
    less than min_gap_ms (2**M s, default 2 s) after the previous one or when the bucket
    would reach burst x head_ms (ntpd's NTP_SHIFT, 8); a limited packet sets the bucket to
    at least that limit plus a head, so a client that keeps sending stays limited. With kod,
    every limited packet is answered with a RATE kiss (ntpd also rate-limits its KoDs; not
    modelled: every one is sent, the worst case for a client that ignores them); without,
    it is dropped silently."""

    def __init__(self, head_ms=8_000, burst=8, min_gap_ms=2_000, kod=True):
        self.head_ms = head_ms
        self.burst = burst
        self.min_gap_ms = min_gap_ms
        self.kod = kod

    @staticmethod
    def per_second(pps, burst=8, min_gap_ms=2_000, kod=True):
        return RateLimit(int(1000 / pps), burst, min_gap_ms, kod)

    def limited(self, mon, sidx, t_ms):
        """mon: the client's {server index: [last_ms, leak_ms]} (kept with the device)."""
        m = mon.get(sidx)
        if m is None:
            mon[sidx] = [t_ms, self.head_ms]
            return False
        interval = t_ms - m[0]
        m[0] = t_ms
        leak = max(0, m[1] - interval)
        limit = self.burst * self.head_ms
        if interval >= self.min_gap_ms and leak + self.head_ms < limit:
            m[1] = leak + self.head_ms
            return False
        m[1] = max(leak + self.head_ms, limit + self.head_ms)
        return True


class Server:
    """One server address. down: [(from_ms, until_ms)] when it answers nothing; gone_ms: it
    stops answering forever (it left the pool); deny_from: from then on every request gets
    a DENY kiss; rate_from: from then on every request gets a RATE kiss; limit: a
    RateLimit, or None; lie: (from_ms, offset_us): from then on its replies are offset_us
    off (a falseticker)."""

    def __init__(self, ip, down=(), gone_ms=None, deny_from=None, limit=None):
        self.ip = ip
        self.key = (ip, 123)
        self.addr = sim.Addr(self.key)  # what the policy is handed
        self.down = list(down)
        self.gone_ms = gone_ms
        self.deny_from = deny_from
        self.rate_from = None
        self.limit = limit
        self.lie = None

    def lie_us(self, t_ms):
        """How far off its replies are at t_ms (0: honest)."""
        if self.lie is None or t_ms < self.lie[0]:
            return 0
        return self.lie[1]

    def dead(self, t_ms):
        if self.gone_ms is not None and t_ms >= self.gone_ms:
            return True
        for a, b in self.down:
            if a <= t_ms < b:
                return True
        return False


OK, RATE, DENY = "ok", "RATE", "DENY"
NO_BOUND = "no bound"  # Device.bound_us of a client that keeps no error bound


class Stats:
    """What one shard counted; merge() adds shards. No event is stored: per-second and
    per-minute arrays of counts, sums, and small log-scale histograms."""

    ERR_BINS = 200  # |clock error| histogram: 20 bins per decade from 1 us to 10**10 us
    ERR_PER_DECADE = 20

    def __init__(self, duration_ms, n_servers, window):
        self.duration_ms = duration_ms
        self.window = window  # (from_ms, until_ms): the measurement window
        n_s = duration_ms // 1000 + 1
        n_m = duration_ms // MIN_MS + 1
        self.per_sec = array("I", bytes(4 * n_s))  # requests arriving at any server
        self.per_min = [array("I", bytes(4 * n_m)) for _ in range(n_servers)]  # per server
        self.dns_per_min = array("I", bytes(4 * n_m))  # lookups
        self.devices = 0
        self.sent = 0  # requests sent (whole run)
        self.sent_window = 0  # requests sent within the window
        self.dns_window = 0  # DNS lookups within the window
        self.dead_arrivals = 0  # requests that reached an address while it was dead
        self.lost = 0  # requests or replies lost by the network
        self.kods = {RATE: 0, DENY: 0}  # KoDs sent by servers
        self.after_rate = 0  # requests to an address in the day after its first RATE
        self.rate_devices = 0  # devices that received a RATE
        self.rate_ratios = []  # per device: next gap to that address / the gap before
        self.after_deny = 0  # requests to an address in the day after its first DENY
        self.after_deny_max = 0  # the most from one device
        self.deny_devices = 0
        self.first_sync_ms = []  # per boot of interest: ms from boot to the first sync, -1
        hours = duration_ms // HOUR_MS + 1
        self.err_hist = [0] * self.ERR_BINS  # sampled |error| in the window, all devices
        self.err_hour = [[0] * self.ERR_BINS for _ in range(hours)]  # per hour of the run
        self.err_max_us = 0  # largest sampled |error| in the window
        self.err_hour_max = [0] * hours
        self.presync_max_us = 0  # largest |error| found by a sync in the window (any device)
        self.err_samples = 0
        self.never_synced = 0  # devices that ended the run without a sync since their boot
        self.bulk = None  # {(kind, server, period s): strided difference array} (stream())
        # the restart scenarios' figures (scenarios.py: hour_window, life)
        self.hour_window = None  # (from_ms, until_ms): requests counted in hour_sent
        self.hour_sent = 0  # requests sent within hour_window (a restore's first hour)
        self.track_sends = False  # each device's sends in the window kept (worst hour)
        self.worst_hours = []  # per device: the most requests it sent in any 3600 s of the window
        self.in_rate_hold = 0  # requests to an address within the RATE hold it set (rule 5)
        self.in_rate_min = 0  # of those, within the first 10 min after the kissed request
        self.boots = 0  # restarts made by the scenario (life events that booted a device)
        self.wakes = 0  # deep-sleep wakes (boots with wake=True) in the window
        self.radio_wakes = 0  # of those, the ones that brought the radio up
        self.radio_idle = 0  # of those, the ones that sent no request
        # the client's own error bound at the sampled instants in the window (Device.bound_us)
        self.bound_samples = 0  # samples of a client that keeps a bound
        self.bound_covered = 0  # of those, the bound >= the true |error|
        self.bound_none = 0  # of those, the client could not say (None: not covered)
        self.bound_hist = [0] * self.ERR_BINS  # the bounds it gave, as err_hist
        self.exact = None  # (array of |error| us, array of bounds us) in the window, when kept

    # ---- recording ---------------------------------------------------------------------
    def arrival(self, sidx, t_ms):
        if 0 <= t_ms < self.duration_ms:
            self.per_sec[t_ms // 1000] += 1
            self.per_min[sidx][t_ms // MIN_MS] += 1

    def stream(self, kind, sidx, first_ms, period_s, count):
        """count events one every period_s seconds from first_ms: kind 'req' (requests
        arriving at server sidx) or 'dns' (lookups). A retry loop at a dead server or a dead
        resolver, fast-forwarded (World.retry_every_second, NtptimeLoop): kept as a strided
        difference array per (kind, server, period), folded in by finalize()."""
        if self.bulk is None:
            self.bulk = {}
        n = len(self.per_sec)
        key = (kind, sidx, period_s)
        d = self.bulk.get(key)
        if d is None:
            d = self.bulk[key] = array("i", bytes(4 * (n + period_s)))
        s0 = first_ms // 1000
        if s0 < n:
            d[s0] += 1
            s1 = s0 + count * period_s
            if s1 < n:
                d[s1] -= 1

    def finalize(self):
        """Fold the fast-forwarded streams into the counters (once, before merging)."""
        if not self.bulk:
            return
        import numpy as np

        n = len(self.per_sec)
        total = np.frombuffer(self.per_sec, dtype=np.uint32).astype(np.int64)
        dns = np.frombuffer(self.dns_per_min, dtype=np.uint32).astype(np.int64)
        for (kind, sidx, period), d in self.bulk.items():
            x = np.frombuffer(d, dtype=np.int32).astype(np.int64)
            rows = len(x) // period
            sec = np.cumsum(x[: rows * period].reshape(rows, period), axis=0).reshape(-1)[:n]
            m = len(self.dns_per_min)
            pad = np.zeros(m * 60, dtype=np.int64)
            k = min(len(sec), m * 60)
            pad[:k] = sec[:k]
            per_min = pad.reshape(m, 60).sum(axis=1)
            if kind == "dns":
                dns += per_min
                continue
            total[: len(sec)] += sec
            mine = np.frombuffer(self.per_min[sidx], dtype=np.uint32).astype(np.int64)
            self.per_min[sidx] = array("I", (mine + per_min).astype(np.uint32).tobytes())
        self.per_sec = array("I", total.astype(np.uint32).tobytes())
        self.dns_per_min = array("I", dns.astype(np.uint32).tobytes())
        self.bulk = None

    def lookup(self, t_ms):
        if 0 <= t_ms < self.duration_ms:
            self.dns_per_min[t_ms // MIN_MS] += 1
        if self.window[0] <= t_ms < self.window[1]:
            self.dns_window += 1

    def error_sample(self, t_ms, err_us, bound_us=NO_BOUND):
        """A sampled |clock error| (and the client's bound at that instant, if it keeps one:
        None, it could not say, counts as not covered)."""
        e = abs(err_us)
        b = self.err_bin(e)
        h = t_ms // HOUR_MS
        if h < len(self.err_hour):
            self.err_hour[h][b] += 1
            if e > self.err_hour_max[h]:
                self.err_hour_max[h] = e
        if self.window[0] <= t_ms < self.window[1]:
            self.err_hist[b] += 1
            self.err_samples += 1
            if e > self.err_max_us:
                self.err_max_us = e
            if self.exact is not None:
                self.exact[0].append(e)
                if bound_us is not NO_BOUND and bound_us is not None:
                    self.exact[1].append(bound_us)
            if bound_us is not NO_BOUND:
                self.bound_samples += 1
                if bound_us is None:
                    self.bound_none += 1
                else:
                    self.bound_hist[self.err_bin(bound_us)] += 1
                    if bound_us >= e:
                        self.bound_covered += 1

    @classmethod
    def err_bin(cls, e_us):
        if e_us < 1:
            return 0
        return min(cls.ERR_BINS - 1, int(math.log10(e_us) * cls.ERR_PER_DECADE) + 1)

    def presync(self, t_ms, err_us):
        if self.window[0] <= t_ms < self.window[1] and abs(err_us) > self.presync_max_us:
            self.presync_max_us = abs(err_us)

    @classmethod
    def bin_upper_us(cls, b):
        return 10 ** (b / cls.ERR_PER_DECADE)

    def keep_exact(self):
        """Keep every sampled |error| and bound of the window too (exact quantiles: the
        deep-sleep scenarios, whose p99 is compared with the oracle's)."""
        self.exact = (array("q"), array("q"))

    @staticmethod
    def exact_quantile(values, q):
        """The q-quantile of values (nearest rank), or None when there are none."""
        if not values:
            return None
        s = sorted(values)
        return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]

    @classmethod
    def quantile_us(cls, hist, q):
        """Upper edge of the bin holding quantile q (within 12 % above the true value)."""
        n = sum(hist)
        if n == 0:
            return None
        k = q * n
        acc = 0
        for b, c in enumerate(hist):
            acc += c
            if acc >= k:
                return cls.bin_upper_us(b)
        return cls.bin_upper_us(len(hist) - 1)

    # ---- merging -------------------------------------------------------------------------
    def carry(self, old, until_ms):
        """Take over old's counters up to until_ms (a scenario forked from a common week)."""
        n_s = min(len(self.per_sec), until_ms // 1000 + 1)
        self.per_sec[:n_s] = old.per_sec[:n_s]
        n_m = min(len(self.dns_per_min), until_ms // MIN_MS + 1)
        for a, b in zip(self.per_min, old.per_min):
            a[:n_m] = b[:n_m]
        self.dns_per_min[:n_m] = old.dns_per_min[:n_m]
        n_h = min(len(self.err_hour), len(old.err_hour))
        self.err_hour[:n_h] = [list(x) for x in old.err_hour[:n_h]]
        self.err_hour_max[:n_h] = old.err_hour_max[:n_h]
        for f in "devices sent lost".split():
            setattr(self, f, getattr(old, f))
        self.first_sync_ms = list(old.first_sync_ms)

    def merge(self, o):
        import numpy as np

        pairs = [(self.per_sec, o.per_sec), (self.dns_per_min, o.dns_per_min)]
        pairs += list(zip(self.per_min, o.per_min))
        for a, b in pairs:
            x = np.frombuffer(a, dtype=np.uint32).copy()
            x += np.frombuffer(b, dtype=np.uint32)
            a[:] = array("I", x.tobytes())
        for f in (
            "devices sent sent_window dns_window dead_arrivals lost after_rate rate_devices "
            "after_deny deny_devices err_samples never_synced hour_sent in_rate_hold "
            "in_rate_min boots wakes radio_wakes radio_idle bound_samples bound_covered "
            "bound_none"
        ).split():
            setattr(self, f, getattr(self, f) + getattr(o, f))
        for k in self.kods:
            self.kods[k] += o.kods[k]
        self.after_deny_max = max(self.after_deny_max, o.after_deny_max)
        self.worst_hours += o.worst_hours
        self.rate_ratios += o.rate_ratios
        self.first_sync_ms += o.first_sync_ms
        self.err_hist = [a + b for a, b in zip(self.err_hist, o.err_hist)]
        self.bound_hist = [a + b for a, b in zip(self.bound_hist, o.bound_hist)]
        if self.exact is not None and o.exact is not None:
            self.exact[0].extend(o.exact[0])
            self.exact[1].extend(o.exact[1])
        self.err_hour = [[a + b for a, b in zip(x, y)] for x, y in zip(self.err_hour, o.err_hour)]
        self.err_hour_max = [max(a, b) for a, b in zip(self.err_hour_max, o.err_hour_max)]
        self.err_max_us = max(self.err_max_us, o.err_max_us)
        self.presync_max_us = max(self.presync_max_us, o.presync_max_us)


class Device:
    """What every simulated device has, whatever its client: a crystal, a wall clock, a
    network path, and the world-side bookkeeping of its requests (KoD follow-up, the
    servers' per-client rate-limit buckets)."""

    def __init__(self, world, idx, osc, clock_error_us, up_us, down_us):
        self.world = world
        self.idx = idx
        self.osc = osc  # FastOscillator
        self.clock_error_us = clock_error_us  # wall clock minus true time, us
        self.t_ms = 0  # the clock error is known up to this time
        self.up_us = up_us  # one-way path delays, us (their difference: asymmetry)
        self.down_us = down_us
        self.mon = {}  # server index -> [last_ms, leak_ms] (the servers' rate limit state)
        self.kod_seen = None  # {sidx: [kind, t_ms, count_after, prev_gap, ratio_done]}
        self.last_to = {}  # server index -> ms of this device's last request to it
        self.gap_to = {}  # server index -> ms between the last two requests to it
        self.boot_ms = 0
        self.synced = False  # the clock has been set since it was last lost
        self.first_sync_pending = False  # a boot whose first sync is still to come
        self.sampled = False  # its clock error is sampled for the error figures
        self.on = False  # powered and booted
        self.lose_at_boot = True  # the next boot starts with the clock lost (1970)
        self.life_t = None  # the time of its next restart event (scenarios.py: life)
        self.sent_n = 0  # requests sent, whole run
        self.sends = None  # send times in the window, when Stats.track_sends
        self.rate_hold = None  # {sidx: [kissed send ms, hold ms]}: the RATE holds it was set
        self.sleep_clock = None  # SleepClock: its RTC in deep sleep (None: the awake crystal)
        self.asleep = False  # in deep sleep now: the wall clock runs on sleep_clock
        self.slept_from = None  # when the current (or last) deep sleep began, ms

    def true_us(self, t_ms):
        return self.world.t0_us + t_ms * 1000

    def wall_us(self, t_ms):
        return self.world.t0_us + t_ms * 1000 + self.clock_error_us

    def lag_us(self, t0_ms, t1_ms):
        """How far the wall clock falls behind from t0 to t1 by the clock it runs on now: the
        sleep clock while in deep sleep (a scenario's life() sets asleep), else the crystal."""
        if self.asleep and self.sleep_clock is not None:
            return self.sleep_clock.lag_us(t0_ms, t1_ms)
        return self.osc.lag_us(t0_ms, t1_ms)

    def drift_to(self, t_ms):
        """The clock alone (powered off, or a client without discipline)."""
        if t_ms > self.t_ms:
            self.clock_error_us -= self.lag_us(self.t_ms, t_ms)
            self.t_ms = t_ms

    def before_sleep(self, t_ms):
        """What the application does just before a deep sleep (SntpClient: Service.save())."""

    def fall_asleep(self, t_ms):
        """Deep sleep from t_ms (after power_off): the wall clock moves by the sleep clock
        from now on, with this sleep's noise."""
        self.drift_to(t_ms)
        if self.sleep_clock is not None:
            self.sleep_clock.new_sleep()
            self.asleep = True
        self.slept_from = t_ms

    def wake_up(self, t_ms):
        """The end of a deep sleep (before boot): the sleep clock up to t_ms, then the
        crystal again."""
        self.drift_to(t_ms)
        self.asleep = False

    def bound_us(self, t_ms):
        """The client's own bound on its clock error now (us; None: it cannot say), or
        NO_BOUND when the client has no such notion (the baselines)."""
        return NO_BOUND

    def synced_now(self, t_ms):
        self.synced = True
        if self.first_sync_pending:
            self.first_sync_pending = False
            if self.world.track_first_sync:
                self.world.stats.first_sync_ms.append(t_ms - self.boot_ms)

    def lose_clock(self, t_ms):
        """No RTC through the power cut: the clock reads the port epoch (1970) again."""
        self.clock_error_us = -self.true_us(t_ms)
        self.synced = False


class World:
    """Servers by index, DNS names, network loss, and the counters of one shard."""

    def __init__(self, scenario, rng, stats, loss=0.0, t0_us=T0_US):
        self.scenario = scenario  # what the servers and DNS do when (scenarios.py)
        self.servers = scenario.servers()  # [Server]
        self.by_key = {s.key: i for i, s in enumerate(self.servers)}
        self.dns = scenario.dns  # (name, t_ms, rng) -> [server index] or None (failure)
        self.rng = rng  # random.Random of the shard
        self.stats = stats
        self.loss = loss  # probability that one packet (either way) is lost
        self.t0_us = t0_us
        self.track_first_sync = True

    def resolve(self, name, t_ms, dev=None):
        """dev: the device asking, for a scenario whose DNS answers each device its own way
        (Scenario.dns_for); None: every device alike."""
        self.stats.lookup(t_ms)
        if dev is not None and self.scenario.dns_for is not None:
            return self.scenario.dns_for(name, t_ms, self.rng, dev.idx)
        return self.dns(name, t_ms, self.rng)

    def dead_until(self, sidx, t_ms):
        """The end of the dead spell of server sidx that t_ms falls in (the end of time for
        one that left), or None when it answers at t_ms."""
        srv = self.servers[sidx]
        if srv.gone_ms is not None and t_ms >= srv.gone_ms:
            return 1 << 62
        for a, b in srv.down:
            if a <= t_ms < b:
                return b
        return None

    def pool_dead_until(self, t_ms):
        """When every address the pool hands out is dead at t_ms: until when (the soonest
        one comes back); else None."""
        ends = [self.dead_until(i, t_ms) for i in self.scenario.pool_members(t_ms)]
        if None in ends:
            return None
        return min(ends)

    def dns_down_until(self, t_ms):
        return self.scenario.dns_down_until(t_ms)

    def _in_window(self, t_ms, period_ms, count):
        """How many of t_ms + i * period_ms (i < count) fall in the measurement window."""
        w0, w1 = self.stats.window
        a = max(0, -(-(w0 - t_ms) // period_ms))
        b = min(count, max(0, -(-(w1 - t_ms) // period_ms)))
        return max(0, b - a)

    def bulk_requests(self, dev, sidx, t_ms, period_ms, until_ms):
        """Requests from dev to dead server sidx at t_ms, t_ms + period, ... before until_ms:
        each a certain timeout (the network's loss and jitter left out), counted at once
        instead of one event each. Returns how many."""
        until_ms = min(until_ms, self.stats.duration_ms + period_ms)
        count = max(1, -(-(until_ms - t_ms) // period_ms))
        st = self.stats
        st.sent += count
        dev.sent_n += count
        st.sent_window += self._in_window(t_ms, period_ms, count)
        st.dead_arrivals += count
        st.stream("req", sidx, t_ms + dev.up_us // 1000, period_ms // 1000, count)
        dev.last_to[sidx] = t_ms + (count - 1) * period_ms
        dev.gap_to[sidx] = period_ms if count > 1 else dev.gap_to.get(sidx, 0)
        return count

    def bulk_lookups(self, t_ms, period_ms, until_ms):
        until_ms = min(until_ms, self.stats.duration_ms + period_ms)
        count = max(1, -(-(until_ms - t_ms) // period_ms))
        st = self.stats
        st.dns_window += self._in_window(t_ms, period_ms, count)
        st.stream("dns", None, t_ms, period_ms // 1000, count)
        return count

    def retry_every_second(self, dev, sidx, t_ms):
        """A client that sends to sidx at t_ms, t_ms + 1 s, ... for as long as it gets no
        reply: while sidx is dead, all those requests are counted in bulk and the time of
        the first request after the dead spell is returned; None when sidx is alive."""
        end = self.dead_until(sidx, t_ms + dev.up_us // 1000)
        if end is None:
            return None
        count = self.bulk_requests(dev, sidx, t_ms, 1_000, end - dev.up_us // 1000)
        return t_ms + count * 1_000

    def jitter_us(self):
        return int(self.rng.expovariate(1 / 2_000))  # queueing: exponential, mean 2 ms

    def send(self, dev, sidx, t_ms):
        """A request from dev to server sidx at t_ms. Returns (outcome, up_us, down_us):
        outcome OK, RATE or DENY for a reply that reaches the device, None for silence
        (dead server, loss, or a limited request without kod)."""
        st = self.stats
        st.sent += 1
        dev.sent_n += 1
        w0, w1 = st.window
        if w0 <= t_ms < w1:
            st.sent_window += 1
            if st.track_sends:
                if dev.sends is None:
                    dev.sends = []
                dev.sends.append(t_ms)
        if st.hour_window is not None and st.hour_window[0] <= t_ms < st.hour_window[1]:
            st.hour_sent += 1
        if dev.rate_hold is not None:
            self._in_rate_hold(dev, sidx, t_ms)
        self._after_kod(dev, sidx, t_ms)
        rng = self.rng
        up = dev.up_us + self.jitter_us()
        down = dev.down_us + self.jitter_us()
        if self.loss and rng.random() < self.loss:
            st.lost += 1
            return None, up, down
        arrive = t_ms + up // 1000
        st.arrival(sidx, arrive)
        srv = self.servers[sidx]
        if srv.dead(arrive):
            st.dead_arrivals += 1
            return None, up, down
        if srv.deny_from is not None and arrive >= srv.deny_from:
            outcome = DENY
        elif srv.rate_from is not None and arrive >= srv.rate_from:
            outcome = RATE
        elif srv.limit is not None and srv.limit.limited(dev.mon, sidx, arrive):
            if not srv.limit.kod:
                return None, up, down
            outcome = RATE
        else:
            outcome = OK
        if outcome is not OK:
            st.kods[outcome] += 1
        if self.loss and rng.random() < self.loss:
            st.lost += 1
            return None, up, down
        if outcome is not OK:
            self._kod_received(dev, sidx, outcome, t_ms, t_ms + (up + down) // 1000)
            if outcome is RATE:
                self._rate_hold(dev, sidx, t_ms)
        return outcome, up, down

    # ---- RATE holds, as the server side sees them (figure 'in RATE hold') -------------------
    RATE_MIN_MS = 600_000  # rule 5: a RATE holds an address at least 10 min
    RATE_TOP_MS = 8_192_000  # doubling by further RATEs stops at 2**13 s (RFC 8633 5.4)
    RATE_GAP_TOP_MS = 131_072_000  # the widest gap that counts (the policy's longest interval)
    RATE_KEEP_MS = DAY_MS  # a RATE within a day after the last hold ended: a further one

    def _rate_hold(self, dev, sidx, t_send_ms):
        """A RATE reached dev for its request of t_send_ms to sidx: the hold that rule 5 sets
        from the kissed request on, by what the server side knows (no device state): at least
        10 min and twice the gap the address saw before the kissed request; a further RATE
        (within a day of the last hold) at least the last hold, doubled up to 2**13 s."""
        if dev.rate_hold is None:
            dev.rate_hold = {}
        prev = dev.rate_hold.get(sidx)
        if prev is not None and t_send_ms < prev[0] + prev[1] + self.RATE_KEEP_MS:
            hold = max(prev[1], min(2 * prev[1], self.RATE_TOP_MS), self.RATE_MIN_MS)
        else:
            gap = min(dev.gap_to.get(sidx, 0), self.RATE_GAP_TOP_MS)
            hold = max(self.RATE_MIN_MS, 2 * gap)
        dev.rate_hold[sidx] = [t_send_ms, hold]

    def _in_rate_hold(self, dev, sidx, t_ms):
        h = dev.rate_hold.get(sidx)
        if h is not None and t_ms < h[0] + h[1]:
            self.stats.in_rate_hold += 1
            if t_ms < h[0] + self.RATE_MIN_MS:
                self.stats.in_rate_min += 1

    # ---- what happens after a KoD (figures 'after RATE' and 'after DENY') ------------------
    def _after_kod(self, dev, sidx, t_ms):
        prev = dev.last_to.get(sidx)
        dev.last_to[sidx] = t_ms
        dev.gap_to[sidx] = 0 if prev is None else t_ms - prev
        seen = dev.kod_seen
        if seen is None:
            return
        k = seen.get(sidx)
        if k is None or t_ms <= k[1] or t_ms - k[1] > DAY_MS:
            return
        k[2] += 1  # a request to an address that sent a KoD less than a day ago
        if k[0] == RATE and not k[4]:
            k[4] = True  # the first request after the RATE: how much longer did it wait?
            if k[3]:
                self.stats.rate_ratios.append((t_ms - k[5]) / k[3])

    def _kod_received(self, dev, sidx, kind, t_send_ms, t_ms):
        if dev.kod_seen is None:
            dev.kod_seen = {}
        if sidx in dev.kod_seen:
            return  # only the first KoD from each address is followed
        # [kind, received, requests after, gap before the kissed request, ratio taken, sent]
        dev.kod_seen[sidx] = [kind, t_ms, 0, dev.gap_to.get(sidx, 0), False, t_send_ms]

    def finish_device(self, dev):
        """Fold a device's KoD follow-up into the counters at the end of the run."""
        st = self.stats
        if dev.kod_seen:
            for k in dev.kod_seen.values():
                kind, count = k[0], k[2]
                if kind == RATE:
                    st.after_rate += count
                    st.rate_devices += 1
                else:
                    st.after_deny += count
                    st.deny_devices += 1
                    st.after_deny_max = max(st.after_deny_max, count)
        if dev.sends:
            st.worst_hours.append(worst_hour(dev.sends))
            dev.sends = None
        elif st.track_sends:
            st.worst_hours.append(0)
        if dev.first_sync_pending and self.track_first_sync:
            st.first_sync_ms.append(-1)
        if not dev.synced:
            st.never_synced += 1


def worst_hour(times):
    """The most of times (ms, ascending) within any 3600 s."""
    best = j = 0
    for i, t in enumerate(times):
        while t - times[j] >= HOUR_MS:
            j += 1
        best = max(best, i - j + 1)
    return best
