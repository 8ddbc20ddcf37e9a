# Restarts (R8 of policy.py): what the policy keeps across them, read back into this boot's
# terms (read(): a Saved, which Policy.start() takes) and written out (write(), when the
# keeper saves), and how long a boot waits before its first request (boot_delay()). The
# discipline's own part rides along under "discipline" (discipline.py).
#
# A small JSON object, version "v": 1:
#   fails, boots, short, rr    ints: failed rounds, boots seen, short boots in a row, rotation
#   up, open                   this boot's uptime ms at the save; a request was in flight
#   interval_s                 the poll interval
#   last_sync_unix_s, next_due_unix_s, saved_ms   wall times (None while the clock is invalid)
#   sent                       [[address, Unix ms, ms since]] of the last hour's sends (R1, R2)
#   denied                     {address: Unix s} DENY/RSTR holds
#   rate                       {address: [gap ms, ms left of it, ms left of the hold]} RATE holds
# Anything unreadable counts against sending: a field out of range is clamped or dropped with
# a warning, the boot counted as short, a hold unreadable as long as a RATE alone can set.
from .compat import const, ints
from .schema import MAX_SOURCES, SCHEMA, int_in
from .sources import DENY_HOLD_S, RATE_GAP_TOP, RATE_HOLD_MS, RATE_MAX_MS, SLEW_SLACK_MS, key_text

HOURLY_CAP = const(12)  # R2: requests in any 3600 s (a round is at most 4): the sends kept
HOUR_MS = const(3_600_000)
JITTER_DIV = const(4)  # R3: a wait is lengthened by a uniform [0, 1/4)
BACKOFF_MAX_MS = const(3_600_000)  # R4: the longest backoff of a clock that wants time
# Start-up (rule 12): an invalid clock (before the build date) wants time soon, but a fleet
# restored from a power cut must spread out: the first request after 0-60 s (RFC 4330: 1-5
# min; lwIP's 0-5 s is too short). A valid clock can wait 0-30 min. A reboot waits at least
# 15 s, so that it cannot bring a second request within MIN_GAP_MS of one sent before it.
_STARTUP_INVALID_MS = const(60_000)
STARTUP_VALID_MS = const(1_800_000)
_REBOOT_MIN_MS = const(15_000)
# Crash-loop guard (R8): a boot is short when the one before it saved less than LONG_BOOT_MS
# of uptime, or died with a request in flight. The k-th short boot in a row sends nothing
# until min(15 s x 2**k, 1 h), jittered, has passed since the last request, counted in uptime
# (a lower bound of real time that needs no valid clock: the time the board was off counts
# as nothing). The uptime is saved at 15 s, 30 s, 60 s ... up to LONG_BOOT_MS of each boot.
LONG_BOOT_MS = const(600_000)
MARK_FIRST_MS = const(15_000)
_CRASH_SHIFT_TOP = const(8)  # 15 s x 2**8 is past the hour
SHORT_MAX = const(64)  # the count of short boots stops there
_VERSION = const(1)


class Saved:
    """A saved state in this boot's terms: ms on the boot's now_ms count."""

    def __init__(self):
        self.first = True  # nothing saved: the first boot
        self.short = True  # the boot before was short (or cannot be told)
        self.fails = 0
        self.boots = 0
        self.shorts = 0  # short boots in a row before this one
        self.rr = 0
        self.interval_s = None
        self.last_sync_unix_s = None
        self.next_due_unix_s = None
        self.sent = []  # [key text, Unix ms, sent at ms], oldest first
        self.denied = []  # (key text, until Unix s, until ms)
        self.rate = []  # (key text, gap ms, until ms, as if last sent at ms)
        self.warnings = []


def _opt_int(v):
    return v if type(v) is int else None


