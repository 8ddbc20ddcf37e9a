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


# Nothing outside policy.py sets a Policy field: the console, the summary, the drivers and
# the tools ask the Keeper or the Service (firmware/sntp/keeper.py). Every CPython test runs
# with a guard that records an assignment to a Policy attribute made by code that is neither
# policy.py nor a test (a test may set a scene up), and fails the test that did it.
_HOSTS = os.sep + "host_tests" + os.sep


def _outsider(filename):
    return not filename.endswith(os.sep + "policy.py") and _HOSTS not in filename


@pytest.fixture(autouse=True)
def policy_fields_are_set_only_by_the_policy():
    from sntp import policy

    seen = []

    def guard(self, name, value):
        where = sys._getframe(1).f_code.co_filename
        if _outsider(where):
            seen.append("{}: {} = {!r}".format(os.path.relpath(where, ROOT), name, value))
        object.__setattr__(self, name, value)

    policy.Policy.__setattr__ = guard
    try:
        yield seen
    finally:
        del policy.Policy.__setattr__
    assert not seen, "a Policy field set outside policy.py: " + "; ".join(seen[:3])
