# sntp: an SNTP client for MicroPython fleets that never sets a wrong clock.
#
# Modules (import only what you use; nothing runs at import):
#   exchange   one exchange: request bytes, header decoding, NTP <-> port-epoch us,
#              era resolution, reply checks with named reasons, offset  (core, no I/O)
#   timestamp  dates and header fields as people read them              (no I/O)
#   net        sockets and resolver, port differences hidden            (driver)
#   policy     when to ask whom: floors, backoff, KoD, DNS, agreement  (core, no I/O)
#   discipline step or slew, drift estimate, the interval accuracy allows (core, no I/O);
#              Keeper: policy + discipline + persisted state, for every driver
#   client     query(), exchange_with(): one blocking exchange          (driver)
#   service    Service: the policy driven in real time, blocking        (driver)
#   aio        AsyncService, start(): the same as an asyncio task       (driver)
#   dns        Resolver: lookups that never block the loop (optional)  (driver)
#   store      JsonStore: the persisted state, saved atomically         (driver)
#   config     the device configuration: schema, validation, atomic save (driver)
#   console    the provisioning console's line protocol                 (driver)
#   compat     const, wrapping ticks, sleep, entropy on every port      (driver)
__version__ = "0.1.0"
