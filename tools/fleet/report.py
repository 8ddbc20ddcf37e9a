# Figures from the counters, the fleet targets, the Markdown table, the JSON and the plots.
import json
import math
import os

from .clients import ORACLE_KS
from .model import DAY_MS, MIN_MS, Stats
from .scenarios import EVENT_MS, RESTARTS, SCENARIOS, SLEEP_CLOCKS

RESTART_NAMES = [sc.name for sc in RESTARTS]
SLEEP_NAMES = [sc.name for sc in SLEEP_CLOCKS]

ACCURACY_MS = 100  # this client's default accuracy target (policy.Config.accuracy_ms)

# The sleep-clock scenarios as make bench runs this client in them: (figure key, scenario,
# accuracy_ms, most requests/device/day, largest p99 ms or None), the targets of each.
# deep-sleep-rc-poor at 1,000 ms is beyond any client (the oracle's curve says what it would
# take): only its traffic is held, to the pool's 30-minute floor.
SLEEP_RUNS = [
    ("deep-sleep-xtal", "deep-sleep-xtal", 100, 2, 100),
    ("deep-sleep-rc", "deep-sleep-rc", 1_000, 8, 1_000),
    ("deep-sleep-rc-poor", "deep-sleep-rc-poor", 3_000, 12, 3_000),
    ("deep-sleep-rc-poor@1000", "deep-sleep-rc-poor", 1_000, 48, None),
]
SLEEP_KEYS = [r[0] for r in SLEEP_RUNS]
BOUND_COVERAGE = 0.99  # the bound covers the true |error| at >= 99 % of sampled instants
BOUND_RATIO = 3  # and its median is at most 3x the median true |error|
ORACLE_RATIO = 1.5  # this client's requests/day within 1.5x the oracle's at the same p99
ORACLES = [f"oracle-{k}" for k in ORACLE_KS]


def base_name(key):
    """The scenario of a figure key ('deep-sleep-rc-poor@1000' -> 'deep-sleep-rc-poor')."""
    return key.split("@")[0]


def alias_sleep_runs(figs):
    """This client runs some sleep-clock scenario at more than one budget (SLEEP_RUNS); the
    other clients have none to give: their figures of the scenario stand for every key."""
    for c, f in figs.items():
        if c == "sntp":
            continue
        for key, name, *_ in SLEEP_RUNS:
            if key != name and name in f:
                f[key] = f[name]


def _window_slices(st, frm, until):
    s0, s1 = frm // 1000, min(len(st.per_sec), until // 1000)
    m0, m1 = frm // MIN_MS, min(len(st.per_min[0]), until // MIN_MS)
    return s0, s1, m0, m1


def load_figures(st, frm, until):
    """Peak and mean server load (all servers together) over [frm, until)."""
    import numpy as np

    s0, s1, m0, m1 = _window_slices(st, frm, until)
    per_sec = np.frombuffer(st.per_sec, dtype=np.uint32)[s0:s1]
    per_min = sum(np.frombuffer(a, dtype=np.uint32)[m0:m1].astype(np.int64) for a in st.per_min)
    mean_min = float(per_min.mean()) if len(per_min) else 0.0
    return {
        "peak_1s": int(per_sec.max()) if len(per_sec) else 0,
        "peak_1min": int(per_min.max()) if len(per_min) else 0,
        "mean_1s": mean_min / 60,
        "mean_1min": mean_min,
        "peak_to_mean_1s": float(per_sec.max()) / (mean_min / 60) if mean_min else None,
        "peak_to_mean_1min": float(per_min.max()) / mean_min if mean_min else None,
    }