def read(st, now_ms, wall_us, floor_us, config, wake=False):
    """The dict a store loaded (None: none) as a Saved. wake as Policy.start's: True, the
    RTC ran on; None, the reset cause is unknown (a short boot)."""
    s = Saved()
    w = s.warnings
    if wake is None:
        w.append("reset cause unknown, counted as a short boot")
    if st is None:  # the first boot
        s.short = wake is None
        return s
    s.first = False
    if not isinstance(st, dict) or st.get("v") != _VERSION:
        s.boots = 1  # there was a boot before
        s.warnings = ["unreadable, counted as a short boot"]
        return s
    c = config
    s.fails = int_in(st, "fails", 0, 64, 0, w)
    s.boots = int_in(st, "boots", 1, 1 << 30, 1, w)  # a state: booted before
    s.shorts = int_in(st, "short", 0, SHORT_MAX, 1, w)
    s.rr = int_in(st, "rr", 0, MAX_SOURCES - 1, 0, w)  # the rotation goes on
    up = st.get("up")
    short = bool(wake is None or st.get("open") is not False or w)  # died mid-exchange
    if type(up) is not int or up < 0:
        w.append("no uptime saved, counted as a short boot")
        short = True
    elif up < LONG_BOOT_MS:
        short = True
    top = c.poll_max_s if c.poll_max_explicit else SCHEMA["poll_max_s"][3]
    s.interval_s = int_in(st, "interval_s", c.poll_min_s, top, c.poll_min_s, w)
    s.last_sync_unix_s = _opt_int(st.get("last_sync_unix_s"))
    s.next_due_unix_s = _opt_int(st.get("next_due_unix_s"))
    valid = wall_us >= floor_us
    at = st.get("saved_ms")
    # the clock counts the time between the save and now: valid then and now, or it ran on
    # through a deep sleep (a never-set clock too)
    wall_ok = type(at) is int and (wake is True or valid and at * 1000 >= floor_us)
    sent = st.get("sent")
    if not isinstance(sent, list):
        sent = []
    # R1, R2 across restarts: the last hour's sends, each as the uptime since it at the save
    # (the time the board was off counts as nothing: no clock needed), or by the wall clock
    # when it was valid then and is now and says longer
    for item in sent[-HOURLY_CAP:]:
        ok = isinstance(item, list) and 1 < len(item) < 4 and isinstance(item[0], str)
        if not (ok and ints(item[1:])):
            continue
        ago = item[2] if len(item) == 3 and item[2] >= 0 else 0  # older: just sent
        if wall_ok:
            ago = max(ago, wall_us // 1000 - item[1])
        if ago < HOUR_MS:
            # +1: the saved time was truncated to the ms; and the slack: the saved times
            # moved by a whole correction at once, which the discipline may still be slewing
            # in: the floor must not come short
            s.sent.append([item[0], item[1], now_ms - ago + 1 + SLEW_SLACK_MS])
    s.sent.sort(key=lambda x: x[2])
    denied = st.get("denied")
    if isinstance(denied, dict):
        for k, until in denied.items():
            if not isinstance(until, int) or not isinstance(k, str):
                continue
            # with an invalid clock we cannot tell how long is left: keep a full hold
            left_s = until - wall_us // 1_000_000 if valid else DENY_HOLD_S
            if left_s > 0:
                s.denied.append((k, until, now_ms + min(left_s, DENY_HOLD_S) * 1000))
    # RATE holds: ms left at the save; by the wall clock only when it was valid then and is
    # now, else they start again at this boot (longer, never shorter)
    rate = st.get("rate")
    gone = max(0, wall_us // 1000 - at - SLEW_SLACK_MS) if wall_ok else 0
    if not isinstance(rate, dict):
        w.append("rate: none restored")
        rate = {}
    for k, v in rate.items():
        if not isinstance(k, str):
            continue
        ok = isinstance(v, list) and len(v) == 3 and ints(v)
        if ok:
            gap, hold, until = v
            ok = 0 < gap <= RATE_GAP_TOP and 0 <= hold <= gap and 0 < until <= gap + RATE_HOLD_MS
        if not ok:  # unreadable: held as long as a RATE alone can hold it
            w.append("rate: {} unreadable, held".format(k))
            gap = hold = RATE_MAX_MS
            until = gap + RATE_HOLD_MS
        if until - gone > 0:  # asked again once the hold is over
            s.rate.append((k, gap, now_ms + until - gone, now_ms + max(0, hold - gone) - gap))
    s.short = short
    return s


def write(p, wall_us=None):
    """Policy p's state as the dict to save (small, JSON-able). wall_us: the clock now, which
    dates the RATE holds (when it is valid)."""
    now = p.now_ms
    rate = {}
    for k, peer in p.peers.items():
        if peer.rate_until_ms > now:
            last = peer.last_send_ms
            left = 0 if last is None else last + peer.rate_gap_ms - now
            rate[k[1] if k[0] == "text" else key_text(k)] = [
                peer.rate_gap_ms,
                min(max(0, left), peer.rate_gap_ms),
                peer.rate_until_ms - now,
            ]
    return {
        "rate": rate,
        "saved_ms": wall_us // 1000 if wall_us is not None else None,
        "v": _VERSION,
        "fails": p.fails,
        "boots": p.boots,
        "short": p.short,
        "rr": p.rr,
        "up": now - p.boot_ms,  # this boot's uptime: was it short (the guard)
        "open": p.awaiting,  # a request in flight: the boot died in it, if the last
        "interval_s": p.interval_s,
        "last_sync_unix_s": p.last_sync_unix_s,
        "next_due_unix_s": p.next_due_unix_s,
        "denied": p.denied_wall,  # a store writes it out at once (simdev.MemStore: a copy)
        "sent": [[x[0], x[1], now - x[2]] for x in p.sent],
    }


def boot_delay(p, now_ms, wall_us, valid, woke):
    """(ms until a booting policy p's first request, the crash-loop guard's end or None).

    A boot: the start-up spread (rule 12), at least a reboot's floor, the backoff after
    failures, the guard after short boots (R8). A wake: at once. Either way no sooner than
    the saved deadline when the clock can tell it, and no later than a jittered interval (or
    backoff) or the start-up window: a deadline further off means the clock was set back
    since the save (a user setting the RTC), and would postpone the sync that puts it right
    by as much."""
    delay, quiet = 0, None
    if not woke:
        delay = p.rand_below(STARTUP_VALID_MS if valid else _STARTUP_INVALID_MS)
        if p.boots > 1:
            delay = max(delay, _REBOOT_MIN_MS + p.rand_below(_REBOOT_MIN_MS))
        if p.fails > 0:
            delay = max(delay, p.backoff_ms(valid))
        if p.short and p.sent:  # the crash-loop guard, from the last request
            wait = p.jitter(min(MARK_FIRST_MS << min(p.short, _CRASH_SHIFT_TOP), HOUR_MS))
            quiet = p.sent[-1][2] + wait
            delay = max(delay, quiet - now_ms)
    if (valid or woke) and p.next_due_unix_s is not None:
        until_due = p.next_due_unix_s * 1000 - wall_us // 1000
        if until_due < 0 and p.last_sync_unix_s is not None and not woke:
            # fell due while off: a random time within one interval (R4)
            until_due = p.rand_below(p.interval_s * 1000)
        longest = p.interval_s * 1000
        if p.fails > 0:
            longest = max(longest, BACKOFF_MAX_MS)
        longest = max(longest + longest // JITTER_DIV, STARTUP_VALID_MS)
        delay = max(delay, min(until_due, longest, SCHEMA["poll_max_s"][3] * 1000))
    return max(0, delay), quiet
