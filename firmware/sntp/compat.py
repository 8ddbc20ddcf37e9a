# Port differences the drivers need, in one place: const, wrapping ticks, entropy, the epoch.
#
# The I/O-free core (timestamp, packet, exchange) never imports this module's clock or
# entropy functions: drivers call them and hand the values in, so tests can replace them.
# On CPython every MicroPython-only function gets a fallback that behaves like the boards,
# including ticks that wrap, so host tests catch wrap bugs.
import time

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731 - a lambda takes the stub's signature for the type check

# The type checker reads the MicroPython stubs and treats a name TYPE_CHECKING as always true
# (typing does not exist on the boards): the CPython branches below are not checked.
TYPE_CHECKING = False
IS_MICROPYTHON = hasattr(time, "ticks_us")

# Ticks period on the 32-bit boards: small ints are 31-bit, so ticks wrap at 2**30
# (extmod/modtime.c: MICROPY_PY_TIME_TICKS_PERIOD). The CPython shim wraps at the same value;
# the 64-bit unix port wraps at 2**62, which is why the host tests also run on CPython.
TICKS_PERIOD = const(1 << 30)
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)

if TYPE_CHECKING or IS_MICROPYTHON:
    ticks_us = time.ticks_us
    ticks_ms = time.ticks_ms
    ticks_add = time.ticks_add
    ticks_diff = time.ticks_diff
else:
    # Start the shim near a wrap so that every host run crosses one within seconds of ticks_us.
    _TICKS_START_US = time.monotonic_ns() // 1000 - (_TICKS_MASK - 3_000_000)

    def ticks_us():
        return (time.monotonic_ns() // 1000 - _TICKS_START_US) & _TICKS_MASK

    def ticks_ms():
        return ((time.monotonic_ns() // 1000 - _TICKS_START_US) // 1000) & _TICKS_MASK

    def ticks_add(ticks, delta):
        # Same contract as MicroPython: |delta| must be below half the period.
        if delta >= _TICKS_HALF or delta < -_TICKS_HALF:
            raise OverflowError("ticks interval overflow")
        return (ticks + delta) & _TICKS_MASK

    def ticks_diff(a, b):
        # Signed difference a - b in (-2**29, 2**29], as on the boards.
        return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


if TYPE_CHECKING or IS_MICROPYTHON:
    sleep_ms = time.sleep_ms
else:

    def sleep_ms(ms):
        """Sleep ms milliseconds, an integer: a poll on no descriptors waits for its timeout.

        time.sleep() takes float seconds, which the firmware's integer-time rule keeps out.
        """
        import select

        select.poll().poll(max(0, ms))


def now_us():
    """Wall-clock microseconds since the port's epoch (see epoch_year()).

    time_ns() is an integer on every port (MicroPython >= 1.17); time.time() is not used
    because on some ports it is a float, good to only about 2 minutes in single precision.
    """
    return time.time_ns() // 1000


def epoch_year():
    """1970 on unix, rp2 and CPython; 2000 on ESP32 and most other embedded ports."""
    return time.gmtime(0)[0]


def random_bytes(n):
    """n unpredictable bytes: os.urandom where the port has it (hardware RNG on ESP32/RP2)."""
    try:
        import os

        return os.urandom(n)
    except (ImportError, AttributeError):
        import random

        out = bytearray(n)
        for i in range(n):
            out[i] = random.getrandbits(8)
        return bytes(out)


def random_below(n):
    """A uniform integer in [0, n) for n <= 2**32 (48 random bits: negligible modulo bias)."""
    return int.from_bytes(random_bytes(6), "big") % n


def ints(xs):
    """True when every item is an int (not a bool, not a float): persisted lists."""
    for x in xs:
        if type(x) is not int:
            return False
    return True
