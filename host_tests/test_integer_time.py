# The firmware does its time arithmetic in integers only: ESP32 and RP2040 builds use
# single-precision floats, good to about 2 minutes for a Unix time. This scans every firmware
# module's tokens (comments and strings excluded) for the three ways a float gets in: a float
# literal, true division, and float()/time.time().
import io
import os
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")


def firmware_files():
    out = []
    for dirpath, _, names in os.walk(FIRMWARE):
        out += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".py")]
    return out


def float_uses(source):
    found = []
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(toks):
        text, line = tok.string, tok.start[0]
        if tok.type == tokenize.NUMBER:
            t = text.lower().replace("_", "")
            if not t.startswith("0x") and ("." in t or "e" in t or t.endswith("j")):
                found.append((line, "float literal " + text))
        elif tok.type == tokenize.OP and text in ("/", "/="):
            found.append((line, "true division"))
        elif tok.type == tokenize.NAME and text == "float":
            found.append((line, "float()"))
        elif (
            tok.type == tokenize.NAME
            and text == "time"
            and i + 3 < len(toks)
            and toks[i + 1].string == "."
            and toks[i + 2].string == "time"
            and toks[i + 3].string == "("
        ):
            found.append((line, "time.time() (a float on some ports)"))
    return found


def test_the_scan_finds_each_kind_of_float():
    src = "a = 1.5\nb = x / 2\nc = float(y)\nd = 1e3\ne = time.time()\nf //= 2  # 2.5 / 3\n"
    assert [k for _, k in float_uses(src)] == [
        "float literal 1.5",
        "true division",
        "float()",
        "float literal 1e3",
        "time.time() (a float on some ports)",
    ]


@pytest.mark.parametrize("path", firmware_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_float_in_firmware(path):
    with open(path) as f:
        found = float_uses(f.read())
    assert found == [], "{}: {}".format(os.path.relpath(path, ROOT), found)
