# Where one sync's allocations come from, on the 32-bit WebAssembly MicroPython:
#
#   make footprint-breakdown
#   (= WASM_HEAPSIZE=1048576 node host_tests/wasmrun.mjs --run tools/wasm/syncalloc.py: a
#   small heap, because gc.mem_alloc() reads all of it, twice per wrapped call)
#
# The service of tools/wasm/footprint.py (the firmware's own net.Net over a fakesock.World,
# the first sync and a boot's slew done, then three syncs an hour apart, so that the drift
# is known), then every function and method of the sntp modules that are loaded (found in
# sys.modules, not listed here) and the probe's board clock is wrapped by one that reads
# gc.mem_alloc() before and after it, and one sync is measured: Service.sync(), then a
# scheduled sync in Service.run() (the headless board's: no summary). Each is printed as
# the functions that allocated, most first: the calls, the bytes allocated in the function
# itself (its callees that are wrapped not counted: closures, lambdas, the port's builtins
# and big-integer arithmetic are), and with its callees. The wrappers cost nothing here:
# what calling one allocates (the tuple of its arguments and the dict of its keywords) is
# measured on wrapped functions that do nothing and taken off. What the fake server
# allocates (World.own) is left out of every figure. This port frees nothing made within a
# call into the runtime, so each figure is what was allocated; the total comes out a few per
# cent above the same sync measured without the wrappers (printed beside it).
# Nothing here changes the firmware: the wrappers are set on the loaded modules only.
import gc
import sys

FUNCTION = type(lambda: 0)


