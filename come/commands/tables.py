"""`come tables`: the paper tables (CSV, Markdown, LaTeX) with ours, paper and difference."""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--summary", default=None, help="summary csv (default: <results>/metrics/summary.csv)")
    parser.add_argument("--paper", default=None, help="paper tables csv (default: config paper_tables)")
    parser.add_argument("--out", default=None, help="output folder (default: <results>/tables)")
    parser.add_argument("--runs", default=None, help="runs folder for bootstrap intervals (default: the runs/ folder beside the summary's "
                             "metrics/ folder, else <results>/runs)")
    parser.add_argument("--no-bootstrap", action="store_true", help="skip bootstrap intervals")


def run(args) -> int:
    from come.config import dump_config, load_config
    from come.reports.bootstrap import run_bootstrap
    from come.reports.interpretation import interpretation_notes
    from come.reports.paper import paper_layouts
    from come.reports.render import write_table
    from come.reports.runs import load_run
    from come.reports.summary import read_summary
    from come.reports.tables import build_tables, load_paper_notes

    cfg = load_config(args.config, args.overrides)
    summary = Path(args.summary or Path(cfg.results) / "metrics" / "summary.csv")
    out = Path(args.out or Path(cfg.results) / "tables")
    beside = summary.resolve().parent.parent / "runs"       # <results>/metrics/summary.csv -> <results>/runs
    runs_root = Path(args.runs) if args.runs else beside if beside.is_dir() else Path(cfg.results) / "runs"
    rows = read_summary(summary)
    layouts = paper_layouts(args.paper or cfg.paper_tables)
    cache: dict[str, dict | None] = {}

    def boot(run_id: str) -> dict | None:
        if args.no_bootstrap or cfg.eval.bootstrap < 1:
            return None
        if run_id not in cache:
            run_dir = runs_root / run_id
            cache[run_id] = (run_bootstrap(load_run(run_dir), cfg.data.splits_root, cfg.eval.bootstrap,
                                           cfg.eval.max_dets)
                             if (run_dir / "metrics.json").is_file() else None)
        return cache[run_id]

    paper_csv = args.paper or cfg.paper_tables
    from come.workflow.coverage import absent_cells
    from come.workflow.grid import load_grid
    tables = build_tables(layouts, rows, boot, absent=cfg.absent_datasets(), notes=load_paper_notes(paper_csv),
                          absent_cells=absent_cells(cfg, load_grid(cfg.grid.file), paper_csv))
    described: dict[str, str | None] = {}
    from come.baselines import table_notes
    baseline_notes = table_notes(cfg)
    for t in tables:
        t.notes = t.notes + [f"Interpretation used by the COME rows (each run's config.yaml): {n}" for n in
                             interpretation_notes([r for r in rows if r["table"] == t.layout.table],
                                                  runs_root, described)]
        shown = {k[1] for k in t.layout.rows}
        t.notes += [f"{m} (ours): {n}" for m, n in baseline_notes.items() if m in shown]
        write_table(t, out)
        n = sum(1 for c in t.cells.values() if c.ours is not None)
        print(f"{t.layout.table}: {n}/{len(t.cells)} cells reproduced -> {out}/{t.layout.table}.{{csv,md,tex}}")
    dump_config(cfg, out / "tables.config.yaml")
    return 0
