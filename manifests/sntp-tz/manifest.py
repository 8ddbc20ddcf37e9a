# Local time from a POSIX TZ rule (sntp.tz, docs/localtime.md), beside the sync core
# (package-tz.json installs the same for mip). It imports no other module of the package.
# ruff: noqa: F821 - metadata(), require() and package() are given by MicroPython's manifest tool
metadata(
    description="Local time from POSIX TZ rules, for the sntp package",
    version="0.1.0",
    license="MIT",
)

require("sntp", library="sntp")
package("sntp", files=("tz.py",), base_path="../../firmware")
