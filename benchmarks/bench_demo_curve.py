"""Learning curve of one grid run on the embedded benchmark: how many epochs does it need?

    nice -n 5 .venv/bin/python benchmarks/bench_demo_curve.py --work W [--run inter-dino]
        [--stages 2 4 8 16 32] [--set KEY=VALUE ...] [--cores 1]

The demo's budget question (issue 13): at which training length does a run reach a given AP,
and what does that length cost? The script
1. writes `W/bench.yaml` (base: `--config`, every output under `W`, the `--set` overrides) and
   builds the data with `snakemake data` (the same rules as `make demo`);
2. trains `--run` with `come train` to each epoch count of `--stages` in turn; each call resumes
   the previous stage's checkpoint (epochs are not part of the run's signature), so the curve
   costs one training of the largest stage, and evaluates in process;
3. prints, per stage: optimiser steps, cumulative training wall time (sum of logged step times),
   mean AP over the evaluation datasets with a 95% bootstrap interval over test images (the
   same draws at every stage), and the per-dataset APs. `W/curve.json` keeps the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(work: Path, base: Path, overrides: list[str]) -> Path:
    res = work / "results"
    cfg = {"base": str(base.resolve()), "name": "bench-demo-curve", "results": str(res),
           "paper_tables": str(REPO / "config" / "paper_tables.csv"),
           "data": {"root": str(res / "data"), "splits_root": str(res / "splits")},
           "experts": {"root": str(res / "experts"), "prompts_root": str(res / "prompts")},
           "grid": {"file": str(REPO / "config" / "grid.yaml")}}
    for item in overrides:                       # KEY=VALUE, dotted keys, YAML values
        key, _, value = item.partition("=")
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def sh(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}   # rules call `come`
    with log.open("a") as fh:
        if subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env) != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed: see {log}")


def mean_ap_interval(run: Path, splits: Path, resamples: int) -> tuple[float, float, float, dict]:
    """(mean AP, 95% low, high, per-dataset AP) over the run's evaluation datasets."""
    from come.reports.bootstrap import bootstrap_metrics, interval
    metrics = json.loads((run / "metrics.json").read_text())
    reps = []
    for ds in metrics["datasets"]:
        gt = json.loads((splits / ds / "test.json").read_text())
        dets = json.loads((run / "predictions" / f"{ds}.json").read_text())
        res = bootstrap_metrics(gt, dets, "lesion", resamples, seed=zlib.crc32(ds.encode()))
        if res is not None:
            reps.append(np.asarray(res["replicates"]["AP"], dtype=float))
    lo, hi = interval(np.mean(reps, axis=0))
    return metrics["mean"]["AP"], lo, hi, {d: v["AP"] for d, v in metrics["datasets"].items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--run", default="inter-dino")
    ap.add_argument("--stages", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--resamples", type=int, default=500)
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg = write_config(work, args.config, args.overrides)
    snakemake = shutil.which("snakemake", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    sh([snakemake, "data", "--cores", str(args.cores), "--configfile", str(cfg), "--quiet"], work / "logs" / "data.log")
    out, curve = work / "runs" / args.run, []
    for ep in sorted(args.stages):
        sh([sys.executable, "-m", "come", "train", "--config", str(cfg), "--run", args.run, "--out", str(out),
            "--set", f"train.epochs={ep}"], work / "logs" / f"train_{args.run}.log")
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        ap_, lo, hi, per = mean_ap_interval(out, work / "results" / "splits", args.resamples)
        curve.append({"epochs": ep, "steps": len(log), "train_min": sum(r["time"] for r in log) / 60,
                      "mean_AP": ap_, "ci95": [lo, hi], "datasets": per})
        (work / "curve.json").write_text(json.dumps({"run": args.run, "overrides": args.overrides,
                                                     "curve": curve}, indent=1))
        print(f"{args.run} {ep:3d} epochs ({len(log)} steps, {curve[-1]['train_min']:.1f} min train): "
              f"mean AP {ap_:.3f} [{lo:.3f}, {hi:.3f}]  "
              + " ".join(f"{d} {v:.2f}" for d, v in per.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
