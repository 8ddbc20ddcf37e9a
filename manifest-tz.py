# Freeze sntp.tz (local time from a POSIX TZ rule; docs/localtime.md) into a custom
# MicroPython firmware build, beside the core: in a manifest of your own,
#   include("/path/to/this/repository/manifest.py")
#   include("/path/to/this/repository/manifest-tz.py")
# It needs no other module of the package. Keep this list, package-tz.json (for mip) and
# firmware/sntp/ in step: host_tests/test_boards_host.py checks them.
# ruff: noqa: F821 - metadata() and package() are given by MicroPython's manifest tool
metadata(description="Local time from POSIX TZ rules, for the sntp package", version="0.1.0")

package("sntp", files=("tz.py",), base_path="firmware")
