# python3 -m fleet {bench,run,report}  (with tools/ on PYTHONPATH; `make bench` runs bench)
import argparse
import json
import os
import sys
import time

from footprint import replace_between  # tools/footprint.py

from . import ROOT
from . import report as rp
from .clients import CLIENTS
from .scenarios import RESTARTS, SCENARIOS, SLEEP_CLOCKS

ORDER = ["steady", "restore-warm", "restore-cold", "outage", "kod", "dns-outage", "leaves-pool"]
# per-device restarts, run with a smaller fleet (--restart-devices): every device reboots
RESTART_ORDER = [sc.name for sc in RESTARTS]
RESTART_SPLIT_FROM = 100  # a boot costs far more than a wake-up: small fleets use every core
# deep sleep on real sleep clocks, run at the budgets of report.SLEEP_RUNS (--sleep-devices)
SLEEP_ORDER = [sc.name for sc in SLEEP_CLOCKS]
ALL_ORDER = ORDER + RESTART_ORDER + SLEEP_ORDER


def _days(items):
    out = {}
    for it in items or []:
        k, v = it.split("=")
        out[k] = int(v)
    return out


def cmd_run(a):
    from . import engine

    stats, info = engine.run(
        a.scenario,
        a.client,
        a.devices,
        seed=a.seed,
        procs=a.procs,
        days=_days(a.days),
        accuracy_ms=a.accuracy_ms,
    )
    out = {name: rp.figures(name, st, info, a.accuracy_ms) for name, st in stats.items()}
    print(json.dumps(out, indent=1, sort_keys=True))


def cmd_bench(a):
    from . import engine

    out = rp.ensure_dir(a.out)
    for f in os.listdir(out):  # footprint.json: make footprint's, made just before
        if f.endswith((".png", ".json", ".md")) and f != "footprint.json":
            os.remove(os.path.join(out, f))
    t_start = time.time()
    figs = {}
    runs = {}
    stats = {}
    clients = a.clients or CLIENTS
    scenarios = a.scenarios or ALL_ORDER
    main_s = [s for s in scenarios if s in ORDER]
    restart_s = [s for s in scenarios if s in RESTART_ORDER]
    sleep_s = [s for s in scenarios if s in SLEEP_ORDER]
    restart_runs = {}
    for client in clients:
        groups = []  # (scenario names, devices, runs, accuracy_ms, figure key suffix)
        mine = [s for s in main_s if SCENARIOS[s].runs(client)]
        if mine:
            n = a.devices if client == "sntp" else a.baseline_devices
            groups.append((mine, n, runs, None, ""))
        mine = [s for s in restart_s if SCENARIOS[s].runs(client)]
        if mine:
            n = a.restart_devices if client == "sntp" else a.restart_baseline_devices
            groups.append((mine, n, restart_runs, None, ""))
        mine = [s for s in sleep_s if SCENARIOS[s].runs(client)]
        if mine and client == "sntp":  # each at the budgets it is judged at
            for key, name, acc, *_ in rp.SLEEP_RUNS:
                if name in mine:
                    groups.append(([name], a.sleep_devices, restart_runs, acc, key))
        elif mine:  # the baselines and the oracle: no budget to give
            groups.append((mine, a.restart_baseline_devices, restart_runs, None, ""))
        for names, n, into, acc, key in groups:
            restarts = into is restart_runs
            st, info = engine.run(
                names,
                client,
                n,
                seed=a.seed,
                procs=a.procs,
                days=_days(a.days),
                label=f"{client} x{n:,}" + (f" {key}" if key else " restarts" if restarts else ""),
                split_from=RESTART_SPLIT_FROM if restarts else 2_000,
                accuracy_ms=acc,
            )
            into[f"{client} {key}" if key else client] = info
            for name, s in st.items():
                k = key or name
                figs.setdefault(client, {})[k] = rp.figures(name, s, accuracy_ms=acc)
                stats.setdefault(k, {})[client] = s
            sys.stderr.write(
                "    {:,} device-days in {:.0f} s: {:,.0f} device-days/s ({} processes)\n".format(
                    info["device_days"],
                    info["wall_s"],
                    info["device_days_per_s"],
                    info["processes"],
                )
            )
    rp.alias_sleep_runs(figs)  # a budget of this client's: the others' figures of its scenario
    for key, by_client in stats.items():
        name = rp.base_name(key)
        rp.plot_load(os.path.join(out, f"load-{key}.png"), name, by_client)
        rp.plot_error(os.path.join(out, f"error-{key}.png"), name, by_client)
    footprint = None if a.no_footprint else load_footprint(out)
    tg = rp.targets(figs, footprint)
    speed = runs.get("sntp")
    doc = {
        "figures": figs,
        "runs": runs,
        "restart_runs": restart_runs,
        "targets": tg,
        "scenarios": {k: SCENARIOS[k].sentence for k in scenarios},
        "bench_wall_s": round(time.time() - t_start, 1),
    }
    if speed:
        per_s = speed["device_days_per_s"]
        doc["estimate_1m_devices_30_days_min"] = round(1_000_000 * 30 / per_s / 60, 1)
    rp.write_json(os.path.join(out, "fleet.json"), doc)
    write_markdown(out, doc, footprint, clients, scenarios)
    ok = True
    if a.docs:
        ok = update_docs(out, doc, footprint, clients)
    print(f"\nresults in {out}/ ({time.time() - t_start:.0f} s)")
    if not ok:
        sys.exit(1)


