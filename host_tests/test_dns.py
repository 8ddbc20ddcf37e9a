# runs-on: both
# The DNS stub resolver (firmware/sntp/dns.py): its query bytes and its answer checks on every
# runtime (the 32-bit one included), then whole lookups over real UDP on 127.0.0.1 with the DNS
# server as another task of the same event loop: if a lookup blocked the loop, the server
# could never answer. The answers are built by tools/dnswire.py, not by the firmware.
import asyncio
import select

import dnswire
from dnswire import AAAA, CNAME, QNAME_AT, A, ipv4, name, pointer, reply, rr

from sntp import aio, compat, dns
from sntp.net import NetError

HOST = "0.acme.pool.ntp.org"


def q_a(qid=0x1234, host=HOST, qtype=A):
    return dns.question(host, qtype, qid)


def test_the_query_is_a_standard_recursive_question_byte_for_byte():
    q = dns.question("0.Acme.pool.ntp.org.", A, 0xBEEF)
    assert q[:12] == bytes([0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])  # ID, RD, QDCOUNT 1
    assert q[12:] == name("0.Acme.pool.ntp.org") + bytes([0, 1, 0, 1])  # QTYPE A, QCLASS IN
    assert dns.question("x", AAAA, 1)[-4:] == bytes([0, 28, 0, 1])


def test_names_that_cannot_be_asked_are_refused():
    for bad in ("", ".", "a..b", "x" * 64 + ".acme", ".".join(["abcdefg"] * 40)):
        try:
            dns.question(bad, A, 1)
        except ValueError:
            continue
        raise AssertionError("asked for " + repr(bad))
    assert len(dns.question("x" * 63 + ".acme", A, 1)) == 12 + 70 + 4


def test_a_matching_answer_gives_its_addresses_in_order():
    q = q_a()
    msg = reply(q, [rr(QNAME_AT, A, ipv4("192.0.2.7")), rr(QNAME_AT, A, ipv4("192.0.2.9"), 0)])
    assert dns.answer(msg, q) == ["192.0.2.7", "192.0.2.9"]  # a zero TTL is still an answer
    assert dns.answer(reply(q), q) == []  # no record of that type (NODATA)
    q6 = q_a(qtype=AAAA)
    six = bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1])
    assert dns.answer(reply(q6, [rr(QNAME_AT, AAAA, six)]), q6) == ["2001:db8:0:0:0:0:0:1"]
    # the question's name in another case is the same name (RFC 4343)
    upper = reply(q, [rr(QNAME_AT, A, ipv4("192.0.2.7"))], question=name(HOST.upper()) + q[-4:])
    assert dns.answer(upper, q) == ["192.0.2.7"]


def test_answers_to_another_question_are_dropped():
    q = q_a()
    good = [rr(QNAME_AT, A, ipv4("192.0.2.66"))]
    cases = {
        dns.SHORT: q[:11],
        dns.WRONG_ID: reply(q, good, qid=0x1235),
        dns.NOT_ANSWER: reply(q, good, flags=0x0100),  # QR clear: a query, not an answer
        "opcode": reply(q, good, flags=0x8980),  # opcode 1
        "qname": reply(q, good, question=name("1.acme.pool.ntp.org") + q[-4:]),
        "qname-prefix": reply(q, good, question=name("0.acme.pool.ntp") + q[-4:]),
        "qtype": reply(q, good, question=name(HOST) + bytes([0, 28, 0, 1])),
        "qclass": reply(q, good, question=name(HOST) + bytes([0, 1, 0, 3])),
    }
    for what, msg in cases.items():
        why = dns.answer(msg, q)
        assert isinstance(why, str), (what, why)
        if what in (dns.SHORT, dns.WRONG_ID, dns.NOT_ANSWER):
            assert why == what, (what, why)
        elif what == "opcode":
            assert why == dns.NOT_ANSWER
        else:
            assert why == dns.WRONG_QUESTION, (what, why)


