# runs-on: both
# The request on the wire, byte for byte (rule 7), and header decoding.
import struct

from fakes import reply

from sntp import exchange as packet  # the request's bytes and the header's decoding
from sntp.timestamp import refid_text

NONCE = b"\x01\x23\x45\x67\x89\xab\xcd\xef"


def test_request_is_zero_but_li_vn_mode_and_the_nonce():
    buf = bytearray(b"\xff" * 48)  # a reused buffer full of old bytes
    req = packet.build_request(buf, NONCE)
    assert len(req) == 48
    assert req[0] == 0x23  # LI 0 (00), VN 4 (100), mode 3 (011)
    assert req[1:40] == bytearray(39)  # stratum..receive: all zero, nothing about us leaks
    assert req[40:48] == NONCE  # transmit: the random nonce, not our clock


def test_decode_every_field():
    data = reply(
        NONCE,
        1_000_000,
        2_000_000,
        li=1,
        vn=3,
        mode=4,
        stratum=3,
        poll=-2,
        precision=-23,
        root_delay=0x00012345,
        root_disp=0x00000678,
        refid=b"\x0a\x00\x00\x05",
    )
    h = packet.Header(data)
    assert (h.leap, h.version, h.mode, h.stratum, h.poll, h.precision) == (1, 3, 4, 3, -2, -23)
    assert (h.root_delay, h.root_disp) == (0x00012345, 0x00000678)
    assert h.refid == b"\x0a\x00\x00\x05"
    assert h.origin_ts == struct.unpack("!Q", NONCE)[0]
    assert h.rx_ts == struct.unpack_from("!Q", data, 32)[0]
    assert h.tx_ts == struct.unpack_from("!Q", data, 40)[0]
    assert refid_text(h.stratum, h.refid) == "10.0.0.5"


def test_bytes_past_the_header_are_not_read():
    long = reply(NONCE, 1, 2) + b"\x00\x00\x00\x01" + b"\xaa" * 16  # a MAC after the header
    h = packet.Header(long)
    assert h.stratum == 2 and h.tx_ts == struct.unpack_from("!Q", long, 40)[0]


def test_kiss_code_is_printable():
    assert packet.kiss_code(b"RATE") == "RATE"
    assert packet.kiss_code(b"\x00\xffA\n") == "??A?"