DOCS_BEGIN = "<!-- fleet-bench:begin (written by make bench-docs) -->"
DOCS_END = "<!-- fleet-bench:end -->"
DOCS_PATH = os.path.join(ROOT, "docs", "fleet.md")
DOCS_PLOT = ("load-outage.png", "fleet-load-outage.png")  # results/ -> docs/, beside fleet.md
RESTARTS_BEGIN = "<!-- restarts -->"
RESTARTS_END = "<!-- /restarts -->"
README_PATH = os.path.join(ROOT, "README.md")


def restarts_block(doc, clients, link="docs/fleet.md#restarts", short=False):
    """The restart and deep-sleep scenarios' tables (README.md and docs/fleet.md, between
    RESTARTS_BEGIN and RESTARTS_END), or None when the run had none of them. link: where the
    scenarios are described, from the file it goes in; short: this client's figures in one
    row, and a row per sleep clock (README)."""
    figs = doc["figures"]
    names = RESTART_ORDER + rp.SLEEP_KEYS
    if not any(n in figs.get(c, {}) for c in clients for n in names):
        return None
    md = [""]
    if any(n in figs.get(c, {}) for c in clients for n in RESTART_ORDER):
        md += [rp.restarts_compact(figs) if short else rp.restarts_table(figs, clients), ""]
    sleep = rp.sleep_compact(figs) if short else rp.sleep_table(figs)
    if sleep:
        md += [sleep, ""]
    oracle = None if short else rp.oracle_table(figs)
    if oracle:
        md += [oracle, ""]
    sizes = sorted({info["devices"] for info in doc.get("restart_runs", {}).values()})
    cold = figs.get("sntp", {}).get("restore-cold", {}).get("devices")
    if sizes:
        crystal = ""
        if "deep-sleep" in figs.get("sntp", {}):
            crystal = (
                "`deep-sleep` keeps time asleep on the crystal it runs on awake: its figures "
                "hold only for a board that sleeps on a 32 kHz crystal (a stock ESP32 sleeps on "
                "an RC oscillator{}). ".format(": the rows by sleep clock" if sleep else "")
            )
        md.append(
            "{}Fleets of {} devices{}, from `make bench-docs`; {}: [fleet.md]({}).".format(
                crystal,
                " or ".join(f"{n:,}" for n in sizes),
                f" (the cold restore: {cold:,}, with the main fleet)" if cold else "",
                "the scenarios and the baselines' figures" if short else "the scenarios",
                link,
            )
        )
        md.append("")
    return "\n".join(md)


def update_docs(out, doc, footprint, clients, path=DOCS_PATH, readme=README_PATH):
    """docs/fleet.md's headline table, targets and plot, between its markers, and the restart
    table in it and in README.md (make bench-docs; make bench alone writes only results/).
    False when README.md has no restart markers (said in one line; the rest is written)."""
    ok = True
    block = restarts_block(doc, clients, short=True)
    if block is not None:
        replace_between(
            path, RESTARTS_BEGIN, RESTARTS_END, restarts_block(doc, clients, "#restarts")
        )
        if replace_between(readme, RESTARTS_BEGIN, RESTARTS_END, block):
            print(f"{os.path.relpath(readme, ROOT)} updated (restart figures)")
        else:
            sys.stderr.write(
                f"error: {readme} has no '{RESTARTS_BEGIN}' ... '{RESTARTS_END}' markers: the "
                "restart figures were not written there (everything else was)\n"
            )
            ok = False
    figs = doc["figures"]
    if not any(n in figs.get(c, {}) for c in clients for n in RESTART_ORDER + SLEEP_ORDER) or any(
        n in figs.get(c, {}) for c in clients for n in ORDER
    ):  # a run of the restart (or sleep) scenarios alone leaves the headline as it was
        _update_fleet_md(out, doc, footprint, clients, path)
    return ok


