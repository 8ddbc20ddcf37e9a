# The blocking driver for one exchange: resolve, send, wait, judge. Changes no clock.
#
# It owns the socket and reads the clock; every decision is the core's (exchange.py).
# The net and the clock are injected so that tests run it against a fake network and a
# fake clock, unchanged.
from . import compat, packet
from .exchange import Exchange, Result
from .net import Net, NetError
from .timestamp import ERA_PIVOT_NTP_S, epoch_ntp_s

RESOLVE = "resolve"  # the name did not resolve
NETWORK = "network"  # the socket could not be opened, bound or written

DEFAULT_TIMEOUT_MS = compat.const(5_000)
# ticks_us wraps every 2**30 us (17.9 min) and ticks_diff is only good to half of that:
# no single exchange may wait longer than this.
MAX_TIMEOUT_MS = compat.const(60_000)


class SystemClock:
    """The port's clock: wall time since the port epoch, monotonic ticks, entropy."""

    def __init__(self):
        self.epoch_s = epoch_ntp_s(compat.epoch_year())  # s from 1900 to the port epoch

    def now_us(self):
        return compat.now_us()

    def ticks_us(self):
        return compat.ticks_us()

    def ticks_diff(self, a, b):
        return compat.ticks_diff(a, b)

    def random_bytes(self, n):
        return compat.random_bytes(n)


def failed(server, error, detail):
    r = Result(server, error)
    r.detail = detail
    return r


def query(
    host,
    port=123,
    timeout_ms=DEFAULT_TIMEOUT_MS,
    net=None,
    clock=None,
    pivot_s=ERA_PIVOT_NTP_S,
    max_root_distance_us=None,
):
    """One exchange with the first address of host. Returns a Result; never raises on I/O.

    Result.error is None on success, else a reason from exchange.py, or 'resolve'/'network'
    with Result.detail saying what went wrong.
    """
    net = net if net is not None else Net()
    clock = clock if clock is not None else SystemClock()
    timeout_ms = max(1, min(timeout_ms, MAX_TIMEOUT_MS))
    try:
        addr = net.resolve(host, port)[0]
    except NetError as e:
        return failed((host, port), e.reason, e.message)
    try:
        sock = net.udp(addr.family)
    except NetError as e:
        return failed(addr.key, e.reason, e.message)
    try:
        return _exchange(sock, addr, timeout_ms, clock, pivot_s, max_root_distance_us)
    except NetError as e:
        return failed(addr.key, e.reason, e.message)
    finally:
        sock.close()


def _exchange(sock, addr, timeout_ms, clock, pivot_s, max_root_distance_us):
    sock.bind_random()
    nonce = clock.random_bytes(8)
    request = packet.build_request(bytearray(packet.HEADER_LEN), nonce)
    t1_us = clock.now_us()  # as late as possible before the send
    sent_ticks = clock.ticks_us()
    ex = Exchange(addr.key, nonce, t1_us, clock.epoch_s, pivot_s, max_root_distance_us)
    sock.send(request, addr.sockaddr)
    while True:
        elapsed_us = clock.ticks_diff(clock.ticks_us(), sent_ticks)
        left_ms = timeout_ms - elapsed_us // 1000
        if left_ms <= 0:
            return ex.expire()
        got = sock.recv(left_ms)
        if got is None:
            continue
        # T4 from the monotonic ticks: a clock step during the exchange cannot corrupt it.
        t4_us = t1_us + clock.ticks_diff(clock.ticks_us(), sent_ticks)
        result = ex.receive(got[0], got[1], t4_us)
        if result is not None:
            return result