class Meter:
    """The wrappers and what they counted."""

    def __init__(self, world):
        self.world = world
        self.stats = {}  # name -> [calls, self bytes, bytes with callees]
        self.kids = [0] * 256  # per depth: bytes the wrapped callees took, with their calls
        self.costs = [0] * 256  # per depth: bytes the calls of wrappers took below it
        self.depth = [0]
        self.cost = {}  # (positional count, keyword count) -> bytes calling a wrapper allocates
        self.inner = {}  # and bytes the wrapper's own call of the function allocates
        self.on = False

    def wrap(self, f, name):
        st = self.stats.get(name)
        if st is None:
            st = self.stats[name] = [0, 0, 0]
        kids, costs, depth, world = self.kids, self.costs, self.depth, self.world
        cost, inner = self.cost, self.inner
        meter = self

        def w(*a, **k):
            if not meter.on:
                return f(*a, **k)
            d = depth[0] = depth[0] + 1
            kids[d] = costs[d] = 0
            own = world.own
            m = gc.mem_alloc()
            try:
                return f(*a, **k)
            finally:
                n = (len(a), len(k))
                i = inner.get(n, 0)
                used = gc.mem_alloc() - m - (world.own - own) - i
                st[0] += 1
                st[1] += used - kids[d]
                st[2] += used - costs[d]
                depth[0] = d - 1
                c = cost.get(n, 0) + i
                kids[d - 1] += used + c
                costs[d - 1] += costs[d] + c

        return w

    def calibrate(self):
        """What calling a wrapper allocates, and what its own call of the function does, by
        the count of positional and keyword arguments: measured on wrapped functions of that
        many parameters that do nothing, called as the firmware calls them."""
        for n in range(9):
            for kn in range(3):
                names = ["p{}".format(i) for i in range(n)]
                kws = ["k{}".format(i) for i in range(kn)]
                src = "def nothing({}):\n    pass\n".format(
                    ", ".join(names + [k + "=None" for k in kws])
                )
                g = {}
                exec(src, g)
                w = self.wrap(g["nothing"], "(calibration)")
                g["w"] = w
                exec(
                    "call = lambda: w({})".format(", ".join(["1"] * n + [k + "=1" for k in kws])),
                    g,
                )
                call = g["call"]
                call()  # once: anything made at a first call
                self.on = True
                m = gc.mem_alloc()
                call()
                total = gc.mem_alloc() - m
                self.on = False
                self.inner[(n, kn)] = self.kids[0]  # the wrapper's call of the function
                self.cost[(n, kn)] = total - self.kids[0]  # and the call of the wrapper
                self.kids[0] = self.costs[0] = 0
        del self.stats["(calibration)"]

    def install(self, extra=()):
        """Wrap every function and method of the loaded sntp modules, and of the classes in
        extra (name, class, names of methods left alone)."""
        mods = [m for n, m in sorted(sys.modules.items()) if n == "sntp" or n.startswith("sntp.")]
        done = {}  # id(function) -> wrapper, for names imported into other modules
        for mod in mods:
            g = mod.__dict__
            for key in sorted(g):
                v = g[key]
                if type(v) is FUNCTION and v.__globals__ is g:
                    done[id(v)] = self.wrap(v, "{}.{}".format(g["__name__"], key))
                elif type(v) is type and v.__dict__.get("__module__") == g["__name__"]:
                    self.wrap_class(v, "{}.{}".format(g["__name__"], key))
        for mod in mods:  # the imported names too: `from .exchange import build_request`
            g = mod.__dict__
            for key in list(g):
                w = done.get(id(g[key]))
                if w is not None:
                    setattr(mod, key, w)
        for name, cls, skip in extra:
            self.wrap_class(cls, name, skip)

    def wrap_class(self, cls, name, skip=()):
        for key in sorted(cls.__dict__):
            v = cls.__dict__[key]
            if type(v) is FUNCTION and key not in skip:
                setattr(cls, key, self.wrap(v, "{}.{}".format(name, key)))

    def reset(self):
        for st in self.stats.values():
            st[0] = st[1] = st[2] = 0
        self.kids[0] = self.costs[0] = 0

    def lines(self):
        rows = sorted(
            ((st[1], st[2], st[0], name) for name, st in self.stats.items() if st[0]),
            reverse=True,
        )
        out = ["  {:>7} {:>7} {:>6}  {}".format("self B", "with", "calls", "function")]
        for own, incl, calls, name in rows:
            if own or incl:
                out.append("  {:>7} {:>7} {:>6}  {}".format(own, incl, calls, name))
        by = {}
        for own, _, _, name in rows:
            mod = name.rsplit(".", 2)[0] if name.count(".") > 1 else name.split(".")[0]
            if "." in name and name.split(".")[0] == "sntp":
                mod = ".".join(name.split(".")[:2])
            by[mod] = by.get(mod, 0) + own
        calls = sum(st[0] for st in self.stats.values())
        out.append(
            "  by module (self bytes): "
            + ", ".join(
                "{} {}".format(m, b)
                for b, m in sorted(((b, m) for m, b in by.items()), reverse=True)
                if b
            )
        )
        out.append(
            "  total {} B ({} wrapped calls; their own {} B taken off)".format(
                self.kids[0] - self.costs[0], calls, self.costs[0]
            )
        )
        return out


def main():
    import footprint
    from fakes import NTP_1970

    yield
    clock = footprint.Clock(NTP_1970)
    svc, world = yield from footprint.warmed(clock)  # the drift known, as in its syncs
    plain = footprint.sync(svc, world)[0]  # without the wrappers, for comparison
    yield
    plain_run = footprint.scheduled(svc, world)
    yield
    meter = Meter(world)
    # the probe's clock as the firmware calls it (advance() is the fake network's)
    meter.install(extra=(("(board clock) Clock", footprint.Clock, ("__init__", "advance")),))
    meter.calibrate()
    yield
    meter.reset()
    meter.on = True
    s = footprint.sync(svc, world)[1]
    meter.on = False
    assert s["clock_set"], s
    print(
        "one Service.sync() on the 32-bit runtime ({} B measured without the wrappers):".format(
            plain
        )
    )
    print("\n".join(meter.lines()))
    yield
    meter.reset()
    meter.on = True
    footprint.scheduled(svc, world)
    meter.on = False
    print(
        "\none scheduled sync in Service.run(), the headless board's ({} B without the"
        " wrappers):".format(plain_run)
    )
    print("\n".join(meter.lines()))
