# runs-on: both
# Every reply check of the core, with its named reason (rules 5 and 6).
import gc
import sys

from fakes import ERA_ROLLOVER_UNIX, NTP_1970, NTP_2000, SERVER, ntp64, reply

from sntp import exchange as ex
from sntp.timestamp import ERA_PIVOT_NTP_S

NONCE = b"\x10\x20\x30\x40\x50\x60\x70\x80"
T1 = 1_800_000_000_000_000  # local send time, Unix us (2027)
OFFSET = 2_500_000  # the server is 2.5 s ahead
RTT = 40_000


def new(t1=T1, epoch_s=NTP_1970):
    return ex.Exchange(SERVER, NONCE, t1, epoch_s)


def good(**fields):
    """An honest reply to NONCE: server clock = local + OFFSET, 40 ms round trip."""
    t2 = T1 + OFFSET + RTT // 2
    return reply(NONCE, t2, t2 + 100, **fields)


T4 = T1 + RTT + 100


def final(data, source=SERVER, t4=T4):
    e = new()
    r = e.receive(data, source, t4)
    assert r is not None, "expected a final result, got ignored: {}".format(e.ignored)
    return r


def test_honest_reply_gives_offset_and_delay():
    r = final(good())
    assert r.ok and r.error is None
    assert r.offset_us == OFFSET
    assert r.delay_us == RTT
    assert r.t1_us == T1 and r.t4_us == T4
    assert r.t3_us == T1 + OFFSET + RTT // 2 + 100


def test_offset_sign_local_ahead_is_negative():
    t2 = T1 - 7_000_000 + RTT // 2
    r = final(reply(NONCE, t2, t2 + 100))
    assert r.ok and r.offset_us == -7_000_000


def test_ignored_datagrams_keep_the_exchange_open():
    e = new()
    assert e.receive(good(), ("192.0.2.99", 123), T4) is None  # another address
    assert e.receive(good(), (SERVER[0], 124), T4) is None  # another port
    assert e.receive(good()[:47], SERVER, T4) is None
    assert e.receive(b"", SERVER, T4) is None
    assert e.receive(reply(b"\x00" * 8, T1, T1), SERVER, T4) is None  # zero origin
    assert e.receive(reply(b"\x10\x20\x30\x40\x50\x60\x70\x81", T1, T1), SERVER, T4) is None
    assert e.ignored == {"wrong-source": 2, "short": 2, "bad-origin": 2}
    r = e.receive(good(), SERVER, T4)  # the real reply still wins
    assert r.ok and r.offset_us == OFFSET
    assert e.receive(good(), SERVER, T4) is None  # and a duplicate after it is ignored
    assert e.ignored["duplicate"] == 1


def test_a_reply_longer_than_a_header_and_a_mac_is_not_ours():
    mac = b"\x00\x00\x00\x01" + b"\xaa" * 20  # key ID and a SHA-1 digest: the most accepted
    assert len(good() + mac) == ex.MAX_REPLY_LEN == 72
    r = final(good() + mac)
    assert r.ok and r.offset_us == OFFSET  # the bytes after the header are not looked at
    e = new()
    for extra in (mac + b"\x00", mac + bytes(100)):  # one byte more: cut where net cuts, or not
        assert e.receive(good() + extra, SERVER, T4) is None  # never judged on its header
    assert e.ignored == {"long": 2}
    assert e.expire().error == ex.LONG  # nothing else came: the last kind ignored
    e = new()
    e.receive(good() + mac + b"\x00", SERVER, T4)
    assert e.receive(good(), SERVER, T4).ok  # the real reply after it still counts


def test_expire_names_the_last_kind_of_ignored_datagram():
    e = new()
    assert e.expire().error == ex.TIMEOUT
    e = new()
    e.receive(reply(b"\x00" * 8, T1, T1), SERVER, T4)
    assert e.expire().error == ex.BAD_ORIGIN
    e = new()
    e.receive(good(), ("192.0.2.99", 123), T4)
    assert e.expire().error == ex.WRONG_SOURCE


def test_each_final_check_has_its_reason():
    cases = [
        (good(mode=3), ex.BAD_MODE),
        (good(mode=5), ex.BAD_MODE),
        (good(vn=2), ex.BAD_VERSION),
        (good(vn=5), ex.BAD_VERSION),
        (good(li=3), ex.UNSYNCHRONIZED),
        (good(stratum=16), ex.UNSYNCHRONIZED),
        (good(stratum=200), ex.UNSYNCHRONIZED),
        (good(rx=0), ex.ZERO_TIMESTAMP),
        (good(tx=0), ex.ZERO_TIMESTAMP),
        (good(ref=0), ex.NO_REFERENCE),
        (good(root_disp=0x00018001), ex.TOO_FAR),  # 1.500015 s
        (good(root_delay=0x00030002), ex.TOO_FAR),  # 3.00003 s / 2
        (reply(NONCE, T1 + 2_000_000, T1 + 1_000_000), ex.BAD_TIMESTAMPS),  # tx before rx
        (reply(NONCE, T1, T1 + RTT + 5_000), ex.BAD_TIMESTAMPS),  # server longer than trip
    ]
    for data, reason in cases:
        r = final(data)
        assert not r.ok and r.error == reason, (reason, r.error)
        assert r.offset_us is None


