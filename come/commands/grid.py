"""`come grid list|validate|coverage|show`: the experiment grid of a config.

  list      one line per run (id, method, paradigm, variant, train -> eval datasets, status);
            --format csv|json and --out write it to a file (the workflow's results/metrics/grid.csv)
  validate  schema + names + every run's config builds; exit 2 with the file and key on error
  coverage  every paper csv row an implemented method produces is served by a run (exit 1 if not)
  show ID   the resolved config of one run (YAML)
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

import yaml

from come.commands import add_config_args
from come.config import load_config, to_dict
from come.workflow.coverage import coverage
from come.workflow.grid import CELL_SEP, expand_runs, load_grid, resolve_run

FIELDS = ["id", "method", "paradigm", "variant", "status", "seed", "train_datasets",
          "eval_datasets", "serves"]


def configure(parser) -> None:
    parser.add_argument("action", choices=["list", "validate", "coverage", "show"])
    parser.add_argument("run_id", nargs="?", help="run id (for `show`)")
    add_config_args(parser)
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--out", default=None, help="write the listing here instead of stdout")
    parser.add_argument("--all", action="store_true",
                        help="list: include rows of methods that are not reproduced")


def _records(cfg, grid, include_all: bool) -> list[dict]:
    out = []
    for s in expand_runs(cfg, grid, include_not_reproduced=include_all):
        out.append({"id": s.id, "method": s.row.method, "paradigm": s.row.paradigm,
                    "variant": s.row.variant, "status": s.row.status, "seed": s.seed,
                    "train_datasets": " ".join(s.train_datasets),
                    "eval_datasets": " ".join(s.eval_datasets),
                    "serves": ";".join(CELL_SEP.join(c) for c in s.row.serves)})
    return out


def _render(records: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buf.getvalue()
    lines = [f"{r['id']:<32} {r['method']:<20} {r['paradigm']:<12} {r['variant'] or '-':<32} "
             f"{r['train_datasets']} -> {r['eval_datasets']}"
             + ("" if r["status"] == "active" else f"  [{r['status']}]") for r in records]
    return "\n".join(lines + [f"{len(records)} runs"]) + "\n"


def run(args) -> int:
    cfg = load_config(args.config, args.overrides)
    grid = load_grid(cfg.grid.file, cfg.paper_tables)
    if args.action == "list":
        text = _render(_records(cfg, grid, args.all), args.format)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.action == "show":
        if not args.run_id:
            print("come grid show: give a run id", file=sys.stderr)
            return 2
        print(yaml.safe_dump(to_dict(resolve_run(args.config, args.run_id, args.overrides)),
                             sort_keys=False))
        return 0
    if args.action == "validate":
        specs = expand_runs(cfg, grid)
        for spec in specs:
            resolve_run(args.config, spec.id, args.overrides)
        print(f"{grid.path}: valid ({len(grid.rows)} rows, {len(specs)} runs for {args.config})")
        return 0
    cov = coverage(cfg, grid)
    present = cfg.present_datasets()
    print(f"datasets present: {' '.join(present)}")
    for ds, why in cfg.absent_datasets().items():
        print(f"  absent: {ds}: {why}")
    print(f"paper rows: {len(cov.covered)} served by a run, {len(cov.not_reproduced)} listed as "
          f"not reproduced, {len(cov.absent)} dataset absent, {len(cov.missing)} missing")
    for table, n in sorted(Counter(r["table"] for r in cov.absent).items()):
        need = sorted({d for r in cov.absent if r["table"] == table for d in cfg.absent_datasets()
                       if f"{d}:" in r["reason"]})
        print(f"  dataset absent: {table}: {n} rows need {', '.join(need)}")
    for r in cov.missing:
        print(f"  missing: {r['table']} | {r['paradigm']} | {r['method']} | {r['variant']} | "
              f"{r['dataset']}")
    return 0 if cov.ok else 1
