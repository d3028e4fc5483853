"""Per-job start-up time and the demo's time split (training / evaluation / experts / overhead).

    python benchmarks/bench_demo_time.py [--repeat 3] [--results results] [--cores 2]

Start-up: a fresh interpreter importing what one `come train` job imports before its first
step (the train + in-process evaluation modules, the detector, timm, torch._dynamo), wall and
CPU seconds, median of --repeat, the sets alternated side by side: a DINO-family job, a
MoE-family job before routing.png was drawn with PIL (matplotlib + seaborn), a COME job
(shared-expert bank), and the separate `come evaluate` process that in-process evaluation
removed.
Warm start: one job's start-up through the warm server (`come warm start`, which the Snakefile
starts on local runs; docs/workflow.md, "Warm start") against a fresh interpreter, both running
`come train --config <missing file>`: the train command's imports, then its first read of the
config fails (exit 2), so only start-up is timed; alternated.
Time split, from a finished `make demo` (`results/`): Snakemake benchmark files
(`results/benchmarks/{train,experts}/*.tsv`, column `s`) and each run's metrics.json timing
(`train_seconds` = sum of optimiser steps, `eval_seconds`). Per train job: training, evaluation,
and overhead = job wall - training - evaluation (start-up, data loading, checkpoints). Other =
cores x pipeline wall (span of `results/logs/`) - all benchmarked job time: data and report jobs,
scheduling and idle cores.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what one `come train` job imports before its first step: the train + in-process evaluation
# modules, the detector, timm (backbone) and torch._dynamo (loaded by seeding and by the optimizer)
JOB = ("come.commands.train", "come.engine.train", "come.engine.evaluate", "come.model.detector",
       "come.workflow.grid", "timm", "torch._dynamo")
STARTUP_SETS = {
    "DINO, DINO-MoE or DAMEX job": JOB,
    "  a MoE-family job before the PIL routing.png": JOB + ("matplotlib.pyplot", "seaborn"),
    "COME job (shared-expert bank)": JOB + ("come.experts.bank",),
    "a separate evaluate process (no longer run)": ("come.commands.evaluate", "come.engine.evaluate",
                                                    "come.model.detector", "timm", "matplotlib.pyplot"),
}


def startup(sets: dict[str, tuple[str, ...]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds of a fresh interpreter importing each set's modules; the sets
    alternate within each repeat, so a busy moment of the machine hits all of them alike."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    walls: dict[str, list[float]] = {k: [] for k in sets}
    cpus: dict[str, list[float]] = {k: [] for k in sets}
    for _ in range(repeat):
        for name, modules in sets.items():
            before = os.times()
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import " + ", ".join(modules)], env=env, check=True)
            walls[name].append(time.perf_counter() - t0)
            after = os.times()
            cpus[name].append((after.children_user - before.children_user)
                              + (after.children_system - before.children_system))
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in sets}


def warm_vs_fresh(repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, client CPU) seconds of a train job's start-up, fresh and through a warm server
    (the warm job's own CPU is spent in the server's child and is not counted; it is what the
    fresh job spends after its imports)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("COME_WARM_SOCKET", None)
    come = [sys.executable, "-m", "come"]
    with tempfile.TemporaryDirectory(prefix="cw") as tmp:
        sock = os.path.join(tmp, "s.sock")
        t0 = time.perf_counter()
        subprocess.run(come + ["warm", "start", "--socket", sock, "--idle-timeout", "300"], env=env,
                       check=True, capture_output=True)
        print(f"  warm server ready after {time.perf_counter() - t0:.2f} s (its one-time imports)")
        runs = {"fresh interpreter": env, "warm server": dict(env, COME_WARM_SOCKET=sock)}
        walls: dict[str, list[float]] = {k: [] for k in runs}
        cpus: dict[str, list[float]] = {k: [] for k in runs}
        try:
            for _ in range(repeat):
                for name, run_env in runs.items():
                    before, t1 = os.times(), time.perf_counter()
                    res = subprocess.run(come + ["train", "--config", os.path.join(tmp, "none.yaml"),
                                               "--out", os.path.join(tmp, "run")], env=run_env,
                                         capture_output=True, text=True)
                    if res.returncode != 2 or "none.yaml" not in res.stderr:
                        raise SystemExit(f"unexpected start-up probe result: {res.stderr[-500:]}")
                    walls[name].append(time.perf_counter() - t1)
                    after = os.times()
                    cpus[name].append((after.children_user - before.children_user)
                                      + (after.children_system - before.children_system))
                    if "fresh interpreter" in res.stderr:
                        raise SystemExit(f"the warm server did not take the job: {res.stderr}")
        finally:
            subprocess.run(come + ["warm", "stop", "--socket", sock], env=env, capture_output=True)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in runs}


def tsv_seconds(folder: Path) -> dict[str, float]:
    """Snakemake benchmark files of `folder`: name -> wall seconds (column `s`)."""
    out = {}
    for path in sorted(folder.glob("*.tsv")):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            out[path.stem] = float(rows[-1]["s"])
    return out


def span(logs: Path) -> float | None:
    times = [p.stat().st_mtime for p in logs.rglob("*") if p.is_file()] if logs.is_dir() else []
    return max(times) - min(times) if times else None


def time_split(results: Path, cores: int) -> dict[str, float]:
    """Seconds per category of a finished pipeline under `results`."""
    train_jobs = tsv_seconds(results / "benchmarks" / "train")
    experts = tsv_seconds(results / "benchmarks" / "experts")
    training = evaluation = 0.0
    for run in train_jobs:
        metrics = results / "runs" / run / "metrics.json"
        timing = json.loads(metrics.read_text()).get("timing", {}) if metrics.is_file() else {}
        training += float(timing.get("train_seconds") or 0.0)
        evaluation += float(timing.get("eval_seconds") or 0.0)
    split = {"training": training, "evaluation": evaluation, "experts": sum(experts.values()),
             "train-job overhead": sum(train_jobs.values()) - training - evaluation,
             "train jobs": float(len(train_jobs))}
    wall = span(results / "logs")
    if wall is not None:
        split["pipeline wall"] = wall
        split["other (data, reports, scheduling, idle)"] = (
            cores * wall - sum(train_jobs.values()) - split["experts"])
    return split


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--no-startup", action="store_true")
    args = ap.parse_args(argv)
    if not args.no_startup:
        print(f"per-job start-up: imports of a fresh interpreter, median of {args.repeat}, sets alternated")
        for name, (wall, cpu) in startup(STARTUP_SETS, args.repeat).items():
            print(f"  {name:52s} {wall:6.2f} s wall {cpu:6.2f} s CPU")
        print(f"one train job's start-up (`come train` up to reading its config), median of "
              f"{args.repeat}, alternated:")
        for name, (wall, cpu) in warm_vs_fresh(args.repeat).items():
            print(f"  {name:52s} {wall:6.2f} s wall {cpu:6.2f} s CPU (client)")
    results = Path(args.results)
    if not (results / "benchmarks").is_dir():
        print(f"no {results / 'benchmarks'}: run `make demo` first for the time split")
        return 0
    split = time_split(results, args.cores)
    jobs = int(split.pop("train jobs"))
    print(f"demo time split ({jobs} train jobs, {results}):")
    for name, seconds in split.items():
        print(f"  {name:42s} {seconds:8.1f} s  ({seconds / 60:5.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
