"""`come evaluate`: COCO evaluation of a trained run on each of its evaluation datasets.

    come evaluate --run-dir DIR [--set k=v ...] [--checkpoint FILE]

Reads DIR/config.yaml (the resolved config written by `come train`) and
DIR/checkpoints/last.pt; writes predictions/<DS>.json, metrics.json, qualitative.png and, for
MoE models, routing statistics into DIR.
"""
from __future__ import annotations

import json
from pathlib import Path

from come.config import ConfigError, load_config


def configure(parser) -> None:
    parser.add_argument("--run-dir", required=True, metavar="DIR", help="a `come train` output directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of DIR/config.yaml, e.g. --set eval.batch_size=2")
    parser.add_argument("--checkpoint", default=None, metavar="FILE",
                        help="checkpoint to evaluate (default: DIR/checkpoints/last.pt)")


def run(args) -> int:
    from come.engine.evaluate import evaluate_run

    run_dir = Path(args.run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path}: resolved config not found (is {run_dir} a `come train` output?)")
    cfg = load_config(cfg_path, args.overrides)
    from come.baselines import evaluate_baseline, is_baseline

    ckpt = Path(args.checkpoint) if args.checkpoint else None
    metrics = (evaluate_baseline if is_baseline(cfg) else evaluate_run)(cfg, run_dir, checkpoint=ckpt)
    print(json.dumps({"run": metrics["run"], "mean": metrics["mean"]}, sort_keys=True))
    return 0
