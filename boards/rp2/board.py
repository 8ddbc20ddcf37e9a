# Raspberry Pi Pico W (RP2040) glue: its RTC (whole seconds only) and its Wi-Fi (CYW43).
#
# RP2040's machine.RTC counts whole seconds: the subseconds field reads 0 and is ignored on
# write. BoardRTC interpolates the sub-second part with ticks_us and writes the RTC at the
# instant the corrected time crosses a whole second, so the RTC (and time.time()) is right to
# a few ms. The port's epoch is 1970. The RTC loses its time at power-off (no battery): the
# board starts with an invalid clock, and the service's policy sets it from agreeing servers.
from sntp.rtc import SECOND_RESOLUTION, BoardRTC

NAME = "rp2"


def make_rtc(warn=None):
    """The board's clock for the time service: BoardRTC over machine.RTC, 1 s resolution."""
    import machine

    return BoardRTC(machine.RTC(), SECOND_RESOLUTION, warn=warn)


def make_wlan(settings):
    """The station interface, active. settings: the settings dict (country may be set).

    The CYW43's regulatory domain must be set before the interface is activated.
    """
    import network

    if settings.get("country"):
        network.country(settings["country"])
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan
