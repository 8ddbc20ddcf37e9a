# The board's program, shared by ESP32 and Pico W: the time service as an asyncio task beside
# a placeholder application. boards/<board>/main.py calls run(board) at boot.
#
#   console    a window at boot (BOOT_WINDOW_MS: a line on the serial enters the provisioning
#              console before anything starts), then on demand: a line typed at any time
#              opens it beside the running service (serialconsole.py, sntp.console)
#   settings   /config.json (settings.py, sntp.schema's keys): Wi-Fi, vendor zone or
#              servers, factory server, accuracy_ms, poll bounds, log_level
#   rtc        board.make_rtc(): sntp.rtc.BoardRTC, the service's clock and rtc
#   wifi       wifi.Wifi: joined once (at most 20 s), then kept up by a task
#   service    sntp.aio.AsyncService(config, clock=rtc, rtc=rtc, store=JsonStore(STATE_PATH),
#              wake=sntp.rtc.woke()): why the board booted (a deep-sleep wake is no boot)
#              run as a task (what sntp.aio.start() does, keeping the service for its
#              time_us()); every event at or above log_level is printed as one
#              "sntp: ..." line
#   rtc.run()  a task that writes corrections into a 1 s RTC at the whole second (RP2040)
#   watchdog   with wdt_s in the configuration: a machine.WDT of wdt_s seconds, fed every
#              WDT_FEED_MS by a task of the same event loop, so the board resets if anything
#              holds the loop for wdt_s (no wait of the service does: docs/reliability.md)
#   app        the placeholder: prints the time every APP_PERIOD_MS; replace it with yours
# A board without Wi-Fi credentials says so and runs the application on its RTC: no service,
# no crash. A board whose servers are missing runs the service, which stays idle and says why.
#
# `board` is a module (board.py, one for ESP32 and Pico W) with NAME, make_rtc(warn)
# and make_wlan(settings); tests pass a fake one.
import asyncio

import serialconsole
import settings as settings_mod
from wifi import Wifi

from sntp import aio, rtc
from sntp.store import JsonStore
from sntp.timestamp import BUILD_UNIX_S, US_PER_S, format_utc, unix_us

STATE_PATH = "/sntp_state.json"  # the service's persisted state (floors, backoff, KoD holds)
APP_PERIOD_MS = 10_000
WDT_FEED_MS = 1_000  # the watchdog is fed every second: wdt_s (2-8 s) leaves a second's slack


# The level of each event kind for the log_level setting (error < warn < info < debug);
# kinds not listed are info.
LEVELS = ("error", "warn", "info", "debug")
EVENT_LEVELS = {
    "store": "error",
    "kod": "warn",
    "disagree": "warn",
    "reject": "warn",
    "timeout": "warn",
    "backoff": "warn",
    "hold": "warn",
    "config": "warn",
    "idle": "warn",
    "send": "debug",
    "reply": "debug",
    "poll": "debug",
    "wait": "debug",
}


def event_level(e):
    kind = e.get("event")
    if kind == "resolve" and not e.get("ok"):
        return "warn"
    if kind == "clock" and not e.get("applied"):
        return "error"
    return EVENT_LEVELS.get(kind, "info")


def hidden(log_level):
    """The event kinds log_level never shows: the service does not even build them."""
    top = LEVELS.index(log_level) if log_level in LEVELS else len(LEVELS) - 1
    return tuple(k for k, v in EVENT_LEVELS.items() if LEVELS.index(v) > top)


def shown(e, log_level):
    """True when event e is at or above log_level (an unknown level shows everything)."""
    top = LEVELS.index(log_level) if log_level in LEVELS else len(LEVELS) - 1
    return LEVELS.index(event_level(e)) <= top


def event_line(e):
    """One event dict -> 'sntp: clock applied=True offset_us=1234' (t_ms left out)."""
    parts = ["sntp:", str(e.get("event"))]
    for k in sorted(e):
        if k not in ("event", "t_ms"):
            parts.append("{}={}".format(k, e[k]))
    return " ".join(parts)


async def placeholder_app(board, out=print, period_ms=APP_PERIOD_MS, count=None):
    """The application: prints the time every period_ms (count times; None: forever).

    Replace it with yours. board.time_us() is the disciplined time (us since the port epoch;
    never backwards under a slew); time.time() reads the RTC, which the service keeps right.
    """
    n = 0
    while count is None or n < count:
        t_us = board.time_us()
        valid = unix_us(t_us, board.rtc.epoch_s) >= BUILD_UNIX_S * US_PER_S
        text = format_utc(t_us, board.rtc.epoch_s)
        out("app: {} ({})".format(text, "synced" if valid else "not set"))
        n += 1
        if count is None or n < count:
            await aio.sleep_ms(period_ms)


