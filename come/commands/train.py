"""`come train`: train one detector run (resumes from <out>/checkpoints/last.pt when present).

    come train --config C [--run ID] [--set k=v ...] --out DIR [--no-eval]

With --run the config is the grid row's (`come.workflow.grid.resolve_run`); without it, the
config file plus the --set overrides (run.id, when left at "default", becomes the name of the
--out folder). A finished run is not trained again (no-op). Then, in the same process (no
second interpreter, torch import and model build per run), the run is evaluated exactly as
`come evaluate` does: predictions/<DS>.json, metrics.json, qualitative.png, routing statistics.
--no-eval skips that step. Before training, a checkpoint written under another config, train
split or expert (`train.signature` differs) moves to `checkpoints.stale/` and temp files of an
interrupted save are removed (`come.engine.rundir`), whoever runs the command.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from come.commands import add_config_args
from come.config import load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--run", default=None, metavar="ID",
                        help="grid run id (config built by come.workflow.grid.resolve_run)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory, e.g. results/runs/ID")
    parser.add_argument("--no-eval", action="store_true",
                        help="train only (default: evaluate the finished run in this process)")


def build_run_config(config: str, run_id: str | None, overrides: list[str]):
    """The resolved Config of this training run."""
    if run_id:
        from come.workflow.grid import resolve_run
        return resolve_run(config, run_id, overrides)
    return load_config(config, overrides)


def run(args) -> int:
    from come.engine.rundir import (is_rank_zero, legacy_config_signature, prepare_run_dir, run_signature,
                                    wait_for_signature)
    from come.engine.train import train

    cfg = build_run_config(args.config, args.run, args.overrides)
    if not args.run and cfg.run.id == "default":
        cfg.run.id = Path(args.out).resolve().name
    signature = run_signature(cfg)
    if is_rank_zero():
        prepare_run_dir(args.out, signature, epochs=cfg.train.epochs, adopt=(legacy_config_signature(cfg),))
    else:
        wait_for_signature(args.out, signature)
    from come.baselines import evaluate_baseline, is_baseline, train_baseline

    ckpt = train_baseline(cfg, args.out) if is_baseline(cfg) else train(cfg, args.out)
    print(f"come train: {ckpt}")
    if not args.no_eval:
        from come.engine.evaluate import evaluate_run
        evaluate = evaluate_baseline if is_baseline(cfg) else evaluate_run   # as `come evaluate` does
        if os.environ.get("RANK", "0") == "0":   # torchrun: rank 0 evaluates, the others are done
            metrics = evaluate(cfg, args.out)
            print(json.dumps({"run": metrics["run"], "mean": metrics["mean"]}, sort_keys=True))
    return 0
