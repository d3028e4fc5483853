"""`come summarize`: every run's served cells -> `summary.csv` (long format) + `summary.json`."""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--runs", default=None, help="runs folder (default: <results>/runs)")
    parser.add_argument("--out", default=None, help="summary csv (default: <results>/metrics/summary.csv)")
    parser.add_argument("--paper", default=None, help="paper tables csv (default: config paper_tables)")


def run(args) -> int:
    from come.config import dump_config, load_config
    from come.reports.paper import paper_layouts
    from come.reports.summary import write_summary

    cfg = load_config(args.config, args.overrides)
    runs = Path(args.runs or Path(cfg.results) / "runs")
    out = Path(args.out or Path(cfg.results) / "metrics" / "summary.csv")
    layouts = paper_layouts(args.paper or cfg.paper_tables)
    rows = write_summary(runs, out, layouts)
    dump_config(cfg, out.with_suffix(".config.yaml"))
    n_runs = len({r["run"] for r in rows})
    print(f"wrote {len(rows)} rows from {n_runs} runs to {out} (+ {out.with_suffix('.json')})")
    return 0