async def feed_watchdog(timeout_ms, out=print):
    """machine.WDT(timeout=timeout_ms), fed every WDT_FEED_MS for as long as the event loop
    turns. Once started, a watchdog cannot be stopped (ESP32, RP2040)."""
    import machine

    wdt = machine.WDT(timeout=timeout_ms)
    out("board: watchdog of {} ms, fed every {} ms".format(timeout_ms, WDT_FEED_MS))
    while True:
        wdt.feed()
        await aio.sleep_ms(WDT_FEED_MS)


class Board:
    """What main() started, for the application and for tests."""

    def __init__(self, settings, rtc):
        self.settings = settings  # the settings dict (None: no sntp.config on this firmware)
        self.rtc = rtc  # sntp.rtc.BoardRTC
        self.wifi = None  # wifi.Wifi, or None without credentials
        self.service = None  # sntp.aio.AsyncService, or None without Wi-Fi credentials
        self.tasks = []  # every task started (cancelled when the application returns)

    def time_us(self):
        """The time for the application, us since the port epoch: the service's disciplined
        time_us() when it runs, else the RTC's reading."""
        if self.service is not None:
            return self.service.time_us()
        return self.rtc.now_us()


async def main(
    board,
    config_path=settings_mod.CONFIG_PATH,
    state_path=STATE_PATH,
    app=None,
    out=print,
    console=None,
    window_ms=serialconsole.BOOT_WINDOW_MS,
    reboot=serialconsole.reset,
):
    """Start everything, then run the application (app(board, out) coroutine, board: the
    Board below; None: the placeholder).

    console: a serialconsole.LineReader (the board's stdin) for the provisioning console, a
    window_ms window at boot and then on demand; None: no console (tests of the rest).
    Returns the Board when the application returns (never, for the placeholder), after
    cancelling the tasks it started.
    """
    gate = serialconsole.Gate(out)
    if console is not None:
        await serialconsole.boot_window(config_path, console, out, window_ms, reboot)
        out = gate.out  # from here on, held back while the console is open
    b = Board(settings_mod.load(config_path, out), board.make_rtc(out))
    b.rtc.calibrate()  # 1 s RTC: anchor the sub-second interpolation (blocks up to 1 s)
    b.tasks.append(asyncio.create_task(b.rtc.run()))
    s = b.settings
    if s is not None and s["wdt_s"]:  # after the boot window and the calibration
        b.tasks.append(asyncio.create_task(feed_watchdog(s["wdt_s"] * 1000, out)))
    if s is None:
        pass  # settings.load() said which extra this firmware lacks: the application runs
    elif not s["wifi_ssid"]:
        out(
            "board: no Wi-Fi credentials (wifi_ssid in {}): no time service, the application"
            " runs on the RTC".format(config_path)
        )
    else:
        if not settings_mod.has_servers(s):
            out(
                "board: no NTP servers (zone or servers in {}): the service stays idle".format(
                    config_path
                )
            )
        b.wifi = Wifi(board.make_wlan(s), s["wifi_ssid"], s["wifi_pass"], out)
        await b.wifi.connect()  # at most 20 s; the service starts either way
        b.tasks.append(asyncio.create_task(b.wifi.keep()))
        store = JsonStore(state_path, lambda text: out("sntp: " + text))
        b.service = aio.AsyncService(s, clock=b.rtc, rtc=b.rtc, store=store, wake=rtc.woke())
        level = s["log_level"]
        b.service.subscribe(lambda e: shown(e, level) and out(event_line(e)), hidden(level))
        b.tasks.append(asyncio.create_task(b.service.run()))
    if console is not None:
        b.tasks.append(
            asyncio.create_task(
                serialconsole.on_demand(config_path, b.service, console, gate, reboot)
            )
        )
    try:
        await (app or placeholder_app)(b, out)
    finally:
        for t in b.tasks:
            t.cancel()
    return b


def run(board):
    """The board's entry point (main.py): asyncio.run(main(board)), with the provisioning
    console on the serial (stdin)."""
    asyncio.run(main(board, console=serialconsole.LineReader()))
