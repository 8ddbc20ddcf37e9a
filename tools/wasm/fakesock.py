# The socket and select modules for sntp.net on the WebAssembly port, which has neither: a
# World that answers like an honest server, so that the 32-bit footprint probes
# (tools/wasm/footprint.py, tools/wasm/syncalloc.py) run the firmware's own net.Net and
# net.Udp instead of a test's fake network.
#
#   world = fakesock.World(clock, fakes.honest(START_US))
#   world.install()              # sntp.net's socket and select are now the world
#
# What a port allocates, the World allocates too, fresh each call: getaddrinfo's list of
# tuples, poll()'s list of (socket, event) tuples, recvfrom()'s bytes (cut to the size
# asked for, as lwIP and the unix port cut a longer datagram) and its (ip, port) tuple. The
# sockets have no recvfrom_into, like every MicroPython port (docs/footprint.md): net.Udp
# takes its fallback, recvfrom(size). What only the fake server does (copying the request,
# building the reply) is counted in World.own, which the probes subtract: a board's server is
# not in its heap. The clock is the probe's: ticks_us() and advance(us) for the wire (small
# ints, wrapping as a board's ticks: the fake's time keeping allocates nothing), mono_us
# (elapsed us) for the server's answer.
import gc
from time import ticks_add, ticks_diff

AF_INET = 2
SOCK_DGRAM = 2
POLLIN = 1


class World:
    """An in-memory network with one honest server (responder: fakes.honest's), on clock."""

    AF_INET = AF_INET
    AF_INET6 = 10
    SOCK_DGRAM = SOCK_DGRAM
    POLLIN = POLLIN

    def __init__(self, clock, responder, ip="192.0.2.1"):
        self.clock = clock  # ticks_us(), advance(us), mono_us
        self.responder = responder  # (request, sockaddr, mono_us) -> [(delay_us, data, src)]
        self.ip = ip  # every name resolves to it
        self.own = 0  # bytes the fake server allocated: not the firmware's, nor a port's
        self.sent = 0  # datagrams sent
        self.canned = None  # (delay_us, reply bytearray, source) for the next request, or None

    def prepare(self):
        """Build the reply to the next request now, at this instant of the clock, so that
        answering it allocates next to nothing (its origin is copied in when it comes):
        for a sync in a heap filled to the byte (tools/wasm/syncheap.py)."""
        got = self.responder(bytes(48), (self.ip, 123), self.clock.mono_us)[0]
        self.canned = (got[0], bytearray(got[1]), got[2])

    def install(self):
        """Make this world sntp.net's socket and select modules."""
        from sntp import net

        net.socket = self
        net.select = self

    # ---- the socket module ------------------------------------------------------------------
    def socket(self, family, kind):
        return Sock(self)

    def getaddrinfo(self, host, port):
        ip = self.ip if host not in ("0.0.0.0", "::") else host
        return [(AF_INET, SOCK_DGRAM, 17, "", (ip, port))]

    # ---- the select module ------------------------------------------------------------------
    def poll(self):
        return Poller()


class Sock:
    def __init__(self, world):
        self.world = world
        self.pending = None  # (arrival ticks_us, data, source) of the reply on its way

    def setblocking(self, flag):
        pass

    def bind(self, sockaddr):
        pass

    def sendto(self, data, sockaddr):
        w = self.world
        a = gc.mem_alloc()
        w.sent += 1
        if w.canned is not None:  # built before: the request's transmit time is its origin
            delay_us, out, src = w.canned
            w.canned = None
            i = 0
            while i < 8:
                out[24 + i] = data[40 + i]
                i += 1
            self.pending = (ticks_add(w.clock.ticks_us(), delay_us), out, src)
        else:
            for delay_us, out, src in w.responder(bytes(data), sockaddr, w.clock.mono_us):
                self.pending = (ticks_add(w.clock.ticks_us(), delay_us), out, src)
        w.own += gc.mem_alloc() - a

    def recvfrom(self, size):
        w = self.world
        a = gc.mem_alloc()
        p = self.pending
        late = p is None or ticks_diff(p[0], w.clock.ticks_us()) > 0
        w.own += gc.mem_alloc() - a
        if late:
            raise OSError(11)  # EAGAIN
        self.pending = None
        return p[1][:size], (p[2][0], p[2][1])  # what a port allocates

    def close(self):
        pass


class Poller:
    def __init__(self):
        self.sock = None

    def register(self, sock, mask):
        self.sock = sock

    def unregister(self, sock):
        self.sock = None

    def poll(self, timeout_ms):
        """[(sock, POLLIN)] when the reply arrives within timeout_ms (the clock moved to its
        arrival), else [] with the clock moved on by timeout_ms."""
        s = self.sock
        w = s.world
        a = gc.mem_alloc()
        clock = w.clock
        now = clock.ticks_us()
        wait_us = max(0, timeout_ms) * 1000  # at most a minute: a small int
        ready = s.pending is not None and ticks_diff(s.pending[0], now) <= wait_us
        if ready:
            wait_us = max(0, ticks_diff(s.pending[0], now))
        clock.advance(wait_us)
        w.own += gc.mem_alloc() - a  # the fake's time keeping
        return [(s, POLLIN)] if ready else []  # what a port allocates
