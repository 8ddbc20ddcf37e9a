# One sync of sntp.aio.AsyncService beside a 10 ms ticker task, on the unix-port MicroPython
# (tools/stall.py on 127.0.0.1, host_tests/test_testnet.py inside the test network):
#   micropython -m stall_probe DNS RUN_MS NAME[:PORT]...
# DNS: the DNS server's "ip:port" (sntp.dns.Resolver), or "getaddrinfo" (net.Net: the port's
# resolver, which blocks). Prints one JSON line: stall_ms (the longest gap between two ticks,
# less the 10 ms), ok, sync_ms, error, dropped ({reason: count} of the resolver), resolves
# ([ok, [addresses]] of every lookup). The host's clock is never changed (rtc.ProcessClock).
import asyncio
import json
import sys

from sntp import aio, compat
from sntp.net import Net
from sntp.rtc import ProcessClock  # the host's clock plus an offset: the host's is never set


async def main(server, run_ms, names):
    gaps = [0]
    stop = []

    async def tick():
        t = compat.ticks_ms()
        while not stop:
            await aio.sleep_ms(10)
            now = compat.ticks_ms()
            gaps[0] = max(gaps[0], compat.ticks_diff(now, t) - 10)
            t = now

    if server == "getaddrinfo":
        net = Net()
    else:
        from sntp import dns

        ip, port = server.rsplit(":", 1)
        net = dns.Resolver((ip, int(port)))
    c = ProcessClock()
    svc = aio.AsyncService({"servers": names}, net=net, clock=c, rtc=c)
    resolves = []
    svc.subscribe(
        lambda e: (
            resolves.append([e["ok"], e.get("addresses", [])]) if e["event"] == "resolve" else None
        )
    )
    ticker = asyncio.create_task(tick())
    await aio.sleep_ms(50)  # the ticker's first turns
    t0 = compat.ticks_ms()
    s = await svc.sync(svc.now_ms() + run_ms)
    took = compat.ticks_diff(compat.ticks_ms(), t0)
    stop.append(1)
    await ticker
    out = {
        "stall_ms": gaps[0],
        "ok": s["ok"],
        "sync_ms": took,
        "error": s["error"],
        "detail": s["detail"],
        "dropped": getattr(net, "dropped", {}),
        "resolves": resolves,
    }
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
