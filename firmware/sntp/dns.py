# sntp.dns: a small DNS stub resolver (RFC 1035) so that the asyncio service never blocks its
# event loop on a lookup. An optional package (package-dns.json, manifests/sntp-dns): without it
# the services use getaddrinfo, which blocks the whole interpreter until the port's resolver
# answers or gives up (seconds, when the DNS server is slow or silent).
#
# What it does: A queries (and AAAA where the port has IPv6 and ipv6 is on) over UDP to one
# DNS server: the one the network gave the board (network.ipconfig("dns"), else the Wi-Fi
# interface's ifconfig()[3]; /etc/resolv.conf on unix and CPython), or the one given. With the
# discipline of the NTP exchange (rules 6 and 8):
#   - a random transaction ID per question and a random source port per lookup (net.Udp);
#   - an answer is accepted only from the server asked (address and port) and only when it
#     matches the question: ID, QR and opcode, QNAME (case-insensitive), QTYPE and QCLASS;
#   - anything else is dropped and counted (Resolver.dropped, by reason) and the wait goes
#     on: a spoof or a malformed datagram cannot end a lookup, nor raise, nor give an address;
#   - a bounded wait: a lookup never takes longer than timeout_ms, every try included; the
#     question is sent again (same ID, same port: a late answer to the first send still
#     counts) after _FIRST_TRY_MS, then after twice that, and so on;
#   - CNAME chains are followed within the answer only, in its order (as glibc does; at most
#     _MAX_CNAMES links); the server is never asked for the target of a CNAME again.
# Not done: TCP (a truncated answer is a failure: the pool's answers fit in 512 bytes), EDNS,
# DNSSEC, caching (the policy asks at most hourly, R7 in docs/rules.md), search domains.
# Names that need no DNS server (IP addresses, "localhost") and lookups where no server is
# known go to getaddrinfo, as before.
#
# The parser reads the datagram in place (byte indexing, no slicing): a lookup allocates its
# query bytes, the received datagrams, the address strings and the socket. Every loop over
# the message is bounded by its length: a compression pointer must point backwards into the
# message (never forward, never at itself), and a name longer than 255 bytes is malformed,
# so a looping pointer chain ends there. A message is read in two passes (the bounds of every
# record, then the chain), each comparing a name at most once per record, in a message of at
# most 512 bytes: the worst found (a 250-byte name in each of 16 records) takes 1.4 ms on the
# unix port.
import socket

from .compat import const, random_below, ticks_diff, ticks_ms
from .net import Net, NetError

TIMEOUT_MS = const(5_000)  # a lookup's whole bound, every try included (glibc: 5 s per try)
_FIRST_TRY_MS = const(1_000)  # the first send waits this long, each later one twice as long
_PORT = const(53)
_SLICE_MAX_MS = const(8)  # the longest wait between looks at the socket (as sntp.aio)
_TYPE_A = const(1)
_TYPE_CNAME = const(5)
_TYPE_AAAA = const(28)
_CLASS_IN = const(1)
_HEADER_LEN = const(12)  # ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT: 16 bits each
_QR = const(0x8000)  # flags: a response
_OPCODE = const(0x7800)  # flags: 0 is a standard query
_TC = const(0x0200)  # flags: truncated (we do not retry over TCP)
_RD = const(0x0100)  # flags: recursion desired, the only bit set in our query
_MAX_MESSAGE = const(512)  # RFC 1035 2.3.4: a DNS message over UDP (no EDNS asked)
_MAX_LABEL = const(63)  # RFC 1035 2.3.4
_MAX_NAME = const(255)  # RFC 1035 2.3.4: the whole name on the wire, length bytes included
_MAX_CNAMES = const(8)  # CNAME links followed inside one answer
_MAX_ADDRS = const(8)  # addresses kept per question (the pool hands out 4)