def figures(name, st, info=None, accuracy_ms=None):
    sc = SCENARIOS[name]()
    sc_days = st.duration_ms // DAY_MS
    sc = SCENARIOS[name](sc_days)
    w0, w1 = st.window
    n = st.devices
    wdays = (w1 - w0) / DAY_MS
    f = {"scenario": name, "devices": n, "days": sc_days}
    f["accuracy_ms"] = accuracy_ms or ACCURACY_MS  # this client's budget (others: none)
    f["window_days"] = [w0 / DAY_MS, w1 / DAY_MS]
    f["requests_per_device_day"] = st.sent_window / n / wdays
    f["dns_per_device_day"] = st.dns_window / n / wdays
    f.update(load_figures(st, w0, w1))
    if sc.event is not None:
        e0, e1 = sc.event
        ev = load_figures(st, e0, min(e1, st.duration_ms))
        f["event_peak_1s"] = ev["peak_1s"]
        f["event_peak_1min"] = ev["peak_1min"]
    dead = sc.dead()
    if dead:
        # what the dead addresses receive per device per day of their death, together; and
        # per address (the target's figure: the outage kills the pool's four at once)
        f["dead_per_device_day"] = st.dead_arrivals / n / dead[0]
        f["dead_per_address_device_day"] = f["dead_per_device_day"] / dead[1]
    else:
        f["dead_per_device_day"] = f["dead_per_address_device_day"] = None
    f["kods_sent"] = dict(st.kods)
    f["rate_devices"] = st.rate_devices
    f["after_rate_per_device"] = st.after_rate / st.rate_devices if st.rate_devices else None
    rr = sorted(st.rate_ratios)
    f["rate_gap_ratio_min"] = rr[0] if rr else None
    f["rate_gap_ratio_median"] = rr[len(rr) // 2] if rr else None
    f["deny_devices"] = st.deny_devices
    f["after_deny_per_device"] = st.after_deny / st.deny_devices if st.deny_devices else None
    f["after_deny_max"] = st.after_deny_max if st.deny_devices else None
    f["err_samples"] = st.err_samples
    f["err_max_ms"] = st.err_max_us / 1000 if st.err_samples else None
    p99 = Stats.quantile_us(st.err_hist, 0.99)
    if st.exact is not None:  # exact, not the histogram's bin edge
        p99 = Stats.exact_quantile(st.exact[0], 0.99)
    f["err_p99_ms"] = p99 / 1000 if p99 is not None else None
    f["err_presync_max_ms"] = st.presync_max_us / 1000 if st.presync_max_us else None
    fs = sorted(x for x in st.first_sync_ms if x >= 0)
    f["first_sync_boots"] = len(st.first_sync_ms)
    f["first_sync_never"] = sum(1 for x in st.first_sync_ms if x < 0)
    if fs:
        f["first_sync_median_s"] = fs[len(fs) // 2] / 1000
        f["first_sync_p99_s"] = fs[min(len(fs) - 1, len(fs) * 99 // 100)] / 1000
        f["first_sync_max_s"] = fs[-1] / 1000
    else:
        f["first_sync_median_s"] = f["first_sync_p99_s"] = f["first_sync_max_s"] = None
    f["lost_packets"] = st.lost
    # the restart scenarios (scenarios.RESTARTS; None where a figure does not apply)
    f["hour_requests_per_device"] = st.hour_sent / n if st.hour_window else None
    wh = sorted(st.worst_hours)
    f["worst_hour_max"] = wh[-1] if st.track_sends and wh else None
    f["worst_hour_median"] = wh[len(wh) // 2] if st.track_sends and wh else None
    f["in_rate_hold"] = st.in_rate_hold if sc.name.startswith("rate-") else None
    f["in_rate_min"] = st.in_rate_min if sc.name.startswith("rate-") else None
    f["boots"] = st.boots
    f["wakes"] = st.wakes
    sleeper = sc.name.startswith("deep-sleep")
    f["radio_wakes"] = st.radio_wakes if sleeper else None
    f["radio_idle"] = st.radio_idle if sleeper else None
    med = Stats.quantile_us(st.err_hist, 0.5)
    if st.exact is not None:
        med = Stats.exact_quantile(st.exact[0], 0.5)
    f["err_median_ms"] = med / 1000 if med is not None else None
    # the client's own error bound at the same instants (None: the client keeps none)
    f.update(bound_figures(st, f["err_median_ms"]))
    if info:
        f["run"] = info
    return f


def bound_figures(st, err_median_ms):
    """bound_coverage (the fraction of sampled instants at which the client's own bound was
    at least the true |error|; a bound it could not give counts as not covered),
    bound_median_ms, and its ratio to the median true error; None for a client that keeps
    no bound (the baselines, or firmware without Keeper.bound_us)."""
    n = st.bound_samples
    if not n:
        return dict.fromkeys(
            ("bound_samples", "bound_none", "bound_coverage", "bound_median_ms", "bound_ratio")
        )
    med = Stats.quantile_us(st.bound_hist, 0.5)
    if st.exact is not None:
        med = Stats.exact_quantile(st.exact[1], 0.5)
    med_ms = med / 1000 if med is not None else None
    return {
        "bound_samples": n,
        "bound_none": st.bound_none,
        "bound_coverage": st.bound_covered / n,
        "bound_median_ms": med_ms,
        "bound_ratio": med_ms / err_median_ms if med_ms is not None and err_median_ms else None,
    }


# ---- the oracle: the limit of the physics ------------------------------------------------------
def oracle_curve(figs, key):
    """[(requests/device/day, p99 ms)] of the oracle at each K it ran in key, fewest first."""
    pts = []
    for c in ORACLES:
        f = figs.get(c, {}).get(key)
        if f and f["err_p99_ms"] is not None:
            pts.append((f["requests_per_device_day"], f["err_p99_ms"]))
    return sorted(pts)


def oracle_needs(figs, key, p99_ms):
    """How many requests a day the oracle needs in key for a p99 of p99_ms, interpolated on
    its curve (log-log between the two points around it: its error grows as a random walk).
    {"requests": r} or, beyond the curve, {"below": r} (it needs fewer than its fewest, r)
    or {"above": r} (more than its most); None without a curve or a p99."""
    pts = oracle_curve(figs, key)
    if not pts or p99_ms is None:
        return None
    if p99_ms >= pts[0][1]:
        return {"below": pts[0][0]}
    for (r0, e0), (r1, e1) in zip(pts, pts[1:]):
        if e0 >= p99_ms >= e1:
            if e0 == e1 or p99_ms <= 0:
                return {"requests": r1}
            x = math.log(e0 / p99_ms) / math.log(e0 / e1)
            return {"requests": math.exp(math.log(r0) + x * math.log(r1 / r0))}
    return {"above": pts[-1][0]}


def oracle_text(need, mine):
    """'7.3 (this client 1.1x)', '< 0.9 (this client > 8.9x)', '> 47 (...)', or '-'."""
    if need is None:
        return "-"
    if "requests" in need:
        r = need["requests"]
        return f"{r:.2f} (this client {mine / r:.2f}x)" if r else f"{r:.2f}"
    if "below" in need:
        r = need["below"]
        return f"< {r:.2f} (this client > {mine / r:.1f}x)"
    return f"> {need['above']:.1f} (this client < {mine / need['above']:.2f}x)"


def oracle_ratio(need, mine):
    """This client's requests/day over the oracle's at the same p99; None when the oracle's
    curve does not reach that p99 (beyond it: a bound, see oracle_text)."""
    if need is None or "requests" not in need or not need["requests"]:
        return None
    return mine / need["requests"]


# ---- targets ---------------------------------------------------------------------------------
def targets(figs, footprint=None):
    """[(target, met or None when not measured, measured text)] for this client."""
    s = figs.get("sntp", {})
    out = []
    steady = s.get("steady")

    def add(what, ok, text):
        out.append({"target": what, "met": ok, "measured": text})

    if steady:
        v = steady["requests_per_device_day"]
        add("steady state at the default accuracy: <= 2 requests/device/day", v <= 2, f"{v:.2f}")
        p99 = steady["err_p99_ms"]
        if p99 is not None:
            add(
                "steady-state clock error within the accuracy target (p99 <= {} ms)".format(
                    ACCURACY_MS
                ),
                p99 <= ACCURACY_MS,
                f"p99 {p99:.1f} ms, max {steady['err_max_ms']:.1f} ms",
            )
    deads = [(k, s[k]["dead_per_address_device_day"]) for k in ("leaves-pool", "outage") if k in s]
    deads = [(k, v) for k, v in deads if v is not None]
    if deads:
        worst = max(v for _, v in deads)
        add(
            "dead server: <= 30 requests/device/day (to each dead address)",
            worst <= 30,
            ", ".join(f"{k} {v:.1f}" for k, v in deads),
        )
    if steady:
        mean = steady["mean_1min"]
        for k, what in (("outage", "recovery after the outage"), ("restore-warm", "warm restore")):
            if k in s and mean:
                peak = s[k]["event_peak_1min"]
                add(
                    f"{what}: peak 1-min load <= 2x the steady mean",
                    peak <= 2 * mean,
                    f"peak {peak}/min vs steady mean {mean:.1f}/min ({peak / mean:.1f}x); the "
                    f"steady state's own 1-min peak is {steady['peak_1min']}/min "
                    f"({steady['peak_1min'] / mean:.1f}x, the noise of a fleet this size)",
                )
    k = s.get("kod")
    if k:
        r = k["rate_gap_ratio_min"]
        if r is not None:
            add(
                "after RATE the interval at least doubles (next gap / gap before, every device)",
                r >= 2,
                f"min {r:.2f}x, median {k['rate_gap_ratio_median']:.2f}x over "
                f"{k['rate_devices']} devices",
            )
        d = k["after_deny_per_device"]
        if d is not None:
            add(
                "after DENY: zero requests to that address for a day",
                k["after_deny_max"] == 0,
                f"{d:.2f} per device (max {k['after_deny_max']}) over {k['deny_devices']} devices",
            )
    out += restart_targets(s)
    out += sleep_targets(figs)
    out += bound_targets(s)
    if footprint:  # tools/footprint.py's own targets (docs/footprint.md)
        out += footprint.get("targets", [])
    return out


def sleep_targets(figs):
    """The sleep-clock scenarios' targets (SLEEP_RUNS) for this client, against the oracle's
    curve from figs' oracle-K clients."""
    s = figs.get("sntp", {})
    out = []
    for key, _name, acc, most, p99_top in SLEEP_RUNS:
        f = s.get(key)
        if not f:
            continue
        v, p99 = f["requests_per_device_day"], f["err_p99_ms"]
        what = f"{key} at {acc:,} ms: <= {most} requests/device/day"
        ok = v <= most
        if p99_top is not None:
            what += f" and p99 <= {p99_top:,} ms"
            ok = ok and p99 is not None and p99 <= p99_top
        p = "not synced" if p99 is None else f"p99 {p99:,.0f} ms, max {f['err_max_ms']:,.0f} ms"
        out.append(
            {
                "target": what,
                "met": ok,
                "measured": f"{v:.2f} requests/device/day, {p} ({f['devices']:,} devices, "
                f"{f['err_samples']:,} wakes)",
            }
        )
        need = oracle_needs(figs, key, p99)
        ratio = oracle_ratio(need, v)
        if need is None:
            met, text = None, "no oracle run"
        else:
            met = ratio is not None and ratio <= ORACLE_RATIO
            if "above" in need:  # beyond the oracle's most: at least this close
                met = v <= ORACLE_RATIO * need["above"] or None
            elif "below" in need:  # the oracle needs fewer than its fewest: at least this far
                met = False if v > ORACLE_RATIO * need["below"] else None
            text = "the oracle needs " + oracle_text(need, v) + " requests/day for that p99"
        out.append(
            {
                "target": f"{key} at {acc:,} ms: requests/day within {ORACLE_RATIO}x the "
                "oracle's at the same p99",
                "met": met,
                "measured": text,
            }
        )
    return out


def bound_targets(s):
    """The error bound's targets over every scenario of this client's figures s."""
    have = {k: f for k, f in s.items() if f.get("err_samples")}
    if not have:
        return []
    judged = {k: f for k, f in have.items() if f.get("bound_coverage") is not None}
    what_cov = f"the error bound covers the true error at >= {BOUND_COVERAGE:.0%} of sampled "
    what_cov += "instants, every scenario"
    what_med = f"the error bound's median <= {BOUND_RATIO}x the median true error, every scenario"
    if not judged:
        none = "not measured: this firmware has no Keeper.bound_us"
        return [
            {"target": what_cov, "met": None, "measured": none},
            {"target": what_med, "met": None, "measured": none},
        ]
    cov = sorted((f["bound_coverage"], k) for k, f in judged.items())
    rat = sorted(
        ((f["bound_ratio"] if f["bound_ratio"] is not None else math.inf), k)
        for k, f in judged.items()
    )
    missing = sorted(set(have) - set(judged))
    tail = f"; no bound in {', '.join(missing)}" if missing else ""
    return [
        {
            "target": what_cov,
            "met": cov[0][0] >= BOUND_COVERAGE and not missing,
            "measured": "lowest " + ", ".join(f"{k} {c:.2%}" for c, k in cov[:3]) + tail,
        },
        {
            "target": what_med,
            "met": rat[-1][0] <= BOUND_RATIO and not missing,
            "measured": "highest " + ", ".join(f"{k} {r:.2f}x" for r, k in rat[::-1][:3]) + tail,
        },
    ]


def _s(v, unit=" s"):
    return "-" if v is None else f"{v:.0f}{unit}"


def restart_targets(s):
    """The restart scenarios' targets, for this client's figures s ({scenario: figures})."""
    out = []

    def add(what, ok, text):
        out.append({"target": what, "met": ok, "measured": text})

    c = s.get("crash-loop")
    if c:
        w = c["worst_hour_max"]
        add(
            "crash loop without an RTC: <= 12 requests/device in any hour",
            w is not None and w <= 12,
            f"worst device {w}, median device {c['worst_hour_median']} "
            f"({c['devices']:,} devices, {c['boots']:,} boots)",
        )
        v = c["requests_per_device_day"]
        add(
            "crash loop without an RTC: <= 30 requests/device/day",
            v <= 30,
            f"{v:.1f} in the day from the loop's start; a valid clock "
            f"{_s(c['first_sync_median_s'])} after the loop ends (median; max "
            f"{_s(c['first_sync_max_s'])}, never {c['first_sync_never']})",
        )
    for k in ("restore-cold", "restore-cold-liar"):
        r = s.get(k)
        if not r or r["hour_requests_per_device"] is None:
            continue
        h = r["hour_requests_per_device"]
        if k == "restore-cold":  # the liar's: no target (LIAR_NOTE), its row in the table
            add(f"{k}: <= 2.2 requests/device in the first hour", h <= 2.2, f"{h:.2f}")
        m = r["first_sync_median_s"]
        add(
            f"{k}: median time to a valid clock <= 60 s",
            m is not None and m <= 60,
            f"median {_s(m)}, max {_s(r['first_sync_max_s'])}, never {r['first_sync_never']} "
            f"({r['devices']:,} devices)",
        )
    d = s.get("deep-sleep")
    if d:
        w0, w1 = d["window_days"]
        v = d["requests_per_device_day"]
        add(
            "deep-sleep sensor: <= 2 requests/device/day",
            v <= 2,
            f"{v:.2f} (days {w0:g}-{w1:g}, {d['devices']:,} devices)",
        )
        p = d["err_p99_ms"]
        add(
            "deep-sleep sensor: p99 |clock error| at a wake <= 100 ms",
            p is not None and p <= ACCURACY_MS,
            "not synced"
            if p is None
            else f"p99 {p:.1f} ms, max {d['err_max_ms']:.1f} ms over {d['err_samples']:,} wakes",
        )
        add(
            "deep-sleep sensor: the radio comes up only when a request is due",
            d["radio_idle"] == 0,
            f"{d['radio_idle']} of {d['radio_wakes']:,} radio-on wakes sent nothing "
            f"({d['wakes']:,} wakes)",
        )
    for k in ("rate-reboot", "rate-reboot-cold"):
        r = s.get(k)
        if r:
            add(
                f"{k}: 0 requests to an address within its RATE hold, reboots included",
                r["in_rate_hold"] == 0,
                f"{r['in_rate_hold']} ({r['in_rate_min']} within 10 min), "
                f"{r['requests_per_device_day']:.2f} requests/device/day, "
                f"{r['devices']:,} devices, {r['boots']:,} reboots",
            )
    return out


# ---- table -----------------------------------------------------------------------------------
def per_1k(f):
    """Loads per 1,000 devices, so that fleets of different sizes share a table."""
    k = 1000 / f["devices"]
    for key in ("peak_1s", "peak_1min", "mean_1min", "event_peak_1s", "event_peak_1min"):
        if f.get(key) is not None:
            f[key + "_per_1k"] = f[key] * k
    return f


COLS = [
    ("client", None),
    ("devices", "devices"),
    ("req/dev/day", "requests_per_device_day"),
    ("DNS/dev/day", "dns_per_device_day"),
    ("peak 1 s /1k dev", "peak_1s_per_1k"),
    ("peak 1 min /1k dev", "peak_1min_per_1k"),
    ("peak/mean 1 s", "peak_to_mean_1s"),
    ("peak/mean 1 min", "peak_to_mean_1min"),
    ("to dead servers/dev/day", "dead_per_device_day"),
    ("after RATE/dev", "after_rate_per_device"),
    ("after DENY/dev", "after_deny_per_device"),
    ("max |err| ms", "err_max_ms"),
    ("p99 |err| ms", "err_p99_ms"),
    ("1st sync median s", "first_sync_median_s"),
    ("1st sync max s", "first_sync_max_s"),
    ("never synced", "first_sync_never"),
    ("req/dev 1st hour", "hour_requests_per_device"),
]
RESTART_COLS = [
    ("client", None),
    ("devices", "devices"),
    ("boots", "boots"),
    ("req/dev/day", "requests_per_device_day"),
    ("req/dev 1st hour", "hour_requests_per_device"),
    ("worst hour /dev (max)", "worst_hour_max"),
    ("in RATE hold", "in_rate_hold"),
    ("radio-on wakes", "radio_wakes"),
    ("radio-on, nothing sent", "radio_idle"),
    ("p99 |err| ms", "err_p99_ms"),
    ("max |err| ms", "err_max_ms"),
    ("valid clock median s", "first_sync_median_s"),
    ("valid clock max s", "first_sync_max_s"),
    ("never synced", "first_sync_never"),
]


SLEEP_COLS = RESTART_COLS[:4] + [
    ("radio-on wakes", "radio_wakes"),
    ("p99 |err| ms", "err_p99_ms"),
    ("median |err| ms", "err_median_ms"),
    ("max |err| ms", "err_max_ms"),
    ("bound covers", "bound_coverage"),
    ("median bound ms", "bound_median_ms"),
]


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 1000:
            return f"{v:,.0f}"
        if v >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(figs, order, clients, runs=None):
    lines = []
    for name in order:
        sc = SCENARIOS[name]()
        present = [c for c in clients if name in figs.get(c, {})]
        if not present:
            continue
        lines.append(f"### {sc.title} (`{name}`)")
        lines.append("")
        lines.append(sc.sentence)
        lines.append("")
        cols = (
            RESTART_COLS if name in RESTART_NAMES else SLEEP_COLS if name in SLEEP_NAMES else COLS
        )
        lines.append("| " + " | ".join(c for c, _ in cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for c in present:
            f = per_1k(dict(figs[c][name]))
            row = [c] + [_fmt(f.get(k)) for _, k in cols[1:]]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def headline(figs, clients):
    """docs/fleet.md's table: the steady state and the worst moments, one row per client."""
    head = [
        "client (devices)",
        "req/dev/day (steady)",
        "peak/mean 1 min (steady)",
        "peak 1 min after the outage /1k dev",
        "peak 1 min after a cold restore /1k dev",
        "to a dead server /dev/day",
        "p99 / max clock error (steady)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in clients:
        f = figs.get(c, {})
        st, out, lp = f.get("steady"), f.get("outage"), f.get("leaves-pool")
        cold = f.get("restore-cold")
        if not st:
            continue
        mean = per_1k(dict(st))["mean_1min_per_1k"]

        def after(g, mean=mean):
            if not g:
                return "-"
            p = per_1k(dict(g))["event_peak_1min_per_1k"]
            return f"{_fmt(p)} ({p / mean:,.1f}x steady mean)" if mean else _fmt(p)

        row = [
            f"{c} ({st['devices']:,})",
            _fmt(st["requests_per_device_day"]),
            _fmt(st["peak_to_mean_1min"]),
            after(out),
            after(cold),
            _fmt(lp["dead_per_device_day"]) if lp else "-",
            "{} / {} ms".format(_fmt(st["err_p99_ms"]), _fmt(st["err_max_ms"])),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# LIAR_NOTE: one of the four servers lying to every device, half the fleet meets it among
# its first two (they disagree, so the others are asked too): 2 + 2 x 1/2 = 3 requests. No
# rule brings that under 2.5 (stopping at two of three would, and would let two colluding
# liars win 2-1): the 2.2 target is the honest fleet's (restore-cold); the liar's first
# hour is shown without one.
# (scenario, figure, key, format, limit): the restart table's rows; limit: the target, the
# figure must be at most that (None: a figure without a target)
_S, _MS, _N = "{:,.0f} s", "{:,.0f} ms", "{:,}"
_HOUR = ("requests/device in the first hour", "hour_requests_per_device", "{:.2f}", 2.2)
_VALID = ("valid clock after the cut (median)", "first_sync_median_s", _S, 60)
_HOLD = ("requests within a RATE hold", "in_rate_hold", _N, 0)
RESTART_ROWS = [
    ("crash-loop", "worst requests/device in any hour", "worst_hour_max", _N, 12),
    ("crash-loop", "requests/device in the loop's day", "requests_per_device_day", "{:,.1f}", 30),
    ("crash-loop", "valid clock after the loop (median)", "first_sync_median_s", _S, None),
    ("restore-cold",) + _HOUR,
    ("restore-cold",) + _VALID,
    ("restore-cold-liar", _HOUR[0], _HOUR[1], _HOUR[2], None),  # no target (LIAR_NOTE)
    ("restore-cold-liar",) + _VALID,
    ("deep-sleep", "requests/device/day", "requests_per_device_day", "{:,.2f}", 2),
    ("deep-sleep", "p99 clock error at a wake", "err_p99_ms", _MS, 100),
    ("deep-sleep", "radio-on wakes that sent nothing", "radio_idle", _N, 0),
    ("rate-reboot",) + _HOLD,
    ("rate-reboot-cold",) + _HOLD,
]


def restarts_table(figs, clients):
    """The restart scenarios' figures, one row per figure, one column per client; this
    client's cell says whether it met the target."""
    present = [c for c in clients if any(r[0] in figs.get(c, {}) for r in RESTART_ROWS)]
    head = ["scenario", "figure", "target"] + present
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, what, key, fmt, limit in RESTART_ROWS:
        if not any(name in figs.get(c, {}) for c in present):
            continue
        unit = fmt.split("}")[1]
        row = [f"`{name}`", what, "-" if limit is None else f"<= {limit}{unit}"]
        if limit == 0:
            row[2] = "0"
        for c in present:
            f = figs.get(c, {}).get(name)
            v = None if f is None else f.get(key)
            cell = "-" if v is None else fmt.format(v)
            if c == "sntp" and limit is not None and f is not None:
                cell += " (met)" if v is not None and v <= limit else " (**missed**)"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# (scenario, column title): the README's one-row table, its cells from RESTART_ROWS
RESTART_COMPACT = [
    ("crash-loop", "crash loop: worst hour, day, valid clock after"),
    ("restore-cold", "cold restore: 1st hour, valid clock"),
    ("restore-cold-liar", "with a liar: 1st hour, valid clock"),
    ("deep-sleep", "deep sleep, crystal asleep: req/day, p99 error, idle radio"),
    ("rate-reboot", "RATE, reboots: in hold"),
    ("rate-reboot-cold", "same, clock lost: in hold"),
]


def restarts_compact(figs):
    """README.md's short form of restarts_table: one column per scenario, a row of targets
    and a row of this client's figures (each cell met or missed)."""
    s = figs.get("sntp", {})
    cols = [(name, title) for name, title in RESTART_COMPACT if name in s]
    head = ["", *[t for _, t in cols]]
    tgt, mine = ["target"], ["this client"]
    for name, _ in cols:
        rows = [r for r in RESTART_ROWS if r[0] == name]  # a figure without a target too
        unit = [r[3].split("}")[1] for r in rows]
        tgt.append(
            ", ".join(
                "-" if r[4] is None else f"<= {r[4]}{u}" if r[4] else "0"
                for r, u in zip(rows, unit)
            )
        )
        vals = [s[name].get(r[2]) for r in rows]
        ok = all(r[4] is None or v is not None and v <= r[4] for v, r in zip(vals, rows))
        cell = ", ".join("-" if v is None else r[3].format(v) for v, r in zip(vals, rows))
        mine.append(cell + (" (met)" if ok else " (**missed**)"))
    lines = [head, ["---"] * len(head), tgt, mine]
    return "\n".join("| " + " | ".join(x) + " |" for x in lines)


# ---- deep sleep by sleep clock ---------------------------------------------------------------
SLEEP_LABELS = {
    "deep-sleep": "the awake crystal (`deep-sleep`: 10 min asleep, 5 s awake)",
    "deep-sleep-xtal": "32 kHz crystal",
    "deep-sleep-rc": "calibrated RC",
    "deep-sleep-rc-poor": "poor RC",
    "deep-sleep-rc-poor@1000": "poor RC",
}


def _req_p99(f):
    if not f:
        return "-"
    p = f["err_p99_ms"]
    return "{:.2f}/day, {}".format(
        f["requests_per_device_day"], "-" if p is None else f"{p:,.0f} ms"
    )


def _bound(f):
    if not f or f.get("bound_coverage") is None:
        return "-"
    r = f["bound_ratio"]
    return "{:.1%}, {}".format(f["bound_coverage"], "-" if r is None else f"{r:.2f}x")


def _sleep_rows(figs):
    """[(key, this client's figures)] of the deep-sleep scenarios this client ran."""
    s = figs.get("sntp", {})
    return [(k, s[k]) for k in ["deep-sleep"] + SLEEP_KEYS if k in s]


def sleep_table(figs):
    """docs/fleet.md's deep-sleep table: one row per sleep clock (and budget); this client,
    its bound, the ntptime baselines and the oracle at this client's p99."""
    head = [
        "sleep clock",
        "accuracy_ms",
        "this client",
        "bound covers, median bound / median error",
        "ntptime every wake",
        "ntptime every 6th wake",
        "oracle's requests/day at this client's p99",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, f in _sleep_rows(figs):
        need = oracle_needs(figs, key, f["err_p99_ms"])
        row = [
            SLEEP_LABELS.get(key, key),
            f"{f['accuracy_ms']:,}",
            _req_p99(f),
            _bound(f),
            _req_p99(figs.get("ntptime-wake", {}).get(key)),
            _req_p99(figs.get("ntptime-wake-6", {}).get(key)),
            oracle_text(need, f["requests_per_device_day"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def oracle_table(figs):
    """The oracle's curve: one row per K, one column per sleep-clock scenario."""
    keys = [k for k in SLEEP_NAMES if any(k in figs.get(c, {}) for c in ORACLES)]
    if not keys:
        return None
    head = ["oracle, K requests a day"] + [SLEEP_LABELS[k] for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in ORACLES:
        if not any(k in figs.get(c, {}) for k in keys):
            continue
        row = [c.split("-")[1]] + [_req_p99(figs[c].get(k)) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def sleep_compact(figs):
    """README.md's deep-sleep table: one row per sleep clock (its budgets in one cell each,
    '; ' between them), this client's figures against the targets of SLEEP_RUNS, and the
    oracle's requests a day at this client's p99."""
    s = figs.get("sntp", {})
    by_clock = {}
    for key, name, acc, most, top in SLEEP_RUNS:
        if key in s:
            by_clock.setdefault(name, []).append((key, acc, most, top))
    if not by_clock:
        return None
    head = [
        "deep sleep (5-60 min) on",
        "accuracy",
        "target",
        "this client: req/day, p99",
        "the oracle's req/day at that p99",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, runs in by_clock.items():
        cells = [[], [], [], []]
        for key, acc, most, top in runs:
            f = s[key]
            v, p = f["requests_per_device_day"], f["err_p99_ms"]
            ok = v <= most and (top is None or p is not None and p <= top)
            need = oracle_needs(figs, key, p)
            cells[0].append(f"{acc:,} ms")
            cells[1].append(f"<= {most}/day" + ("" if top is None else f", <= {top:,} ms"))
            cells[2].append(_req_p99(f) + (" (met)" if ok else " (**missed**)"))
            cells[3].append("-" if need is None else oracle_text(need, v).split(" (")[0])
        lines.append(
            "| " + " | ".join([SLEEP_LABELS[name]] + ["; ".join(c) for c in cells]) + " |"
        )
    return "\n".join(lines)


def write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)


# ---- plots -----------------------------------------------------------------------------------
COLORS = {
    "sntp": "#1b7837",
    "cron-weekly": "#762a83",
    "retry-1s": "#d73027",
    "ntptime-loop": "#fc8d59",
    "fixed-hourly": "#4575b4",
}


def plot_load(path, name, stats_by_client):
    """Requests per second at the servers (each minute's mean), all clients on one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sc = SCENARIOS[name]()
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for client, st in stats_by_client.items():
        per_min = sum(np.frombuffer(a, dtype=np.uint32).astype(np.int64) for a in st.per_min)
        n = st.devices
        x0 = 0 if sc.event is None else max(0, EVENT_MS - DAY_MS // 2) // MIN_MS
        x1 = len(per_min) if sc.event is None else min(len(per_min), sc.event[1] // MIN_MS)
        if name in ("leaves-pool",):
            x1 = min(len(per_min), (EVENT_MS + 2 * DAY_MS) // MIN_MS)
        if sc.cut is not None:  # to the end: the weekly cron's next Sunday is in it
            x1 = len(per_min)
        if name == "kod":
            x0, x1 = 0, len(per_min)
        y = per_min[x0:x1] / 60.0 * (1000 / n)  # per second, per 1,000 devices
        x = np.arange(x0, x1) / (DAY_MS / MIN_MS)
        y = np.where(y > 0, y, np.nan)  # a minute without requests: a gap on the log scale
        ax.plot(x, y, lw=0.7, color=COLORS.get(client), label=client)
    ax.set_yscale("log")
    ax.set_xlabel("day")
    ax.set_ylabel("requests/s at the servers per 1,000 devices\n(mean of each minute)")
    ax.set_title(f"{sc.title}: server load")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error(path, name, stats_by_client):
    """p99 and max |clock error| of the sampled devices, per hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = SCENARIOS[name]()
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for client, st in stats_by_client.items():
        xs, p99s, maxs = [], [], []
        for h, hist in enumerate(st.err_hour):
            if sum(hist):
                xs.append(h / 24)
                p99s.append(Stats.quantile_us(hist, 0.99) / 1000)
                maxs.append(st.err_hour_max[h] / 1000)
        if not xs:
            continue
        c = COLORS.get(client)
        ax.plot(xs, p99s, lw=1.0, color=c, label=f"{client} p99")
        ax.plot(xs, maxs, lw=0.6, color=c, ls=":", label=f"{client} max")
    ax.axhline(ACCURACY_MS, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("day")
    ax.set_ylabel("|clock error| ms (sampled devices, per hour)")
    ax.set_title(f"{sc.title}: clock error (dashed: this client's 100 ms target)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ensure_dir(d):
    os.makedirs(d, exist_ok=True)
    return d
