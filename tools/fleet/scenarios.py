# The scenarios: what the world does to a fleet, the same for every client.
#
# The world: four pool servers 10.0.0.1-4 behind the vendor zone's names
# 0.acme.pool.ntp.org ... 3.acme.pool.ntp.org (one address each, as in test_policy.py), and
# the plain name pool.ntp.org, which answers one of the pool's live addresses at random
# per lookup (the pool's DNS rotates). This client uses the vendor zone; ntptime and lwIP
# use pool.ntp.org (their defaults); the cron and retry-every-second devices have server 0's
# address burnt into their firmware (as in the stories). A fifth address, 10.0.0.5, joins
# the pool when server 0 leaves it.
#
# Every scenario starts with a fleet of new devices switched on at random times during the
# first day with invalid clocks (1970), and lets it settle for a week (WARM_DAYS) before the
# event, so the event hits a fleet in its steady state.
import math
import random

from .model import DAY_MS, HOUR_MS, MIN_MS, RateLimit, Server, SleepClock

WARM_DAYS = 7
EVENT_MS = WARM_DAYS * DAY_MS + 12 * HOUR_MS  # day 7, 12:00 (a Monday)
ZONE = ["{}.acme.pool.ntp.org".format(i) for i in range(4)]
SNTP_CONFIG = {"zone": "acme"}  # the defaults: accuracy_ms 100, poll 30 min to 36 h


