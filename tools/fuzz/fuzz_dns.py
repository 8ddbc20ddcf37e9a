#!/usr/bin/env python3
"""The coverage-guided fuzz target of the DNS answer parser (sntp.dns; atheris / libFuzzer).

Each input is one datagram, judged against a fixed A question and a fixed AAAA question
(dns.answer), and handed to a lookup in flight (a Resolver with a fake socket) first from
another address, then from the server asked. A crash is any exception escaping the firmware,
or:
  - an answer taken that does not carry our ID, QR set and opcode 0, and our question (name
    in any case, type, class), which this file checks on its own;
  - an address given that is not the rdata of a record of the type asked, of class IN, in the
    answer section; more than 8 addresses;
  - a datagram from another address that changes the lookup, or one from the server that the
    lookup neither takes nor counts as dropped;
  - a reason that is not one of the parser's.
A loop is a libFuzzer timeout (-timeout=10 in tools/fuzz/run.py).

    tools/fuzz/run.py --target dns --seconds 60     # what `make fuzz` runs (after the replies)
    .venv/bin/python tools/fuzz/fuzz_dns.py --seeds tools/fuzz/corpus-dns   # write the seeds
    .venv/bin/python tools/fuzz/fuzz_dns.py --replay FILE_OR_DIR...         # without atheris
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")]

import dnswire  # noqa: E402 - the seeds' builder, not under test
import fuzz_replies  # noqa: E402
from fuzz_replies import Violation  # noqa: E402

HOST = "0.acme.pool.ntp.org"
QID_A, QID_AAAA = 0x1234, 0xBEEF
SERVER = ("192.0.2.53", 53)
OTHER = ("192.0.2.54", 53)


def _load_firmware():
    global dns, Address, REASONS, QUERIES
    from sntp import dns
    from sntp.net import Address

    REASONS = {dns.SHORT, dns.WRONG_ID, dns.NOT_ANSWER, dns.WRONG_QUESTION, dns.MALFORMED}
    REASONS |= {dns.NXDOMAIN, dns.SERVFAIL, dns.REFUSED, dns.RCODE, dns.TRUNCATED}
    QUERIES = [dns.question(HOST, dnswire.A, QID_A), dns.question(HOST, dnswire.AAAA, QID_AAAA)]
    # the lookup's IDs are the fixed questions' (Resolver._start draws the A's, then the
    # AAAA's as the A's plus 1 plus a draw below 65535)
    dns.random_below = lambda n: QID_A if n == 65536 else (QID_AAAA - QID_A - 1) & 0xFFFF


class FakeSock:
    def bind_random(self):
        return 50000

    def send(self, data, sockaddr):
        pass

    def close(self):
        pass


def _resolver():
    class R(dns.Resolver):
        def udp(self, family, size=None):
            return FakeSock()

        def address(self, ip, port):  # getaddrinfo's work for an IP address, without it
            return [Address(2, (ip, port), (ip, port))]

    return R(SERVER, 1_000, True)


def _name_at(msg, off):
    """(lower-cased labels, offset after the name) reading msg on its own; None if bad
    (a label over 63, a pointer that does not point backwards, past the end)."""
    labels, end, seen = [], None, 0
    while seen < 128:
        seen += 1
        if off >= len(msg):
            return None
        n = msg[off]
        if n >= 0xC0:
            if off + 1 >= len(msg):
                return None
            end = off + 2 if end is None else end
            to = ((n & 0x3F) << 8) | msg[off + 1]
            if to >= off:
                return None  # RFC 1035 4.1.4: a pointer to a prior occurrence only
            off = to
            continue
        if n > 63:
            return None
        if n == 0:
            return labels, off + 1 if end is None else end
        labels.append(bytes(msg[off + 1 : off + 1 + n]).lower())
        off += 1 + n
    return None


def _rdatas(msg, qtype):
    """The rdata of every record of type qtype, class IN, among the answer records that can be
    read (any owner: the oracle is looser than the parser, never stricter)."""
    out, off = [], 12
    got = _name_at(msg, off)
    if got is None:
        return out
    off = got[1] + 4
    for _ in range(struct.unpack_from("!H", msg, 6)[0]):
        got = _name_at(msg, off)
        if got is None or got[1] + 10 > len(msg):
            break
        off = got[1]
        rtype, rclass, _, rlen = struct.unpack_from("!HHIH", msg, off)
        off += 10
        if rtype == qtype and rclass == 1:
            out.append(bytes(msg[off : off + rlen]))
        off += rlen
    return out


def _check_taken(data, q, got):
    """The parser gave addresses (got): they must come from an answer to q."""
    if len(got) > 8:
        raise Violation("{} addresses".format(len(got)))
    if data[:2] != q[:2] or not data[2] & 0x80 or data[2] & 0x78:
        raise Violation("taken without our ID, QR or opcode 0")
    mine, theirs = _name_at(q, 12), _name_at(data, 12)
    if theirs is None or theirs[0] != mine[0] or data[theirs[1] : theirs[1] + 4] != q[-4:]:
        raise Violation("taken for another question")
    if data[3] & 15 or data[2] & 2:
        raise Violation("taken with rcode {} or TC".format(data[3] & 15))
    qtype = q[-3]
    rd = _rdatas(data, qtype)
    for ip in got:
        if qtype == dnswire.A:
            raw = bytes(int(x) for x in ip.split("."))
        else:
            raw = b"".join(struct.pack("!H", int(x, 16)) for x in ip.split(":"))
        if raw not in rd:
            raise Violation("address {} is in no record of the answer".format(ip))


def one_input(data):
    """libFuzzer's TestOneInput: bytes in; an exception is a crash."""
    verdicts = []
    for q in QUERIES:
        got = dns.answer(data, q)
        if isinstance(got, list):
            _check_taken(data, q, got)
            verdicts.append("answer {}".format(len(got)))
        elif got in REASONS:
            verdicts.append(got)
        else:
            raise Violation("unknown verdict {!r}".format(got))
    # a lookup in flight: from another address nothing changes; from the server it is taken
    # by a query or counted as dropped, never both, never neither
    res = _resolver()
    res.start(HOST)
    res.judge((data, OTHER))
    if res.got != [None, None] or res.dropped != {dns.WRONG_SOURCE: 1}:
        raise Violation("a datagram from another address changed the lookup")
    res.judge((data, SERVER))
    taken = len([g for g in res.got if g is not None])
    dropped = sum(res.dropped.values()) - 1
    if taken + dropped != 1:
        raise Violation("taken by {} queries and dropped {} times".format(taken, dropped))
    try:
        if not res.result(HOST, 123):
            raise Violation("an empty result")
    except dns.NetError:
        pass
    return " ".join(verdicts)


