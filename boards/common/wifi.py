# Wi-Fi station glue shared by the boards: join with a deadline, rejoin when the link drops.
#
# Both boards have network.WLAN(network.STA_IF) (board.make_wlan() makes and activates it).
# Nothing here blocks the event loop: the join is polled between asyncio.sleep_ms() slices.
# While the link is down the time service simply fails to resolve or to get replies, and its
# policy backs off (docs/design.md: DNS failure, failed round); this module only rejoins,
# with its own backoff, so a board whose access point is gone does not retry every second
# for years.
from sntp.compat import const, ticks_diff, ticks_ms

_CONNECT_MS = const(20_000)  # a cold Pico W usually joins in 3-8 s, an ESP32 in 2-5 s
_POLL_MS = const(250)  # how often a join in progress is looked at
_CHECK_MS = const(30_000)  # how often a joined link is checked
_RETRY_MIN_MS = const(10_000)  # the first rejoin after a failed one; doubles
_RETRY_MAX_MS = const(600_000)  # to at most 10 minutes


class Wifi:
    """One station interface and its credentials. connect() once, then keep() as a task."""

    def __init__(self, wlan, ssid, password, out=print, connect_ms=_CONNECT_MS):
        self.wlan = wlan  # network.WLAN(STA_IF), active
        self.ssid = ssid  # str
        self.password = password  # str ("" for an open network)
        self.out = out  # callable(one line)
        self.connect_ms = connect_ms  # ms a join may take
        self.joins = 0  # successful joins

    async def connect(self):
        """Join, waiting at most connect_ms. True when connected. Never raises on Wi-Fi errors."""
        from sntp.aio import sleep_ms

        w = self.wlan
        if w.isconnected():
            return True
        try:
            w.connect(self.ssid, self.password)
        except OSError as e:
            self.out("wifi: cannot join {!r}: {}".format(self.ssid, e))
            return False
        start = ticks_ms()
        while not w.isconnected():
            if ticks_diff(ticks_ms(), start) >= self.connect_ms:
                self.out(
                    "wifi: {!r} not joined within {} s (status {})".format(
                        self.ssid, self.connect_ms // 1000, w.status()
                    )
                )
                try:
                    w.disconnect()  # stop the driver's own attempts before the next connect()
                except OSError:
                    pass
                return False
            await sleep_ms(_POLL_MS)
        self.joins += 1
        self.out("wifi: joined {!r}, address {}".format(self.ssid, w.ifconfig()[0]))
        return True

    async def keep(self):
        """Forever: check the link every _CHECK_MS; rejoin with backoff when it is down."""
        from sntp.aio import sleep_ms

        retry_ms = _RETRY_MIN_MS
        while True:
            await sleep_ms(_CHECK_MS)
            if self.wlan.isconnected():
                retry_ms = _RETRY_MIN_MS
                continue
            self.out("wifi: link down, rejoining {!r}".format(self.ssid))
            while not await self.connect():
                await sleep_ms(retry_ms)
                retry_ms = min(2 * retry_ms, _RETRY_MAX_MS)
            retry_ms = _RETRY_MIN_MS
