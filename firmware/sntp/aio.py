# The asyncio time service: service.py's loop as a task, for boards that run asyncio.
#
#   from sntp import aio
#   task = aio.start({"zone": "acme"}, rtc=my_rtc, store=my_store)   # inside a running loop
#
# MicroPython's asyncio has no UDP transport: the request
# goes out on the same non-blocking net.Udp socket as the blocking driver, and the reply is
# looked for with a zero-timeout select.poll between asyncio.sleep_ms() slices, so other
# tasks run while we wait. T4 is read when the datagram is found, up to one slice after it
# arrived: the delay is over-estimated by up to a slice and the offset is low by up to half
# of one. The slices start at 1 ms and double to POLL_SLICE_MAX_MS, so a fast reply is seen
# within about a millisecond and a slow one costs few wake-ups.
# Lookups are awaited too, where sntp.dns (an optional package) is installed and the network
# has given a DNS server: its Resolver is the default net here. Without it, getaddrinfo
# blocks, even here: a DNS lookup stalls the event loop while it runs.
# Import this module only on boards that use asyncio: the blocking service does not need it.
import asyncio

from . import client
from .compat import TYPE_CHECKING, const
from .net import NetError
from .service import Service
from .sources import RESOLVE

POLL_SLICE_MAX_MS = const(8)  # the longest wait between looks at the socket

if TYPE_CHECKING or hasattr(asyncio, "sleep_ms"):
    sleep_ms = asyncio.sleep_ms
else:  # CPython: asyncio counts seconds; an exact Fraction keeps the firmware integer-only
    from fractions import Fraction

    def sleep_ms(ms):
        return asyncio.sleep(Fraction(max(0, ms), 1000))


async def exchange_async(net, clock, addr, timeout_ms=client.DEFAULT_TIMEOUT_MS):
    """client.exchange_with() without blocking the event loop. Returns a Result."""
    timeout_ms = client.clamp_timeout_ms(timeout_ms)
    try:
        sock = net.udp(addr.family)
    except NetError as e:
        return client.failed(addr.key, e.reason, e.message)
    try:
        p = client.Pending(sock, addr, clock)
        slice_ms = 1  # ms until the next look
        while True:
            left_ms = p.left_ms(timeout_ms)
            if left_ms <= 0:
                return p.ex.expire()
            got = sock.recv(0)
            if got is None:
                await sleep_ms(min(slice_ms, left_ms))
                slice_ms = min(2 * slice_ms, POLL_SLICE_MAX_MS)
                continue
            result = p.receive(got)
            if result is not None:
                return result
    except NetError as e:
        return client.failed(addr.key, e.reason, e.message)
    finally:
        sock.close()


async def resolve_async(net, host, port):
    """net.resolve() awaited: without blocking where net can (sntp.dns.Resolver)."""
    if hasattr(net, "resolve_async"):
        return await net.resolve_async(host, port, sleep_ms)
    return net.resolve(host, port)  # getaddrinfo, or a test's fake: blocks while it runs


class AsyncService(Service):
    """Service whose run() and sync() are coroutines. Do not run two of them at once.

    net None: sntp.dns.Resolver() where that package is installed (lookups that do not block
    the loop, each bounded by timeout_ms, as an exchange is), else net.Net() (getaddrinfo)."""

    awaits_lookups = True  # _step() hands the lookups to run(), which awaits them

    def __init__(self, config, net=None, **kw):
        if net is None:
            try:
                from .dns import Resolver

                net = Resolver(timeout_ms=kw.get("timeout_ms", client.DEFAULT_TIMEOUT_MS))
            except ImportError:  # not installed: Service's net.Net()
                pass
        super().__init__(config, net, **kw)

    async def run(self, until_ms=None, stop=None):
        """Serve until now_ms() reaches until_ms (None: forever) or stop() is true."""
        self.boot()
        while True:
            w = self._step(until_ms, stop)  # Service.run's turn, all but the waiting
            if w is None:
                break
            if isinstance(w, int):
                if w > 0:
                    await sleep_ms(w)
            elif w.kind == RESOLVE:
                src, detail = w.src, None
                try:
                    addrs = await resolve_async(self.net, src.host, src.port)
                except NetError as e:
                    addrs, detail = None, e.message
                self.keeper.resolved(src, addrs, self.loop_ms(), detail)
            else:
                r = await exchange_async(self.net, self.clock, w.addr, self.timeout_ms)
                self.keeper.result(w.src, w.addr, r, self.loop_ms())
        self.keeper.save()
        return self.now_ms()

    async def sync(self, until_ms=None):
        """Service.sync() as a coroutine: the same summary dict."""
        from .summary import begin, end

        watch = begin(self)
        await self.run(until_ms, watch[0])
        return end(self, watch)


def start(config, listener=None, **kw):
    """Make an AsyncService and run it forever as a task (call inside a running event loop).

    kw are Service's (net, clock, rtc, store, rand_below, timeout_ms, wake). listener(event dict),
    if given, gets every event. Returns the asyncio task: cancel it to stop the service.
    The first request waits for the start-up delay of rule 12.
    """
    svc = AsyncService(config, **kw)
    if listener is not None:
        svc.subscribe(listener)
    return asyncio.create_task(svc.run())
