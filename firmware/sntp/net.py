# The network adapter: the one place that knows how sockets differ between ports.
#
# Differences hidden here:
# - getaddrinfo returns one entry on lwIP (RP2040), several on ESP32 and CPython (IPv6 may
#   come first), and a raw bytearray sockaddr on the unix port instead of a tuple. Every
#   address leaves this module as an Address whose .key is a plain (ip_text, port) tuple.
# - A receive timeout raises ETIMEDOUT on boards, EAGAIN on unix, TimeoutError on CPython.
#   We never rely on it: waiting is done with select.poll, the portable way, and a read that
#   finds nothing is "no datagram", whatever its errno.
# - lwIP hands out ephemeral ports sequentially, so each exchange binds a random port itself
#   (rule 8, RFC 9109).
# - No context managers on board sockets: try/finally everywhere.
# - No MicroPython port has recvfrom_into (unix, esp32, rp2's lwIP, webassembly: their
#   sockets have recv, recvfrom and the stream readinto, which drops the source address that
#   the reply checks need). Where the socket has it (CPython), a datagram is received into a
#   buffer allocated once and lent to one open socket at a time (never to two exchanges in
#   flight); elsewhere recvfrom(size) allocates the datagram, size bytes at most: a small
#   block, never the 1 KB it once was. Either way a datagram longer than size arrives cut to
#   size, and the reply checks reject it (exchange.MAX_REPLY_LEN is one byte less than
#   RECV_LEN): never a partial reply accepted.
import select
import socket

from .compat import const, random_below
from .exchange import MAX_REPLY_LEN

# Dynamic port range (RFC 6335): 49152-65535.
_PORT_BASE = const(49152)
_PORT_COUNT = const(16384)
_BIND_TRIES = const(8)  # a collision is rare; after this many, let the stack choose
# bytes received of an NTP datagram: one more than the longest reply accepted, so that a
# longer one is seen to be longer
RECV_LEN = MAX_REPLY_LEN + 1


class NetError(Exception):
    """A resolve or socket failure, with the reason ('resolve' or 'network') and a message."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Address:
    """A resolved server address: family, sockaddr as the port wants it, and a (ip, port) key."""

    def __init__(self, family, sockaddr, key):
        self.family = family  # socket.AF_INET or AF_INET6
        self.sockaddr = sockaddr  # what sendto() takes on this port
        self.key = key  # (ip text, port): comparable with the source of a reply


def addr_key(sockaddr):
    """Any port's sockaddr -> (ip text, port)."""
    if isinstance(sockaddr, tuple):  # CPython, lwIP: (ip, port) or (ip, port, flow, scope)
        return (sockaddr[0], sockaddr[1])
    # unix port: raw struct sockaddr; socket.sockaddr() decodes it to (family, ip bytes, port...)
    dec = socket.sockaddr(sockaddr)
    return (socket.inet_ntop(dec[0], dec[1]), dec[2])


def _valid_family(family):
    return family == socket.AF_INET or family == getattr(socket, "AF_INET6", -1)


class Net:
    """The real network. Tests pass a fake with the same two methods."""

    spare = None  # a receive buffer (memoryview) that no open socket holds, or None

    def resolve(self, host, port):
        """All distinct addresses of host, in the resolver's order. Raises NetError('resolve')."""
        try:
            infos = socket.getaddrinfo(host, port)  # no type argument: lwIP warns on it
        except (OSError, ValueError) as e:  # gaierror is an OSError; UnicodeError a ValueError
            raise NetError("resolve", "cannot resolve {}: {}".format(host, _err_text(e)))
        out = []
        seen = []
        for info in infos:
            family, sockaddr = info[0], info[4]
            if not _valid_family(family):
                continue
            key = addr_key(sockaddr)
            if key in seen:
                continue
            seen.append(key)
            out.append(Address(family, sockaddr, key))
        if not out:
            raise NetError("resolve", "cannot resolve {}: no IPv4 or IPv6 address".format(host))
        return out

    def udp(self, family, size=RECV_LEN):
        """A fresh UDP socket for one exchange; recv() reads at most size bytes a datagram."""
        return Udp(family, size, self)

    def lend(self, size):
        """A receive buffer of size bytes for one socket: the spare one when it fits."""
        buf = self.spare
        if buf is not None and len(buf) == size:
            self.spare = None
            return buf
        return memoryview(bytearray(size))

    def give_back(self, buf):
        """A closed socket's receive buffer: kept for the next socket."""
        self.spare = buf


def _err_text(e):
    if e.args:
        return str(e.args[-1]) if len(e.args) > 1 else str(e.args[0])
    return type(e).__name__


class Udp:
    """One UDP socket: bind_random(), send(), recv(timeout_ms), close().

    size: bytes received of a datagram at most (a longer one is cut to size); net: the Net
    that lends the receive buffer where the port has recvfrom_into (None: its own)."""

    def __init__(self, family, size=RECV_LEN, net=None):
        self.family = family  # AF_INET or AF_INET6
        self.size = size  # bytes: the most recv() returns of a datagram
        self.net = net  # Net lending the buffer, or None
        self.buf = None  # memoryview of size bytes, where recvfrom_into is; else None
        try:
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            raise NetError("network", "cannot open a UDP socket: {}".format(_err_text(e)))
        self.sock.setblocking(False)
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        if hasattr(self.sock, "recvfrom_into"):
            self.buf = net.lend(size) if net is not None else memoryview(bytearray(size))

    def bind_random(self):
        """Bind a random port in 49152-65535; returns it (0 if the stack had to choose)."""
        any_ip = "0.0.0.0" if self.family == socket.AF_INET else "::"
        for _ in range(_BIND_TRIES):
            port = _PORT_BASE + random_below(_PORT_COUNT)
            try:
                self.sock.bind(socket.getaddrinfo(any_ip, port)[0][-1])
                return port
            except OSError:
                continue  # in use: draw again
        return 0  # the first sendto() binds an ephemeral port

    def send(self, data, sockaddr):
        try:
            self.sock.sendto(data, sockaddr)
        except OSError as e:
            raise NetError("network", "cannot send: {}".format(_err_text(e)))

    def recv(self, timeout_ms):
        """(data, (ip, port)) of the next datagram within timeout_ms, or None.

        data holds size bytes at most (a longer datagram is cut: see the top). Where the
        port has recvfrom_into it is a memoryview of this socket's buffer, good until the
        next recv() or close(): judge it before asking for another."""
        if not self.poller.poll(max(0, timeout_ms)):
            return None
        try:
            if self.buf is None:
                data, source = self.sock.recvfrom(self.size)
            else:
                n, source = self.sock.recvfrom_into(self.buf)
                data = self.buf[:n]
        except OSError:
            return None  # EAGAIN after a spurious wake-up, or an ICMP error: nothing to read
        return data, addr_key(source)

    def close(self):
        try:
            self.poller.unregister(self.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.sock.close()
        if self.buf is not None and self.net is not None:
            self.net.give_back(self.buf)
        self.buf = None