def _update_fleet_md(out, doc, footprint, clients, path):
    import shutil

    src, dst = DOCS_PLOT
    md = ["", rp.headline(doc["figures"], clients), ""]
    md.append("Targets (this client), as `make bench` printed them:")
    md.append("")
    md += target_lines(doc["targets"], {True: "met", False: "**missed**", None: "not measured"})
    md.append("")
    for c, info in doc["runs"].items():
        md.append(
            f"- {c}: {info['devices']:,} devices, {info['device_days']:,} device-days in "
            f"{info['wall_s']:.0f} s on {info['processes']} processes"
        )
    if "estimate_1m_devices_30_days_min" in doc:
        md.append(
            "- 1,000,000 devices x 30 simulated days of this client: about "
            f"{doc['estimate_1m_devices_30_days_min']:.0f} minutes at this run's rate "
            f"({doc['runs']['sntp']['device_days_per_s']:,.0f} device-days/s)"
        )
    if footprint:
        import footprint as fp  # tools/footprint.py (`make footprint`)

        md += ["", "Device footprint (`make footprint`, unix-port MicroPython):", ""]
        md += fp.table(footprint)
    md += ["", f"![server load, 6-hour outage, all clients]({dst})", ""]
    if not replace_between(path, DOCS_BEGIN, DOCS_END, "\n".join(["", *md, ""])):
        sys.stderr.write(f"{path} has no fleet-bench markers: not updated\n")
        return
    if os.path.exists(os.path.join(out, src)):
        shutil.copyfile(os.path.join(out, src), os.path.join(os.path.dirname(path), dst))
    print(f"{os.path.relpath(path, ROOT)} updated (and {dst} beside it)")


def write_markdown(out, doc, footprint, clients, scenarios):
    figs, runs, tg = doc["figures"], doc["runs"], doc["targets"]
    md = ["# Fleet benchmark", "", "Regenerate with `make bench`.", ""]
    md.append("## Headline (steady state and worst moments)")
    md.append("")
    md.append(rp.headline(figs, clients))
    md.append("")
    md.append("## Per scenario")
    md.append("")
    md.append(rp.markdown(figs, scenarios, clients))
    if any(n in RESTART_ORDER for n in scenarios):
        md.append("## Restarts, crash loops and deep sleep")
        md.append("")
        md.append(rp.restarts_table(figs, clients))
        md.append("")
    if any(n in SLEEP_ORDER for n in scenarios) or "deep-sleep" in scenarios:
        md.append("## Deep sleep by sleep clock, with the oracle")
        md.append("")
        md.append(rp.sleep_table(figs))
        md.append("")
        oracle = rp.oracle_table(figs)
        if oracle:
            md += [oracle, ""]
    md.append("## Targets (this client)")
    md.append("")
    md += target_lines(tg, {True: "met", False: "MISSED", None: "not measured"})
    if footprint:
        import footprint as fp  # tools/footprint.py (`make footprint`)

        md.append("")
        md.append("## Device footprint")
        md.append("")
        md += fp.table(footprint)
    md.append("")
    md.append("## Runs")
    md.append("")
    for c, info in list(runs.items()) + [
        (c + ", restarts", i) for c, i in doc.get("restart_runs", {}).items()
    ]:
        md.append(
            f"- {c}: {info['devices']:,} devices, {info['device_days']:,} device-days in "
            f"{info['wall_s']:.0f} s ({info['device_days_per_s']:,.0f} device-days/s, "
            f"{info['processes']} processes)"
        )
    if "estimate_1m_devices_30_days_min" in doc:
        md.append(
            "- 1,000,000 devices x 30 days of this client at this run's rate (a mix of "
            "scenarios, with the busy first week in each): about "
            f"{doc['estimate_1m_devices_30_days_min']:.0f} minutes"
        )
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "fleet.md"), "w") as fh:
        fh.write(text)
    print(text)
    print("Targets:")
    marks = {True: "met   ", False: "MISSED", None: "n/a   "}
    print("\n".join(target_lines(tg, marks, "  {mark}  {target}: {measured}")))


def target_lines(targets, marks, line="- {mark}: {target}: {measured}"):
    """One line per target, its mark taken from marks by met (True, False or None)."""
    return [line.format(mark=marks[t["met"]], **t) for t in targets]


def cmd_report(a):
    """The table and targets again from results/fleet.json (no simulation)."""
    with open(os.path.join(a.out, "fleet.json")) as fh:
        doc = json.load(fh)
    footprint = load_footprint(a.out)
    doc["targets"] = rp.targets(doc["figures"], footprint)
    clients = [c for c in CLIENTS if c in doc["figures"]]
    scenarios = [s for s in ALL_ORDER if any(s in doc["figures"][c] for c in clients)]
    rp.write_json(os.path.join(a.out, "fleet.json"), doc)
    write_markdown(a.out, doc, footprint, clients, scenarios)
    if a.docs and not update_docs(a.out, doc, footprint, clients):
        sys.exit(1)


def load_footprint(out):
    """results/footprint.json, written by `make footprint` (tools/footprint.py; `make bench`
    runs it first), or None."""
    path = os.path.join(out, "footprint.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def count(text):
    """A fleet size or a process count: a whole number above 0 (argparse: exit 2 otherwise,
    before anything in results/ is touched)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number above 0, not {text!r}")
    return int(text)


def accuracy(text):
    """--accuracy-ms: what config.json's accuracy_ms accepts (1-60000), else exit 2."""
    if not text.isdigit() or not 1 <= int(text) <= 60_000:
        raise argparse.ArgumentTypeError(f"a whole number of ms from 1 to 60000, not {text!r}")
    return int(text)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fleet", description="SNTP fleet simulator")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="every scenario and client, figures, plots")
    b.add_argument("--devices", type=count, default=100_000, help="fleet size for this client")
    b.add_argument("--baseline-devices", type=count, default=10_000, help="fleet size, baselines")
    b.add_argument(
        "--restart-devices",
        type=count,
        default=1_000,
        help="fleet size of the restart scenarios, this client",
    )
    b.add_argument(
        "--restart-baseline-devices",
        type=count,
        default=250,
        help="fleet size of the restart scenarios, baselines",
    )
    b.add_argument(
        "--sleep-devices",
        type=count,
        default=250,
        help="fleet size of the sleep-clock scenarios, this client (baselines: "
        "--restart-baseline-devices)",
    )
    b.add_argument("--clients", nargs="*", choices=CLIENTS)
    b.add_argument("--scenarios", nargs="*", choices=ALL_ORDER)
    b.add_argument("--days", nargs="*", help="NAME=DAYS overrides")
    b.add_argument("--procs", type=count, default=os.cpu_count() or 2)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--out", default=os.path.join(ROOT, "results"))
    b.add_argument(
        "--no-footprint", action="store_true", help="leave out results/footprint.json's figures"
    )
    b.add_argument("--docs", action="store_true", help="write the headline into docs/fleet.md")
    b.set_defaults(fn=cmd_bench)
    r = sub.add_parser("run", help="one client in one scenario; prints the figures as JSON")
    r.add_argument("--scenario", default="steady", choices=ALL_ORDER)
    r.add_argument("--client", default="sntp", choices=CLIENTS)
    r.add_argument(
        "--accuracy-ms",
        type=accuracy,
        default=None,
        help="this client's accuracy_ms (1-60000; default: the configuration's, 100)",
    )
    r.add_argument("--devices", type=count, default=1000)
    r.add_argument("--days", nargs="*", help="NAME=DAYS overrides")
    r.add_argument("--procs", type=count, default=os.cpu_count() or 2)
    r.add_argument("--seed", type=int, default=1)
    r.set_defaults(fn=cmd_run)
    p = sub.add_parser("report", help="the table and targets again from results/fleet.json")
    p.add_argument("--out", default=os.path.join(ROOT, "results"))
    p.add_argument("--docs", action="store_true", help="write the headline into docs/fleet.md")
    p.set_defaults(fn=cmd_report)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
