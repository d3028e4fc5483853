"""Training throughput and peak memory of the engine + DINO on CPU.

    .venv/bin/python benchmarks/bench_train.py [--steps 6] [--threads 1] [--only small|paper]

For each setting (the small default config at 128 px; the paper config at low resolution)
a child process trains `--steps` optimiser steps on a generated 2-source toy benchmark and
reports: images/s over the steps after the first (warm-up), seconds per step, and peak
resident memory (getrusage ru_maxrss) with its growth over the pre-training baseline.
The paper setting keeps its model (ResNet-50, 256 hidden, 6+6 layers, 900 queries, dn 100,
FFN 2048) but trains at `--paper-size` px, batch 2, random init (no weight download).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SETTINGS = {
    "small": (None, ["data.image_size=128", "data.min_size=96", "train.batch_size=4"]),
    "paper": ("config/paper.yaml", ["data.image_size={size}", "data.min_size={size}",
                                    "train.batch_size=2", "model.backbone.pretrained=''"]),
}


def make_toy(root: Path, n: int = 24, seed: int = 0) -> tuple[Path, Path]:
    """Two sources of n gray 160x200 images, one bright rectangle each, split n-4 / 4."""
    from PIL import Image

    from come.data.coco import CocoBuilder, subset
    from come.utils.io import write_json

    rng = np.random.default_rng(seed)
    for ds, organ in (("BUSI", "breast"), ("DDTI", "thyroid")):
        b = CocoBuilder()
        for i in range(n):
            img = (rng.random((160, 200)) * 80).astype(np.uint8)
            w, h = int(rng.integers(20, 60)), int(rng.integers(20, 50))
            x, y = int(rng.integers(0, 200 - w)), int(rng.integers(0, 160 - h))
            img[y:y + h, x:x + w] = 220
            rel = f"{ds}/images/{i:03d}.png"
            (root / "data" / ds / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "data" / rel)
            iid = b.add_image(rel, 200, 160, ds, organ, "benign")
            b.add_box(iid, [x, y, w, h], 1)
        full = b.to_dict()
        ids = [im["id"] for im in full["images"]]
        write_json(root / "splits" / ds / "train.json", subset(full, ids[: n - 4]))
        write_json(root / "splits" / ds / "test.json", subset(full, ids[n - 4:]))
    return root / "data", root / "splits"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one(setting: str, steps: int, threads: int, size: int) -> dict:
    """Train `steps` steps of `setting` in this process; return its figures."""
    sys.path.insert(0, str(REPO))
    from come.config import load_config
    from come.engine.train import Trainer

    cfg_path, sets = SETTINGS[setting]
    with tempfile.TemporaryDirectory() as tmp:
        data_root, splits_root = make_toy(Path(tmp))
        overrides = [s.format(size=size) for s in sets] + [
            f"data.root={data_root}", f"data.splits_root={splits_root}", "data.num_workers=0",
            "run.train_datasets=[BUSI, DDTI]", "data.datasets=[BUSI, DDTI]", "train.epochs=1",
            f"train.max_steps_per_epoch={steps}", f"train.threads={threads}", "train.checkpoint_every=0"]
        cfg = load_config(REPO / cfg_path if cfg_path else None, overrides)
        base = rss_mb()
        Trainer(cfg, Path(tmp) / "run").fit()
        log = [json.loads(x) for x in (Path(tmp) / "run" / "train_log.jsonl").read_text().splitlines()]
    timed = log[1:] or log
    secs = sum(r["time"] for r in timed)
    imgs = sum(r["images"] for r in timed)
    return {"setting": setting, "steps": len(log), "batch": cfg.train.batch_size,
            "image_size": cfg.data.image_size, "threads": threads,
            "images_per_s": round(imgs / secs, 3), "s_per_step": round(secs / len(timed), 3),
            "first_step_s": round(log[0]["time"], 3), "peak_rss_mb": round(rss_mb(), 1),
            "rss_growth_mb": round(rss_mb() - base, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paper-size", type=int, default=256)
    ap.add_argument("--only", choices=sorted(SETTINGS), default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.only, args.steps, args.threads, args.paper_size)))
        return 0
    cmds = [[sys.executable, __file__, "--child", "--only", setting, "--steps", str(args.steps),
             "--threads", str(args.threads), "--paper-size", str(args.paper_size)]
            for setting in ([args.only] if args.only else list(SETTINGS))]
    rows = child_rows(cmds)
    return rows if isinstance(rows, int) else 0


def child_rows(cmds: list[list[str]]) -> list[dict] | int:
    """Run each child command, print the JSON rows they report as a table; an int on failure."""
    rows = []
    for cmd in cmds:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r[k]) for k in keys))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
