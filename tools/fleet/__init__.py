# The fleet simulator: N devices, each running the real firmware scheduler (sntp.policy), the
# real clock discipline (sntp.discipline) and the real reply checks (sntp.exchange) under
# simulated time, against simulated servers, DNS and network; and the baseline clients that
# caused well-known incidents (see clients.py), modelled in the same world.
#
#   python3 -m fleet bench           (PYTHONPATH=tools; `make bench` runs it)
#   python3 -m fleet run --scenario steady --client sntp --devices 100000 --days 30
#
# Modules: model (oscillator, servers, network, DNS, counters), clients (this client and the
# baselines), engine (the event queue, shards over processes, progress), scenarios, report
# (figures, targets, table, JSON, plots). The device footprint is tools/footprint.py.
# CPython only (floats, multiprocessing): it never runs on a device.
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "tools"), os.path.join(_ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

ROOT = _ROOT
