"""Real-data benchmark at CPU scale: BUS-BRA + DDTI (../shared/data), config/real-cpu.yaml.

    nice -n 10 .venv/bin/python benchmarks/bench_real.py prepare --work W
    nice -n 10 .venv/bin/python benchmarks/bench_real.py run --work W --only anchor [--stages 2 4 6]
    nice -n 10 .venv/bin/python benchmarks/bench_real.py run --work W --only inter
    .venv/bin/python benchmarks/bench_real.py import --work W --from A [--runs ID ...]
    .venv/bin/python benchmarks/bench_real.py report --work W [--out results/bench_real.md]

`prepare` links the two releases into `W/raw`, converts them (BUS-BRA; DDTI as the preprocessed
copy, registry entry DDTI_PRE), splits 8:2 by patient / source frame, merges them. `run` trains
and evaluates with the `come` CLI: `anchor` = single-dataset DINO on BUS-BRA (evaluated after
each stage of `--stages` epochs, the learning curve), `inter` = inter-organ DINO, COME
(Fine2Coarse), DAMEX, DINO-MoE, COME (Multi-Step), in that order (the shared experts of COME are
prepared before its first run). Each child's wall time and peak RSS (os.wait4) go to
`W/timing.json`. `report` prints per-dataset AP with bootstrap 95% intervals (the same image
draws for every run, so differences are paired), the paired differences of each COME run minus
DINO, DINO-MoE and DAMEX and of Multi-Step minus Fine2Coarse, per dataset and for the two-dataset
mean, with intervals; wall time and peak memory, and the anchor's curve beside the paper's 0.578.
Each run's replicates are cached in `W/bootstrap/` (reused while its predictions are unchanged).
Budget knobs: `--steps` (optimiser steps per epoch), `--epochs`, `--set key=value`.
Seeds: `prepare --seeds 0 1 2` gives each inter-organ row `extra_seeds` (runs `<id>-seed~N`, the
grid's naming; the shared experts are prepared once); `run` trains seed by seed (all methods of
one seed before the next), `--runs` takes these ids. With several seeds the paired differences
average the per-seed differences, and each bootstrap replicate also draws the common seeds with
replacement (`come.reports.claims.seed_resample`, as the demo's claims table does).
Pooling across sessions: `run` stamps each run with the git trees of `come/` and `config/`;
`import --from A` copies A's finished runs (no checkpoints) into W when A has the same test
images and budget (`bench_real_pool`); `report` shows each run's code and names mixed code.
Keep `W` without `results/runs/*/checkpoints` to pool it later.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real_pool as pool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent.parent / "shared" / "data" if (REPO.parent.name == "wt") else REPO.parent / "shared" / "data"
PAPER_ANCHOR = 0.578          # Table 2, single-dataset DINO, BUS-BRA
INTER = [("inter-dino", "DINO"), ("inter-come-f2c", "COME (Fine2Coarse)"), ("inter-damex", "DAMEX"),
         ("inter-dino-moe", "DINO-MoE"), ("inter-come-ms", "COME (Multi-Step)")]
ANCHOR = ("single-dino-busbra", "DINO")


def come(args: list[str], log: Path, timing: dict | None = None, key: str = "") -> None:
    """Run `python -m come ARGS` (output to `log`); record wall time and peak RSS under `key`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "come", *args], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"come {' '.join(args[:1])} failed: see {log}")
    if timing is not None:
        entry = timing.setdefault(key, {"wall_s": 0.0, "peak_rss_mb": 0.0})
        entry["wall_s"] += time.perf_counter() - t0
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], usage.ru_maxrss / 1024)


def run_id(rid: str, seed: int) -> str:
    """The grid's id of row `rid` at `seed` (seed 0 = the row itself)."""
    return rid if seed == 0 else f"{rid}-seed~{seed}"


