# A fragmented heap on the 32-bit runtime (the WebAssembly MicroPython, run by
# host_tests/test_store_heap.py as `node host_tests/wasmrun.mjs --run host_tests/fragheap_wasm.py`
# with a small WASM_HEAPSIZE): a valid configuration and state file load whole when no free
# block of the heap holds 2 KB, and files that no free block can hold are "out of memory":
# the defaults and {} for this boot, and neither the state file nor the configuration is saved
# over until it has been read.
#
# Pinning the heap: this port's GC heap grows when it is full (a new area from emscripten's
# malloc, up to 2 GB of wasm memory), so a full heap would never fragment. First every block
# the C allocator can still give is taken (16 KB pieces and up, through the js module: the
# runtime is globalThis.Module), so the GC heap has what it holds now and no more, as on a
# board. Then it is filled with 2,000-byte blocks (and the rest with smaller ones), and every
# other 2,000-byte block is dropped: the free space is holes of about 2 KB. Each step is a
# call of its own into the runtime (main() is a generator): this port's gc.collect() frees
# nothing made within the current call.
#
# Prints "fragheap: KEY VALUE" lines; the last is "fragheap: done".
import gc
import json
import sys

sys.path.insert(0, "boards/common")  # settings.py (the runner works in /repo)

DIR = "build/fragheap"
HOLE = 2_000  # bytes of each dropped block: no free block holds BIG (2 KB) afterwards
BIG = 2_048
CONFIG = {
    "kind": "sntp-config",
    "wifi_ssid": "factory-net",
    "wifi_pass": "correct horse battery",
    "zone": "acme",
    "servers": ["ntp1.example.com", "ntp2.example.com:123"],
    "accuracy_ms": 50,
    "tz": "CET-1CEST,M3.5.0,M10.5.0/3",
}
# A state file of about 1.5 KB: the last hour's sends, holds and the drift.
STATE = {
    "v": 1,
    "sent": [["10.0.0.{}:123".format(i % 4), 1_800_000_000_000 + i, 1000 * i] for i in range(24)],
    "denied": {"192.0.2.1:123": 1_795_300_000},
    "rate": {"192.0.2.2:123": 64_000},
    "fails": 3,
    "discipline": {"v": 1, "ppb": -20_417, "at_us": 1_800_000_000_000_000},
}
PAD = " " * 6_000  # JSON whitespace: the same documents, too big for any hole
# gc.mem_free() on this port adds the 128 MB a new heap area could have (its
# gc_get_max_new_split()), which pin() has taken: what the heap itself has free is the rest.
SPLIT = 128 * 1024 * 1024


def say(key, value):
    print("fragheap: {} {}".format(key, value))


def write(name, text):
    path = DIR + "/" + name
    with open(path, "w") as f:
        f.write(text)
    return path


def read(path):
    with open(path) as f:
        return f.read()


def digest(path):
    """A checksum of the file, read in 256-byte pieces (no block of the fragmented heap holds
    a big file)."""
    h = 0
    with open(path, "rb") as f:
        while True:
            piece = f.read(256)
            if not piece:
                return h
            for b in piece:
                h = (h * 31 + b) & 0xFF_FFFF


def pin():
    """Take what emscripten's malloc can still give, so that the GC heap cannot grow."""
    import js

    m = js.Module
    taken = []
    size = 1 << 30
    while size >= 16_384:
        p = m._malloc(size)
        if p:
            taken.append(p)
        else:
            size >>= 1
    return taken


def unpin(taken):
    import js

    for p in taken:
        js.Module._free(p)


def fill(keep):
    """Fill the heap: 2,000-byte blocks, then smaller ones into what is left; then drop every
    other 2,000-byte block (freed by the next call's collection). The number dropped. Nothing
    here allocates once the heap is full (no list, range or slice: small ints only)."""
    n = 0
    for size in (HOLE, 1_000, 500, 200, 64, 16, 1):
        try:
            while n < len(keep):
                keep[n] = bytearray(size)
                n += 1
        except MemoryError:
            pass
    dropped = i = 0
    while i < n:
        if len(keep[i]) == HOLE:
            keep[i] = None
            dropped += 1
            i += 1  # keep the next one
        i += 1
    return dropped