class Scenario:
    name = "?"
    title = "?"
    sentence = "?"
    days = 10
    loss = 0.005  # each packet, each way
    cut = None  # (off_ms, on_ms, lose_clock): a power cut of the whole fleet
    event = None  # (from_ms, until_ms) of the event, for the figures after it
    shares_warmup = True  # identical to the steady fleet until EVENT_MS (engine forks it)
    sntp_config = SNTP_CONFIG  # this client's configuration (policy.Config.from_dict)
    hour_window = None  # (from_ms, until_ms): the requests in it are counted (a first hour)
    track_sends = False  # keep each device's send times in the window (its worst hour)
    samples = True  # the engine samples the clock error of some devices every 10 min
    restarts = False  # devices restart on their own (life_start, life)
    first_sync_from_start = True  # time to a first sync: of the boots from the start on
    skip = ()  # clients make bench leaves out of this scenario (too slow to simulate)
    dns_for = None  # (name, t_ms, rng, device index) -> answer: DNS that tells devices apart
    sleep_clients = False  # the deep-sleep baselines and the oracle run here (clients.SLEEPERS)
    exact_errors = False  # every sampled error kept: exact quantiles (Stats.keep_exact)

    def __init__(self, days=None):
        if days is not None:
            self.days = days

    @classmethod
    def runs(cls, client):
        """Whether make bench runs client in this scenario: the fleet's clients everywhere
        but where skipped; the deep-sleep baselines and the oracles only where asked."""
        from .clients import SLEEPERS

        if client in cls.skip:
            return False
        return cls.sleep_clients or client not in SLEEPERS

    def equip(self, dev, seed):
        """Give a new device what this scenario adds to it (a sleep clock); seed: the run's."""

    @property
    def duration_ms(self):
        return self.days * DAY_MS

    @property
    def window(self):
        """The measurement window of the per-day and clock-error figures: from the event
        (from half-way in a run shortened to a week or less)."""
        if self.duration_ms <= EVENT_MS:
            return (self.duration_ms // 2, self.duration_ms)
        return (EVENT_MS, self.duration_ms)

    def servers(self):
        return [Server("10.0.0.{}".format(i + 1)) for i in range(5)]

    def pool_members(self, t_ms):
        return (0, 1, 2, 3)

    def zone_address(self, i, t_ms):
        return i

    def dns_ok(self, t_ms):
        return True

    def dns_down_until(self, t_ms):
        """The end of the DNS outage t_ms falls in, or None."""
        return None

    def dns(self, name, t_ms, rng):
        if not self.dns_ok(t_ms):
            return None
        if name == "pool.ntp.org":
            members = self.pool_members(t_ms)
            return [members[rng.randrange(len(members))]]
        if name in ZONE:
            return [self.zone_address(ZONE.index(name), t_ms)]
        return None

    def boot(self, rng):
        """(boot ms, clock valid) for a new device: switched on during the first day."""
        return rng.randrange(DAY_MS), False

    def dead(self):
        """(days, addresses): how long servers were dead and how many of the pool's
        addresses at once, for 'requests to a dead server'; None when none was."""
        return None

    def life_start(self, idx, t_ms, rng):
        """The time of device idx's first restart event at or after t_ms, or None."""
        return None

    def life(self, dev, t_ms, world):
        """dev's restart event at t_ms (dev.life_t): power it off and/or boot it, set
        dev.life_t to its next event (or None); returns when the device wants to run next
        (its client's answer, or None)."""
        raise NotImplementedError


class Steady(Scenario):
    name = "steady"
    title = "Steady state, 30 days"
    sentence = (
        "New devices are switched on at random times during the first day and run for 30 "
        "days against four healthy pool servers; figures from day 10 on."
    )
    days = 30

    @property
    def window(self):
        return (min(10 * DAY_MS, self.duration_ms // 3), self.duration_ms)


class RestoreWarm(Scenario):
    name = "restore-warm"
    title = "Mass power-restore, clocks kept"
    sentence = (
        "After a week, the power fails for the whole fleet for an hour and comes back in the "
        "same second; the RTCs kept time (drifting, undisciplined) and the saved state is "
        "there."
    )
    lose_clock = False
    days = 14  # a week after the cut: the weekly cron fires once more
    hour_window = (EVENT_MS + HOUR_MS, EVENT_MS + 2 * HOUR_MS)  # the first hour back

    @property
    def cut(self):
        return (EVENT_MS, EVENT_MS + HOUR_MS, self.lose_clock)

    @property
    def event(self):
        return (EVENT_MS + HOUR_MS, EVENT_MS + 2 * DAY_MS)

    @property
    def window(self):
        return (EVENT_MS + HOUR_MS, self.duration_ms)


class RestoreCold(RestoreWarm):
    name = "restore-cold"
    title = "Mass power-restore, clocks lost"
    sentence = (
        "The same, but no RTC survives the cut (an ESP32 has no battery-backed clock): every "
        "device boots in the same second reading 1970, with its saved state."
    )
    lose_clock = True


class Outage(Scenario):
    name = "outage"
    title = "6-hour outage of every server"
    sentence = (
        "After a week, all of the fleet's servers stop answering for 6 hours (a network or "
        "data-centre failure), then come back."
    )
    OUT_MS = 6 * HOUR_MS

    def servers(self):
        out = super().servers()
        for s in out:
            s.down = [(EVENT_MS, EVENT_MS + self.OUT_MS)]
        return out

    @property
    def event(self):
        return (EVENT_MS + self.OUT_MS, EVENT_MS + self.OUT_MS + DAY_MS)

    def dead(self):
        return (self.OUT_MS / DAY_MS, 4)


class KissOfDeath(Scenario):
    name = "kod"
    title = "Kiss-o'-Death: RATE and DENY"
    sentence = (
        "From the start, server 0 rate-limits every client to one request per 4.5 hours on "
        "average (ntpd `restrict ... limited kod` with `discard average 14`: a leaky bucket "
        "of two) and answers RATE beyond that; server 1 answers DENY to everyone. Six days; "
        "figures from day 1, when every device is on."
    )
    days = 6
    shares_warmup = False  # the limits bite while the clients still poll often
    RATE_LIMIT = RateLimit(head_ms=16_384_000, burst=2, min_gap_ms=2_000, kod=True)

    def servers(self):
        out = super().servers()
        out[0].limit = self.RATE_LIMIT
        out[1].deny_from = 0
        return out

    @property
    def window(self):
        return (DAY_MS, self.duration_ms)


class DnsOutage(Scenario):
    name = "dns-outage"
    title = "12-hour DNS outage"
    sentence = (
        "After a week, every DNS lookup fails for 12 hours (the resolver is down); the NTP "
        "servers stay up."
    )
    OUT_MS = 12 * HOUR_MS

    def dns_ok(self, t_ms):
        return not (EVENT_MS <= t_ms < EVENT_MS + self.OUT_MS)

    def dns_down_until(self, t_ms):
        return None if self.dns_ok(t_ms) else EVENT_MS + self.OUT_MS

    @property
    def event(self):
        return (EVENT_MS, EVENT_MS + self.OUT_MS + DAY_MS)


class LeavesPool(Scenario):
    name = "leaves-pool"
    title = "A server leaves the pool"
    sentence = (
        "After a week, server 0's address stops answering forever; two hours later the "
        "pool's DNS hands out a new server (10.0.0.5) in its place."
    )
    days = 14
    DNS_LAG_MS = 2 * HOUR_MS

    def servers(self):
        out = super().servers()
        out[0].gone_ms = EVENT_MS
        return out

    def pool_members(self, t_ms):
        return (0, 1, 2, 3) if t_ms < EVENT_MS + self.DNS_LAG_MS else (4, 1, 2, 3)

    def zone_address(self, i, t_ms):
        if i == 0 and t_ms >= EVENT_MS + self.DNS_LAG_MS:
            return 4
        return i

    @property
    def event(self):
        return (EVENT_MS, self.duration_ms)

    def dead(self):
        return ((self.duration_ms - EVENT_MS) / DAY_MS, 1)


# ---- restarts: per-device reboots, crash loops and deep sleep ---------------------------------
# These drive each device's power themselves (life): the engine calls life() at the device's
# life_t, and a boot there is a new firmware Keeper on the same store (the state file is
# kept), its monotonic clock starting again (clients.SntpClient.boot).
LIE_US = 3_600_000_000  # the liar's error: 1 h ahead


class RestoreColdLiar(RestoreCold):
    name = "restore-cold-liar"
    title = "Mass power-restore, clocks lost, one liar"
    sentence = (
        "The cold restore again, but one of the four pool servers (10.0.0.4) came back from "
        "the same power cut with its clock 1 h ahead and answers so from then on; the zone's "
        "DNS hands each device the four addresses in its own order (as the pool's DNS does), "
        "so the liar is among the first two servers asked by half of the devices."
    )

    def servers(self):
        out = super().servers()
        out[3].lie = (EVENT_MS + HOUR_MS, LIE_US)
        return out

    def dns_for(self, name, t_ms, rng, idx):
        if name in ZONE:
            return [(ZONE.index(name) + idx) % 4]
        return self.dns(name, t_ms, rng)


class CrashLoop(Scenario):
    name = "crash-loop"
    title = "30-second crash loop, no RTC, 6 hours"
    sentence = (
        "After a week, every device falls into a crash loop (a bug, a brown-out): it resets "
        "30 s after each boot for 6 hours, and has no RTC, so every boot reads 1970 again "
        "(the state file is kept); then it runs normally. Figures from the loop's start, "
        "for a day."
    )
    days = 9
    LOOP_MS = 6 * HOUR_MS
    PERIOD_MS = 30_000  # from a boot to the next crash
    restarts = True
    track_sends = True
    first_sync_from_start = False  # but from the boot that ends the loop

    @property
    def window(self):
        return (EVENT_MS, EVENT_MS + DAY_MS)

    @property
    def event(self):
        return (EVENT_MS, EVENT_MS + self.LOOP_MS + HOUR_MS)

    def life_start(self, idx, t_ms, rng):
        return max(t_ms, EVENT_MS + rng.randrange(self.PERIOD_MS))

    def life(self, dev, t_ms, world):
        """A crash: a reset (not a wake) with the clock lost, booting at once; the first
        boot at or after the loop's end runs on (time to a valid clock counted from it)."""
        nt = reset(dev, t_ms, world, lose_clock=True)
        if t_ms >= EVENT_MS + self.LOOP_MS:
            dev.life_t = None
            world.track_first_sync = True
        else:
            dev.first_sync_pending = False
            dev.life_t = t_ms + self.PERIOD_MS
        return nt


def reset(dev, t_ms, world, lose_clock):
    """A reset (not a wake): off if it was on, counted, booted at once; its next wake-up."""
    if dev.on:
        dev.power_off(t_ms)
    dev.on = True
    world.stats.boots += 1
    return dev.boot(t_ms, lose_clock=lose_clock, wake=False)


class DeepSleep(Scenario):
    name = "deep-sleep"
    title = "Deep-sleep sensor: 5 s awake every 10 min"
    sentence = (
        "Battery sensors (ESP32 deep sleep), switched on at random times during the first "
        "day with invalid clocks and kept awake 90 s for their first sync: then each wakes "
        "every 10 min for 5 s (a reboot that keeps the RTC and the state file), asks the "
        "time service whether a request is due, and brings the radio up only then. The clock "
        "error is sampled at each wake, before any correction. Ten days; figures from day 3."
    )
    days = 10
    shares_warmup = False
    samples = False  # sampled at each wake instead (life)
    restarts = True
    PERIOD_MS = 600_000  # from a wake to the next
    AWAKE_MS = 5_000
    FIRST_AWAKE_MS = 90_000  # the power-on: the start-up window (0-60 s) and an exchange

    @property
    def window(self):
        return (min(3 * DAY_MS, self.duration_ms // 3), self.duration_ms)

    def life_start(self, idx, t_ms, rng):
        return t_ms  # the first power-on too (life keeps count of the cycle)

    def life(self, dev, t_ms, world):
        st = world.stats
        w0, w1 = st.window
        inside = w0 <= t_ms < w1
        if dev.on:  # the awake time is over: deep sleep (everything not saved is lost)
            if dev.radio and inside and dev.sent_n == dev.sent_at_wake:
                st.radio_idle += 1
            dev.before_sleep(t_ms)  # svc.save(), then machine.deepsleep()
            dev.power_off(t_ms)
            dev.on = False
            dev.fall_asleep(t_ms)
            dev.life_t = self.wake_at(dev, t_ms)
            return None
        first = getattr(dev, "cycle_ms", None) is None
        dev.cycle_ms = t_ms
        dev.on = True
        if not first:
            dev.wake_up(t_ms)  # the sleep clock up to now, the crystal from here on
        since = (dev.first_sync_pending, dev.boot_ms)
        nt = dev.boot(t_ms, lose_clock=first, wake=not first)
        if not first:
            dev.first_sync_pending, dev.boot_ms = since  # time to a first sync: from power-on
            st.boots += 1
            if inside:
                st.wakes += 1
                if dev.synced:
                    st.error_sample(t_ms, dev.sample(t_ms), dev.bound_us(t_ms))
        # a power-on (installation) brings the network up and stays awake FIRST_AWAKE_MS for
        # the first sync; a wake asks due() and brings the radio up only when it says 0
        dev.radio = first or dev.due(t_ms) == 0
        dev.sent_at_wake = dev.sent_n
        if dev.radio and inside and not first:
            st.radio_wakes += 1
        dev.life_t = t_ms + (self.FIRST_AWAKE_MS if first else self.awake_ms(dev))
        return nt if dev.radio else None

    def wake_at(self, dev, t_ms):
        """When a device that fell asleep at t_ms wakes: PERIOD_MS after its last wake."""
        return dev.cycle_ms + self.PERIOD_MS

    def awake_ms(self, dev):
        return self.AWAKE_MS


# ---- deep sleep on real sleep clocks ----------------------------------------------------------
# docs/fleet.md (Sleep clocks) gives the sources of every figure below.
XTAL_ROOM_C = 5  # a room 5 C below a 32 kHz crystal's turnover (20 C against 25 C) ...
XTAL_SWING_C = 4  # ... swinging +/-4 C a day
XTAL_PPM_PER_C2 = 0.03  # a tuning-fork crystal's parabola, -0.03 ppm/C^2 about its turnover
# d/dT of -k (T - T0)^2 at 5 C from the turnover, times the +/-4 C swing: +/-1.2 ppm a day
XTAL_SWING_PPB = round(2 * XTAL_PPM_PER_C2 * XTAL_ROOM_C * XTAL_SWING_C * 1000)
XTAL_NOISE_C = 1  # the sensor's temperature off the smooth day by +/-1 C from sleep to sleep
XTAL_NOISE_PPB = round(2 * XTAL_PPM_PER_C2 * XTAL_ROOM_C * XTAL_NOISE_C * 1000)  # +/-0.3 ppm


class SleepClockSensor(DeepSleep):
    """deep-sleep with a variable duty cycle and the deep sleep kept on a clock of its own
    (model.SleepClock: a per-device offset uniform in +/-OFFSET_PPB, a daily sinusoid of
    SWING_PPB with the device's own phase, a noise uniform in +/-NOISE_PPB drawn at each fall
    asleep). Each sleep lasts 5-60 min and each wake 2-30 s (uniform), drawn from the device's
    own random source, so every client meets the same clocks and the same schedule."""

    OFFSET_PPB = SWING_PPB = NOISE_PPB = 0
    SLEEP_MS = (5 * MIN_MS, 60 * MIN_MS)  # each sleep, uniform
    AWAKE_RANGE_MS = (2_000, 30_000)  # each wake, uniform (the power-on stays FIRST_AWAKE_MS)
    sleep_clients = True
    exact_errors = True

    def equip(self, dev, seed):
        rng = random.Random(seed * 1_000_037 + dev.idx * 7_919 + 11)
        offset = rng.uniform(-self.OFFSET_PPB, self.OFFSET_PPB)
        phase = rng.uniform(0, 2 * math.pi)
        dev.sleep_clock = SleepClock(offset, self.SWING_PPB, phase, self.NOISE_PPB, rng)

    def wake_at(self, dev, t_ms):
        lo, hi = self.SLEEP_MS
        return t_ms + dev.sleep_clock.rng.randint(lo, hi)

    def awake_ms(self, dev):
        lo, hi = self.AWAKE_RANGE_MS
        return dev.sleep_clock.rng.randint(lo, hi)


def _sleep_kind(name, clock, offset_ppb, swing_ppb, noise_ppb):
    """A SleepClockSensor scenario for one board kind (the figures: docs/fleet.md), a
    module-level class (a shard can be pickled)."""

    def ppm(ppb):
        return f"{ppb / 1000:,g} ppm"

    sentence = (
        "Battery sensors as in `deep-sleep`, but each sleep lasts 5-60 min and each wake 2-30 s "
        f"(uniform, drawn per device), and time asleep is kept by a {clock}: per device a "
        f"constant offset uniform in +/-{ppm(offset_ppb)}, a smooth daily temperature swing of "
        f"+/-{ppm(swing_ppb)} (a sinusoid, its phase per device) and a noise uniform in "
        f"+/-{ppm(noise_ppb)} drawn at each fall asleep; awake, the crystal as everywhere "
        "else. Ten days; figures from day 3."
    )
    attrs = {
        "name": name,
        "title": f"Deep-sleep sensor, sleeping on a {clock}",
        "sentence": sentence,
        "OFFSET_PPB": offset_ppb,
        "SWING_PPB": swing_ppb,
        "NOISE_PPB": noise_ppb,
        "__module__": __name__,
    }
    cls = type("".join(w.capitalize() for w in name.split("-")), (SleepClockSensor,), attrs)
    globals()[cls.__name__] = cls
    return cls


SLEEP_CLOCKS = (
    _sleep_kind("deep-sleep-xtal", "32 kHz crystal", 20_000, XTAL_SWING_PPB, XTAL_NOISE_PPB),
    _sleep_kind("deep-sleep-rc", "calibrated RC oscillator", 1_000_000, 200_000, 50_000),
    _sleep_kind("deep-sleep-rc-poor", "poor RC oscillator", 5_000_000, 500_000, 300_000),
)


class RateReboot(Scenario):
    name = "rate-reboot"
    title = "RATE from every server, reboots every 20 min (clock kept)"
    sentence = (
        "After a week, every server answers every request with a RATE kiss, for the rest of "
        "the run (2.5 days), and every device resets every 20 min (a watchdog), its RTC "
        "keeping time through the reset. Figures from the first RATE on."
    )
    days = 10
    lose = False
    REBOOT_MS = 20 * MIN_MS
    restarts = True
    first_sync_from_start = False
    # ntptime-loop asks again 5 s after each RATE, for ever (about 17,000 requests a device a
    # day, one event each): left out of make bench; `fleet run` still runs it
    skip = ("ntptime-loop",)

    def servers(self):
        out = super().servers()
        for s in out:
            s.rate_from = EVENT_MS
        return out

    def life_start(self, idx, t_ms, rng):
        return max(t_ms, EVENT_MS + rng.randrange(self.REBOOT_MS))

    def life(self, dev, t_ms, world):
        nt = reset(dev, t_ms, world, lose_clock=self.lose)
        dev.first_sync_pending = False
        dev.life_t = t_ms + self.REBOOT_MS
        return nt


class RateRebootCold(RateReboot):
    name = "rate-reboot-cold"
    title = "RATE from every server, reboots every 20 min (clock lost)"
    sentence = (
        "The same, but no RTC: every reset brings the clock back to 1970 (the state file is "
        "kept), so the holds cannot be dated by the wall clock."
    )
    lose = True


ALL = (Steady, RestoreWarm, RestoreCold, Outage, KissOfDeath, DnsOutage, LeavesPool)
RESTARTS = (RestoreColdLiar, CrashLoop, DeepSleep, RateReboot, RateRebootCold)
SCENARIOS = {s.name: s for s in ALL + RESTARTS + SLEEP_CLOCKS}
