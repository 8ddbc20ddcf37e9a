# A fragmented heap (the unix-port MicroPython with a small -X heapsize, filled with 1 KB
# blocks and every other one freed: no free block much above 1 KB): a valid configuration
# and state file still load (they are read in the size they have, not into a 16 KB buffer),
# and a file too large for any free block is "out of memory", never "not JSON", and neither
# the console nor the state store saves over it until it has been read.
# The same on the 32-bit runtime (the WebAssembly MicroPython, host_tests/fragheap_wasm.py):
# its heap pinned, then fragmented into holes of 2,000 bytes.
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
WASM = os.path.join(
    ROOT, ".venv/node/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
)

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


# The state file that could not be read is not saved over; once memory is back, it is.
SAVE_OVER = FRAGMENT.replace(
    """for path in sys.argv[1:]:
    doc, why = store.read_json(path)
    print(path, "ok" if doc is not None else why)
""",
    """s = store.JsonStore(sys.argv[1], lambda text: None)
print("load", s.load())
print("save", s.save({"v": 1, "fails": 0}))
keep = None
gc.collect()
print("save-again", s.save({"v": 1, "fails": 0}))
""",
)


def run_fragmented(tmp_path, *paths, heap="48k", script_text=FRAGMENT):
    script = tmp_path / "fragment.py"
    script.write_text(script_text)
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


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="make setup installs micropython")
def test_a_state_file_no_free_block_can_hold_is_not_saved_over_until_it_reads(tmp_path):
    big = tmp_path / "state.json"
    text = json.dumps({"v": 1, "fails": 6, "pad": "y" * 6_000})
    big.write_text(text)
    got = run_fragmented(tmp_path, big, script_text=SAVE_OVER)
    assert got == ["{}", "False", "True"], got  # {} at boot; refused; then saved
    assert json.loads(big.read_text()) == {"v": 1, "fails": 0}


def wasm_fragmented():
    """host_tests/fragheap_wasm.py on the WebAssembly MicroPython: {key: value}."""
    if not os.path.exists(WASM) or shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the WebAssembly MicroPython is missing (make setup installs it)")
        pytest.skip("the WebAssembly MicroPython is missing: run make setup")
    p = subprocess.run(
        ["node", "host_tests/wasmrun.mjs", "--run", "host_tests/fragheap_wasm.py"],
        cwd=ROOT,
        env=dict(os.environ, WASM_HEAPSIZE=str(256 * 1024)),  # a small heap: fast to fill
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("fragheap: "):
            key, _, value = line[len("fragheap: ") :].partition(" ")
            out[key] = value
    assert p.returncode == 0 and "done" in out, (p.stdout[-3000:], p.stderr[-2000:])
    return out


def test_on_the_32_bit_runtime_a_fragmented_heap_loads_a_valid_configuration_and_state():
    got = wasm_fragmented()
    assert got["fragmented"].startswith("yes: no free block of 2048 B"), got  # nor did it grow
    assert int(got["holes"]) >= 10, got
    assert got["state"] == "whole", got  # JsonStore.load
    assert got["config"] == "whole", got  # sntp.config.load
    assert got["settings"] == "whole", got  # the board's settings.load
    # a file no hole holds: {} and the defaults for now, "out of memory", nothing saved over
    assert got["big-state-load"].startswith("{} ") and "out of memory" in got["big-state-load"]
    assert got["big-state-save"].startswith("False ") and "not saved over" in got["big-state-save"]
    assert got["big-state-file"] == "untouched", got
    assert got["big-settings"].startswith("defaults: ") and "out of memory" in got["big-settings"]
    assert (
        got["big-console-save"].startswith("err ") and "out of memory" in got["big-console-save"]
    )
    assert got["big-config-file"] == "untouched", got
    # memory back: the file reads whole, and the state's save goes ahead
    assert got["big-settings-again"] == "whole", got
    saved, _, doc = got["big-state-save-again"].partition(" ")
    assert saved == "True" and json.loads(doc) == {"v": 1, "fails": 0}, got
