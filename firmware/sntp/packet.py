# The NTP packet header (RFC 5905 section 7.3): encode a client request, read a reply's.
#
# Every field by byte offset, side by side, read with struct.unpack_from at a fixed offset
# (no slicing per field). Bytes past the 48-byte header (extension fields, a MAC) are
# ignored. Costs: one preallocated bytearray(48) per request; decoding allocates one Header.
import struct

from .compat import const

HEADER_LEN = const(48)

# Byte offsets of the header fields.
_OFF_LI_VN_MODE = const(0)  # LI (2 bits) | VN (3 bits) | mode (3 bits)
_OFF_STRATUM = const(1)  # 0 = Kiss-o'-Death, 1 primary, 2-15 secondary, 16 unsynchronized
_OFF_POLL = const(2)  # signed log2 seconds
_OFF_PRECISION = const(3)  # signed log2 seconds
_OFF_ROOT_DELAY = const(4)  # NTP short 16.16
_OFF_ROOT_DISP = const(8)  # NTP short 16.16
_OFF_REFID = const(12)  # 4 bytes: KoD code when stratum is 0
_OFF_REF_TS = const(16)  # reference timestamp
_OFF_ORIGIN_TS = const(24)  # origin: must equal the transmit timestamp we sent
_OFF_RX_TS = const(32)  # receive: server time when our request arrived (T2)
_OFF_TX_TS = const(40)  # transmit: server time when the reply left (T3)


_REQUEST_BYTE0 = const(0x23)  # LI 0, VN 4, mode 3


def build_request(buf, nonce):
    """Fill buf (bytearray(48)) with a client request carrying nonce (8 bytes) as transmit time.

    Data minimization (rule 7): every field is zero except LI/VN/mode and the
    transmit timestamp, which holds random bits instead of our clock, so the request neither
    leaks the device's time nor lets an off-path attacker predict the origin of the reply.
    """
    for i in range(HEADER_LEN):
        buf[i] = 0
    buf[_OFF_LI_VN_MODE] = _REQUEST_BYTE0
    for i in range(8):
        buf[_OFF_TX_TS + i] = nonce[i]
    return buf


class Header:
    """The decoded fields of a reply header. Timestamps are raw 64-bit wire values."""

    def __init__(self, data):
        b0, stratum, poll, precision, root_delay, root_disp = struct.unpack_from(
            "!BBbbII", data, _OFF_LI_VN_MODE
        )
        self.leap = b0 >> 6  # 0 no warning, 1/2 leap second pending, 3 unsynchronized
        self.version = (b0 >> 3) & 7
        self.mode = b0 & 7
        self.stratum = stratum
        self.poll = poll  # log2 s; never used to schedule (an attacker could pin it)
        self.precision = precision  # log2 s
        self.root_delay = root_delay  # NTP short 16.16 s
        self.root_disp = root_disp  # NTP short 16.16 s
        self.refid = bytes(data[_OFF_REFID : _OFF_REFID + 4])
        self.ref_ts = _ts64(data, _OFF_REF_TS)
        self.origin_ts = _ts64(data, _OFF_ORIGIN_TS)
        self.rx_ts = _ts64(data, _OFF_RX_TS)
        self.tx_ts = _ts64(data, _OFF_TX_TS)


def _ts64(data, off):
    hi, lo = struct.unpack_from("!II", data, off)
    return (hi << 32) | lo


def origin_matches(data, nonce):
    """True when the reply's origin field is exactly the nonce we sent (RFC 5905 8, 'bogus')."""
    for i in range(8):
        if data[_OFF_ORIGIN_TS + i] != nonce[i]:
            return False
    return True


def kiss_code(refid):
    """The 4-character KoD code of a refid, with anything but printable ASCII shown as '?'."""
    out = ""
    for c in refid:
        out += chr(c) if 0x20 < c < 0x7F else "?"
    return out


def refid_text(stratum, refid):
    """The refid as sntp -d shows it: a code for stratum 0-1, an IPv4 address above."""
    if stratum <= 1:
        return kiss_code(refid).rstrip("?")
    return "{}.{}.{}.{}".format(refid[0], refid[1], refid[2], refid[3])