def settings_check(settings, path, want):
    lines = []
    s = settings.load(path, lines.append)
    whole = all(s[k] == v for k, v in want.items() if k != "kind")
    return "whole" if whole and not lines else "defaults: " + "; ".join(lines)


def main():
    import os

    import settings

    from sntp import config, store, tz  # noqa: F401 - tz: imported, as a frozen one is
    from sntp.console import Console

    if sys.maxsize != 2**31 - 1:
        say("error", "not the 32-bit runtime")
        return
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    cfg = write("config.json", json.dumps(CONFIG))
    state = write("state.json", json.dumps(STATE))
    big_cfg = write("big-config.json", json.dumps(CONFIG) + PAD)
    big_state = write("big-state.json", json.dumps(STATE) + PAD)
    say("sizes", "{} {} {} {}".format(*[len(read(p)) for p in (cfg, state, big_cfg, big_state)]))
    big_sums = digest(big_cfg), digest(big_state)
    # What a board pays once, at boot, before its heap fragments: the modules imported (above:
    # sntp.tz too, which a tz rule imports), and the qstrs that checking these values interns
    # (each character a str is iterated by: the qstr pool grows by doubling, about 5 KB here)
    store.JsonStore(state).load()
    config.load(cfg)
    settings.load(cfg)
    con = Console(cfg)
    con.handle(b"set accuracy_ms 20")
    con.handle(b"discard")
    con = None
    keep = [None] * 4_096
    warned = []
    taken = pin()
    yield

    holes = fill(keep)
    gc.collect()  # on this port: collect when this call returns (the dropped blocks)
    yield

    try:
        probe = bytearray(BIG)
        say("fragmented", "no: a {} B block was free (or the heap grew)".format(len(probe)))
        probe = None
    except MemoryError:
        free = gc.mem_free() - SPLIT
        say("fragmented", "yes: no free block of {} B, {} B free".format(BIG, free))
    say("holes", holes)
    # a valid configuration and state file load whole
    doc = store.JsonStore(state, warned.append).load()
    say("state", "whole" if doc == STATE and not warned else "lost: {}".format(warned))
    lines = []
    values = config.load(cfg, lines.append)
    whole = all(values[k] == v for k, v in CONFIG.items() if k != "kind")
    say("config", "whole" if whole and not lines else "defaults: {}".format(lines))
    say("settings", settings_check(settings, cfg, CONFIG))
    # files too big for any hole: out of memory, and not saved over
    del warned[:]
    s = store.JsonStore(big_state, warned.append)
    doc = s.load()
    say("big-state-load", "{} {}".format(json.dumps(doc), "; ".join(warned)))
    saved = s.save({"v": 1, "fails": 0})
    say("big-state-save", "{} {}".format(saved, s.warning))
    say("big-state-file", "untouched" if digest(big_state) == big_sums[1] else "changed")
    say("big-settings", settings_check(settings, big_cfg, CONFIG))
    con = Console(big_cfg, warn=warned.append)
    con.handle(b"set accuracy_ms 20")
    say("big-console-save", con.handle(b"save")[-1])
    say("big-config-file", "untouched" if digest(big_cfg) == big_sums[0] else "changed")
    for i in range(len(keep)):
        keep[i] = None  # memory is back when this call returns
    gc.collect()
    yield

    say("memory-back", "{} B free".format(gc.mem_free() - SPLIT))
    say("big-settings-again", settings_check(settings, big_cfg, CONFIG))
    saved = s.save({"v": 1, "fails": 0})  # it reads now: the save goes ahead
    say("big-state-save-again", "{} {}".format(saved, json.dumps(store.read_json(big_state)[0])))
    unpin(taken)
    say("done", "")