# Why an answer was dropped (the lookup goes on waiting): counted in Resolver.dropped.
WRONG_SOURCE = "wrong-source"  # not from the server asked (address and port)
SHORT = "short"  # shorter than a DNS header
WRONG_ID = "wrong-id"  # the ID of no question of ours
NOT_ANSWER = "not-answer"  # QR clear or another opcode
WRONG_QUESTION = "wrong-question"  # QNAME, QTYPE or QCLASS is not what we asked
MALFORMED = "malformed"  # our question, but a record that does not parse, or a CNAME loop
DUPLICATE = "duplicate"  # another answer to a query answered already
# Why a question failed (final: the server said so); anything else is a list of addresses.
NXDOMAIN = "nxdomain"
SERVFAIL = "servfail"
REFUSED = "refused"
RCODE = "rcode"  # another error code
TRUNCATED = "truncated"
TIMEOUT = "timeout"  # no matching answer within timeout_ms


def question(host, qtype, qid):
    """The query datagram (a bytearray) for host (text), qtype and qid (0..65535).
    ValueError: a bad name."""
    name = host.encode()
    if name.endswith(b"."):
        name = name[:-1]
    if not name or len(name) + 2 > _MAX_NAME:
        raise ValueError("bad name")
    q = bytearray(_HEADER_LEN + len(name) + 6)  # header, length bytes and name, type, class
    q[0], q[1], q[2], q[5] = qid >> 8, qid & 255, _RD >> 8, 1  # QDCOUNT 1
    at = _HEADER_LEN  # where the current label's length byte goes
    for i in range(len(name) + 1):
        if i == len(name) or name[i] == 46:  # "."
            n = _HEADER_LEN + i - at  # the label's length
            if n < 1 or n > _MAX_LABEL:
                raise ValueError("bad name")
            q[at] = n
            at = _HEADER_LEN + i + 1
        else:
            q[_HEADER_LEN + i + 1] = name[i]
    end = len(q) - 4  # after the zero length byte of the root
    q[end + 1], q[end + 3] = qtype, _CLASS_IN  # both below 256
    return q


def _label(msg, off):
    """The offset of the length byte of the label at off, after following compression
    pointers (RFC 1035 4.1.4); -1 when malformed. A pointer must point backwards, past the
    header, so a chain of pointers ends."""
    while off < len(msg):
        b = msg[off]
        if b <= _MAX_LABEL:
            return off if off + b < len(msg) else -1
        if b < 0xC0 or off + 1 >= len(msg):
            return -1  # 0x40 and 0x80: label types nobody uses (RFC 6891 retired them)
        to = ((b & 0x3F) << 8) | msg[off + 1]
        if to >= off or to < _HEADER_LEN:
            return -1
        off = to
    return -1


def _name_end(msg, off):
    """The offset just past the name written at off (a pointer ends it); -1 when malformed."""
    while off < len(msg):
        b = msg[off]
        if b == 0:
            return off + 1
        if b >= 0xC0:
            return off + 2 if off + 2 <= len(msg) else -1
        if b > _MAX_LABEL:
            return -1
        off += 1 + b
    return -1


def _same_name(m1, o1, m2, o2):
    """True when the names at m1[o1] and m2[o2] are equal (ASCII letters in either case);
    False as well when either is malformed or longer than 255 bytes."""
    total = 0
    while True:
        o1 = _label(m1, o1)
        o2 = _label(m2, o2)
        if o1 < 0 or o2 < 0:
            return False
        n = m1[o1]
        total += n + 1
        if n != m2[o2] or total > _MAX_NAME:
            return False
        if n == 0:
            return True
        for i in range(o1 + 1, o1 + n + 1):
            a, b = m1[i], m2[i - o1 + o2]
            if a != b and (a | 0x20 != b | 0x20 or not 97 <= a | 0x20 <= 122):
                return False
        o1 += n + 1
        o2 += n + 1


def _u16(msg, off):
    return (msg[off] << 8) | msg[off + 1]


