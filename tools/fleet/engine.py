# The event engine: one global time-ordered queue (heapq) of (t_ms, device) wake-ups per
# shard, the shards spread over processes, and a text progress bar.
#
# Why shards are exact: the simulated servers keep state per client only (rate-limit buckets
# are per client address, as ntpd's are), and outages, DNS and pool membership depend on time
# alone, so devices never interact except through the counters, which add up. A shard runs
# its devices in one queue in time order; the shards' counters are summed afterwards.
import heapq
import multiprocessing as mp
import pickle
import random
import sys
import time
import zlib

from sntp import schema

from .clients import MODELS, SntpClient
from .model import DAY_MS, FastOscillator, Stats, World
from .scenarios import EVENT_MS, SCENARIOS

SAMPLE_MS = 600_000  # the clock error of sampled devices, every 10 minutes
SAMPLED_DEVICES = 500  # about this many devices are sampled, whatever the fleet size
SHARD_MAX = 12_500  # devices per shard (a shard of this client holds ~0.2 GB)


def make_device(client, world, idx, prng, rand, config):
    """One device: its crystal (a constant error uniform in +/-30 ppm, the daily +/-2 ppm
    swing and the hourly walk of sim.Oscillator) and its path (one-way delays of 5-60 ms
    each way, so up to 27 ms of asymmetry), drawn from prng so that every client gets the
    same population."""
    osc = FastOscillator(
        base_ppb=prng.randrange(-30_000, 30_001), wander_ppb=2_000, walk_ppb=100, rand=rand
    )
    up = prng.randrange(5_000, 60_001)
    down = prng.randrange(5_000, 60_001)
    if client == "sntp":
        return SntpClient(world, idx, osc, 0, up, down, config, rand)
    return MODELS[client](world, idx, osc, 0, up, down, rand)


class FastRand:
    """rand_below for the policy: n -> uniform int in [0, n), 3x cheaper than randrange (a
    53-bit float times n: uniform to well below a ms for every n the policy asks for). A
    class, not a closure, so that a shard can be pickled (forked into scenarios)."""

    def __init__(self, rng):
        self.random = rng.random

    def below(self, n):
        return int(self.random() * n)


