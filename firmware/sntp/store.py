# A small JSON file, saved atomically: the persisted state of the time service.
#
# save() writes the new text to PATH.tmp and renames it over PATH, so a power cut leaves
# either the old file or the new one, never half of one (rename(2) replaces atomically on
# unix and on LittleFS). FAT, on some boards, will not rename over an existing file: then
# PATH is removed first, and load() falls back to PATH.tmp, complete by then, if PATH is gone
# (the next save renames it into place before writing PATH.tmp again).
#
# load() never raises: a missing file loads as None (a first boot); an unreadable, oversized,
# non-UTF-8, non-JSON file, or JSON that is not an object, as {} (there was a boot before:
# the policy counts it as a short one and waits longer); each with one warning line.
# A file that could not be read for want of memory (OUT_OF_MEMORY) also loads as {}, but it
# may be perfectly good (its holds and backoff): save() does not replace it until it has been
# read again (each save tries), and says so once.
#
# read_saved(PATH) is the one "PATH, else PATH.tmp" reading: the state file here, and the
# configuration (sntp.config.load, the board's settings.load) with their own words.
import errno
import gc
import json
import os

from .compat import const

MAX_BYTES = const(16_384)  # the state is a few hundred bytes; anything far larger is broken


class JsonStore:
    """load() -> dict ({}: unreadable) or None (not there); save(dict) -> True or False.
    warn(text): one line per problem."""

    def __init__(self, path, warn=None):
        self.path = path  # the file
        self.tmp = path + ".tmp"  # where a save is written before the rename
        self.warn = warn  # callable(one-line text); None: print it
        self.warning = None  # the last warning, for callers that do not pass warn
        self.unread = False  # the last load() ran out of memory: the file is not saved over

    def load(self):
        """The stored object (a dict); {} or None (not found) with one warning. Never raises."""
        doc, why = read_saved(self.path)
        self.unread = why == OUT_OF_MEMORY
        if doc is not None:
            return doc
        if why == NOT_FOUND:
            self._warn("{}: not found, starting without saved state".format(self.path))
            return None
        if self.unread:
            self._warn(
                "{}: {}: starting without saved state, not saved over".format(self.path, why)
            )
        else:
            self._warn("{}: {}, ignored (starting without saved state)".format(self.path, why))
        return {}

    def save(self, doc):
        """Write doc (a JSON-able dict) atomically. False, with one warning, if it failed."""
        try:
            text = json.dumps(doc)
            # MicroPython's dumps writes repr() for what JSON cannot hold ('<object>'): make
            # sure the text reads back before it replaces a good file.
            back = json.loads(text)
        except (TypeError, ValueError) as e:
            self._warn("{}: cannot encode the state: {}".format(self.path, _text(e)))
            return False
        if self.unread:  # the file may hold a good state: read it first (memory may be back)
            if read_saved(self.path)[1] == OUT_OF_MEMORY:
                return self._refuse()
            self.unread = False
        try:
            if not self._finish_replace():
                return self._refuse()
            f = open(self.tmp, "w")
            try:
                self._write(f, text)
                f.flush()
                _fsync(f)
            finally:
                f.close()
            _replace(self.tmp, self.path)
        except OSError as e:
            if _exists(self.path):
                _remove(self.tmp)
            elif read_json(self.tmp)[0] == back:
                return True  # FAT: PATH removed, the rename failed; load() reads PATH.tmp
            self._warn("{}: cannot save: {}".format(self.path, _text(e)))
            return False
        return True

    def _finish_replace(self):
        # FAT: a save cut between removing PATH and the rename left the good file only in
        # PATH.tmp (load() reads it there). Put it in place before this save truncates
        # PATH.tmp, or a second cut, or a failing rename, would lose both. False: PATH.tmp
        # could not be read for want of memory (it may be that good file): not written over.
        if _exists(self.path):
            return True
        doc, why = read_json(self.tmp)
        if doc is not None:
            os.rename(self.tmp, self.path)
        return why != OUT_OF_MEMORY

    def _refuse(self):
        self._warn(
            "{}: unread ({}): not saved over until it reads".format(self.path, OUT_OF_MEMORY)
        )
        return False

    def _write(self, f, text):
        # One write; a test overrides this to cut the power half-way.
        f.write(text)

    def _warn(self, text):
        text = " ".join(text.split())  # one line, whatever an error message held
        if text == self.warning:
            return  # a save that keeps failing the same way is said once
        self.warning = text
        if self.warn is not None:
            self.warn(text)
        else:
            print("sntp: " + text)


