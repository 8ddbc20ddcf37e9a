# runs-on: both
# The unix board's software RTC and its state file (boards/unix/softrtc.py): the board clock
# is the host clock plus an offset, corrections move only the offset, and the file keeps it.
import json

from fakes import FakeClock, fresh_path
from softrtc import SoftRTC, StateFile

HOST_UNIX_US = 1_795_300_000_123_456  # the fake host clock at the start (2026-11-21)


def fresh(name):
    return fresh_path("test_softrtc", name)


def write_json(path, doc):
    with open(path, "w") as f:
        f.write(json.dumps(doc))


def read_json(path):
    with open(path) as f:
        return json.loads(f.read())


def test_board_clock_is_host_plus_offset_and_adjust_moves_only_the_offset():
    host = FakeClock(HOST_UNIX_US)
    rtc = SoftRTC(-5_000_000, host)
    assert rtc.now_us() == HOST_UNIX_US - 5_000_000 and rtc.unix_us() == rtc.now_us()
    rtc.adjust(5_000_250)
    assert rtc.offset_us == 250 and rtc.now_us() == HOST_UNIX_US + 250
    assert host.now_us() == HOST_UNIX_US  # the host clock is never changed
    host.advance(1_000_000)  # both run at the host's rate
    assert rtc.now_us() == HOST_UNIX_US + 1_000_250


def test_set_unix_us_makes_the_board_read_that_time_now():
    host = FakeClock(HOST_UNIX_US)
    rtc = SoftRTC(0, host)
    rtc.set_unix_us(0)
    assert rtc.unix_us() == 0 and rtc.offset_us == -HOST_UNIX_US
    host.advance(2_000_000)
    assert rtc.unix_us() == 2_000_000


def test_a_2000_epoch_host_keeps_unix_time_right():
    host = FakeClock(HOST_UNIX_US, epoch_s=3_155_673_600)  # ESP32-like: port epoch 2000
    rtc = SoftRTC(0, host)
    assert rtc.unix_us() == HOST_UNIX_US and rtc.now_us() == host.now_us()
    rtc.set_unix_us(HOST_UNIX_US + 7)
    assert rtc.offset_us == 7


def test_rtc_unix_s_starts_an_invalid_clock_and_is_replaced_by_the_offset_on_save():
    path = fresh("invalid.json")
    write_json(path, {"rtc_unix_s": 0, "rtc_offset_us": 123})
    warnings = []
    sf = StateFile(path, FakeClock(HOST_UNIX_US), warnings.append).open()
    assert sf.rtc.unix_us() == 0 and warnings == []  # rtc_unix_s wins
    assert sf.load() is None
    assert sf.save({"v": 1, "fails": 1}) is True
    doc = read_json(path)
    assert "rtc_unix_s" not in doc and doc["rtc_offset_us"] == -HOST_UNIX_US
    assert doc["policy"] == {"v": 1, "fails": 1} and doc["v"] == 1
    assert doc["saved_unix_s"] == HOST_UNIX_US // 1_000_000


def test_offset_and_policy_state_survive_a_restart():
    path = fresh("restart.json")
    host = FakeClock(HOST_UNIX_US)
    write_json(path, {"rtc_offset_us": -5_000_000})
    sf = StateFile(path, host, [].append).open()
    assert sf.rtc.now_us() == HOST_UNIX_US - 5_000_000
    sf.rtc.adjust(4_999_000)
    sf.servers = [{"server": "192.0.2.1", "sends": 1}]
    sf.save({"v": 1, "boots": 1})
    again = StateFile(path, host, [].append).open()
    assert again.rtc.offset_us == -1_000 and again.load() == {"v": 1, "boots": 1}
    assert again.doc["servers"] == [{"server": "192.0.2.1", "sends": 1}]
    again.save({"v": 1, "boots": 2})  # servers not given again: the file's are kept
    assert read_json(path)["servers"] == [{"server": "192.0.2.1", "sends": 1}]


def test_bad_values_are_warnings_not_crashes():
    path = fresh("bad.json")
    write_json(path, {"rtc_offset_us": 1.5, "rtc_unix_s": True, "policy": [1]})
    warnings = []
    sf = StateFile(path, FakeClock(HOST_UNIX_US), warnings.append).open()
    assert sf.rtc.offset_us == 0 and sf.load() is None
    assert len(warnings) == 2 and "rtc_offset_us" in warnings[0] and "rtc_unix_s" in warnings[1]


def test_a_broken_file_starts_at_host_time_with_one_warning():
    path = fresh("broken.json")
    with open(path, "w") as f:
        f.write("{{{ not json")
    warnings = []
    sf = StateFile(path, FakeClock(HOST_UNIX_US), warnings.append).open()
    assert sf.rtc.now_us() == HOST_UNIX_US and sf.load() is None
    assert len(warnings) == 1 and "not JSON" in warnings[0]
    assert sf.save({"v": 1}) and read_json(path)["policy"] == {"v": 1}


def test_simulated_drift_makes_the_board_clock_fall_behind_and_survives_a_save():
    host = FakeClock(HOST_UNIX_US)
    rtc = SoftRTC(0, host, drift_ppb=25_000)  # 25 ppm slow
    host.advance(1_000_000_000)  # 1000 s later
    assert host.now_us() - rtc.now_us() == 25_000  # 25 ms behind
    rtc.adjust(25_000)  # the discipline's correction
    assert rtc.now_us() == host.now_us()
    host.advance(100_000_000)
    assert host.now_us() - rtc.now_us() == 2_500  # and it keeps drifting
    rtc.fold()
    assert rtc.offset_us == -2_500 and rtc.now_us() == host.now_us() - 2_500
