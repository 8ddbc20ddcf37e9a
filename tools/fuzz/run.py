#!/usr/bin/env python3
"""Run a fuzz target for a bounded time: `make fuzz` runs the reply decoder's
(tools/fuzz/fuzz_replies.py), then the DNS answer parser's (tools/fuzz/fuzz_dns.py).

    tools/fuzz/run.py [--target replies|dns] [--seconds 60] [--keep-corpus] [--max-len 200]
                      [--out results/fuzz.json]

The DNS target works the same way from tools/fuzz/corpus-dns, in build/fuzz-dns.

libFuzzer (through atheris) starts from the committed seeds (tools/fuzz/corpus) and keeps the
inputs that reach new coverage in build/fuzz/corpus (emptied first unless --keep-corpus). The
whole libFuzzer log goes to build/fuzz/fuzz.log. Then every corpus input is replayed without
atheris under a line tracer, to count the lines of the decoder and checks it reaches. One
summary line (executions, coverage, corpus, lines) is printed and written with the details to
results/fuzz.json. Exit status 0 when nothing was found, 1 when the fuzzer found a crash (its
input is in build/fuzz/crash-*; `fuzz_replies.py --replay FILE` shows it), 2 when it cannot run.
"""

import argparse
import dis
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The targets: name -> (the target's file, its seeds, its work folder under build/).
TARGETS = {
    "replies": ("fuzz_replies", "corpus", "fuzz"),
    "dns": ("fuzz_dns", "corpus-dns", "fuzz-dns"),
}
SEEDS = os.path.join(ROOT, "tools", "fuzz", "corpus")
WORK = os.path.join(ROOT, "build", "fuzz")
TARGET = os.path.join(HERE, "fuzz_replies.py")
TARGET_MODULE = "fuzz_replies"


def use_target(name):
    """Point SEEDS, WORK, TARGET and the covered functions at one target."""
    global SEEDS, WORK, TARGET, TARGET_MODULE, COVERED_FUNCTIONS
    module, seeds, work = TARGETS[name]
    SEEDS = os.path.join(ROOT, "tools", "fuzz", seeds)
    WORK = os.path.join(ROOT, "build", work)
    TARGET = os.path.join(HERE, module + ".py")
    TARGET_MODULE = module
    COVERED_FUNCTIONS = COVERED[name]


def rel(path):
    return os.path.relpath(path, ROOT)


def run_fuzzer(args, corpus, log_path):
    cmd = [
        sys.executable,
        TARGET,
        corpus,  # new inputs are written to the first folder
        SEEDS,
        "-max_total_time={}".format(args.seconds),
        "-max_len={}".format(args.max_len),
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-artifact_prefix={}/".format(WORK),
    ]
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        rc = watch(proc, log_path, args.seconds)
    return rc, time.monotonic() - start, cmd


PROGRESS_EVERY_S = 10


def watch(proc, log_path, seconds, every_s=PROGRESS_EVERY_S, say=None):
    """Wait for the fuzzer, printing every every_s seconds how far it is (from its log)."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.monotonic()
    while True:
        try:
            return proc.wait(timeout=every_s)
        except subprocess.TimeoutExpired:
            pass
        with open(log_path, errors="replace") as f:
            now = parse_log(f.read())
        say(
            "fuzz: {:.0f} of {} s, {} executions, cov {} ft {}, corpus {} inputs".format(
                time.monotonic() - start,
                seconds,
                "{:,}".format(now["executions"]) if "executions" in now else "no",
                now.get("cov", "-"),
                now.get("ft", "-"),
                now.get("corpus_units", "-"),
            )
        )


def parse_log(text):
    """The figures libFuzzer printed: '#N DONE cov: C ft: F corp: K/Sb' and its final stats."""
    out = {}
    status = re.compile(
        r"^#(\d+)\s+(INITED|DONE|NEW|REDUCE|pulse)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(\w+)",
        re.M,
    )
    lines = status.findall(text)
    if lines:
        n, _, cov, ft, corp, size, unit = lines[-1]
        scale = {"b": 1, "Kb": 1024, "Mb": 1 << 20}.get(unit, 1)
        out.update(cov=int(cov), ft=int(ft), corpus_units=int(corp))
        out["corpus_bytes"] = int(size) * scale
        out["executions"] = int(n)
    inited = [x for x in lines if x[1] == "INITED"]
    if inited:
        out["seed_cov"], out["seed_ft"] = int(inited[0][2]), int(inited[0][3])
    m = re.search(r"stat::number_of_executed_units: (\d+)", text)
    if m:
        out["executions"] = int(m.group(1))
    m = re.search(r"stat::average_exec_per_sec:\s+(\d+)", text)
    if m:
        out["exec_per_s"] = int(m.group(1))
    m = re.search(r"INFO: seed corpus: files: (\d+)", text)
    if m:
        out["seed_inputs_read"] = int(m.group(1))
    return out


# The decoder and checks: every function a datagram goes through in the target.
COVERED_FUNCTIONS = {
    "exchange.py": ["Result.__init__", "Exchange.receive", "Exchange._ignore", "Exchange.expire"]
    + ["Exchange._finish", "Exchange._judge"]
    + ["Header.__init__", "origin_matches", "kiss_code"]
    + ["_era_s", "_frac_us", "short_to_us"],
    "timestamp.py": ["refid_text"],
}
COVERED = {
    "replies": COVERED_FUNCTIONS,
    "dns": {
        "dns.py": ["answer", "_label", "_name_end", "_same_name", "_u16", "_ip_text"]
        + ["Resolver.judge", "Resolver.result"]
    },
}


def function_lines():
    """{(file, line)} of every line with code in COVERED_FUNCTIONS (the def line excluded)."""
    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    import importlib

    modules = {n: importlib.import_module("sntp." + n[:-3]) for n in COVERED_FUNCTIONS}
    lines = set()
    for name, funcs in COVERED_FUNCTIONS.items():
        for qual in funcs:
            obj = modules[name]
            for part in qual.split("."):
                obj = getattr(obj, part)
            code = obj.__code__
            for _, line in dis.findlinestarts(code):
                if line is not None and line != code.co_firstlineno:
                    lines.add((code.co_filename, line))
    return lines


def replay_lines(files):
    """Replay the inputs through the target under a line tracer: (lines reached, all lines,
    verdict counts)."""
    import importlib

    sys.path.insert(0, HERE)
    target = importlib.import_module(TARGET_MODULE)
    target._load_firmware()
    wanted = function_lines()
    files_wanted = {f for f, _ in wanted}
    hit = set()

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in files_wanted:
            return None
        if event == "line":
            hit.add((frame.f_code.co_filename, frame.f_lineno))
        return tracer

    verdicts = {}
    sys.settrace(tracer)
    try:
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            try:
                v = target.one_input(data)
            except Exception as exc:  # noqa: BLE001 - counted, and libFuzzer has said so
                v = "crash " + type(exc).__name__
            verdicts[v] = verdicts.get(v, 0) + 1
    finally:
        sys.settrace(None)
    return hit & wanted, wanted, verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="fuzzing time (default 60)")
    ap.add_argument(
        "--max-len", type=int, help="longest input in bytes (200; dns: 600, past 512 bytes)"
    )
    ap.add_argument("--keep-corpus", action="store_true", help="continue from build/fuzz/corpus")
    ap.add_argument("--target", choices=sorted(TARGETS), default="replies")
    ap.add_argument("--out", help="default results/fuzz.json (replies), results/fuzz-dns.json")
    args = ap.parse_args()
    use_target(args.target)
    if args.max_len is None:
        args.max_len = 200 if args.target == "replies" else 600
    if args.out is None:
        name = "fuzz.json" if args.target == "replies" else "fuzz-{}.json".format(args.target)
        args.out = os.path.join(ROOT, "results", name)
    if args.seconds < 1:
        print("fuzz: --seconds must be at least 1", file=sys.stderr)
        return 2
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("fuzz: atheris is not installed (make fuzz installs it)", file=sys.stderr)
        return 2
    corpus = os.path.join(WORK, "corpus")
    if not args.keep_corpus:
        shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus, exist_ok=True)
    for old in os.listdir(WORK):
        if old.startswith(("crash-", "timeout-", "oom-", "leak-")):
            os.remove(os.path.join(WORK, old))
    log_path = os.path.join(WORK, "fuzz.log")
    seeds = sorted(os.path.join(SEEDS, n) for n in os.listdir(SEEDS))
    print(
        "fuzz: {}: {} s from {} seeds in {}; log {}".format(
            args.target, args.seconds, len(seeds), rel(SEEDS), rel(log_path)
        ),
        flush=True,
    )
    rc, wall_s, cmd = run_fuzzer(args, corpus, log_path)
    with open(log_path) as f:
        text = f.read()
    figures = parse_log(text)
    crashes = sorted(
        rel(os.path.join(WORK, n)) for n in os.listdir(WORK) if n.startswith("crash-")
    )
    found = sorted(os.path.join(corpus, n) for n in os.listdir(corpus))
    hit, wanted, verdicts = replay_lines(seeds + found)
    uncovered = sorted("{}:{}".format(os.path.basename(f), n) for f, n in wanted - hit)
    summary = dict(
        seconds=args.seconds,
        wall_s=round(wall_s, 1),
        executions=figures.get("executions"),
        exec_per_s=figures.get("exec_per_s"),
        cov=figures.get("cov"),
        ft=figures.get("ft"),
        seed_cov=figures.get("seed_cov"),
        corpus_units=figures.get("corpus_units"),
        corpus_bytes=figures.get("corpus_bytes"),
        seed_files=len(seeds),
        new_files=len(found),
        lines_covered=len(hit),
        lines_total=len(wanted),
        lines_uncovered=uncovered,
        functions=COVERED_FUNCTIONS,
        verdicts_of_corpus=dict(sorted(verdicts.items())),
        crashes=crashes,
        libfuzzer_exit=rc,
        command=" ".join(rel(c) if c.startswith(ROOT) else c for c in cmd),
        python=sys.version.split()[0],
        atheris=_version("atheris"),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(
        "fuzz: {} executions in {:.0f} s ({}/s), cov {} ft {} (seeds alone: cov {}), corpus {} "
        "inputs, {} bytes ({} seed files, {} new), decoder and checks lines {}/{}, {} crashes "
        "-> {}".format(
            summary["executions"],
            wall_s,
            summary["exec_per_s"],
            summary["cov"],
            summary["ft"],
            summary["seed_cov"],
            summary["corpus_units"],
            summary["corpus_bytes"],
            len(seeds),
            len(found),
            len(hit),
            len(wanted),
            len(crashes),
            rel(os.path.abspath(args.out)),
        )
    )
    if uncovered:
        print("fuzz: lines not reached: " + " ".join(uncovered))
    if crashes or rc != 0:
        tail = "\n".join(text.rstrip().splitlines()[-30:])
        print(tail, file=sys.stderr)
        print(
            "fuzz: FOUND {} (libFuzzer exit {}); replay: {} {} --replay {}".format(
                "a crash" if crashes else "a failure",
                rc,
                rel(sys.executable),
                rel(TARGET),
                " ".join(crashes),
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def _version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - only for the report
        return None


if __name__ == "__main__":
    sys.exit(main())
