# The blocking driver for one exchange: resolve, send, wait, judge. Changes no clock.
#
# It owns the socket and reads the clock; every decision is the core's (exchange.py).
# The net and the clock are injected so that tests run it against a fake network and a
# fake clock, unchanged.
from . import compat
from .exchange import (
    HEADER_LEN,
    NTP_1970_S,
    NTP_2000_S,
    Exchange,
    Result,
    build_request,
)
from .net import Net, NetError

RESOLVE = "resolve"  # the name did not resolve
NETWORK = "network"  # the socket could not be opened, bound or written

DEFAULT_TIMEOUT_MS = compat.const(5_000)
# ticks_us wraps every 2**30 us (17.9 min) and ticks_diff is only good to half of that:
# no single exchange may wait longer than this.
MAX_TIMEOUT_MS = compat.const(60_000)


class SystemClock:
    """The port's clock: wall time since the port epoch, monotonic ticks, sleep, entropy."""

    def __init__(self):
        # s from 1900 to the port epoch: MicroPython's ports count from 1970 or from 2000
        self.epoch_s = NTP_1970_S if compat.epoch_year() == 1970 else NTP_2000_S

    def now_us(self):
        return compat.now_us()

    # the port's own functions, unbound (staticmethod: no self)
    ticks_us = staticmethod(compat.ticks_us)
    ticks_ms = staticmethod(compat.ticks_ms)
    ticks_diff = staticmethod(compat.ticks_diff)
    sleep_ms = staticmethod(compat.sleep_ms)
    random_bytes = staticmethod(compat.random_bytes)


def failed(server, error, detail):
    r = Result(server, error)
    r.detail = detail
    return r


def query(host, port=123, timeout_ms=DEFAULT_TIMEOUT_MS, net=None, clock=None):
    """One exchange with the first address of host. Returns a Result; never raises on I/O.

    Result.error is None on success, else a reason from exchange.py, or 'resolve'/'network'
    with Result.detail saying what went wrong.
    """
    net = net if net is not None else Net()
    try:
        addr = net.resolve(host, port)[0]
    except NetError as e:
        return failed((host, port), e.reason, e.message)
    return exchange_with(net, clock, addr, timeout_ms)


def exchange_with(net, clock, addr, timeout_ms=DEFAULT_TIMEOUT_MS):
    """One blocking exchange with an already resolved net.Address. Returns a Result.

    Never raises on I/O: a socket failure is a Result with error 'network' and a detail.
    The drivers (service.py) call this for each ('query', source, address) of the policy.
    """
    net = net if net is not None else Net()
    clock = clock if clock is not None else SystemClock()
    timeout_ms = clamp_timeout_ms(timeout_ms)
    try:
        sock = net.udp(addr.family)
    except NetError as e:
        return failed(addr.key, e.reason, e.message)
    try:
        p = Pending(sock, addr, clock)
        while True:
            left_ms = p.left_ms(timeout_ms)
            if left_ms <= 0:
                return p.ex.expire()
            result = p.receive(sock.recv(left_ms))
            if result is not None:
                return result
    except NetError as e:
        return failed(addr.key, e.reason, e.message)
    finally:
        sock.close()


def clamp_timeout_ms(timeout_ms):
    """A timeout in 1 ms .. MAX_TIMEOUT_MS (ticks_us is only good to 2**29 us)."""
    return max(1, min(timeout_ms, MAX_TIMEOUT_MS))


class Pending:
    """A request on the wire: binds the socket, sends, then judges what comes back.

    Shared by the blocking loop above and the asyncio driver (aio.py), which differ only in
    how they wait. Raises NetError if the socket cannot send.
    """

    def __init__(self, sock, addr, clock):
        self.clock = clock
        sock.bind_random()
        nonce = clock.random_bytes(8)
        request = build_request(bytearray(HEADER_LEN), nonce)
        self.t1_us = clock.now_us()  # local send time, as late as possible before the send
        self.sent_ticks = clock.ticks_us()  # ticks_us at the send
        self.ex = Exchange(addr.key, nonce, self.t1_us, clock.epoch_s)
        sock.send(request, addr.sockaddr)

    def left_ms(self, timeout_ms):
        """ms left until timeout_ms after the send (0 or less: expired)."""
        elapsed_us = self.clock.ticks_diff(self.clock.ticks_us(), self.sent_ticks)
        return timeout_ms - elapsed_us // 1000

    def receive(self, got):
        """Judge got ((data, (ip, port)) or None): a final Result, or None to keep waiting."""
        if got is None:
            return None
        # T4 from the monotonic ticks: a clock step during the exchange cannot corrupt it.
        t4_us = self.t1_us + self.clock.ticks_diff(self.clock.ticks_us(), self.sent_ticks)
        return self.ex.receive(got[0], got[1], t4_us)
