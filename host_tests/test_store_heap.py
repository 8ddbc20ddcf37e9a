# A fragmented heap (the unix-port MicroPython with a small -X heapsize, filled with 1 KB
# blocks and every other one freed: no free block much above 1 KB): a valid configuration
# and state file still load (they are read in the size they have, not into a 16 KB buffer),
# and a file too large for any free block is "out of memory", never "not JSON", and the
# console will not save the defaults over it.
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

FRAGMENT = """
import gc, sys
from sntp import store
gc.collect()
keep = []
try:
    while True:
        keep.append(bytearray(1000))
except MemoryError:
    pass
for i in range(0, len(keep), 2):
    keep[i] = None
gc.collect()
for path in sys.argv[1:]:
    doc, why = store.read_json(path)
    print(path, "ok" if doc is not None else why)
"""


def run_fragmented(tmp_path, *paths, heap="48k"):
    script = tmp_path / "fragment.py"
    script.write_text(FRAGMENT)
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "firmware"))
    p = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heap, str(script)] + [str(x) for x in paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return [line.split(" ", 1)[1] for line in p.stdout.splitlines()]


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="make setup installs micropython")
def test_a_valid_configuration_and_state_load_on_a_fragmented_heap(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"kind": "sntp-config", "wifi_ssid": "factory-net", "zone": "acme"}))
    state = tmp_path / "state.json"  # about a kilobyte: the last hour's sends, the drift
    sent = [["10.0.0.1:123", 1_800_000_000_000 + i, 1000 * i] for i in range(12)]
    state.write_text(json.dumps({"v": 1, "sent": sent, "discipline": {"v": 1}, "pad": "y" * 300}))
    assert run_fragmented(tmp_path, cfg, state) == ["ok", "ok"]


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="make setup installs micropython")
def test_a_file_no_free_block_can_hold_is_out_of_memory_not_broken(tmp_path):
    big = tmp_path / "state.json"  # 6 KB of good JSON: no block of the fragmented heap holds it
    big.write_text(json.dumps({"v": 1, "pad": "y" * 6_000}))
    assert run_fragmented(tmp_path, big) == ["out of memory"]
