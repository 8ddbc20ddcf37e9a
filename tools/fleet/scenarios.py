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
from .model import DAY_MS, HOUR_MS, RateLimit, Server

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

    def __init__(self, days=None):
        if days is not None:
            self.days = days

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


ALL = (Steady, RestoreWarm, RestoreCold, Outage, KissOfDeath, DnsOutage, LeavesPool)
SCENARIOS = {s.name: s for s in ALL}
