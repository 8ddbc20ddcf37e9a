# tools/footprint.py (make footprint): the probes it runs under the unix-port MicroPython see
# what they claim to see, and the targets are judged from the figures.
import footprint
import pytest


@pytest.fixture(scope="module")
def sizes():
    return footprint.build()


def test_the_sync_core_is_what_the_documented_import_loads(sizes):
    got = footprint.probe("fp_import", "from sntp.service import Service")
    core = [m for m in got["modules"] if m.startswith("sntp")]
    for m in ("sntp.service", "sntp.policy", "sntp.exchange", "sntp.net", "sntp.client"):
        assert m in core
    for m in ("sntp.console", "sntp.config", "sntp.rtc", "sntp.aio"):
        assert m not in core  # optional, or not needed by the blocking core
    assert got["resident"][0] > sum(sizes[m] for m in core) // 2  # the bytecode is in the heap


def test_every_package_module_is_measured(sizes):
    pk = footprint.packages()
    assert "package.json" in pk and "package-console.json" in pk
    assert "sntp.rtc" in pk["package.json"] and "sntp.console" in pk["package-console.json"]
    for mods in pk.values():
        for m in mods:
            assert sizes[m] > 0


def test_the_headless_board_program_does_not_load_the_console(sizes):
    got = footprint.board_modules()
    assert got is not None and got["service"] is True  # the time service was started
    mods = got["modules"]
    for m in ("app", "board", "serialconsole", "settings", "wifi", "sntp.aio", "sntp.rtc"):
        assert m in mods, m
    assert "sntp.console" not in mods  # only when a line arrives on the serial


def test_targets_are_met_only_within_their_limits():
    res = {"core_mpy": 16 * 1024, "min_heap": 32 * 1024 + 64, "sync_alloc": None}
    res.update({"idle_alloc": 0, "board_mpy": 20 * 1024 - 1})
    marks = [t["met"] for t in footprint.targets(res)]
    # core at its limit, heap 64 B over, sync not measured, idle only means 32-bit, board in
    assert marks == [True, False, None, None, True]
    res.update({"sync_alloc": 4096, "idle_alloc_32": 0, "wasm32": {"sync_bytes": 4097}})
    marks = [t["met"] for t in footprint.targets(res)]
    assert marks[2:4] == [False, True]  # one sync: both runtimes within 4 KB, or missed
    res["wasm32"]["sync_bytes"] = 4096
    assert footprint.targets(res)[2]["met"] is True
