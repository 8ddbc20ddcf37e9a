# runs-on: both
# The blocking driver against the fake network and the fake clock.
from fakes import SERVER, FakeClock, FakeNet, honest, reply

from sntp import client, exchange

START = 1_800_000_000_000_000  # true time at the start, Unix us


def run(responder, clock=None, host="ntp.example", timeout_ms=2_000, **kw):
    clock = clock or FakeClock(START)
    net = FakeNet(clock, responder, **kw)
    r = client.query(host, 123, timeout_ms, net=net, clock=clock)
    return r, net, clock


def test_honest_server_offset_with_the_clock_behind():
    clock = FakeClock(START - 3_000_000)  # local clock 3 s behind the truth
    r, net, _ = run(honest(START), clock)
    assert r.ok and r.offset_us == 3_000_000 and r.delay_us == 20_000
    assert len(net.sent) == 1 and net.sockets == 1


def test_request_carries_a_fresh_nonce_and_nothing_else():
    clock = FakeClock(START)
    net = FakeNet(clock, honest(START))
    client.query("ntp.example", 123, 1000, net=net, clock=clock)
    client.query("ntp.example", 123, 1000, net=net, clock=clock)
    a, b = net.sent[0][1], net.sent[1][1]
    assert a[0] == 0x23 and a[1:40] == bytes(39)
    assert a[40:48] != b[40:48]  # a new nonce per request
    assert a[40:48] != reply(b"\x00" * 8, START, START)[40:48]  # not the local time


def test_each_exchange_binds_its_own_random_port_and_closes():
    clock = FakeClock(START)
    net = FakeNet(clock, honest(START))
    for _ in range(3):
        client.query("ntp.example", 123, 1000, net=net, clock=clock)
    assert net.sockets == 3 and len(set(net.bound_ports)) == 3


def test_spoof_then_real_reply():
    def respond(req, dst, mono):
        t = START + mono
        spoof = reply(b"\xde\xad\xbe\xef\x00\x00\x00\x01", t + 3_600_000_000, t + 3_600_000_000)
        real = reply(req[40:48], t + 10_000, t + 10_100)
        return [
            (5_000, spoof, SERVER),
            (6_000, spoof, ("198.51.100.7", 123)),
            (20_100, real, SERVER),
            (25_000, real, SERVER),
        ]  # and a late duplicate

    r, _, _ = run(respond)
    assert r.ok and abs(r.offset_us) < 1_000  # the hour-off spoof was not used
    assert r.ignored == {"bad-origin": 1, "wrong-source": 1}


def test_only_spoofs_then_timeout_with_the_reason():
    def respond(req, dst, mono):
        return [(5_000, reply(b"\x01" * 8, START, START), SERVER)]

    r, _, clock = run(respond, timeout_ms=1_500)
    assert not r.ok and r.error == exchange.BAD_ORIGIN
    assert 1_500_000 <= clock.mono_us < 1_510_000  # it waited for the whole timeout


def test_silent_server_times_out_once():
    r, net, clock = run(lambda req, dst, mono: [], timeout_ms=700)
    assert r.error == exchange.TIMEOUT and len(net.sent) == 1
    assert 700_000 <= clock.mono_us < 710_000


def test_kod_with_zero_timestamps_sets_nothing():
    def respond(req, dst, mono):
        return [
            (9_000, reply(req[40:48], 0, 0, stratum=0, refid=b"RATE", rx=0, tx=0, ref=0), SERVER)
        ]

    r, _, _ = run(respond)
    assert r.error == exchange.KISS and r.kiss == "RATE" and r.offset_us is None


def test_exchange_across_a_ticks_wrap():
    clock = FakeClock(START, ticks_start=(1 << 30) - 5_000)  # wraps 5 ms after the send
    r, _, _ = run(honest(START, delay_us=30_000), clock)
    assert r.ok and r.delay_us == 30_000 and abs(r.offset_us) <= 1


def test_wall_clock_step_during_the_exchange_does_not_corrupt_t4():
    clock = FakeClock(START)

    def respond(req, dst, mono):
        clock.step(-3_600_000_000)  # someone sets the RTC an hour back meanwhile
        return honest(START)(req, dst, mono)

    r, _, _ = run(respond, clock)
    assert r.ok and r.delay_us == 20_000 and abs(r.offset_us) <= 1


def test_unresolvable_name():
    r, net, _ = run(honest(START), host="nowhere.example")
    assert r.error == client.RESOLVE and "nowhere.example" in r.detail
    assert net.sent == [] and net.sockets == 0


def test_timeout_is_clamped_to_the_ticks_safe_maximum():
    r, _, clock = run(lambda req, dst, mono: [], timeout_ms=10_000_000)
    assert r.error == exchange.TIMEOUT
    assert clock.mono_us <= client.MAX_TIMEOUT_MS * 1000 + 10_000
