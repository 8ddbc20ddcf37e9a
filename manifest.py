# Freeze the sntp sync core into a custom MicroPython firmware build. In a manifest of your own:
#   include("...")  # the board's default manifest, as its board.cmake/mpconfigboard.mk names it
#   include("/path/to/this/repository/manifest.py")
#   include("/path/to/this/repository/manifest-console.py")  # optional: provisioning console
# and build with FROZEN_MANIFEST=/path/to/that/manifest.py (ports/esp32, ports/rp2).
# Frozen modules run from flash and leave the RAM to the application.
# The core is what a headless board needs (package.json installs the same files with mip);
# the optional extras have their own manifest-*.py and package-*.json.
# Keep the manifests, the package files (for mip) and firmware/sntp/ in step:
# host_tests/test_boards_host.py checks them.
# ruff: noqa: F821 - metadata() and package() are given by MicroPython's manifest tool
metadata(description="SNTP client for MicroPython fleets: the sync core", version="0.1.0")

package(
    "sntp",
    files=(
        "__init__.py",
        "aio.py",
        "client.py",
        "compat.py",
        "discipline.py",
        "exchange.py",
        "net.py",
        "policy.py",
        "rtc.py",
        "service.py",
        "store.py",
        "summary.py",
        "timestamp.py",
    ),
    base_path="firmware",
)
