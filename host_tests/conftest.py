# pytest on CPython: the firmware package and the test helpers on sys.path.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (
    os.path.join(ROOT, "firmware"),
    os.path.join(ROOT, "boards", "unix"),
    os.path.join(ROOT, "host_tests"),
    os.path.join(ROOT, "tools"),
):
    if p not in sys.path:
        sys.path.insert(0, p)


import pytest  # noqa: E402 - after the sys.path set-up above
from refserver import RefServer  # noqa: E402


@pytest.fixture
def server():
    """An honest reference server on 127.0.0.1 for one test (a module may define its own)."""
    srv = RefServer(offset_ns=0).start()
    yield srv
    srv.stop()
