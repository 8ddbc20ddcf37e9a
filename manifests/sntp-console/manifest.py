# The optional provisioning console (sntp.console) and the configuration schema (sntp.config),
# beside the sync core (package-console.json installs the same for mip). The board program's
# settings need sntp.config: with sntp frozen, freeze this too (a frozen package's submodules
# are looked up only in the firmware, never in /lib).
# ruff: noqa: F821 - metadata(), require() and package() are given by MicroPython's manifest tool
metadata(
    description="SNTP client for MicroPython fleets: provisioning console",
    version="0.1.0",
    license="MIT",
)

require("sntp", library="sntp")
package("sntp", files=("config.py", "console.py"), base_path="../../firmware")
