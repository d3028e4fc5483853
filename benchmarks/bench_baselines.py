"""Time and memory per training step of each Table 2 baseline beside DINO, on CPU.

    .venv/bin/python benchmarks/bench_baselines.py [--steps 6] [--threads 1] [--scale embedded|paper]
    .venv/bin/python benchmarks/bench_baselines.py --params     # parameter counts (paper.yaml's variant choice)

Each method trains `--steps` optimiser steps in its own child process on bench_train's
generated 2-source toy benchmark (BUSI + DDTI, 20 training images each), through the same code
path as `come train`: DINO and Open-GroundingDINO with the engine's Trainer, YOLOv10 and
CerberusDet with come/baselines' YOLO loop (CerberusDet: one head per source, so one step
carries one batch per source). Reported: seconds per step (mean after the first, warm-up step),
images per step and per second, peak resident memory (getrusage ru_maxrss) and its growth over
the pre-training baseline, and parameter counts. `--scale paper` uses config/paper.yaml's
models (DINO-R50, yolov10x, yolov8l trunk; the text encoder stays the packaged MiniLM, no
download) at `--size` px, batch 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import REPO, child_rows, make_toy, rss_mb  # noqa: E402

METHODS = {"DINO": "dino", "Open-GroundingDINO": "grounding-dino", "YOLOv10": "yolov10",
           "CerberusDet": "cerberusdet"}
VARIANTS = ["yolov10n", "yolov10s", "yolov10m", "yolov10b", "yolov10l", "yolov10x",
            "yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x"]


def one(method: str, steps: int, threads: int, scale: str, size: int) -> dict:
    """Train `steps` steps of `method` in this process; return its figures."""
    sys.path.insert(0, str(REPO))
    from come.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        data_root, splits_root = make_toy(Path(tmp))
        overrides = [f"model.arch={METHODS[method]}", f"data.root={data_root}",
                     f"data.splits_root={splits_root}", "data.num_workers=0",
                     "run.train_datasets=[BUSI, DDTI]", "data.datasets=[BUSI, DDTI]", "train.epochs=1",
                     f"train.max_steps_per_epoch={steps}", f"train.threads={threads}",
                     "train.checkpoint_every=0", f"baselines.yolo.label_cache={tmp}/cache"]
        if scale == "paper":
            overrides += [f"data.image_size={size}", f"data.min_size={size}", "train.batch_size=2",
                          "model.backbone.pretrained=''", "baselines.grounding.text_encoder=''"]
        else:
            overrides += ["data.image_size=128", "data.min_size=96", "train.batch_size=4"]
        cfg = load_config(REPO / "config/paper.yaml" if scale == "paper" else None, overrides)
        base = rss_mb()
        run = Path(tmp) / "run"
        if METHODS[method] in ("yolov10", "cerberusdet"):
            from come.baselines.yolo_train import YoloTrainer
            trainer = YoloTrainer(cfg, run)
            trainer.fit()
            model, per_step = trainer.model, cfg.train.batch_size * trainer.tasks_per_step
        else:
            from come.engine.train import Trainer
            trainer = Trainer(cfg, run)
            trainer.fit()
            model, per_step = trainer.model, cfg.train.batch_size
        log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        params = sum(p.numel() for p in model.parameters())
    timed = log[1:] or log
    secs = sum(r["time"] for r in timed) / len(timed)
    return {"method": method, "steps": len(log), "images_per_step": per_step, "image_size": cfg.data.image_size,
            "s_per_step": round(secs, 3), "images_per_s": round(per_step / secs, 2),
            "first_step_s": round(log[0]["time"], 3), "params_M": round(params / 1e6, 2),
            "peak_rss_mb": round(rss_mb(), 1), "rss_growth_mb": round(rss_mb() - base, 1)}


def params() -> None:
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        from come.baselines.ultra_env import import_ultralytics
        import_ultralytics(tmp)
        from come.baselines.yolo_models import count_parameters
        from come.config import load_config
        from come.model.detector import build_detector

        for v in VARIANTS:
            print(f"{v}: {count_parameters(v) / 1e6:.1f} M")
        for name, path in (("DINO-R50 (config/paper.yaml)", "config/paper.yaml"), ("DINO (embedded)", None)):
            cfg = load_config(REPO / path if path else None, ["model.backbone.pretrained=''"])
            print(f"{name}: {sum(p.numel() for p in build_detector(cfg).parameters()) / 1e6:.1f} M")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale", choices=["embedded", "paper"], default="embedded")
    ap.add_argument("--size", type=int, default=256, help="image size at --scale paper")
    ap.add_argument("--only", choices=sorted(METHODS), default=None)
    ap.add_argument("--params", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.params:
        params()
        return 0
    if args.child:
        print(json.dumps(one(args.only, args.steps, args.threads, args.scale, args.size)))
        return 0
    cmds = [[sys.executable, __file__, "--child", "--only", method, "--steps", str(args.steps),
             "--threads", str(args.threads), "--scale", args.scale, "--size", str(args.size)]
            for method in ([args.only] if args.only else list(METHODS))]
    rows = child_rows(cmds)
    if isinstance(rows, int):
        return rows
    dino = next((r for r in rows if r["method"] == "DINO"), None)
    if dino:
        for r in rows:
            print(f"{r['method']}: {r['s_per_step'] / dino['s_per_step']:.2f}x DINO's time per step, "
                  f"{r['rss_growth_mb'] - dino['rss_growth_mb']:+.0f} MB memory growth vs DINO")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
