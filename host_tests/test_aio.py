# runs-on: both
# The asyncio exchange (firmware/sntp/aio.py) over real UDP on 127.0.0.1, with the server
# as another task of the same event loop: if the exchange blocked the loop while it waited,
# the server could never answer. On both runtimes (MicroPython's asyncio included).
import asyncio
import select
import socket

from fakes import reply

from sntp import aio, client, compat, exchange
from sntp.net import Net


def bind_loopback():
    """A UDP socket on 127.0.0.1 at some free port (MicroPython has no getsockname)."""
    for _ in range(20):
        port = 20000 + compat.random_below(20000)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        return s, port
    raise OSError("no free loopback port")


async def serve_once(sock, hold_ms, offset_us, log):
    """Answer one request hold_ms after it came, with a clock offset_us ahead; never blocks."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while not poller.poll(0):
        await aio.sleep_ms(1)
    data, source = sock.recvfrom(128)
    t2 = compat.now_us() + offset_us  # the unix port and CPython: Unix epoch
    log.append("request")
    await aio.sleep_ms(hold_ms)
    sock.sendto(reply(data[40:48], t2, compat.now_us() + offset_us), source)
    log.append("reply")


async def tick(log, stop):
    while not stop:
        log.append("tick")
        await aio.sleep_ms(5)


async def exchange_beside_other_tasks(hold_ms, offset_us, timeout_ms, answer=True):
    sock, port = bind_loopback()
    log = []
    stop = []
    try:
        addr = Net().resolve("127.0.0.1", port)[0]
        ticker = asyncio.create_task(tick(log, stop))
        server = asyncio.create_task(serve_once(sock, hold_ms, offset_us, log)) if answer else None
        r = await aio.exchange_async(Net(), client.SystemClock(), addr, timeout_ms)
        stop.append(1)
        if server is not None:
            await server
        await ticker
    finally:
        sock.close()
    return r, log


def test_the_reply_comes_from_another_task_while_the_exchange_waits():
    r, log = asyncio.run(exchange_beside_other_tasks(60, 2_500_000, 2_000))
    assert r.ok, r.error
    assert abs(r.offset_us - 2_500_000) < 10_000  # loopback, plus up to one 8 ms slice
    assert 0 <= r.delay_us < 20_000  # the 60 ms the server held it are its own time
    assert log.index("request") < log.index("reply")
    assert log.count("tick") >= 3  # the ticker ran meanwhile (60 ms of 5 ms ticks)


def test_a_silent_server_times_out_without_blocking_the_loop():
    t0 = compat.ticks_ms()
    r, log = asyncio.run(exchange_beside_other_tasks(0, 0, 200, answer=False))
    waited = compat.ticks_diff(compat.ticks_ms(), t0)
    assert r.error == exchange.TIMEOUT and 200 <= waited < 1_000
    assert log.count("tick") >= 10  # 200 ms of 5 ms ticks, with room for a slow machine


class RecordRTC:
    def __init__(self):
        self.steps = []  # offset_us of every adjust()

    def adjust(self, offset_us):
        self.steps.append(offset_us)


async def service_task_sets_the_rtc():
    sock, port = bind_loopback()
    rtc = RecordRTC()
    events = []
    try:
        server = asyncio.create_task(serve_once(sock, 10, 4_000_000, []))
        config = {"servers": ["127.0.0.1:{}".format(port)]}
        # rand_below 0: no start-up delay and no jitter, so the first request goes at once
        task = aio.start(config, rtc=rtc, rand_below=lambda n: 0, listener=events.append)
        for _ in range(200):
            if rtc.steps:
                break
            await aio.sleep_ms(10)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await server
    finally:
        sock.close()
    return rtc, events


def test_start_runs_the_service_as_a_task_that_can_be_cancelled():
    rtc, events = asyncio.run(service_task_sets_the_rtc())
    assert len(rtc.steps) == 1 and abs(rtc.steps[0] - 4_000_000) < 10_000
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "step" in kinds and kinds[-1] in ("poll", "clock")


def test_the_async_service_applies_the_slew_in_its_own_loop():
    from fakes import START, FakeNet, LoopClock, StepRTC, honest

    clock = LoopClock(START - 50_000)  # 50 ms behind: slewed

    saved = aio.sleep_ms
    aio.sleep_ms = clock.aio_sleep_ms
    try:
        svc = aio.AsyncService(
            {"servers": ["ntp.example"]},
            net=FakeNet(clock, honest(START)),
            clock=clock,
            rtc=StepRTC(clock),
            rand_below=lambda n: n // 3,
            timeout_ms=1_000,
        )
        s = asyncio.run(svc.sync())
        assert s["ok"] and svc.rtc.steps == []
        asyncio.run(svc.run(until_ms=svc.now_ms() + 200_000))
    finally:
        aio.sleep_ms = saved
    # all of the decided offset arrives through the loop's ticks (the asyncio exchange reads
    # T4 up to one poll slice late, so the offset itself is a little under 50 ms)
    assert abs(sum(svc.rtc.steps) - s["offset_us"]) <= 500 and s["offset_us"] > 45_000
