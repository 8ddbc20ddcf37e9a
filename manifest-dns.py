# Freeze sntp.dns (DNS lookups that do not block the asyncio service's event loop;
# docs/reliability.md, "Every wait bounded") into a custom MicroPython firmware build, beside
# the core: in a manifest of your own,
#   include("/path/to/this/repository/manifest.py")
#   include("/path/to/this/repository/manifest-dns.py")
# sntp.aio.AsyncService uses it when it is there. Keep this list, package-dns.json (for mip)
# and firmware/sntp/ in step: host_tests/test_boards_host.py checks them.
# ruff: noqa: F821 - metadata() and package() are given by MicroPython's manifest tool
metadata(description="DNS lookups that never block the event loop, for sntp.aio", version="0.1.0")

package("sntp", files=("dns.py",), base_path="firmware")