def test_error_codes_are_final_reasons():
    q = q_a()
    for rcode, why in ((3, dns.NXDOMAIN), (2, dns.SERVFAIL), (5, dns.REFUSED), (4, dns.RCODE)):
        assert dns.answer(reply(q, rcode=rcode), q) == why
    assert dns.answer(reply(q, flags=0x8380), q) == dns.TRUNCATED


def test_cname_chains_are_followed_within_the_answer_only():
    q = q_a()
    # 0.acme -> a.example -> b.example -> 192.0.2.5, in the answer's order (as glibc reads it)
    a_ex, b_ex = name("a.example"), name("b.example")
    chain = [
        rr(QNAME_AT, CNAME, a_ex),
        rr(name("other.example"), A, ipv4("192.0.2.66")),  # not on the chain: never used
        rr(a_ex, CNAME, b_ex),
        rr(b_ex, A, ipv4("192.0.2.5")),
    ]
    assert dns.answer(reply(q, chain), q) == ["192.0.2.5"]
    # out of order: the address comes before the link to its name, and is not taken
    assert dns.answer(reply(q, chain[3:] + chain[:3]), q) == []
    # a chain that ends without an address: no address (the server is not asked again)
    assert dns.answer(reply(q, [rr(QNAME_AT, CNAME, a_ex)]), q) == []
    # a loop, and a chain longer than the limit: malformed, dropped
    loop = [rr(QNAME_AT, CNAME, a_ex), rr(a_ex, CNAME, name(HOST))] * 5
    assert dns.answer(reply(q, loop), q) == dns.MALFORMED
    chain = [rr(QNAME_AT, CNAME, name("c0.example"))]
    for i in range(12):
        chain.append(rr(name("c{}.example".format(i)), CNAME, name("c{}.example".format(i + 1))))
    chain.append(rr(name("c12.example"), A, ipv4("192.0.2.5")))
    assert dns.answer(reply(q, chain), q) == dns.MALFORMED


def test_records_of_another_type_or_class_are_skipped():
    q = q_a()
    msg = reply(
        q,
        [
            rr(QNAME_AT, 16, b"\x05hello"),  # TXT
            rr(QNAME_AT, A, ipv4("192.0.2.66"), rclass=3),  # class CHAOS
            rr(QNAME_AT, AAAA, bytes(16)),
            rr(QNAME_AT, A, ipv4("192.0.2.7")),
        ],
    )
    assert dns.answer(msg, q) == ["192.0.2.7"]


