"""`come figures`: the paper figures (PNG + PDF) from run outputs, plus `figures.json` (manifest)."""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--out", default=None, help="output folder (default: <results>/figures)")
    parser.add_argument("--runs", default=None, help="runs folder (default: <results>/runs)")
    parser.add_argument("--datacards", default=None, help="data cards folder (default: <results>/datacards)")
    parser.add_argument("--no-bootstrap", action="store_true", help="no bootstrap error bars")


def run(args) -> int:
    from come.config import dump_config, load_config
    from come.reports.bootstrap import run_bootstrap
    from come.reports.figures import FigureInputs, draw_all
    from come.reports.paper import paper_layouts
    from come.reports.runs import discover_runs
    from come.reports.summary import build_summary
    from come.utils.io import write_json

    cfg = load_config(args.config, args.overrides)
    results = Path(cfg.results)
    out = Path(args.out or results / "figures")
    runs = discover_runs(args.runs or results / "runs")
    layouts = paper_layouts(cfg.paper_tables)
    by_id = {r.run: r for r in runs}
    cache: dict[str, dict | None] = {}

    def boot(run_id: str) -> dict | None:
        if args.no_bootstrap or cfg.eval.bootstrap < 1 or run_id not in by_id:
            return None
        if run_id not in cache:
            cache[run_id] = run_bootstrap(by_id[run_id], cfg.data.splits_root, cfg.eval.bootstrap,
                                          cfg.eval.max_dets)
        return cache[run_id]

    inputs = FigureInputs(runs=runs, rows=build_summary(runs, layouts), layouts=layouts,
                          data_root=Path(cfg.data.root), splits_root=Path(cfg.data.splits_root),
                          datacards=Path(args.datacards or results / "datacards"),
                          score_threshold=cfg.eval.score_threshold, boot=boot, seed=cfg.train.seed)
    manifest = draw_all(inputs, out)
    write_json(out / "figures.json", manifest)
    dump_config(cfg, out / "figures.config.yaml")
    for e in manifest:
        print(f"{e['name']}: {e['status']}" + (f" ({e['reason']})" if e["reason"] else
                                               f" -> {', '.join(e['files'])}"))
    return 0
