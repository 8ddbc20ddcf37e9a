# The sntp sync core, what a headless board needs (package.json installs the same for mip).
# ruff: noqa: F821 - metadata() and package() are given by MicroPython's manifest tool
metadata(
    description="SNTP client for MicroPython fleets: the sync core", version="0.1.0", license="MIT"
)

package(
    "sntp",
    files=(
        "__init__.py",
        "aio.py",
        "client.py",
        "compat.py",
        "config.py",
        "discipline.py",
        "exchange.py",
        "keeper.py",
        "net.py",
        "policy.py",
        "rtc.py",
        "schema.py",
        "service.py",
        "sources.py",
        "state.py",
        "store.py",
        "summary.py",
        "timestamp.py",
        "vote.py",
    ),
    base_path="../../firmware",
)
