"""structure -- the sync core's shape, measured (tools/footprint.py prints it beside the bytes).

  policy_lines     lines of firmware/sntp/policy.py (the scheduler, read in one sitting)
  largest_class    the longest class in firmware/sntp: [module.Class, lines]
  policy_outside   assignments to a Policy attribute made by code outside policy.py while a
                   simulated device (tools/simdev.py, the real Keeper) boots, syncs, is kissed
                   RATE and DENY, reboots and deep-sleeps for three days, and its status, a
                   sync request and a subscription come and go as a console's would: each
                   one "file: attribute" (host_tests/conftest.py guards every test the same way)
Runs on CPython; touches nothing but memory.
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware", "sntp")
DAY_MS = 86_400_000
T0_US = 1_800_000_000_000_000  # 2027


def classes():
    """{module.Class: lines} of every class in firmware/sntp."""
    out = {}
    for name in sorted(os.listdir(FIRMWARE)):
        if name.endswith(".py"):
            with open(os.path.join(FIRMWARE, name)) as f:
                tree = ast.parse(f.read())
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    out["{}.{}".format(name[:-3], node.name)] = node.end_lineno - node.lineno + 1
    return out


def outside_assignments():
    """The Policy attributes set by code other than policy.py during the scenario."""
    for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import simdev as sim

    from sntp import policy, summary

    seen = []

    def guard(self, name, value):
        where = sys._getframe(1).f_code.co_filename
        if not where.endswith(os.sep + "policy.py"):
            seen.append("{}: {}".format(os.path.relpath(where, ROOT), name))
        object.__setattr__(self, name, value)

    w = sim.World(T0_US)
    modes = [sim.Server(), sim.Server(), sim.Server("kod", "RATE"), sim.Server("kod", "DENY")]
    for i, server in enumerate(modes):
        ip = "10.0.0.{}".format(i + 1)
        w.dns["{}.acme.pool.ntp.org".format(i)] = [ip]
        w.servers[(ip, 123)] = server
    before = policy.Policy.__dict__.get("__setattr__")  # a test's own guard, kept
    policy.Policy.__setattr__ = guard
    try:
        d = sim.Device(w, {"zone": "acme"}, clock_error_us=-T0_US, rand=lambda n: n // 3)
        d.boot(0)
        d.run(DAY_MS)
        k = d.keeper
        heard = []
        k.subscribe(heard.append, ("send",))
        summary.status(k, d.t_ms)
        k.sync_now(d.t_ms)
        k.unsubscribe(heard.append)
        d.reboot(DAY_MS + 60_000)
        d.run(2 * DAY_MS)
        k = d.keeper
        k.sleep(d.t_ms)
        d.reboot(2 * DAY_MS + 600_000, wake=True)
        d.run(3 * DAY_MS)
    finally:
        if before is None:
            del policy.Policy.__setattr__
        else:
            policy.Policy.__setattr__ = before
    return sorted(set(seen))


def measure():
    with open(os.path.join(FIRMWARE, "policy.py")) as f:
        lines = len(f.read().splitlines())
    cl = classes()
    top = max(cl, key=cl.get)
    return {
        "policy_lines": lines,
        "largest_class": [top, cl[top]],
        "policy_outside": outside_assignments(),
    }


if __name__ == "__main__":
    print(measure())