NOT_FOUND = "not found"
# The heap had no block for the file's text, even after a collection: nothing is known of the
# file (it may be perfectly good), so nothing may be saved over it on that account.
OUT_OF_MEMORY = "out of memory"


def read_saved(path):
    """(dict, None), or (None, why): the file at path, else path + ".tmp" when path is not
    found (a save on FAT cut between removing path and the rename: the temporary file is
    complete by then). why is path's reason, NOT_FOUND when neither is there or the
    temporary file is broken (a save cut while writing it: nothing complete was saved), and
    OUT_OF_MEMORY when the temporary file could not be read for want of memory (it may be
    the good one)."""
    doc, why = read_json(path)
    if why != NOT_FOUND:
        return doc, why
    doc, why = read_json(path + ".tmp")
    if doc is not None or why == OUT_OF_MEMORY:
        return doc, why
    return None, NOT_FOUND


def retry_short(fn, arg):
    """(fn(arg), None), or (None, OUT_OF_MEMORY): a MemoryError is tried once more after a
    collection, then said as such. For what checks a file's contents after reading it (a tz
    rule imports sntp.tz; a character never seen before interns a qstr, and a full qstr pool
    grows by one block of kilobytes): a good file is not "broken" for want of memory."""
    try:
        return fn(arg), None
    except MemoryError:
        gc.collect()
    try:
        return fn(arg), None
    except MemoryError:
        return None, OUT_OF_MEMORY


def read_json(path):
    """(dict, None), or (None, why): a short reason such as NOT_FOUND, OUT_OF_MEMORY or
    "not JSON". The file is read in the size it has (a board's heap may have no 16 KB block
    free when it has a few hundred bytes), and a MemoryError is tried again once after a
    collection, then said as such."""
    doc, why = _read(path)
    if why == OUT_OF_MEMORY:
        gc.collect()
        doc, why = _read(path)
    return doc, why


def _read(path):
    try:
        size = os.stat(path)[6]
        f = open(path, "rb")
    except OSError as e:
        # ENOENT by name (its number is the C library's), or the file is not there when
        # looked at: the WebAssembly port raises emscripten's 44 while its errno module says 2
        if e.errno == errno.ENOENT or not _exists(path):
            return None, NOT_FOUND
        return None, "cannot open: " + _text(e)
    try:
        try:
            data = f.read(min(size, MAX_BYTES) + 1)  # +1: it grew since the stat
        finally:
            f.close()
        if len(data) > MAX_BYTES:
            return None, "larger than {} bytes".format(MAX_BYTES)
        doc = json.loads(data.decode("utf-8"))
    except MemoryError:
        return None, OUT_OF_MEMORY
    except OSError as e:
        return None, "cannot read: " + _text(e)
    except Exception:  # noqa: BLE001 - ValueError/UnicodeError differ by port
        return None, "not JSON"
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    return doc, None


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        # FAT will not rename over a file. Not atomic: load() falls back to src meanwhile.
        _remove(dst)
        os.rename(src, dst)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync(f):
    # CPython and some ports have os.fsync; elsewhere close() is as far as we can go.
    fsync = getattr(os, "fsync", None)
    if fsync is None:
        return
    try:
        fsync(f.fileno())
    except (AttributeError, OSError):
        pass


def _text(e):
    # CPython: "[Errno 13] Permission denied: 'x'"; MicroPython: just the number.
    if len(e.args) == 1 and isinstance(e.args[0], int):
        return errno.errorcode.get(e.args[0]) or "errno {}".format(e.args[0])  # "EACCES"
    return str(e) or type(e).__name__
