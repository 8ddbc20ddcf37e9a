#!/usr/bin/env python3
"""The coverage-guided fuzz target of the reply decoder and checks (atheris / libFuzzer).

Each input is one datagram, handed to Exchange.receive() for a fixed request (nonce
onwire.FUZZ_NONCE, from onwire.FUZZ_SERVER) on a 1970-epoch port and on a 2000-epoch port,
and to the packet decoder. Each datagram comes first from another port (it must be ignored),
then from the server. A crash is any exception escaping the firmware, or:
  - an accepted reply that breaks an on-wire rule of the independent checker (onwire.py),
    or whose offset, delay or times are not what the reply says;
  - a rejected reply that carries a time (rule 5: a KoD's timestamps are never used);
  - a verdict that is not the checker's (outside the microsecond band at the delay limit);
  - a second copy of the datagram not ignored as a duplicate, or the deadline after the
    result changing it.

    tools/fuzz/run.py --seconds 60       # what `make fuzz` runs: seeds, summary, results/
    .venv/bin/python tools/fuzz/fuzz_replies.py CORPUS_DIR... [libFuzzer flags]
    .venv/bin/python tools/fuzz/fuzz_replies.py --replay FILE_OR_DIR...   # without atheris
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")]

from fuzz import onwire  # noqa: E402 - the oracle is not instrumented: it is not under test

NTP_1970_S = onwire.NTP_1970_S
NTP_2000_S = onwire.NTP_2000_S
# The local send time: 2027-01-15 08:00:00.123456 UTC; the reply arrives 31.25 ms later.
T1_UNIX_US = 1_800_000_000_123_456
T4_AFTER_US = 31_250
OTHER_SOURCE = ("192.0.2.1", 124)  # the server's address, another port: sent first, ignored


class Violation(Exception):
    """A reply judged against the on-wire rules: the fuzzer reports it as a crash."""


def _load_firmware():
    global ex, packet, refid_text, PIVOT_S
    from sntp import exchange as ex
    from sntp import exchange as packet  # the header's decoding is in exchange
    from sntp.timestamp import ERA_PIVOT_NTP_S as PIVOT_S
    from sntp.timestamp import refid_text


def check_one(data, epoch_s):
    """Judge data as the reply to the fixed request on a port with that epoch."""
    t1_us = T1_UNIX_US - (epoch_s - NTP_1970_S) * 1_000_000
    t4_us = t1_us + T4_AFTER_US
    server, nonce = onwire.FUZZ_SERVER, onwire.FUZZ_NONCE
    e = ex.Exchange(server, nonce, t1_us, epoch_s)
    if e.receive(data, OTHER_SOURCE, t4_us) is not None:  # whatever it holds
        raise Violation("a datagram from another source was not ignored")
    r = e.receive(data, server, t4_us)
    req = onwire.Request(server, nonce, t1_us, epoch_s, PIVOT_S)
    lenient = onwire.violations(req, data, server, t4_us, band=1)
    strict = onwire.violations(req, data, server, t4_us, band=-1)
    if r is None:
        reason = e.expire().error
        if lenient == strict and strict[:1] != [reason]:
            raise Violation("ignored as {} but the checker says {}".format(reason, strict))
        return "ignored " + reason
    if e.receive(data, server, t4_us) is not None:
        raise Violation("a duplicate was not ignored")
    if e.expire() is not r:
        raise Violation("the deadline after the result changed it")
    if r.ok:
        problems = onwire.accepted_problems(req, data, server, t4_us, r)
        if problems:
            raise Violation("accepted: " + "; ".join(problems))
        return "ok"
    if r.error not in onwire.FINAL:
        raise Violation("unknown reason {!r}".format(r.error))
    times = (r.offset_us, r.delay_us, r.t2_us, r.t3_us)
    if any(t is not None for t in times):
        raise Violation("rejected ({}) but carries a time {}".format(r.error, times))
    if lenient == strict and strict[:1] != [r.error]:
        raise Violation("rejected as {} but the checker says {}".format(r.error, strict))
    return r.error


def one_input(data):
    """libFuzzer's TestOneInput: bytes in; an exception is a crash."""
    verdicts = [check_one(data, NTP_1970_S), check_one(data, NTP_2000_S)]
    if verdicts[0] != verdicts[1]:  # the same instant on both ports: the same verdict
        raise Violation("1970 port: {}, 2000 port: {}".format(*verdicts))
    if len(data) >= 48:  # what the console and tools/sntp show of any header
        h = packet.Header(data)
        refid_text(h.stratum, h.refid)
        if len(packet.kiss_code(h.refid)) != 4:
            raise Violation("kiss code of {!r}".format(h.refid))
    return verdicts[0]


def inputs(paths):
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                yield os.path.join(path, name)
        else:
            yield path


def replay(paths, load=None, one=None):
    """Run the target (load() then one(data) per input: this file's by default) over files
    without atheris (a found crash, or the corpus): exit 1 if one of them fails, printing its
    verdict per file."""
    (load or _load_firmware)()
    one = one or one_input
    bad = 0
    for path in inputs(paths):
        with open(path, "rb") as f:
            data = f.read()
        try:
            verdict = one(data)
        except Exception as exc:  # noqa: BLE001 - every escape is a finding
            bad += 1
            verdict = "CRASH {}: {}".format(type(exc).__name__, exc)
        print("{}: {}".format(os.path.relpath(path), verdict))
    return 1 if bad else 0


def main(load=None, one=None):
    """--replay FILES, or libFuzzer over one(data) with the firmware that load() imports
    instrumented (this file's target by default)."""
    load, one = load or _load_firmware, one or one_input
    if sys.argv[1:2] == ["--replay"]:
        sys.exit(replay(sys.argv[2:], load, one))
    import atheris

    with atheris.instrument_imports(include=["sntp"]):
        load()
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
