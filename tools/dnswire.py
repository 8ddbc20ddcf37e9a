# DNS on the wire for the host tools (RFC 1035): the answers of the test DNS servers
# (host_tests/test_dns.py, tools/stall.py, tools/testnet/dns_relay.py) and the fuzzer's seeds
# (tools/fuzz/fuzz_dns.py). Written apart from firmware/sntp/dns.py, so a bug in the
# firmware's parser cannot hide behind the same code here. Runs on CPython and MicroPython.
import struct

A = 1
CNAME = 5
AAAA = 28
IN = 1
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5


def name(text):
    """A name in wire form, uncompressed: b'\\x01a\\x04acme\\x00' for 'a.acme'."""
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ipv4(text):
    return bytes(int(x) for x in text.split("."))


def rr(owner, rtype, rdata, ttl=60, rclass=IN):
    """One resource record; owner: wire bytes (a name, or a 2-byte compression pointer)."""
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def pointer(offset):
    return struct.pack("!H", 0xC000 | offset)


QNAME_AT = pointer(12)  # the question's name, as servers compress it in their answers


def query_of(q):
    """(id, qname text, qtype) of a query datagram; None if it does not parse."""
    if len(q) < 17:
        return None
    labels, off = [], 12
    while off < len(q) and q[off]:
        n = q[off]
        labels.append(bytes(q[off + 1 : off + 1 + n]).decode())
        off += 1 + n
    if off + 5 > len(q):
        return None
    qid, qtype = struct.unpack("!H", q[0:2])[0], struct.unpack("!H", q[off + 1 : off + 3])[0]
    return qid, ".".join(labels), qtype


def reply(q, answers=(), rcode=NOERROR, qid=None, question=None, flags=0x8180):
    """The answer to query q: its ID (or qid), its question echoed (or question: the bytes
    after the header), the answer records given (bytes each) and the rcode."""
    if qid is None:
        qid = struct.unpack("!H", q[0:2])[0]
    if question is None:
        question = bytes(q[12:])
    head = struct.pack("!HHHHHH", qid, flags | rcode, 1, len(answers), 0, 0)
    return head + question + b"".join(answers)


def addresses(q, ips, ttl=60):
    """A NOERROR answer to q with the A (or AAAA) records of the ips whose family q asks."""
    got = query_of(q)
    if got is None:
        return None
    recs = [rr(QNAME_AT, A, ipv4(ip), ttl) for ip in ips if got[2] == A and ":" not in ip]
    return reply(q, recs)