def test_transmit_a_fraction_of_a_microsecond_before_receive_is_rejected():
    # Found by host_tests/test_fuzz_replies.py: compared after rounding both to microseconds,
    # a transmit timestamp less than 1 us before the receive timestamp passed (rule 6).
    rx = ntp64(T1 + OFFSET + RTT // 2) + 2000  # 2**-32 s units: about 0.47 us past the us
    for back in (1, 1000, 1999):  # 0.23 ns to 0.47 us before the receive
        r = final(good(rx=rx, tx=rx - back))
        assert not r.ok and r.error == ex.BAD_TIMESTAMPS, back
        assert r.offset_us is None
    assert final(good(rx=rx, tx=rx)).ok  # no processing time at all is fine


def test_root_distance_at_the_limit_passes():
    r = final(good(root_delay=0x00010000, root_disp=0x00010000))  # 0.5 + 1.0 = 1.5 s
    assert r.ok and r.root_distance_us == 1_500_000


def test_version_3_is_accepted():
    assert final(good(vn=3)).ok


def test_kod_with_zero_timestamps_is_a_kiss_never_a_time():
    # The 1900 incident: LI 0, stratum 0, RATE, zero receive/transmit/reference timestamps.
    r = final(reply(NONCE, 0, 0, li=0, stratum=0, refid=b"RATE", rx=0, tx=0, ref=0))
    assert not r.ok and r.error == ex.KISS and r.kiss == "RATE"
    assert r.offset_us is None and r.t3_us is None and r.t2_us is None


def test_ntpsec_style_kod_passes_origin_and_is_still_a_kiss():
    n = int.from_bytes(NONCE, "big")
    for code in (b"RATE", b"DENY", b"RSTR", b"XFOO"):
        r = final(reply(NONCE, 0, 0, li=3, stratum=0, refid=code, rx=n, tx=n, ref=0))
        assert r.error == ex.KISS and r.kiss == code.decode()
        assert r.offset_us is None


def test_spoofed_kod_is_ignored():
    e = new()
    spoof = reply(b"\x99" * 8, 0, 0, stratum=0, refid=b"DENY", rx=0, tx=0, ref=0)
    assert e.receive(spoof, SERVER, T4) is None
    assert e.receive(good(), SERVER, T4).ok


def test_server_after_the_era_rollover_decodes_after_2036():
    t1 = ERA_ROLLOVER_UNIX * 1_000_000 - 1_000_000  # one second before the rollover
    e = ex.Exchange(SERVER, NONCE, t1, NTP_1970)
    t2 = t1 + 2_000_000  # the server is already in era 1
    data = reply(NONCE, t2, t2 + 100)
    assert (int.from_bytes(data[40:44], "big")) < 10  # tiny wire seconds
    r = e.receive(data, SERVER, t1 + 1_000)
    assert r.ok
    assert r.t3_us == t2 + 100
    assert 1_999_000 < r.offset_us < 2_000_100


def test_a_2000_epoch_port_gets_the_same_offset():
    base = T1 - 946684800 * 1_000_000  # the same instant, us since 2000
    for epoch_s, t1 in ((NTP_1970, T1), (NTP_2000, base)):
        e = ex.Exchange(SERVER, NONCE, t1, epoch_s)
        r = e.receive(good(), SERVER, t1 + RTT + 100)
        assert r.ok and r.offset_us == OFFSET and r.delay_us == RTT
        assert r.t3_us - t1 == OFFSET + RTT // 2 + 100


def test_invalid_local_clock_still_measures_a_large_offset():
    # A board that booted at its epoch (2000-01-01) has a clock 27 years behind.
    e = ex.Exchange(SERVER, NONCE, 0, NTP_2000, ERA_PIVOT_NTP_S)
    t2 = T1
    r = e.receive(reply(NONCE, t2, t2 + 100), SERVER, RTT + 100)
    assert r.ok
    assert r.offset_us > 26 * 365 * 86400 * 1_000_000


def test_any_bytes_never_raise():
    import random

    rnd = random.Random(7) if hasattr(random, "Random") else None
    for n in range(0, 120):
        for k in range(8):
            if rnd is not None:
                data = bytes(rnd.getrandbits(8) for _ in range(n))
            else:
                data = bytes(random.getrandbits(8) for _ in range(n))
            if n >= 32 and k % 2:  # half of them with our origin, to reach the final checks
                data = data[:24] + NONCE + data[32:]
            e = new()
            r = e.receive(data, SERVER, T4)
            assert r is None or (r.error is None) == r.ok


def test_judging_an_honest_reply_allocates_little_on_a_32_bit_port():
    # On a 32-bit MicroPython (the WebAssembly port of make test-wasm) every time in us and
    # every 64-bit timestamp is a heap object: the checks do the era and us arithmetic in few
    # steps and the fractions in small ints. 1,120 B there now (2,064 B when each timestamp
    # was decoded, era-resolved and converted apart). Elsewhere nothing is measured.
    if sys.implementation.name != "micropython" or sys.maxsize != (1 << 31) - 1:
        return
    data = good()
    e = new()
    gc.collect()
    gc.disable()  # on the WebAssembly port nothing made within a call is freed anyway
    before = gc.mem_alloc()  # type: ignore[attr-defined]
    r = e.receive(data, SERVER, T4)
    used = gc.mem_alloc() - before  # type: ignore[attr-defined]
    gc.enable()
    assert r.ok and r.offset_us == OFFSET
    assert used <= 1_280, used
