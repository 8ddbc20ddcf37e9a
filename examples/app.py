# An application whose clock sntp keeps right. On a board that is online (README: Wi-Fi):
# `mpremote mip install github:OWNER/REPO`, then copy this file as main.py. On a computer,
# from the repository after `make setup`, with an NTP server of yours (make example: one here):
#   MICROPYPATH=firmware:.frozen .venv/bin/micropython examples/app.py 127.0.0.1:12300
import asyncio
import sys

from sntp import aio, rtc
from sntp.store import JsonStore
from sntp.timestamp import format_utc

SERVERS = sys.argv[1:]  # given by hand: a person is waiting, so the first sync is at once


async def main():
    clock = rtc.make()  # the board's RTC (esp32, rp2); elsewhere a clock of this process
    config = {"servers": SERVERS} if SERVERS else {"zone": "acme"}  # acme: your vendor zone
    store = JsonStore("sntp_state.json")  # floors, holds, backoff: they outlive a restart
    svc = aio.AsyncService(config, clock=clock, rtc=clock, store=store, wake=rtc.woke())
    asyncio.create_task(clock.run())  # RP2040: writes corrections at the whole second
    if SERVERS:
        print("sync:", (await svc.sync())["error"] or "ok")
    asyncio.create_task(svc.run())  # forever; on a fleet the first request waits (rule 12)
    while True:
        print("time:", format_utc(svc.time_us(), clock.epoch_s))  # the disciplined time
        await asyncio.sleep(10)


asyncio.run(main())