def write_config(work: Path, steps: int, epochs: int, anchor_epochs: int, overrides: list[str],
                 seeds: list[int] = (0,)) -> Path:
    """W/bench.yaml (base: config/real-cpu.yaml, paths inside W) and W/grid.yaml (the bench rows)."""
    rows = [{"id": ANCHOR[0], "method": ANCHOR[1], "paradigm": "single", "train_datasets": "BUSBRA",
             "overrides": {"train.epochs": anchor_epochs, "train.lr_drop_epochs": []},
             "serves": [["table2_main", "single", "DINO", ""]]}]
    extra = [s for s in seeds if s != 0]
    rows += [{"id": rid, "method": m, "paradigm": "inter-organ", "train_datasets": ["BUSBRA", "DDTI"],
              "serves": [["table2_main", "inter-organ", m, ""]], **({"extra_seeds": list(extra)} if extra else {})}
             for rid, m in INTER]
    (work / "grid.yaml").write_text(yaml.safe_dump({"methods_file": str(REPO / "config" / "methods.yaml"),
                                                    "runs": rows}, sort_keys=False))
    cfg = {"base": str(REPO / "config" / "real-cpu.yaml"), "name": "bench-real",
           "results": str(work / "results"), "paper_tables": str(REPO / "config" / "paper_tables.csv"),
           "data": {"datasets": ["BUSBRA", "DDTI"], "raw_root": str(work / "raw"),
                    "root": str(work / "data"), "splits_root": str(work / "splits"),
                    "registry": str(REPO / "config" / "datasets.yaml")},
           "train": {"epochs": epochs, "max_steps_per_epoch": steps, "threads": 1},
           "experts": {"root": str(work / "results" / "experts"), "prompts_root": str(work / "results" / "prompts")},
           "grid": {"file": str(work / "grid.yaml")}}
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "overrides.json").write_text(json.dumps(overrides))
    (work / "seeds.json").write_text(json.dumps(sorted({0, *seeds})))
    return path


def bench_seeds(work: Path) -> list[int]:
    path = work / "seeds.json"
    return json.loads(path.read_text()) if path.is_file() else [0]


def prepare(work: Path, data: Path) -> None:
    """Link the raw releases (files linked one by one: nothing is written into `data`), convert,
    split, merge."""
    cfg = work / "bench.yaml"
    for ds, folder in (("BUSBRA", "busbra"), ("DDTI", "ddti")):
        raw = work / "raw" / ds
        raw.mkdir(parents=True, exist_ok=True)
        for item in (data / folder).iterdir():
            if not (raw / item.name).exists():
                (raw / item.name).symlink_to(item.resolve())
        out = work / "data" / ds
        if not (out / "annotations.json").is_file():
            come(["convert", ds, "--config", str(cfg), "--raw", str(raw), "--out", str(out)],
                 work / "logs" / f"convert_{ds}.log")
        come(["split", "--coco", str(out / "annotations.json"), "--out", str(work / "splits" / ds),
              "--seed", "0", "--test-fraction", "0.2"], work / "logs" / f"split_{ds}.log")
    come(["merge", "--splits-root", str(work / "splits"), "--datasets", "BUSBRA", "DDTI",
          "--out", str(work / "splits" / "merged" / "all")], work / "logs" / "merge.log")


def prepare_experts(work: Path, cfg: Path, sets: list[str], timing: dict) -> None:
    """Prompts, the semantic expert (corpus pretraining + fine-tuning on the BUS-BRA + DDTI
    training set, `come.experts.trainset`) and the structure expert."""
    from come.experts.trainset import semantic_dir
    exp, merged = work / "results" / "experts", work / "splits" / "merged" / "all"
    prompts = work / "results" / "prompts" / "train.jsonl"
    if not prompts.is_file():
        come(["prompts", "--config", str(cfg), *sets, "--train", str(merged / "train.json"), "--out", str(prompts)],
             work / "logs" / "prompts.log")
    if not (exp / "semantic_pretrain" / "clip.pt").is_file():
        come(["pretrain-semantic", "--config", str(cfg), *sets, "--out", str(exp / "semantic_pretrain")],
             work / "logs" / "pretrain_semantic.log", timing, "experts")
    semantic = semantic_dir(exp, ["BUSBRA", "DDTI"])     # per training set, where COME runs look
    if not (semantic / "encoder.pt").is_file():
        come(["finetune-semantic", "--config", str(cfg), *sets, "--prompts", str(prompts), "--test",
              str(merged / "test.json"), "--out", str(semantic), "--init",
              str(exp / "semantic_pretrain" / "clip.pt")], work / "logs" / "finetune_semantic.log", timing, "experts")
    if not (exp / "structure" / "encoder.pt").is_file():
        come(["pretrain-structure", "--config", str(cfg), *sets, "--train", str(merged / "train.json"),
              "--out", str(exp / "structure")], work / "logs" / "pretrain_structure.log", timing, "experts")


def load_timing(work: Path) -> dict:
    """Merged timings: `timing.json` and any `timing_snapshots/*.json` (per key the largest,
    as each process's figures only grow), so parallel `run` processes never lose an entry."""
    merged: dict = {}
    for path in [work / "timing.json", *sorted((work / "timing_snapshots").glob("*.json"))]:
        if path.is_file():
            for key, entry in json.loads(path.read_text()).items():
                old = merged.get(key, {"wall_s": 0.0, "peak_rss_mb": 0.0})
                merged[key] = {k: max(old[k], entry[k]) for k in old}
    return merged


def save_timing(work: Path, timing: dict) -> None:
    """Write this process's figures merged into what other processes wrote."""
    merged = load_timing(work)
    for key, entry in timing.items():
        old = merged.get(key, {"wall_s": 0.0, "peak_rss_mb": 0.0})
        merged[key] = {k: max(old[k], entry[k]) for k in old}
    (work / "timing.json").write_text(json.dumps(merged, indent=1))


def train_eval(work: Path, cfg: Path, run_id: str, sets: list[str], timing: dict, epochs: int | None = None) -> dict:
    out = work / "results" / "runs" / run_id
    extra = ["--set", f"train.epochs={epochs}"] if epochs else []
    pool.stamp(work, run_id)                  # the code this run trains with, for pooling
    come(["train", "--config", str(cfg), "--run", run_id, *sets, *extra, "--out", str(out), "--no-eval"],
         work / "logs" / f"train_{run_id}.log", timing, run_id)
    come(["evaluate", "--run-dir", str(out)], work / "logs" / f"evaluate_{run_id}.log", timing, f"{run_id}/eval")
    save_timing(work, timing)
    return json.loads((out / "metrics.json").read_text())


def import_from(work: Path, source: Path, runs: list[str] | None) -> list[str]:
    """`import`: pool `source`'s finished inter-organ runs into `work` (`bench_real_pool`), with
    their timing entries, so `report` pairs them with `work`'s own runs."""
    known = [run_id(r, s) for s in bench_seeds(work) for r, _ in INTER]
    copied = pool.import_runs(work, source, known, runs)
    theirs = load_timing(source.resolve())
    entries = {k: v for k, v in theirs.items() if k in copied or k.split("/")[0] in copied}
    if entries:
        snap = work / "timing_snapshots" / f"imported-{zlib.crc32(str(source.resolve()).encode()):08x}.json"
        snap.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(snap.read_text()) if snap.is_file() else {}
        snap.write_text(json.dumps({**old, **entries}, indent=1))
    print(f"imported {len(copied)} run(s) from {source}: {copied}", flush=True)
    return copied


def run(work: Path, only: str, stages: list[int], extra: list[str], runs: list[str] | None = None) -> None:
    cfg = work / "bench.yaml"
    sets = [a for o in json.loads((work / "overrides.json").read_text()) + extra for a in ("--set", o)]
    timing = load_timing(work)
    if only == "experts":                     # COME's shared experts ahead of the first COME run
        prepare_experts(work, cfg, sets, timing)
        save_timing(work, timing)
        return
    if only == "anchor":
        path = work / "anchor_curve.json"
        curve = [c for c in (json.loads(path.read_text()) if path.is_file() else []) if c["epochs"] < min(stages)]
        for ep in stages:
            metrics = train_eval(work, cfg, ANCHOR[0], sets, timing, epochs=ep)
            log = work / "results" / "runs" / ANCHOR[0] / "train_log.jsonl"
            steps = sum(1 for _ in log.open()) if log.is_file() else None
            curve.append({"epochs": ep, "steps": steps, "AP": metrics["datasets"]["BUSBRA"]["AP"],
                          "wall_s": timing[ANCHOR[0]]["wall_s"]})
            path.write_text(json.dumps(curve, indent=1))
            print(json.dumps(curve[-1]), flush=True)
        return
    for seed in bench_seeds(work):
        for base, method in INTER:
            rid = run_id(base, seed)
            if (work / "results" / "runs" / rid / "metrics.json").is_file() or (runs and rid not in runs):
                continue
            if method.startswith("COME"):
                prepare_experts(work, cfg, sets, timing)
            metrics = train_eval(work, cfg, rid, sets, timing)
            print(rid, json.dumps({d: round(v["AP"], 4) for d, v in metrics["datasets"].items()}), flush=True)


def _replicates(work: Path, run_id: str, ds: str, resamples: int) -> tuple[float, np.ndarray] | None:
    """(AP, [resamples] bootstrap AP replicates) of one run on one dataset. Cached in
    `W/bootstrap/<run>/<ds>.json`, reused while the predictions, the test split and the resample
    count are unchanged (about a minute per run and dataset at 1000 draws)."""
    from come.reports.bootstrap import _digest, bootstrap_metrics
    pred = work / "results" / "runs" / run_id / "predictions" / f"{ds}.json"
    test = work / "splits" / ds / "test.json"
    if not pred.is_file():
        return None
    metrics = json.loads((work / "results" / "runs" / run_id / "metrics.json").read_text())
    cache, digest = work / "bootstrap" / run_id / f"{ds}.json", _digest(pred, test)
    if cache.is_file():
        entry = json.loads(cache.read_text())
        if entry.get("digest") == digest and entry.get("resamples") == resamples:
            return metrics["datasets"][ds]["AP"], np.asarray(entry["AP"], dtype=float)
    res = bootstrap_metrics(json.loads(test.read_text()), json.loads(pred.read_text()), "lesion", resamples,
                            seed=zlib.crc32(ds.encode()))        # same draws for every run: paired
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"digest": digest, "resamples": resamples, "AP": res["replicates"]["AP"]}))
    return metrics["datasets"][ds]["AP"], np.asarray(res["replicates"]["AP"], dtype=float)


def train_log(work: Path, run_id: str) -> list[dict]:
    path = work / "results" / "runs" / run_id / "train_log.jsonl"
    return [json.loads(line) for line in path.open()] if path.is_file() else []


PAIRS = [(c, b) for c in ("inter-come-f2c", "inter-come-ms") for b in ("inter-dino", "inter-dino-moe", "inter-damex")]
PAIRS += [("inter-come-ms", "inter-come-f2c")]


def paired_lines(reps: dict[tuple[str, str], tuple[float, np.ndarray]], seeds: list[int] = (0,),
                 resamples_seed: int = 0) -> list[str]:
    """`- A - B on DS: point [lo, hi] (verdict, seeds)` for each pair of `PAIRS`, per dataset and
    for the two-dataset mean (replicates averaged draw by draw, so still paired). `reps` is keyed
    by (grid run id, dataset); a pair uses the seeds at which both runs were evaluated: the point
    is the mean over those seeds, and with several seeds each replicate also draws the seeds
    with replacement (`seed_resample`)."""
    from come.reports.bootstrap import interval
    from come.reports.claims import seed_resample
    out = []
    for a, b in PAIRS:
        for ds in ("BUSBRA", "DDTI", "mean"):
            members = ["BUSBRA", "DDTI"] if ds == "mean" else [ds]
            common = [s for s in seeds if all((run_id(r, s), m) in reps for r in (a, b) for m in members)]
            if not common:
                continue
            points, per_seed = [], []
            for s in common:
                ra, rb = run_id(a, s), run_id(b, s)
                points.append(np.mean([reps[(ra, m)][0] - reps[(rb, m)][0] for m in members]))
                per_seed.append(np.mean([reps[(ra, m)][1] - reps[(rb, m)][1] for m in members], axis=0))
            d = per_seed[0] if len(common) == 1 else seed_resample(
                np.stack(per_seed), np.random.default_rng(resamples_seed))
            lo, hi = interval(d)
            verdict = f"{a} better" if lo > 0 else f"{b} better" if hi < 0 else "no significant difference"
            which = f"seed {common[0]}" if len(common) == 1 else f"{len(common)} seeds {common}"
            out.append(f"- {a} - {b} on {ds}: {float(np.mean(points)):+.4f} [{lo:+.4f}, {hi:+.4f}] "
                       f"({verdict}; {which})")
    return out