def pointer_forward(q):
    """An answer whose A record's owner is a pointer forward to the question's name, written
    out as the data of the CNAME record after it; ANCOUNT 2."""
    tail = dnswire.rr(dnswire.name("x"), dnswire.CNAME, dnswire.name(HOST))
    at = len(q) + 2 + 10 + 4 + len(tail) - len(dnswire.name(HOST))
    msg = dnswire.reply(q, [dnswire.rr(dnswire.pointer(at), 1, b"1234"), tail])
    return msg


def seeds():
    """{file name: datagram}: answers to the A question, good and broken in the named ways."""
    q = bytes(dns.question(HOST, dnswire.A, QID_A))
    q6 = bytes(dns.question(HOST, dnswire.AAAA, QID_AAAA))
    at = dnswire.QNAME_AT
    a = dnswire.rr(at, dnswire.A, dnswire.ipv4("192.0.2.7"))
    cname = dnswire.rr(at, dnswire.CNAME, dnswire.name("x.example"))
    x_a = dnswire.rr(dnswire.name("x.example"), dnswire.A, dnswire.ipv4("192.0.2.8"), 0)
    return {
        "a.bin": dnswire.reply(q, [a, dnswire.rr(at, dnswire.A, dnswire.ipv4("192.0.2.9"))]),
        "aaaa.bin": dnswire.reply(q6, [dnswire.rr(at, dnswire.AAAA, bytes(range(16)))]),
        "nodata.bin": dnswire.reply(q),
        "cname-chain-ttl0.bin": dnswire.reply(q, [cname, x_a]),
        "cname-loop.bin": dnswire.reply(
            q, [cname, dnswire.rr(dnswire.name("x.example"), dnswire.CNAME, dnswire.name(HOST))]
        ),
        "pointer-loop.bin": dnswire.reply(q, [dnswire.rr(dnswire.pointer(len(q)), 1, b"1234")]),
        "pointer-forward.bin": dnswire.reply(q, [dnswire.rr(dnswire.pointer(200), 1, b"1234")]),
        # an owner pointing forward to a good copy of the name (a CNAME's data): the tests
        # found the parser taking it (an owner was not checked on its own), fixed since
        "pointer-forward-to-name.bin": pointer_forward(q),
        "count-lies.bin": dnswire.reply(q, [a])[:7] + b"\x09" + dnswire.reply(q, [a])[8:],
        "truncated.bin": dnswire.reply(q, [a])[:-3],
        "tc.bin": dnswire.reply(q, [a], flags=0x8380),
        "nxdomain.bin": dnswire.reply(q, rcode=3),
        "servfail.bin": dnswire.reply(q, rcode=2),
        "label-64.bin": dnswire.reply(q, [dnswire.rr(b"\x40" + b"x" * 64 + b"\x00", 1, b"1234")]),
        "name-300.bin": dnswire.reply(
            q, [dnswire.rr(b"".join(b"\x3f" + b"y" * 63 for _ in range(5)) + b"\x00", 1, b"1234")]
        ),
        "wrong-class.bin": dnswire.reply(q, [dnswire.rr(at, 1, b"1234", rclass=3), a]),
        "huge-record.bin": dnswire.reply(q, [dnswire.rr(at, 16, b"z" * 400), a]),
        "a-of-5-bytes.bin": dnswire.reply(q, [dnswire.rr(at, 1, b"12345")]),
        "wrong-id.bin": dnswire.reply(q, [a], qid=QID_A ^ 1),
        "wrong-name.bin": dnswire.reply(q, [a], question=dnswire.name("1.acme") + q[-4:]),
    }


def main():
    if sys.argv[1:2] == ["--seeds"]:
        _load_firmware()
        os.makedirs(sys.argv[2], exist_ok=True)
        for n, d in seeds().items():
            with open(os.path.join(sys.argv[2], n), "wb") as f:
                f.write(d)
        return
    fuzz_replies.main(_load_firmware, one_input)


if __name__ == "__main__":
    main()