def _ip_text(msg, off, n):
    if n == 4:
        return "{}.{}.{}.{}".format(msg[off], msg[off + 1], msg[off + 2], msg[off + 3])
    return ":".join("{:x}".format(_u16(msg, off + i)) for i in range(0, 16, 2))


def answer(msg, q):
    """Judge msg (a datagram from the server asked) against our query q (question()'s bytes).

    A list of address texts (empty: the name has no record of that type), a final reason
    (NXDOMAIN, SERVFAIL, REFUSED, RCODE, TRUNCATED), or a reason to drop it and keep waiting
    (SHORT, WRONG_ID, NOT_ANSWER, WRONG_QUESTION, MALFORMED). Never raises on any bytes.
    """
    n = len(msg)
    if n < _HEADER_LEN:
        return SHORT
    if n > _MAX_MESSAGE:
        return MALFORMED  # we ask without EDNS: a server sends 512 bytes at most
    if msg[0] != q[0] or msg[1] != q[1]:
        return WRONG_ID
    flags = _u16(msg, 2)
    if not flags & _QR or flags & _OPCODE:
        return NOT_ANSWER
    end = _name_end(msg, _HEADER_LEN)
    if (
        _u16(msg, 4) != 1
        or end < 0
        or end + 4 > n
        or not _same_name(msg, _HEADER_LEN, q, _HEADER_LEN)
    ):
        return WRONG_QUESTION
    qtype = q[len(q) - 3]
    for i in range(4):  # QTYPE and QCLASS as we sent them
        if msg[end + i] != q[len(q) - 4 + i]:
            return WRONG_QUESTION
    rcode = flags & 15
    if rcode == 3:
        return NXDOMAIN
    if rcode == 2:
        return SERVFAIL
    if rcode == 5:
        return REFUSED
    if rcode:
        return RCODE
    if flags & _TC:
        return TRUNCATED
    count = _u16(msg, 6)
    first = end + 4  # the first answer record
    # One pass to check every record's bounds (a count that lies runs off the end), then the
    # chain from the question's name: addresses of the name, or the name its CNAME points to.
    # (A name equal to itself is one that parses: labels, backward pointers, <= 255 bytes.)
    off = first
    for _ in range(count):
        owner = off
        off = _name_end(msg, off)
        if off < 0 or off + 10 > n or not _same_name(msg, owner, msg, owner):
            return MALFORMED
        rtype, rlen = _u16(msg, off), _u16(msg, off + 8)
        off += 10 + rlen
        if off > n:
            return MALFORMED
        if _u16(msg, off - rlen - 8) != _CLASS_IN:
            continue
        if (rtype == _TYPE_A and rlen != 4) or (rtype == _TYPE_AAAA and rlen != 16):
            return MALFORMED
        if rtype == _TYPE_CNAME and (
            _name_end(msg, off - rlen) != off or not _same_name(msg, off - rlen, msg, off - rlen)
        ):
            return MALFORMED
    # The chain, in the answer's order (as glibc reads it): the addresses of the name looked
    # for, which a CNAME of it replaces by its target.
    tm, to = q, _HEADER_LEN  # the name looked for: where it is written, and at what offset
    out = []
    links = 0
    off = first
    for _ in range(count):
        owner = off
        off = _name_end(msg, off)
        rtype, rclass, rlen = _u16(msg, off), _u16(msg, off + 2), _u16(msg, off + 8)
        off += 10 + rlen
        if rclass != _CLASS_IN or not (rtype == qtype or rtype == _TYPE_CNAME):
            continue  # another type or class: not ours, not an error
        if not _same_name(msg, owner, tm, to):
            continue
        if rtype == qtype:
            if len(out) < _MAX_ADDRS:
                out.append(_ip_text(msg, off - rlen, rlen))
            continue
        links += 1
        if links > _MAX_CNAMES:
            return MALFORMED  # a chain longer than _MAX_CNAMES, or a loop
        tm, to = msg, off - rlen
    return out


