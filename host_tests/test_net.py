# runs-on: both
# The real net adapter on loopback only: address normalization, random ports, timeouts; and
# its receive path on socket and select modules of this file's own (every runtime).
import socket

from sntp import compat, dns, net
from sntp.exchange import MAX_REPLY_LEN
from sntp.net import RECV_LEN, Net, NetError


def test_resolve_numeric_addresses_to_plain_keys():
    net = Net()
    a = net.resolve("127.0.0.1", 123)
    assert len(a) == 1 and a[0].key == ("127.0.0.1", 123) and a[0].family == socket.AF_INET
    b = net.resolve("::1", 4123)
    assert b[0].key == ("::1", 4123)


def test_resolve_failure_is_a_net_error_with_the_name():
    try:
        Net().resolve("no-such-host.invalid", 123)
    except NetError as e:
        assert e.reason == "resolve" and "no-such-host.invalid" in e.message
    else:
        raise AssertionError("resolved a .invalid name")


def test_random_ports_are_in_the_dynamic_range_and_differ():
    net = Net()
    ports = []
    socks = []
    try:
        for _ in range(12):
            u = net.udp(socket.AF_INET)
            socks.append(u)
            ports.append(u.bind_random())
    finally:
        for u in socks:
            u.close()
    assert all(49152 <= p <= 65535 for p in ports), ports
    assert len(set(ports)) >= 10, ports  # 12 draws from 16384: a repeat is rare


def test_loopback_datagram_and_source_key():
    net = Net()
    u = net.udp(socket.AF_INET)
    try:
        port = u.bind_random()
        dst = net.resolve("127.0.0.1", port)[0]
        u.send(b"hello", dst.sockaddr)
        got = u.recv(1000)
        assert got is not None and got[0] == b"hello" and got[1] == ("127.0.0.1", port)
    finally:
        u.close()


def test_recv_times_out_with_none_whatever_the_port_raises():
    u = Net().udp(socket.AF_INET)
    try:
        u.bind_random()
        t0 = compat.ticks_ms()
        assert u.recv(120) is None
        waited = compat.ticks_diff(compat.ticks_ms(), t0)
        assert 100 <= waited < 1000, waited
    finally:
        u.close()


def test_cpython_ticks_shim_wraps_like_the_boards():
    if compat.IS_MICROPYTHON:
        return  # the real ticks: 2**30 on the boards, 2**62 on the 64-bit unix port
    assert compat.ticks_diff(compat.ticks_add(compat.TICKS_PERIOD - 10, 25), 0) == 15
    assert compat.ticks_diff(5, compat.TICKS_PERIOD - 5) == 10
    assert compat.ticks_diff(compat.TICKS_PERIOD - 5, 5) == -10
    try:
        compat.ticks_add(0, 1 << 29)
    except OverflowError:
        pass
    else:
        raise AssertionError("ticks_add accepted half the period")


def test_a_datagram_longer_than_a_reply_arrives_cut_where_the_checks_see_it():
    u = Net().udp(socket.AF_INET)
    try:
        port = u.bind_random()
        dst = Net().resolve("127.0.0.1", port)[0]
        payload = bytes(range(200))
        for n in (MAX_REPLY_LEN, 200):
            u.send(payload[:n], dst.sockaddr)
            got = u.recv(1000)
            assert got is not None and got[1] == ("127.0.0.1", port)
            # the longest reply whole; a longer datagram one byte past it: exchange says long
            assert bytes(got[0]) == payload[: min(n, RECV_LEN)], (n, len(got[0]))
    finally:
        u.close()
    assert RECV_LEN == MAX_REPLY_LEN + 1


class Sockets:
    """socket and select for sntp.net, in memory: each socket delivers what is put in its
    queue; into: the sockets have recvfrom_into (as CPython's), else only recvfrom (as every
    MicroPython port's). asked: the sizes asked of recvfrom, or given to recvfrom_into."""

    AF_INET = 2
    SOCK_DGRAM = 2
    POLLIN = 1

    def __init__(self, into):
        self.into = into
        self.asked = []

    def socket(self, family, kind):
        return SockInto(self) if self.into else Sock(self)

    def getaddrinfo(self, host, port):
        return [(2, 2, 17, "", (host, port))]

    def poll(self):
        return Poll()


class Sock:
    def __init__(self, world):
        self.world = world
        self.queue = []  # (data, (ip, port)) to deliver

    def setblocking(self, flag):
        pass

    def bind(self, sockaddr):
        pass

    def sendto(self, data, sockaddr):
        pass

    def close(self):
        pass

    def recvfrom(self, size):
        self.world.asked.append(size)
        data, source = self.queue.pop(0)
        return data[:size], source


class SockInto(Sock):
    def recvfrom_into(self, buf):
        self.world.asked.append(len(buf))
        data, source = self.queue.pop(0)
        n = min(len(data), len(buf))
        for i in range(n):
            buf[i] = data[i]
        return n, source


class Poll:
    def register(self, sock, mask):
        self.sock = sock

    def unregister(self, sock):
        pass

    def poll(self, timeout_ms):
        return [(self.sock, 1)] if self.sock.queue else []


def with_sockets(into, fn):
    saved = net.socket, net.select
    world = net.socket = net.select = Sockets(into)
    try:
        fn(world)
    finally:
        net.socket, net.select = saved


SRC = ("192.0.2.1", 123)


def test_each_open_socket_receives_into_a_buffer_of_its_own_and_a_closed_ones_is_reused():
    def check(world):
        n = Net()
        a, b = n.udp(2), n.udp(2)  # two exchanges in flight
        assert a.buf is not None and b.buf is not None and a.buf is not b.buf
        a.sock.queue.append((b"A" * 48, SRC))
        b.sock.queue.append((b"B" * 60, SRC))
        got_a, got_b = a.recv(0), b.recv(0)
        assert bytes(got_a[0]) == b"A" * 48 and bytes(got_b[0]) == b"B" * 60  # not shared
        assert got_a[1] == SRC and world.asked == [RECV_LEN, RECV_LEN]
        kept = a.buf
        a.close()
        c = n.udp(2)
        assert c.buf is kept  # allocated once: the closed socket's, for the next one
        c.sock.queue.append((bytes(500), SRC))
        assert len(c.recv(0)[0]) == RECV_LEN  # longer: cut one byte past a reply
        d = n.udp(2, 513)  # another size (a DNS socket): a buffer of that size
        assert len(d.buf) == 513 and d.buf is not b.buf
        for u in (b, c, d):
            u.close()

    with_sockets(True, check)


def test_where_the_port_has_no_recvfrom_into_it_is_asked_for_the_size_only():
    def check(world):
        u = Net().udp(2)
        assert u.buf is None
        u.sock.queue.append((bytes(1000), SRC))
        got = u.recv(0)
        assert len(got[0]) == RECV_LEN and world.asked == [RECV_LEN]  # not 1 KB
        assert got[1] == SRC
        u.close()
        # a DNS lookup asks for a whole DNS message and one byte more (longer: malformed)
        r = dns.Resolver(("192.0.2.53", 53), 50, False)
        assert r.start("ntp.example")
        r.sock.sock.queue.append((bytes(1000), ("192.0.2.53", 53)))
        r.judge(r.sock.recv(0))
        r.sock.close()
        assert world.asked == [RECV_LEN, 513] and r.dropped == {"malformed": 1}

    with_sockets(False, check)
