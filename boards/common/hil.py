# Hardware-in-the-loop smoke check, run on an attached board by `make hil PORT=...`:
# join Wi-Fi, sync against the configured servers (your vendor zone), and print the offset,
# the drift measured over wait_s, the RTC's write error and the poll interval.
#
#   make deploy BOARD=rp2 PORT=/dev/ttyACM0 CONFIG=my-config.json   # once
#   make hil PORT=/dev/ttyACM0                                      # then this
#
# It runs the same code as the board's main.py (app, settings, wifi, board.make_rtc) and the
# real policy, with the same state file, so every floor holds across runs: running it twice
# within a few minutes gives "deferred" or "unavailable", not a second burst of requests.
# Requests: one round of the sync (up to 4, one per server), then one more exchange after
# wait_s to the address that answered. The last line is "HIL: PASS ..." or "HIL: FAIL ...".
import asyncio

import settings as settings_mod
from app import STATE_PATH, event_line
from wifi import Wifi

from sntp import aio
from sntp.store import JsonStore
from sntp.timestamp import format_us

DEFAULT_WAIT_S = 60


def fail(out, why):
    out("HIL: FAIL " + why)
    return False


async def check(
    board,
    wait_s=DEFAULT_WAIT_S,
    out=print,
    config_path=settings_mod.CONFIG_PATH,
    state_path=STATE_PATH,
    net=None,
):
    """The smoke check. True when it passed; prints one 'HIL: ...' verdict line last.

    net (sntp.net.Net()-like) and the paths are for the host tests; the board uses defaults.
    """
    s = settings_mod.load(config_path, out)
    if not s["wifi_ssid"]:
        return fail(out, "no Wi-Fi credentials in {}".format(config_path))
    if not settings_mod.has_servers(s):
        return fail(out, "no zone or servers in {}".format(config_path))
    rtc = board.make_rtc(out)
    rtc.calibrate()
    wifi = Wifi(board.make_wlan(s), s["wifi_ssid"], s["wifi_pass"], out)
    if not await wifi.connect():
        return fail(out, "Wi-Fi did not join")
    svc = aio.AsyncService(
        s,
        net=net,
        clock=rtc,
        rtc=rtc,
        store=JsonStore(state_path, lambda text: out("sntp: " + text)),
    )
    svc.subscribe(lambda e: out(event_line(e)))
    sent = {}  # type: dict[str, str]  # server label -> the address text the sync asked
    svc.subscribe(lambda e: _note_address(e, sent))
    r = await svc.sync()
    if not r["ok"] or not r["clock_set"]:
        return fail(out, "sync: {} ({})".format(r["error"], r["detail"]))
    out("HIL: offset {} s from {}".format(format_us(r["offset_us"]), r["server"]))
    phase = rtc.calibrate()  # 1 s RTC: its real second boundary vs the written one
    if phase is not None:
        out("HIL: RTC second boundary {} us from the written one".format(phase))
    if rtc.last_write_late_us is not None:
        out("HIL: RTC write {} us after the whole second".format(rtc.last_write_late_us))
    addr = None
    if r["server"] in sent:
        addr = _address(svc.net, r["server"], sent[r["server"]])
    disc = svc.keeper.disc  # the clock discipline (firmware/sntp/discipline.py); None: no rtc
    # A small offset is slewed by the service loop, which does not run here: what is still
    # pending is part of the next measurement, not drift.
    pending_us = disc.pending_us if disc is not None else 0
    drift = "not measured"
    if addr is not None and wait_s > 0:
        out("HIL: waiting {} s to measure the drift".format(wait_s))
        start_ms = svc.now_ms()
        await aio.sleep_ms(wait_s * 1000)
        r2 = await aio.exchange_async(svc.net, rtc, addr)
        elapsed_us = (svc.now_ms() - start_ms) * 1000
        if r2.ok:
            # ppb, positive when the board's clock runs slow; integers only. The delay
            # bounds the noise: over 60 s, 1 ms of asymmetry is 17 ppm.
            ppb = (r2.offset_us - pending_us) * 1_000_000_000 // max(1, elapsed_us)
            drift = "{} ppb (offset {} s after {} s, slew pending {} us, delay {} s)".format(
                ppb, format_us(r2.offset_us), wait_s, pending_us, format_us(r2.delay_us)
            )
        else:
            drift = "not measured ({})".format(r2.error)
    if disc is not None:
        drift += ", service estimate {} ppb from {} samples".format(
            disc.drift_ppb, len(disc.samples)
        )
    interval = "{} s".format(svc.status()["interval_s"])
    out(
        "HIL: PASS offset {} s, drift {}, interval {}".format(
            format_us(r["offset_us"]), drift, interval
        )
    )
    return True


def _note_address(e, sent):
    # "send" events: the server's name (label) and the address text that was asked.
    if e["event"] == "send":
        sent[e["server"]] = e["address"]


def _address(net, label, address_text):
    """The net.Address of label that was asked (or its first one now), or None."""
    from sntp.net import NetError
    from sntp.schema import parse_server
    from sntp.sources import key_text

    try:
        host, port = parse_server(label)
        found = net.resolve(host, port)
    except (ValueError, NetError):
        return None
    for a in found:
        if key_text(a.key) == address_text:
            return a
    return found[0] if found else None


def main(wait_s=DEFAULT_WAIT_S):
    """Entry point on the board: `import hil; hil.main(60)` (make hil does this)."""
    import board

    asyncio.run(check(board, wait_s))
