# ESP32 glue: its RTC (subseconds in microseconds) and its Wi-Fi station interface.
#
# machine.RTC on ESP32 is the system time (gettimeofday/settimeofday, ports/esp32/
# machine_rtc.c): datetime() reads and writes microseconds, so a correction is written
# exactly, at once. The port's epoch is 2000 (BoardRTC reads it from time.gmtime(0)).
from sntp.rtc import US_RESOLUTION, BoardRTC

NAME = "esp32"


def make_rtc(warn=None):
    """The board's clock for the time service: BoardRTC over machine.RTC, us resolution."""
    import machine

    return BoardRTC(machine.RTC(), US_RESOLUTION, warn=warn)


def make_wlan(settings):
    """The station interface, active. settings: the settings dict (country may be set)."""
    import network

    if settings.get("country"):
        network.country(settings["country"])
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan
