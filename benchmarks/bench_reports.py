"""Benchmark of the reports: bootstrap speed (fast accumulate-only path vs re-evaluating each
resample), and wall time of summarize / tables / figures / report on a fake results tree.

    .venv/bin/python benchmarks/bench_reports.py [--resamples 200]

Prints figures; builds its tree in a temporary folder (the test fixture builder).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _renumbered(gt: dict, dets: list[dict], draw: list[int]) -> tuple[dict, list[dict]]:
    images, anns, out = [], [], []
    for k, i in enumerate(draw, start=1):
        images.append({**next(x for x in gt["images"] if x["id"] == i), "id": k})
        for a in gt["annotations"]:
            if a["image_id"] == i:
                anns.append({**a, "id": len(anns) + 1, "image_id": k})
        out += [{**d, "image_id": k} for d in dets if d["image_id"] == i]
    return {**gt, "images": images, "annotations": anns}, out


def main() -> None:
    import numpy as np
    import torch
    import yaml

    from come.cli import main as come
    from come.engine.coco_eval import coco_metrics
    from come.reports.bootstrap import bootstrap_metrics
    from reports.fake_results import build_fake_results, make_predictions

    ap = argparse.ArgumentParser()
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--images", type=int, default=120, help="test images of the bootstrap timing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        fx = build_fake_results(Path(tmp) / "results")
        from reports.fake_results import make_split
        gt = fx["splits"]["BUSI"]
        if args.images > 8:                      # a bigger test split, as a real dataset's
            import reports.fake_results as fr
            fr.N_TEST = args.images
            gt = make_split(Path(tmp) / "big", "BUSI", "breast", seed=1)
        dets = make_predictions(gt, 0.05, seed=0)
        t0 = time.perf_counter()
        res = bootstrap_metrics(gt, dets, resamples=args.resamples, seed=0)
        fast = (time.perf_counter() - t0) / args.resamples
        ids = sorted(im["id"] for im in gt["images"])
        rng = np.random.default_rng(0)
        n_slow = 20
        t0 = time.perf_counter()
        for _ in range(n_slow):
            coco_metrics(*_renumbered(gt, dets, sorted(rng.choice(ids, len(ids)).tolist())), "lesion")
        slow = (time.perf_counter() - t0) / n_slow
        lo, hi = np.percentile(res["replicates"]["AP"], [2.5, 97.5])
        print(f"bootstrap ({len(ids)} test images, {len(dets)} detections): "
              f"{fast * 1e3:.2f} ms/resample (accumulate only) vs {slow * 1e3:.2f} ms/resample "
              f"(re-evaluate), speed-up x{slow / fast:.1f}; AP {res['point']['AP']:.4f} "
              f"[{lo:.4f}, {hi:.4f}]")
        cfg = yaml.safe_load(fx["config"].read_text())
        cfg["eval"]["bootstrap"] = args.resamples
        fx["config"].write_text(yaml.safe_dump(cfg))
        n_runs = len(list((fx["root"] / "runs").glob("*/metrics.json")))
        seen_tables = False
        for cmd in ("summarize", "tables", "tables", "figures", "report"):
            t0 = time.perf_counter()
            rc = come([cmd, "--config", str(fx["config"])] + (["--no-bootstrap"] if cmd == "figures" else []))
            note = " (bootstrap cached)" if cmd == "tables" and seen_tables else ""
            seen_tables = seen_tables or cmd == "tables"
            print(f"come {cmd}{note}: {time.perf_counter() - t0:.2f} s (exit {rc}, {n_runs} runs, "
                  f"{args.resamples} resamples)")


if __name__ == "__main__":
    main()
