# runs-on: both
# The atomic JSON store (firmware/sntp/store.py): round trips, a save cut short, broken files.
import os

from fakes import exists, fresh_path

from sntp import store

# build/ at the top of the repository, from this file's place (no os.path on MicroPython)


def fresh(name):
    return fresh_path("test_store", name)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make(path):
    warnings = []
    return store.JsonStore(path, warnings.append), warnings


def test_round_trip_and_no_temporary_file_left():
    path = fresh("round.json")
    s, warnings = make(path)
    doc = {"v": 1, "fails": 3, "denied": {"192.0.2.1:123": 1795300000}, "x": None}
    assert s.save(doc) is True
    assert s.load() == doc and warnings == []
    assert not exists(path + ".tmp")
    assert s.save({"v": 1, "fails": 0}) and s.load() == {"v": 1, "fails": 0}


class PowerCut(store.JsonStore):
    """A save that dies half-way through writing the new text."""

    def _write(self, f, text):
        f.write(text[: len(text) // 2])
        raise OSError(28)  # ENOSPC, or the power going


def test_a_save_cut_short_leaves_the_old_file_whole():
    path = fresh("cut.json")
    s, _ = make(path)
    s.save({"v": 1, "fails": 1})
    warnings = []
    cut = PowerCut(path, warnings.append)
    assert cut.save({"v": 1, "fails": 2, "pad": "x" * 200}) is False
    assert len(warnings) == 1 and "cannot save" in warnings[0] and "\n" not in warnings[0]
    assert s.load() == {"v": 1, "fails": 1}  # the old state, not half of the new one
    assert not exists(path + ".tmp")


def test_a_stale_half_written_temporary_file_is_ignored():
    path = fresh("stale.json")
    s, warnings = make(path)
    s.save({"v": 1})
    write(path + ".tmp", b'{"v": 1, "fai')
    assert s.load() == {"v": 1} and warnings == []
    assert s.save({"v": 1, "fails": 5}) and s.load() == {"v": 1, "fails": 5}


def test_a_missing_file_with_a_complete_temporary_one_loads_that():
    # FAT boards remove the old file before the rename: a power cut between the two
    path = fresh("fat.json")
    write(path + ".tmp", b'{"v": 1, "fails": 4}')
    s, warnings = make(path)
    assert s.load() == {"v": 1, "fails": 4} and warnings == []


def test_broken_files_load_as_none_with_one_warning_line():
    cases = [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00garbage\x80", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"{" + b" " * (store.MAX_BYTES + 10) + b"}", "larger than"),
    ]
    for data, why in cases:
        path = fresh("broken.json")
        write(path, data)
        s, warnings = make(path)
        assert s.load() == {}, data[:20]  # there, unreadable: not a first boot
        assert len(warnings) == 1 and why in warnings[0] and path in warnings[0], warnings
        assert "\n" not in warnings[0]
        assert s.save({"v": 1}) and s.load() == {"v": 1}  # and it can be replaced


def test_a_missing_file_loads_as_none_with_one_warning_line():
    path = fresh("missing.json")
    s, warnings = make(path)
    assert s.load() is None and len(warnings) == 1 and "not found" in warnings[0]


def test_a_file_that_cannot_be_written_is_false_and_one_warning():
    s, warnings = make(
        fresh_path("test_store", "x").rpartition("/")[0] + "/no/such/dir/state.json"
    )
    assert s.save({"v": 1}) is False
    assert len(warnings) == 1 and "cannot save" in warnings[0]
    # the WebAssembly port raises emscripten's 44, which its errno module does not name
    w = warnings[0]
    assert "ENOENT" in w or "No such file" in w or w.endswith("errno 44"), warnings
    assert s.save({"v": 2}) is False and len(warnings) == 1  # the same failure: said once


def test_a_state_that_is_not_json_is_refused_before_touching_the_file():
    path = fresh("enc.json")
    s, warnings = make(path)
    s.save({"v": 1})
    assert s.save({"v": object()}) is False and len(warnings) == 1
    assert s.load() == {"v": 1}


def test_a_directory_in_place_of_the_file_is_a_warning():
    path = fresh("isdir.json")
    os.mkdir(path)
    try:
        s, warnings = make(path)
        assert s.load() == {} and len(warnings) == 1
    finally:
        os.rmdir(path)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def without_memory_for(*paths):
    """store's reads of these files run out of memory (as on a fragmented heap, where no block
    holds the text): the real _read to put back afterwards."""
    real = store._read
    store._read = lambda p: (None, store.OUT_OF_MEMORY) if p in paths else real(p)
    return real


def test_a_state_unread_for_want_of_memory_is_not_saved_over_until_it_reads():
    path = fresh("oom.json")
    s, warnings = make(path)
    good = {"v": 1, "fails": 6, "denied": {"192.0.2.1:123": 1795300000}}
    assert s.save(good)
    real = without_memory_for(path)
    try:
        assert s.load() == {}  # counted as a short boot, as an unreadable file is
        assert len(warnings) == 1 and store.OUT_OF_MEMORY in warnings[0], warnings
        assert s.save({"v": 1, "fails": 0}) is False  # tried to read it first: still no memory
        assert s.save({"v": 1, "fails": 1}) is False
        assert len(warnings) == 2 and "not saved over" in warnings[1], warnings  # said once
        assert s.warning == warnings[1] and "\n" not in s.warning
    finally:
        store._read = real
    assert store.read_json(path) == (good, None)  # the holds and the backoff are still there
    assert not exists(path + ".tmp")
    assert s.save({"v": 1, "fails": 2}) is True  # it reads now: the save goes ahead
    assert s.load() == {"v": 1, "fails": 2} and len(warnings) == 2


def test_a_later_load_that_reads_lets_the_saves_go_ahead():
    path = fresh("oom-reload.json")
    s, warnings = make(path)
    assert s.save({"v": 1, "fails": 3})
    real = without_memory_for(path)
    try:
        assert s.load() == {} and s.save({"v": 1}) is False
    finally:
        store._read = real
    assert s.load() == {"v": 1, "fails": 3}
    assert s.save({"v": 1, "fails": 4}) and s.load() == {"v": 1, "fails": 4}


def test_on_fat_a_temporary_file_unread_for_want_of_memory_is_not_written_over():
    # PATH removed, the rename cut: PATH.tmp is the only copy, and it could not be read
    path = fresh("fat-oom.json")
    write(path + ".tmp", b'{"v": 1, "fails": 4}')
    s, warnings = make(path)
    real = without_memory_for(path + ".tmp")
    try:
        assert s.load() == {} and store.OUT_OF_MEMORY in warnings[0], warnings
        assert s.save({"v": 1}) is False and "not saved over" in warnings[-1]
        fresh_store = store.JsonStore(path, warnings.append)  # never loaded: save() checks too
        assert fresh_store.save({"v": 1}) is False
    finally:
        store._read = real
    assert read_bytes(path + ".tmp") == b'{"v": 1, "fails": 4}' and not exists(path)
    assert s.save({"v": 1, "fails": 5}) and s.load() == {"v": 1, "fails": 5}


def test_read_saved_is_the_file_else_its_complete_temporary_one():
    path = fresh("saved.json")
    assert store.read_saved(path) == (None, store.NOT_FOUND)
    write(path + ".tmp", b'{"v": 1, "fai')  # a first save cut while writing: nothing saved
    assert store.read_saved(path) == (None, store.NOT_FOUND)
    write(path + ".tmp", b'{"v": 2}')
    assert store.read_saved(path) == ({"v": 2}, None)
    write(path, b'{"v": 3}')
    assert store.read_saved(path) == ({"v": 3}, None)
    write(path, b"[3]")  # the file's own reason; the temporary file is not read then
    assert store.read_saved(path) == (None, "not a JSON object")


def test_a_state_read_only_after_the_boot_keeps_its_sends_and_holds():
    # at boot the state file could not be read for want of memory: the boot starts from
    # nothing (a short boot), and its first save reads the file first; when it reads then,
    # its sends and KoD holds join the running policy's instead of being saved over
    from sntp.keeper import Keeper
    from sntp.schema import Config
    from sntp.sources import peer_by_text

    wall = [1_800_000_000_000_000]
    saved = {
        "v": 1,
        "boots": 3,
        "fails": 2,
        "up": 900_000,
        "open": False,
        "saved_ms": wall[0] // 1000,
        "sent": [
            ["10.0.0.7:123", wall[0] // 1000 - 20_000, 20_000],
            ["10.0.0.8:123", wall[0] // 1000 - 10_000, 10_000],  # asked, then denied
        ],
        "denied": {"10.0.0.8:123": wall[0] // 1_000_000 + 50_000},
        "rate": {"10.0.0.9:123": [1_200_000, 1_000_000, 80_000_000]},
    }

    class LateStore:  # the first load runs out of memory, the next one reads
        unread = False
        loads = 0

        def load(self):
            self.loads += 1
            self.unread = self.loads == 1
            return {} if self.unread else dict(saved)

        def save(self, doc):
            self.doc = doc
            return True

    store = LateStore()
    k = Keeper(Config.from_dict({"servers": ["ntp.example.com"]}), lambda n: 0, lambda: wall[0],
               store=store)  # fmt: skip
    k.boot(0)
    p = k.policy
    assert store.loads == 2 and not store.unread  # the boot's save read it again
    assert [x[0] for x in store.doc["sent"]] == ["10.0.0.7:123", "10.0.0.8:123"]
    assert set(store.doc["denied"]) == {"10.0.0.8:123"} and set(store.doc["rate"]) == {
        "10.0.0.9:123"
    }
    assert p.fails >= 2 and store.doc["fails"] >= 2
    denied = peer_by_text(p.peers, "10.0.0.8:123")  # one peer for its send and its hold
    assert denied.denied_until_ms > 0 and denied.last_send_ms is not None
    assert peer_by_text(p.peers, "10.0.0.9:123").rate_gap_ms == 1_200_000
    assert peer_by_text(p.peers, "10.0.0.7:123").last_send_ms is not None
