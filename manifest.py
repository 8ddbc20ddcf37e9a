# Freeze the sntp package into a custom MicroPython firmware build: the entry point. In a
# manifest of your own (build with FROZEN_MANIFEST=/path/to/it, ports/esp32 and ports/rp2):
#   include("$(PORT_DIR)/boards/manifest.py")  # or the board's default, as its board names it
#   include("/path/to/this/repository")        # this file: the sync core (package "sntp")
#   require("sntp-console", library="sntp")     # optional: provisioning console and schema
#   require("sntp-tz", library="sntp")          # optional: local time (sntp.tz)
#   require("sntp-board", library="sntp", board="esp32")  # optional: the board program
# Each package is a folder of manifests/ with its own manifest.py and one metadata(), the way
# micropython-lib splits a library: an extra require()s the core in a context of its own, so
# any combination builds (docs/freezing.md: the combinations, checked with MicroPython's
# tools/manifestfile.py). This file is no package: it registers manifests/ as the library
# "sntp" and requires the core. Frozen modules run from flash and leave the RAM to the
# application. Keep the manifests, the package files (mip) and firmware/sntp/ in step:
# host_tests/test_boards_host.py checks them.
# ruff: noqa: F821 - add_library() and require() are given by MicroPython's manifest tool
add_library("sntp", "manifests")
require("sntp", library="sntp")
