# runs-on: both
# A power cut at every step of a save (firmware/sntp/store.py, used by config.save for the
# configuration and by the services for the policy and discipline state).
#
# Every file operation store.py performs (open, write, flush, fsync, close, rename, remove,
# stat) goes through a counting wrapper that cuts the power at the Nth one: before it runs,
# after it has run, or (a write) half-way through it; then nothing more reaches the disk.
# For N = 1, 2, ... until a save completes uncut, the next boot must load the old value or
# the new one, whole, and never raise. Then a second save, itself cut at every step, starts
# from whatever the first cut left (two power cuts in a row). Each step is also made to fail
# with an OSError instead (a full or worn flash): the save answers False or True, never
# raises, and the file holds the old value (False) or the new one (True).
# Two file systems: POSIX (rename replaces: LittleFS, unix) and FAT, where rename will not
# replace a file, so store.py removes the old one first.
# The model: each operation is durable once it returns (store.py flushes and fsyncs before
# the rename, the order that makes this model hold on a journaling file system).
import json
import os
import sys

from fakes import exists, fresh_path

from sntp import config, store
from sntp import state as saved_state
from sntp.discipline import Discipline
from sntp.policy import Policy
from sntp.schema import Config

SECRET = "correct horse battery staple"
_OPEN = open  # the real one: store.open is wrapped below, this module's is not


class PowerCut(BaseException):
    """The power going: not an error anything may catch (store.py catches OSError)."""