def test_malformed_answers_are_dropped_and_never_raise():
    q = q_a()
    ok = reply(q, [rr(QNAME_AT, A, ipv4("192.0.2.7"))])
    hdr = ok[:6]
    cases = [
        ok[:-1],  # the last record cut short
        hdr + bytes([0, 2, 0, 0, 0, 0]) + ok[12:],  # ANCOUNT 2, one record: a count that lies
        reply(q, [rr(QNAME_AT, A, ipv4("192.0.2.7") + b"\x00")]),  # an A of 5 bytes
        reply(q, [rr(QNAME_AT, AAAA, bytes(4))]),  # an AAAA of 4
        reply(q, [rr(pointer(len(ok) + 40), A, ipv4("192.0.2.66"))]),  # a forward pointer
        reply(q, [rr(QNAME_AT, CNAME, b"\x40abc\x00")]),  # a label type 0x40
        reply(q, [rr(QNAME_AT, CNAME, name("x") + b"junk")]),  # a CNAME with bytes after it
        reply(q, [rr(QNAME_AT, A, ipv4("192.0.2.7"))[:-6] + b"\xff\xff" + ipv4("192.0.2.7")]),
        reply(q, [rr(QNAME_AT, 16, b"z" * 460), rr(QNAME_AT, A, ipv4("192.0.2.7"))]),  # > 512
    ]
    for msg in cases:
        assert dns.answer(msg, q) == dns.MALFORMED, msg
    # a pointer forward, to a good copy of the name later in the message (a CNAME's data)
    ans = rr(pointer(0), A, ipv4("192.0.2.66")) + rr(name("x"), CNAME, name(HOST))
    fwd = len(q) + len(ans) - len(name(HOST))
    ans = rr(pointer(fwd), A, ipv4("192.0.2.66")) + rr(name("x"), CNAME, name(HOST))
    assert dns.answer(reply(q, [ans])[:6] + b"\x00\x02" + reply(q, [ans])[8:], q) == dns.MALFORMED
    # a pointer to itself and a pair pointing at each other: never loop
    at = len(q)
    assert dns.answer(reply(q, [rr(pointer(at), A, ipv4("192.0.2.66"))]), q) == dns.MALFORMED
    pair = reply(q, [rr(b"\x01a" + pointer(at), A, ipv4("192.0.2.66"))])
    assert dns.answer(pair, q) == dns.MALFORMED  # a.(a.(a...: over 255 bytes, then malformed
    # a question whose name is a label over 63 bytes, or a name over 255 bytes
    long_label = bytes([64]) + b"x" * 64 + b"\x00"
    assert dns.answer(reply(q, question=long_label + q[-4:]), q) == dns.WRONG_QUESTION
    huge = b"".join(bytes([63]) + b"x" * 63 for _ in range(5)) + b"\x00"
    assert dns.answer(reply(q, question=huge + q[-4:]), q) == dns.WRONG_QUESTION
    # every prefix of a long answer, and every byte flipped: an answer or a reason
    chain = [rr(QNAME_AT, CNAME, name("a.example")), rr(name("a.example"), A, b"1234")]
    long_ans = reply(q, chain)
    for n in range(len(long_ans)):
        assert dns.answer(long_ans[:n], q) is not None
    for i in range(len(long_ans)):
        b = bytearray(long_ans)
        b[i] ^= 0xFF
        got = dns.answer(bytes(b), q)
        assert isinstance(got, str) or (isinstance(got, list) and len(got) <= 1), got


# ---- whole lookups against a loopback DNS server (a task of the same loop) ------------------
def bind_loopback():
    from test_aio import bind_loopback as bind

    return bind()


