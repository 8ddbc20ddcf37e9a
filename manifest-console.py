# Freeze the optional provisioning console (sntp.console) and its configuration schema
# (sntp.config) beside the sync core: include manifest.py too (see there). package-console.json
# installs the same files with mip.
# ruff: noqa: F821 - metadata() and package() are given by MicroPython's manifest tool
metadata(description="SNTP client for MicroPython fleets: provisioning console", version="0.1.0")

package("sntp", files=("config.py", "console.py"), base_path="firmware")