def report(work: Path, resamples: int) -> str:
    """Markdown: per-run AP with intervals, the paired differences of `PAIRS`, the anchor's curve.
    Train wall = the sum of the logged step times (survives resumes); eval wall and peak RSS
    from `timing.json` (os.wait4 of each child)."""
    from come.reports.bootstrap import interval
    timing = load_timing(work)
    lines = ["| run | method | dataset | AP [95% CI] | steps | train wall (min) | eval wall (min) | peak RSS (MB) "
             "| code (come/config trees) |", "|---|---|---|---|---|---|---|---|---|"]
    reps: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    seeds = bench_seeds(work)
    for rid, method in [ANCHOR] + [(run_id(r, s), m) for s in seeds for r, m in INTER]:
        for ds in (["BUSBRA"] if rid == ANCHOR[0] else ["BUSBRA", "DDTI"]):
            found = _replicates(work, rid, ds, resamples)
            if found is None:
                continue
            reps[(rid, ds)] = found
            lo, hi = interval(found[1])
            t, e = timing.get(rid, {}), timing.get(f"{rid}/eval", {})
            log = train_log(work, rid)
            mem = max(t.get("peak_rss_mb", 0), e.get("peak_rss_mb", 0))
            lines.append(f"| {rid} | {method} | {ds} | {found[0]:.4f} [{lo:.4f}, {hi:.4f}] | {len(log)} | "
                         f"{sum(r['time'] for r in log) / 60:.1f} | {e.get('wall_s', 0) / 60:.1f} | {mem:.0f} | "
                         f"{pool.code_key(work, rid)} |")
    lines += ["", "Paired differences, inter-organ (same bootstrap draws of the test images for every run; "
              "mean = the mean of the two datasets' AP, the paper's inter-organ mean):", ""]
    lines += paired_lines(reps, seeds) or ["- not measured: no COME run finished evaluation"]
    codes = {pool.code_key(work, rid) for rid, _ in reps}
    if len(codes) > 1:
        lines.append(f"- note: these runs ran different model code ({', '.join(sorted(codes))}); see the "
                     "code column before reading a difference between two of them")
    curve = work / "anchor_curve.json"
    if curve.is_file():
        lines += ["", f"Single-dataset DINO on BUS-BRA (paper, R50 at full resolution: {PAPER_ANCHOR}):", ""]
        lines += [f"- {c['epochs']} epochs ({c.get('steps') or '?'} optimiser steps of batch 4): AP {c['AP']:.4f} "
                  f"(cumulative train wall {c['wall_s'] / 60:.1f} min)" for c in json.loads(curve.read_text())]
    log = train_log(work, ANCHOR[0])
    if log:
        every = max(1, len(log) // 6)
        lines += ["", f"Training loss of {ANCHOR[0]} (mean over {every} steps): " + ", ".join(
            f"steps {i + 1}-{i + every}: {np.mean([r['loss'] for r in log[i:i + every]]):.2f}"
            for i in range(0, len(log) - every + 1, every))]
    if "experts" in timing:
        lines += ["", f"COME shared experts (prompts, semantic pretrain + fine-tune, structure MIM): "
                      f"{timing['experts']['wall_s'] / 60:.1f} min, peak RSS {timing['experts']['peak_rss_mb']:.0f} MB"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["prepare", "run", "import", "report"])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--only", choices=["anchor", "inter", "experts"], default="inter")
    ap.add_argument("--runs", nargs="+", default=None,
                    help="run: only these inter-organ run ids (parallel processes); import: only these")
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="import: the work directory (or its copy without checkpoints) to take finished runs from")
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps per epoch (0 = full epochs)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the inter-organ runs")
    ap.add_argument("--stages", type=int, nargs="+", default=[2, 4, 6], help="anchor: evaluate after these epochs")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override (prepare: every run; run: this invocation's runs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="prepare: seeds of the inter-organ runs")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None, help="report: also write the Markdown here")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.action == "prepare":
        if not args.data.is_dir():
            print(f"bench_real: {args.data} not found (BUS-BRA and DDTI releases expected)", file=sys.stderr)
            return 2
        write_config(work, args.steps, args.epochs, max(args.stages), args.overrides, args.seeds)
        prepare(work, args.data.resolve())
    elif args.action == "run":
        run(work, args.only, sorted(args.stages), args.overrides, args.runs)
    elif args.action == "import":
        if args.source is None:
            ap.error("import needs --from A")
        import_from(work, args.source, args.runs)
    else:
        text = report(work, args.resamples)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