class Disk:
    """Counts store.py's file operations and cuts the power (or fails) at the Nth.

    how: 'before' (the Nth operation does not happen), 'after' (it happens, then the power
    goes), 'half' (a write writes half its text first; other operations: as 'before'),
    'error' (the Nth operation raises OSError(EIO) instead, and the disk stays up).
    fat: rename will not replace an existing file (EEXIST), as on FAT."""

    def __init__(self, cut_at=None, how="before", fat=False):
        self.cut_at = cut_at  # the operation number that fails; None: none
        self.how = how
        self.fat = fat
        self.n = 0  # operations so far
        self.ops = []  # their names, in order
        self.dead = False  # the power has gone: nothing more reaches the disk

    def op(self, name, fn, *args):
        """Run fn(*args) as operation number self.n + 1, unless the cut comes first."""
        if self.dead:
            raise PowerCut()
        self.n += 1
        self.ops.append(name)
        if self.n == self.cut_at:
            if self.how == "error":
                raise OSError(5)  # EIO
            if self.how == "after":
                fn(*args)
            elif self.how == "half" and name == "write":
                fn(args[0][: len(args[0]) // 2])
            self.dead = True
            raise PowerCut()
        return fn(*args)

    # ---- the os functions store.py uses --------------------------------------------------
    def rename(self, src, dst):
        def do(src, dst):
            if self.fat and exists(dst):
                raise OSError(17)  # EEXIST: FAT will not replace a file
            os.rename(src, dst)

        return self.op("rename", do, src, dst)

    def remove(self, path):
        return self.op("remove", os.remove, path)

    def stat(self, path):
        return self.op("stat", os.stat, path)

    def fsync(self, fd):
        real = getattr(os, "fsync", None)  # CPython has one; the unix MicroPython has not
        return self.op("fsync", real if real is not None else (lambda fd: None), fd)

    def __getattr__(self, name):
        return getattr(os, name)

    # ---- open ----------------------------------------------------------------------------
    def open(self, path, mode="r"):
        binary = "b" in mode
        raw = "wb" if "w" in mode else "rb"

        def do(path):
            if sys.implementation.name == "cpython":
                return _OPEN(path, raw, buffering=0)  # unbuffered: a write is on disk
            return _OPEN(path, raw)  # MicroPython's files are unbuffered

        return File(self, self.op("open", do, path), binary)


class File:
    """A file whose every operation is counted by its Disk."""

    def __init__(self, disk, f, binary):
        self.disk = disk
        self.f = f
        self.binary = binary

    def write(self, data):
        if not self.binary:
            data = data.encode("utf-8")
        return self.disk.op("write", self.f.write, data)

    def read(self, n=-1):
        data = self.disk.op("read", self.f.read, n)
        return data if self.binary else data.decode("utf-8")

    def flush(self):
        return self.disk.op("flush", lambda: None)  # unbuffered: nothing to flush

    def fileno(self):
        return self.f.fileno()

    def close(self):
        if self.disk.dead:
            raise PowerCut()  # the handle dies with the power; the file stays as it was
        self.disk.n += 1
        self.disk.ops.append("close")
        self.f.close()
        if self.disk.n == self.disk.cut_at and self.disk.how != "error":
            self.disk.dead = True
            raise PowerCut()  # (a close cannot fail 'before': it has nothing left to write)


def with_disk(disk, fn):
    """fn() with store.py's os and open replaced by disk; True if the power went."""
    store.os = disk
    store.open = disk.open  # a module global comes before the builtin
    try:
        fn()
        return False
    except PowerCut:
        return True
    finally:
        store.os = os
        del store.open


def fresh(name):
    # one folder per runtime: both runtimes' runs may share the work tree at once
    return fresh_path("test_power_cut-" + sys.implementation.name, name)


def cut_everywhere(path, save_old, save_new, load, old, new, fat, hows):
    """Save old, then save new cut at every operation (each way in hows); load() after each
    must be old or new. Returns the number of cuts tried."""
    tried = 0
    for how in hows:
        n = 1
        while True:
            _wipe(path)
            assert with_disk(Disk(fat=fat), save_old) is False
            assert load() == old
            disk = Disk(n, how, fat)
            cut = with_disk(disk, save_new)
            got = load()  # the next boot, on the real file system
            assert got == old or got == new, (how, n, disk.ops, got)
            if not cut and disk.n < n:
                assert got == new, (how, n, disk.ops)
                break  # the save finished before the Nth operation: every step was cut
            tried += 1
            n += 1
    return tried


def _wipe(path):
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass


# ---- the configuration --------------------------------------------------------------------------
OLD = dict(config.defaults(), zone="old", wifi_ssid="old-net", wifi_pass="old passphrase")
NEW = dict(config.defaults(), zone="newzone", servers=["ntp.example.com"], wifi_ssid="new-net")
NEW.update(wifi_pass=SECRET, factory_server="192.0.2.1", country="SE", accuracy_ms=40)
THIRD = dict(config.defaults(), zone="third", log_level="debug")


def config_case(name):
    path = fresh(name)
    warnings = []

    def load():
        warnings[:] = []
        v = config.load(path, warnings.append)
        assert warnings == [], warnings  # old or new, whole: nothing to warn about
        return v

    def save(values):
        return lambda: config.save(path, values, lambda line: None)

    return path, load, save


def test_config_save_cut_at_every_step_loads_the_old_or_the_new_configuration():
    tried = 0
    for fat in (False, True):
        path, load, save = config_case("cfg-{}.json".format(int(fat)))
        tried += cut_everywhere(
            path, save(OLD), save(NEW), load, OLD, NEW, fat, ("before", "after", "half")
        )
    print("power cut: configuration save cut at {} steps (POSIX and FAT)".format(tried))
    assert tried >= 2 * 3 * 5


def test_two_power_cuts_in_a_row_never_lose_the_configuration():
    """The first save cut at step N, the device boots (loads), a second save cut at step M:
    the next boot loads what the first cut left, or the second save's value."""
    tried = 0
    for fat in (False, True):
        path, load, save = config_case("twice-{}.json".format(int(fat)))
        for how in ("before", "after"):
            n = 1
            while True:
                first = Disk(n, how, fat)
                _restore(path, save, first, fat)
                left = load()  # the boot in between: old or new
                assert left == OLD or left == NEW, (how, n, first.ops)
                m = 1
                while True:
                    second = Disk(m, how, fat)
                    _restore(path, save, first, fat)  # the disk as the first cut left it
                    assert load() == left
                    cut = with_disk(second, save(THIRD))
                    got = load()
                    assert got == left or got == THIRD, (how, n, m, first.ops, second.ops, got)
                    tried += 1
                    if not cut and second.n < m:
                        break
                    m += 1
                if first.n < n:
                    break
                n += 1
    print("power cut: {} pairs of cuts in a row (POSIX and FAT)".format(tried))
    assert tried >= 50


def _restore(path, save, first, fat):
    """Put the disk back as first (a cut Disk) left it: replay the same cut."""
    _wipe(path)
    with_disk(Disk(fat=fat), save(OLD))
    first.n, first.ops, first.dead = 0, [], False
    with_disk(first, save(NEW))


def test_config_save_failing_at_every_step_answers_and_keeps_old_or_new():
    tried = 0
    for fat in (False, True):
        path, load, save = config_case("err-{}.json".format(int(fat)))
        n = 1
        while True:
            _wipe(path)
            with_disk(Disk(fat=fat), save(OLD))
            disk = Disk(n, "error", fat)
            ok = []
            store.os = disk
            store.open = disk.open
            try:
                ok.append(config.save(path, NEW, lambda line: None))  # never raises
            finally:
                store.os = os
                del store.open
            got = load()
            assert got == (NEW if ok[0] else OLD), (n, disk.ops, ok, got)
            if disk.n < n:
                assert ok[0]
                break
            tried += 1
            n += 1
        # and the next save, with the disk well again, goes through
        assert config.save(path, THIRD, lambda line: None) and load() == THIRD
    assert tried >= 2 * 5


def test_the_console_save_cut_at_every_step_then_a_reboot():
    from sntp.console import Console

    for fat in (False, True):
        path, load, save = config_case("console-{}.json".format(int(fat)))
        n = 1
        while True:
            _wipe(path)
            with_disk(Disk(fat=fat), save(OLD))
            con = Console(path, warn=lambda line: None)
            assert con.handle(b"set zone console")[-1] == "ok"
            disk = Disk(n, "before", fat)
            replies = []
            cut = with_disk(disk, lambda con=con, r=replies: r.append(con.handle(b"save")))
            con = Console(path, warn=lambda line: None)  # the reboot
            got = con.handle(b"get zone")
            assert got in (["zone=old", "ok"], ["zone=console", "ok"]), (n, disk.ops, got)
            assert con.clean  # it loaded without a warning
            if not cut:
                assert replies[0][-1] == "ok" and got == ["zone=console", "ok"]
                break
            n += 1


# ---- the policy and discipline state (service.py saves both in one file) ----------------------
T_UNIX_US = 1_800_000_000_000_000  # 2027


def state(fails, drift_ppb, denied):
    """A state dict as service.py saves it: the policy's, with the discipline's inside."""
    cfg = Config.from_dict({"zone": "acme"})
    p = Policy(cfg, lambda n: 0)
    st = {"v": 1, "fails": fails, "denied": denied}
    p.start(0, T_UNIX_US, st)
    d = Discipline()
    d.load({"v": 1, "drift_ppb": drift_ppb, "samples": [drift_ppb] * 3})
    out = saved_state.write(p)
    out["discipline"] = d.state()
    return json.loads(json.dumps(out))  # as it reads back


def restored(st):
    """What a boot makes of a loaded state: (fails, drift_ppb, denied keys)."""
    cfg = Config.from_dict({"zone": "acme"})
    p = Policy(cfg, lambda n: 0)
    d = Discipline()
    d.load(st.get("discipline") if isinstance(st, dict) else None)
    p.start(0, T_UNIX_US, st)
    return p.fails, d.drift_ppb, sorted(p.denied_wall)


def test_policy_and_discipline_state_cut_at_every_step():
    old = state(2, 20_000, {"10.0.0.1:123": T_UNIX_US // 1_000_000 + 3600})
    new = state(5, -31_000, {"10.0.0.2:123": T_UNIX_US // 1_000_000 + 7200})
    tried = 0
    for fat in (False, True):
        path = fresh("state-{}.json".format(int(fat)))
        warnings = []
        s = store.JsonStore(path, warnings.append)

        def load(s=s, warnings=warnings):
            got = s.load()
            assert got is not None, warnings  # never lost
            r = restored(got)  # and a boot takes it whole
            assert r == restored(old) or r == restored(new), r
            return got

        tried += cut_everywhere(
            path,
            lambda s=s: s.save(old),
            lambda s=s: s.save(new),
            load,
            old,
            new,
            fat,
            ("before", "after", "half"),
        )
    print("power cut: policy/discipline state save cut at {} steps (POSIX and FAT)".format(tried))
    assert restored(old) != restored(new)
    assert tried >= 2 * 3 * 5


def test_the_unix_boards_state_file_cut_at_every_step():
    from softrtc import StateFile

    for fat in (False, True):
        path = fresh("board-{}.json".format(int(fat)))
        n = 1
        while True:
            _wipe(path)
            sf = StateFile(path, warn=lambda line: None).open()
            sf.rtc.offset_us = -5_000_000
            assert with_disk(Disk(fat=fat), lambda sf=sf: sf.save({"v": 1, "fails": 1})) is False
            sf.rtc.offset_us = 7_000_000_000
            disk = Disk(n, "before", fat)
            cut = with_disk(disk, lambda sf=sf: sf.save({"v": 1, "fails": 2}))
            back = StateFile(path, warn=lambda line: None).open()
            # the board clock and the policy state come from the same save, never mixed
            pair = (back.rtc.offset_us // 1_000_000, back.policy_state)
            assert pair in ((-5, {"v": 1, "fails": 1}), (7000, {"v": 1, "fails": 2})), (
                n,
                disk.ops,
                pair,
            )
            if not cut:
                assert pair[1] == {"v": 1, "fails": 2}
                break
            n += 1
