# Board demo: join Wi-Fi, run one SNTP exchange, print the decoded result. Changes no clock.
#
# Shared by boards/esp32 and boards/rp2 (Pico W): both have network.WLAN. The time service
# with scheduling and RTC discipline replaces this in later releases; this file shows the
# firmware package running unchanged on a board. Settings come from board_config.py
# (boards/common/board_config.py: edit it before deploying; never commit a real passphrase).
import time

import network

from sntp import client
from sntp.timestamp import format_us

WIFI_TIMEOUT_MS = 20_000  # a cold Pico W usually joins in 3-8 s


def connect(ssid, key, timeout_ms=WIFI_TIMEOUT_MS):
    """Join the station network; True when connected within timeout_ms."""
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, key)
    deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
    while not wlan.isconnected():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            return False
        time.sleep_ms(100)
    return True


def main():
    import board_config

    if not connect(board_config.WIFI_SSID, board_config.WIFI_KEY):
        print("demo: no Wi-Fi within {} ms".format(WIFI_TIMEOUT_MS))
        return
    r = client.query(board_config.NTP_SERVER)
    if r.ok:
        print(
            "demo: {} offset {} s delay {} s".format(
                r.server[0], format_us(r.offset_us), format_us(r.delay_us)
            )
        )
    else:
        print("demo: {} {} {}".format(r.server[0], r.error, r.kiss or r.detail or ""))
