# The optional provisioning console (sntp.console), beside the sync core (package-console.json
# installs the same for mip). The board program reads its settings with sntp.config, which
# is in the core: a firmware without this runs its time service, and says the console is
# missing when a line is typed.
# ruff: noqa: F821 - metadata(), require() and package() are given by MicroPython's manifest tool
metadata(
    description="SNTP client for MicroPython fleets: provisioning console",
    version="0.1.0",
    license="MIT",
)

require("sntp", library="sntp")
package("sntp", files=("console.py",), base_path="../../firmware")
