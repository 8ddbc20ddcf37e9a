# DNS lookups that do not block the asyncio service's event loop (sntp.dns; docs/reliability.md,
# "Every wait bounded"), beside the sync core (package-dns.json installs the same for mip).
# sntp.aio.AsyncService uses it when it is there.
# ruff: noqa: F821 - metadata(), require() and package() are given by MicroPython's manifest tool
metadata(
    description="DNS lookups that never block the event loop, for sntp.aio",
    version="0.1.0",
    license="MIT",
)

require("sntp", library="sntp")
package("sntp", files=("dns.py",), base_path="../../firmware")