def system_server():
    """The DNS server the network gave this device, as IP text, or None when none is known."""
    ip = None
    try:
        import network  # type: ignore[import-not-found]

        try:
            ip = network.ipconfig("dns")  # MicroPython >= 1.23: the system's DNS server
        except (AttributeError, TypeError, ValueError, OSError):
            ip = network.WLAN(network.STA_IF).ifconfig()[3]
    except ImportError:  # unix, CPython: the first nameserver of /etc/resolv.conf
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 2 and w[0] == "nameserver":
                        ip = w[1]
                        break
        except OSError:
            pass
    except (AttributeError, TypeError, ValueError, OSError, IndexError):
        pass
    if not isinstance(ip, str) or not ip or ip == "0.0.0.0" or "%" in ip:
        return None  # no server yet (no DHCP lease), or an IPv6 scope we cannot send to
    return ip


def _no_dns(host):
    """True for names getaddrinfo answers without a DNS server: IP addresses, localhost."""
    if host == "localhost" or ":" in host:
        return True
    for c in host:
        if c != "." and not "0" <= c <= "9":
            return False
    return True


class Resolver(Net):
    """net.Net whose resolve() asks a DNS server itself, with a bounded wait, and which the
    asyncio service awaits (resolve_async). server: the DNS server's IP text (port 53) or
    (ip, port); None: system_server(), read at each lookup (the network may change it).
    ipv6: ask AAAA too (None: on unix and CPython; on esp32 and rp2 pass True where the
    network routes IPv6). timeout_ms: a lookup's bound.
    One lookup at a time (the service asks one name at a time): its state is kept here,
    allocated once."""

    def __init__(self, server=None, timeout_ms=TIMEOUT_MS, ipv6=None):
        self.server = server  # IP text, (ip, port), or None: system_server()
        self.timeout_ms = max(1, min(timeout_ms, 60_000))  # ms, every try included
        if ipv6 is None:  # as getaddrinfo does: A and AAAA on unix and CPython; on the
            # boards A only (lwIP asks for IPv4 first; a v4-only Wi-Fi cannot use a v6 address)
            import sys

            ipv6 = hasattr(socket, "AF_INET6") and sys.platform not in ("esp32", "rp2")
        self.ipv6 = ipv6  # ask AAAA as well as A
        self.dropped = {}  # reason -> count of datagrams dropped (spoofs, malformed answers)
        # the lookup in flight
        self.sock = None  # its net.Udp, on a random port (rule 8)
        self.asked = None  # (ip, port) of the DNS server asked
        self.to = None  # net.Address of it
        self.qs = [None, None]  # the A and the AAAA query (None: not asked)
        self.got = [None, None]  # per query: addresses, a final reason, or None: waiting
        self.t0 = 0  # ticks_ms at the first send
        self.gap_ms = 0  # ms from the last send to the next
        self.next_ms = 0  # ms after t0 when the unanswered are sent again

    def address(self, ip, port):
        """[net.Address] of an IP address (text): getaddrinfo, which needs no lookup for it."""
        return Net.resolve(self, ip, port)

    def resolve(self, host, port):
        """Net.resolve() with the wait bounded by timeout_ms; blocks the caller."""
        if not self.start(host):
            return Net.resolve(self, host, port)
        try:
            while True:
                wait_ms = self.wait_ms()
                if wait_ms <= 0:
                    return self.result(host, port)
                self.judge(self.sock.recv(wait_ms))
        finally:
            self.sock.close()

    async def resolve_async(self, host, port, sleep_ms):
        """resolve() for asyncio: looks at the socket between sleeps, never blocking the loop
        (sleep_ms: the driver's awaitable sleep, sntp.aio.sleep_ms, which calls this: sntp.dns
        never imports the driver above it). Where no DNS server is known, getaddrinfo (which
        blocks while it runs)."""
        if not self.start(host):
            return Net.resolve(self, host, port)
        try:
            slice_ms = 1
            while True:
                wait_ms = self.wait_ms()
                if wait_ms <= 0:
                    return self.result(host, port)
                got = self.sock.recv(0)
                if got is None:
                    await sleep_ms(min(slice_ms, wait_ms))
                    slice_ms = min(2 * slice_ms, _SLICE_MAX_MS)
                else:
                    self.judge(got)
        finally:
            self.sock.close()

    def start(self, host):
        """Send the queries for host; False: this name is getaddrinfo's (no server known,
        or an IP address or localhost). NetError: not a name, or the socket failed."""
        server = self.server if self.server is not None else system_server()
        if server is None or _no_dns(host):
            return False
        if isinstance(server, str):
            server = (server, _PORT)
        if server != self.asked:  # the Address made once per server
            self.to = self.address(server[0], server[1])[0]
            self.asked = server
        try:
            q = self.qs[0] = question(host, _TYPE_A, random_below(65536))
        except (ValueError, UnicodeError):
            raise NetError("resolve", "cannot resolve {}: not a host name".format(host))
        self.qs[1] = None
        self.got[0] = None
        self.got[1] = ()  # no AAAA asked: answered, no address
        if self.ipv6:  # the same question for AAAA, under another ID
            q6 = self.qs[1] = bytearray(q)
            qid = (_u16(q, 0) + 1 + random_below(65535)) & 0xFFFF
            q6[0], q6[1], q6[len(q6) - 3] = qid >> 8, qid & 255, _TYPE_AAAA
            self.got[1] = None
        self.t0 = ticks_ms()
        self.gap_ms = self.next_ms = _FIRST_TRY_MS
        self.sock = self.udp(self.to.family, _MAX_MESSAGE + 1)  # longer: seen, MALFORMED
        try:
            self.sock.bind_random()
            self._send()
        except NetError:
            self.sock.close()
            raise
        return True

    def _send(self):
        for i in range(2):
            if self.got[i] is None:
                self.sock.send(self.qs[i], self.to.sockaddr)

    def wait_ms(self):
        """ms to wait for the next datagram (0: done or out of time); sends again when due."""
        if None not in self.got:
            return 0
        t = ticks_diff(ticks_ms(), self.t0)
        if t >= self.timeout_ms:
            return 0
        if t >= self.next_ms:
            self.gap_ms *= 2  # sent at 0, 1, 3, 7 s... (_FIRST_TRY_MS doubling)
            self.next_ms += self.gap_ms
            self._send()
        return min(self.next_ms, self.timeout_ms) - t

    def judge(self, got):
        """Judge one received (data, (ip, port)), or None: taken by a query, or dropped and
        counted in dropped."""
        if got is None:
            return
        why = WRONG_SOURCE
        if got[1] == self.to.key:
            for i in range(2):
                if self.qs[i] is None:
                    continue
                why = answer(got[0], self.qs[i])
                if why == WRONG_ID:
                    continue  # perhaps the other query's
                if self.got[i] is not None:
                    why = DUPLICATE  # answered already: the first answer stands
                elif not isinstance(why, str) or why in _FINAL:
                    self.got[i] = why
                    return
                break
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def result(self, host, port):
        """[net.Address] of every address found, A first; NetError('resolve') if none."""
        out = []
        for r in self.got:
            if r is None or isinstance(r, str):
                continue
            for ip in r:
                a = self.address(ip, port)[0]
                for b in out:
                    if b.key == a.key:
                        break
                else:
                    out.append(a)
        if out:
            return out
        why = self.got[0]
        if why is None:
            why = TIMEOUT
        elif not isinstance(why, str):
            why = "no address"
        raise NetError("resolve", "cannot resolve {}: {}".format(host, why))


_FINAL = (NXDOMAIN, SERVFAIL, REFUSED, RCODE, TRUNCATED)
