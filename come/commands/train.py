"""`come train`: train one detector run (resumes from <out>/checkpoints/last.pt when present).

    come train --config C [--run ID] [--set k=v ...] --out DIR

With --run the config is the grid row's (`come.workflow.grid.resolve_run`); without it, the
config file plus the --set overrides (run.id, when left at "default", becomes the name of the
--out folder). A finished run is left untouched (no-op).
"""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args
from come.config import load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--run", default=None, metavar="ID",
                        help="grid run id (config built by come.workflow.grid.resolve_run)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory, e.g. results/runs/ID")


def build_run_config(config: str, run_id: str | None, overrides: list[str]):
    """The resolved Config of this training run."""
    if run_id:
        from come.workflow.grid import resolve_run
        return resolve_run(config, run_id, overrides)
    return load_config(config, overrides)


def run(args) -> int:
    from come.engine.train import train

    cfg = build_run_config(args.config, args.run, args.overrides)
    if not args.run and cfg.run.id == "default":
        cfg.run.id = Path(args.out).resolve().name
    from come.baselines import is_baseline, train_baseline

    ckpt = train_baseline(cfg, args.out) if is_baseline(cfg) else train(cfg, args.out)
    print(f"come train: {ckpt}")
    return 0
