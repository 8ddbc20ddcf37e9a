# The board's RTC and Wi-Fi, one module for ESP32 and Raspberry Pi Pico W (RP2040).
#
# The two differ only in their RTC's resolution, which sntp.rtc.make() picks by sys.platform:
#   esp32  machine.RTC is the system time (gettimeofday/settimeofday, ports/esp32/
#          machine_rtc.c): datetime() reads and writes microseconds, so a correction is
#          written exactly, at once. The port's epoch is 2000.
#   rp2    RP2040's machine.RTC counts whole seconds: the subseconds field reads 0 and is
#          ignored on write. BoardRTC interpolates the sub-second part with ticks_us and writes
#          the RTC at the instant the corrected time crosses a whole second, so the RTC (and
#          time.time()) is right to a few ms. The port's epoch is 1970. The RTC loses its time
#          at power-off (no battery): the board starts with an invalid clock, and the
#          service's policy sets it from agreeing servers.
# Any other port with a machine.RTC (and the host tests and probes, which fake one) gets its
# whole seconds: every RTC has those, and BoardRTC works with them as on RP2040.
# (BoardRTC reads the port's epoch from time.gmtime(0).)
import sys

from sntp import rtc

NAME = sys.platform  # the port: "esp32" or "rp2"


def make_rtc(warn=None):
    """The board's clock for the time service: BoardRTC over machine.RTC (sntp.rtc.make():
    us resolution on esp32, 1 s on rp2; 1 s on any other port)."""
    clock = rtc.make(warn)
    if isinstance(clock, rtc.BoardRTC):
        return clock
    import machine

    return rtc.BoardRTC(machine.RTC(), rtc.SECOND_RESOLUTION, warn=warn)


def make_wlan(settings):
    """The station interface, active. settings: the settings dict (country may be set).

    The regulatory domain is set before the interface is activated (the CYW43 needs that).
    """
    import network

    if settings.get("country"):
        network.country(settings["country"])
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan
