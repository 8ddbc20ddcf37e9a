# runs-on: both
# The real net adapter on loopback only: address normalization, random ports, timeouts.
import socket

from sntp import compat
from sntp.net import Net, NetError


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