class Shard:
    """Devices [i0, i1) of a fleet of n_total with one client, in scenario sc."""

    def __init__(self, sc, client, n_total, i0, i1, seed=1, accuracy_ms=None):
        self.sc = sc
        self.client = client
        self.seed, self.i0 = seed, i0
        self.rng = random.Random(seed * 1_000_003 + i0 * 7 + zlib.crc32(client.encode()) % 1000)
        prng = random.Random(seed * 1_000_003 + i0)  # the population: the same per client
        self.stats = Stats(sc.duration_ms, len(sc.servers()), sc.window)
        self._stats_options(sc, self.stats)
        self.world = World(sc, self.rng, self.stats, loss=sc.loss)
        self.world.track_first_sync = sc.cut is None and sc.first_sync_from_start
        conf = dict(sc.sntp_config)
        if accuracy_ms is not None:  # fleet run --accuracy-ms, make bench's per-scenario budgets
            conf["accuracy_ms"] = accuracy_ms
        config = schema.Config.from_dict(conf)
        self.rand = FastRand(self.rng).below
        self.devs = []
        self.heap = []
        every = max(1, n_total // SAMPLED_DEVICES)
        life_rng = self._life_rng(seed, i0)
        for i in range(i0, i1):
            d = make_device(client, self.world, i, prng, self.rand, config)
            sc.equip(d, seed)  # a sleep clock, from the device's own random source
            t_boot, valid = sc.boot(prng)
            d.lose_at_boot = not valid
            k = len(self.devs)
            self.devs.append(d)
            if sc.restarts:
                d.life_t = sc.life_start(i, t_boot, life_rng)
            self.heap.append((t_boot if d.life_t is None else min(t_boot, d.life_t), k))
            if i % every == 0 and sc.samples:
                d.sampled = True
                self.heap.append(((t_boot // SAMPLE_MS + 1) * SAMPLE_MS, -k - 1))
        heapq.heapify(self.heap)
        self.stats.devices = len(self.devs)
        self.events = 0
        self.now_ms = 0

    @staticmethod
    def _life_rng(seed, i0):
        """The restart events' own random source (the population's and the shard's draws
        stay those of the scenarios without restarts)."""
        return random.Random(seed * 1_000_033 + i0 + 17)

    @staticmethod
    def _stats_options(sc, st):
        st.hour_window = sc.hour_window
        st.track_sends = sc.track_sends
        if sc.exact_errors:
            st.keep_exact()

    def run_until(self, until_ms, progress=None):
        heap, devs, stats = self.heap, self.devs, self.stats
        world, life = self.world, self.sc.life
        replace, pop = heapq.heapreplace, heapq.heappop
        events = 0
        mark = 0
        while heap:
            t, k = heap[0]
            if t >= until_ms:
                break
            events += 1
            if progress is not None and t >= mark:
                progress(t)
                mark = t + 3_600_000
            if k < 0:
                d = devs[-k - 1]
                if d.on and d.synced:
                    stats.error_sample(t, d.sample(t), d.bound_us(t))
                replace(heap, (t + SAMPLE_MS, k))
                continue
            d = devs[k]
            lt = d.life_t
            if lt is not None and t >= lt:  # a restart event (scenarios.py: life)
                nt = life(d, t, world)
                lt = d.life_t
            elif d.on:
                nt = d.wake(t)
            else:
                d.on = True
                nt = d.boot(t, lose_clock=d.lose_at_boot)
            if lt is not None and (nt is None or nt > lt):
                nt = lt  # the device's own wake-up is lost in the restart
            if nt is None:
                pop(heap)
            else:
                replace(heap, (nt, k))
        self.events += events
        self.now_ms = until_ms

    def power_cut(self, off_ms, on_ms, lose_clock):
        """The whole shard loses power at off_ms and boots in the same second at on_ms."""
        self.run_until(off_ms)
        samples = [e for e in self.heap if e[1] < 0]
        for d in self.devs:
            if d.on:
                d.power_off(off_ms)
            d.on = False
            d.lose_at_boot = lose_clock
        self.heap = samples + [(on_ms, k) for k in range(len(self.devs))]
        heapq.heapify(self.heap)
        self.world.track_first_sync = True

    def run(self, progress=None):
        """From where the shard is to the end of its scenario; returns the Stats."""
        sc = self.sc
        if sc.cut is not None and self.now_ms <= sc.cut[0]:
            off, on, lose = sc.cut
            self.run_until(off, progress)
            self.power_cut(off, on, lose)
        self.run_until(sc.duration_ms, progress)
        for d in self.devs:
            self.world.finish_device(d)
        self.stats.finalize()
        return self.stats

    def retarget(self, sc):
        """Switch a shard that ran the common first week to scenario sc (identical so far:
        every scenario's event starts at EVENT_MS). The counters so far are carried over."""
        old = self.stats
        self.sc = sc
        w = self.world
        w.scenario = sc
        w.servers = sc.servers()
        w.by_key = {s.key: i for i, s in enumerate(w.servers)}
        w.dns = sc.dns
        st = Stats(sc.duration_ms, len(w.servers), sc.window)
        self._stats_options(sc, st)
        st.carry(old, self.now_ms)
        if sc.cut is not None:
            st.first_sync_ms = []  # the figure is about the boots after the cut
            w.track_first_sync = False
        w.stats = st
        self.stats = st
        if sc.restarts:
            st.first_sync_ms = []  # the figure is about the boots the scenario makes
            w.track_first_sync = sc.first_sync_from_start
            rng = self._life_rng(self.seed, self.i0)
            queued = {}
            for j, (_t, k) in enumerate(self.heap):
                if k >= 0:
                    queued[k] = j
            for k, d in enumerate(self.devs):
                d.first_sync_pending = False
                d.life_t = sc.life_start(d.idx, self.now_ms, rng)
                if d.life_t is None:
                    continue
                j = queued.get(k)
                if j is None:
                    self.heap.append((d.life_t, k))
                elif d.life_t < self.heap[j][0]:
                    self.heap[j] = (d.life_t, k)
            heapq.heapify(self.heap)


# ---- processes and progress -----------------------------------------------------------------
_progress = None  # shared array of per-shard simulated ms (set in each worker)


def _init(arr):
    global _progress
    _progress = arr


def _run_job(job):
    """One shard: the common first week once, then each scenario from a copy of it."""
    client, n_total, i0, i1, seed, names, days, slot, accuracy_ms = job
    t0 = time.process_time()
    scs = [SCENARIOS[name](days.get(name)) for name in names]
    plan = fork_plan(scs)
    done_ms = [0]

    def progress(t_ms):
        if _progress is not None:
            _progress[slot] = done_ms[0] + t_ms - base_ms[0]

    base_ms = [0]
    out = {}
    events = 0
    alone = [sc for sc in scs if not forkable(sc, plan)]
    forked = [sc for sc in scs if forkable(sc, plan)]
    for sc in alone:  # from scratch
        sh = Shard(sc, client, n_total, i0, i1, seed, accuracy_ms)
        base_ms[0] = 0
        out[sc.name] = sh.run(progress)
        done_ms[0] += sc.duration_ms
        events += sh.events
    if forked:  # the common first week once, then each scenario from a copy of it
        base = Shard(SCENARIOS["steady"](), client, n_total, i0, i1, seed, accuracy_ms)
        base_ms[0] = done_ms[0]
        base.run_until(plan, lambda t: progress(t + base_ms[0]))
        base_ms[0] = 0
        done_ms[0] += plan
        events += base.events
        blob = pickle.dumps(base, protocol=pickle.HIGHEST_PROTOCOL)
        del base
        for sc in forked:
            sh = pickle.loads(blob)
            sh.events = 0
            sh.retarget(sc)
            base_ms[0] = plan
            out[sc.name] = sh.run(progress)
            done_ms[0] += sc.duration_ms - plan
            events += sh.events
            del sh
    if _progress is not None:
        _progress[slot] = done_ms[0]
    return out, events, time.process_time() - t0


def forkable(sc, plan):
    """sc can start from a copy of the common first week: it shares it, and nothing it
    measures (its window) starts before the copy is taken (only some counters are carried
    over: Stats.carry)."""
    return plan is not None and sc.shares_warmup and sc.window[0] >= plan


def fork_plan(scs):
    """The time up to which the scenarios that share the steady fleet's first week are the
    same (EVENT_MS), or None when forking would not pay (fewer than two of them)."""
    shared = [sc for sc in scs if sc.shares_warmup and sc.window[0] >= EVENT_MS]
    if len(shared) < 2:
        return None
    return EVENT_MS


def planned_ms(scs):
    p = fork_plan(scs)
    if p is None:
        return sum(sc.duration_ms for sc in scs)
    alone = sum(sc.duration_ms for sc in scs if not forkable(sc, p))
    return alone + p + sum(sc.duration_ms - p for sc in scs if forkable(sc, p))


def shards(n, per=SHARD_MAX, procs=1, split_from=2_000):
    """[(i0, i1)]: at most per devices each, and at least one per process when the fleet is
    big enough (split_from devices or more) to be worth it."""
    k = max(1, -(-n // per))
    if n >= split_from:
        k = max(k, procs)
    bounds = [n * j // k for j in range(k + 1)]
    return list(zip(bounds, bounds[1:]))


def run(
    scenarios,
    client,
    n,
    seed=1,
    days=None,
    procs=2,
    label=None,
    quiet=False,
    split_from=2_000,
    accuracy_ms=None,
):
    """Run a fleet of n devices with one client through the scenarios (names). Returns
    ({scenario: Stats}, info). Shards over procs processes (from split_from devices on);
    days: {name: days} overrides; accuracy_ms: this client's budget (None: the scenario's
    configuration, the default 100 ms)."""
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    days = days or {}
    parts = shards(n, procs=procs, split_from=split_from)
    scs = [SCENARIOS[name](days.get(name)) for name in scenarios]
    total_ms = planned_ms(scs)
    jobs = [
        (client, n, a, b, seed, list(scenarios), days, j, accuracy_ms)
        for j, (a, b) in enumerate(parts)
    ]
    start = time.time()
    label = label or "{} {}".format(client, ",".join(scenarios))
    results = []
    if procs <= 1 or len(jobs) == 1:
        _init(None)
        for job in jobs:
            results.append(_run_job(job))
            if not quiet:
                _bar(label, len(results) / len(jobs), start)
    else:
        arr = mp.Array("d", len(jobs), lock=False)
        ctx = mp.get_context("fork")
        with ctx.Pool(min(procs, len(jobs)), initializer=_init, initargs=(arr,)) as pool:
            pending = pool.map_async(_run_job, jobs, chunksize=1)
            while not pending.ready():
                pending.wait(0.5)
                if not quiet:
                    done = sum(arr[j] * (b - a) for j, (a, b) in enumerate(parts))
                    _bar(label, done / (total_ms * n), start)
            results = pending.get()
    merged = results[0][0]
    for r in results[1:]:
        for name, st in r[0].items():
            merged[name].merge(st)
    wall = time.time() - start
    cpu = sum(r[2] for r in results)
    events = sum(r[1] for r in results)
    if not quiet:
        _bar(label, 1.0, start, end=True)
    dd = n * total_ms / DAY_MS  # device-days simulated
    info = {
        "devices": n,
        "device_days": round(dd),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "events": events,
        "device_days_per_s": round(dd / wall, 1) if wall else None,
        "device_days_per_cpu_s": round(dd / cpu, 1) if cpu else None,
        "processes": min(procs, len(jobs)),
    }
    return merged, info


_last_step = {}


def _bar(label, frac, start, end=False):
    """A text progress bar on stderr: redrawn in place on a terminal, one line per 10 %
    otherwise (a log file)."""
    frac = min(1.0, max(0.0, frac))
    width = 30
    full = int(frac * width)
    el = time.time() - start
    eta = "" if frac <= 0 or end else " eta {:4.0f}s".format(el * (1 - frac) / frac)
    line = "  {:<28} [{}{}] {:3.0f}% {:6.1f}s{}".format(
        label[:28], "#" * full, "." * (width - full), frac * 100, el, eta
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if end else "   "))
    else:
        step = int(frac * 10)
        if end or _last_step.get(label) != step:
            _last_step[label] = step
            sys.stderr.write(line + "\n")
    sys.stderr.flush()