async def serve(sock, log, answer, n=None):
    """Read queries, log (id, qname, qtype, source) and send what answer(q, source) gives:
    a datagram, a list of (datagram, socket to send it from), or None (no answer)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while n is None or len(log) < n:
        if not poller.poll(0):
            await aio.sleep_ms(1)
            continue
        q, source = sock.recvfrom(512)
        log.append(dnswire.query_of(q) + (source,))
        out = answer(q, source)
        for item in out if isinstance(out, list) else [(out, sock)]:
            if item[0] is not None:
                item[1].sendto(item[0], source)


async def tick(gaps, stop):
    """A 10 ms ticker; gaps gets the longest wait between its turns, in ms."""
    t = compat.ticks_ms()
    while not stop:
        await aio.sleep_ms(10)
        now = compat.ticks_ms()
        gaps.append(compat.ticks_diff(now, t))
        t = now


async def lookup_beside(answer, host=HOST, timeout_ms=2_000, ipv6=False, spoof=None):
    sock, port = bind_loopback()
    log, gaps, stop = [], [], []
    res = dns.Resolver(("127.0.0.1", port), timeout_ms, ipv6)
    try:
        server = asyncio.create_task(serve(sock, log, answer))
        ticker = asyncio.create_task(tick(gaps, stop))
        t0 = compat.ticks_ms()
        try:
            got = await res.resolve_async(host, 123, aio.sleep_ms)
        except NetError as e:
            got = e
        took = compat.ticks_diff(compat.ticks_ms(), t0)
        stop.append(1)
        await ticker
        server.cancel()
        try:
            await server
        except asyncio.CancelledError:
            pass
    finally:
        sock.close()
    return got, log, res, took, max(gaps) if gaps else 0


def test_a_lookup_waits_for_its_answer_without_blocking_the_loop():
    def answer(q, source):
        return dnswire.addresses(q, ["127.0.0.2", "127.0.0.8"])

    got, log, res, took, gap = asyncio.run(lookup_beside(answer))
    assert [a.key for a in got] == [("127.0.0.2", 123), ("127.0.0.8", 123)]
    assert [(x[1], x[2]) for x in log] == [(HOST, A)] and res.dropped == {}
    assert gap < 50  # 10 ms ticks went on: loopback, with room for a slow machine


def test_a_and_aaaa_go_out_together_with_different_ids_from_a_random_port():
    ports, ids = set(), set()
    for _ in range(3):
        got, log, res, took, gap = asyncio.run(
            lookup_beside(lambda q, s: dnswire.addresses(q, ["127.0.0.2"]), ipv6=True)
        )
        assert sorted(x[2] for x in log) == [A, AAAA] and log[0][0] != log[1][0]
        assert [a.key for a in got] == [("127.0.0.2", 123)]
        ids.update(x[0] for x in log)
        ports.add(bytes(log[0][3]) if not isinstance(log[0][3], tuple) else log[0][3][1])
    assert len(ids) == 6 and len(ports) == 3


def test_spoofs_racing_the_server_are_dropped_and_counted():
    other, _ = bind_loopback()  # answers from another port: not the server asked

    def answer(q, source):
        evil = [rr(QNAME_AT, A, ipv4("127.0.0.66"))]
        qid = dnswire.query_of(q)[0]
        return [
            (reply(q, evil), other),
            (reply(q, evil, qid=qid ^ 1), None),
            (reply(q, evil, question=name("evil.example") + q[-4:]), None),
            (reply(q, evil, flags=0x0100), None),
            (reply(q, evil)[:-2], None),
            (dnswire.addresses(q, ["127.0.0.2"]), None),
            (reply(q, evil), None),  # a duplicate after the answer: the first one stands
        ]

    def send(q, source):
        return [(d, s if s is not None else sock_box[0]) for d, s in answer(q, source)]

    sock_box = []

    async def run():
        sock, port = bind_loopback()
        sock_box.append(sock)
        log = []
        res = dns.Resolver(("127.0.0.1", port), 1_000, False)
        server = asyncio.create_task(serve(sock, log, send))
        try:
            got = await res.resolve_async(HOST, 123, aio.sleep_ms)
            await aio.sleep_ms(20)  # the duplicate arrives
        finally:
            server.cancel()
            try:
                await server
            except asyncio.CancelledError:
                pass
            sock.close()
        return got, res

    try:
        got, res = asyncio.run(run())
    finally:
        other.close()
    assert [a.key for a in got] == [("127.0.0.2", 123)]
    d = res.dropped
    assert d.get(dns.WRONG_SOURCE) == 1 and d.get(dns.WRONG_ID) == 1, d
    assert d.get(dns.WRONG_QUESTION) == 1 and d.get(dns.NOT_ANSWER) == 1, d
    assert d.get(dns.MALFORMED) == 1, d


def test_a_silent_server_is_asked_again_then_the_lookup_fails_in_its_bound():
    got, log, res, took, gap = asyncio.run(lookup_beside(lambda q, s: None, timeout_ms=1_500))
    assert isinstance(got, NetError) and got.reason == "resolve" and "timeout" in got.message
    assert 1_500 <= took < 1_700, took
    assert len(log) == 2 and log[0][0] == log[1][0]  # sent at 0 and 1 s, the same ID
    assert gap < 50, gap


def test_server_errors_end_the_lookup_at_once():
    for rcode, why in ((2, "servfail"), (3, "nxdomain")):
        got, log, res, took, gap = asyncio.run(
            lookup_beside(lambda q, s, rcode=rcode: reply(q, rcode=rcode))
        )
        assert isinstance(got, NetError) and why in got.message, got
        assert took < 500 and len(log) == 1


def test_an_answer_after_a_resend_still_counts():
    seen = []

    def answer(q, source):
        seen.append(1)
        return None if len(seen) == 1 else dnswire.addresses(q, ["127.0.0.4"])

    got, log, res, took, gap = asyncio.run(lookup_beside(answer))
    assert [a.key for a in got] == [("127.0.0.4", 123)] and len(log) == 2
    assert 1_000 <= took < 1_300


def test_ip_addresses_and_unknown_servers_need_no_dns_server():
    res = dns.Resolver(("127.0.0.1", 9), 100, False)  # nothing there: never asked
    assert [a.key for a in res.resolve("127.0.0.3", 123)] == [("127.0.0.3", 123)]


def test_the_asyncio_service_resolves_with_sntp_dns_unless_given_a_net():
    svc = aio.AsyncService({"servers": ["ntp.example"]})
    assert isinstance(svc.net, dns.Resolver) and svc.net.server is None  # the system's server
    assert svc.net.timeout_ms == 5_000  # as an exchange's
    assert aio.AsyncService({"servers": ["x.example"]}, timeout_ms=700).net.timeout_ms == 700
    from sntp.net import Net

    net = Net()
    assert aio.AsyncService({"servers": ["ntp.example"]}, net=net).net is net


def test_the_blocking_service_with_the_resolver_waits_no_longer_than_its_bound():
    from sntp.service import Service

    sock, port = bind_loopback()  # a DNS server that never answers
    try:
        res = dns.Resolver(("127.0.0.1", port), 300, False)
        t0 = compat.ticks_ms()
        try:
            res.resolve(HOST, 123)
            raise AssertionError("resolved")
        except NetError as e:
            assert "timeout" in e.message
        took = compat.ticks_diff(compat.ticks_ms(), t0)
        assert 300 <= took < 500, took
        svc = Service({"servers": [HOST]}, net=res, timeout_ms=300)
        t0 = compat.ticks_ms()
        s = svc.sync(svc.now_ms() + 5_000)
        took = compat.ticks_diff(compat.ticks_ms(), t0)
        assert not s["ok"] and s["error"] == "resolve" and "timeout" in s["detail"], s
        assert took < 1_000, took  # one lookup of 300 ms, then the policy's DNS backoff
        got = 0
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while poller.poll(0):
            sock.recvfrom(512)
            got += 1
        assert got == 2, got  # one query for each lookup: no resend within 300 ms
    finally:
        sock.close()


def test_the_dns_server_is_the_one_the_network_gave():
    import sys

    class WLAN:
        def __init__(self, iface):
            pass

        def ifconfig(self):
            return ("192.0.2.7", "255.255.255.0", "192.0.2.1", dns_ip[0])

    class Network:  # a board's network module: nothing is sent, only asked
        STA_IF = 0

    def ipconfig(key):
        assert key == "dns"
        return dns_ip[0]

    dns_ip = ["192.0.2.53"]
    net = Network()
    net.WLAN = WLAN
    saved = sys.modules.get("network")
    sys.modules["network"] = net
    try:
        assert dns.system_server() == "192.0.2.53"  # the interface's, older MicroPython
        net.ipconfig = ipconfig
        assert dns.system_server() == "192.0.2.53"  # network.ipconfig("dns"), 1.23 and later
        dns_ip[0] = "0.0.0.0"  # no DHCP lease yet: none known, getaddrinfo's turn
        assert dns.system_server() is None
        dns_ip[0] = "fe80::1%wlan0"  # a scoped address: not one to send to
        assert dns.system_server() is None
    finally:
        if saved is None:
            sys.modules.pop("network", None)
        else:
            sys.modules["network"] = saved
