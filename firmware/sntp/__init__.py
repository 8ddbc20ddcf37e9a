# sntp: an SNTP client for MicroPython fleets that never sets a wrong clock.
#
# Modules (import only what you use; nothing runs at import):
#   timestamp  NTP <-> port-epoch microseconds, era resolution         (core, no I/O)
#   packet     request encoding, header decoding                        (core, no I/O)
#   exchange   one exchange: reply checks with named reasons, offset    (core, no I/O)
#   net        sockets and resolver, port differences hidden            (driver)
#   client     query(): one blocking exchange                           (driver)
#   compat     const, wrapping ticks and entropy on every port          (driver)
__version__ = "0.1.0"
