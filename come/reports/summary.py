"""`results/metrics/summary.csv`: every cell every run serves, in the paper csv's long format.

Columns: table, paradigm, method, variant, dataset, metric, value, seed, run (the first seven
as in `come_paper_tables.csv`; names come from the served cell, so they match the csv).

Expansion of one served cell `(table, paradigm, method, variant[, dataset])`:
- Table 5 reports `Recall`, every other table `AP`.
- Per-dataset tables: one row per dataset column of that paper row (all the run's datasets when
  the paper has no such row) that the run evaluated, plus `Mean` = the mean over those rows.
  Outside Table 4 (domain generalisation) only datasets the run trained on count, so a run
  trained on BUSI and also tested on BUV fills BUSI only in Table 2's single-dataset row.
  An intra-organ paper row is served by two runs (breast, thyroid); each writes the Mean of its
  own datasets, and `come tables` recomputes the row's Mean over all its dataset columns.
- Table 6: the column is the cell's fifth item (else derived from paradigm / training organ):
  `AP` = the run's mean AP over its datasets, and `clustering_ms_per_step` = the run's timing
  (metrics.json `timing.clustering_ms_per_step`, else routing_summary.json's per-forward time).
  The paper's `all` time column is the mean over the strategy's runs, computed in `tables`.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from come.reports.paper import TableLayout
from come.reports.runs import RunInfo, clustering_label, discover_runs
from come.utils.io import atomic_write_bytes, write_json

SUMMARY_COLUMNS = ("table", "paradigm", "method", "variant", "dataset", "metric", "value", "seed", "run")
CLUSTER_TIME = "clustering_ms_per_step"
TABLE6 = "table6_clustering"
TABLE4 = "table4_domain_generalization"


def metric_of_table(table: str) -> str:
    return "Recall" if table == "table5_recall" else "AP"


def _mean(values: list[float]) -> Optional[float]:
    return float(np.mean(values)) if values else None


def run_mean(run: RunInfo, metric: str = "AP") -> Optional[float]:
    """Mean of `metric` over the run's datasets where it is defined."""
    return _mean([v for ds in run.datasets if (v := run.metric(ds, metric)) is not None])


def cell_rows(run: RunInfo, cell: tuple[str, ...],
              layouts: dict[str, TableLayout] | None = None) -> list[dict]:
    """The summary rows of one served cell of one run."""
    table, paradigm, method, variant = cell[:4]
    base = {"table": table, "paradigm": paradigm, "method": method, "variant": variant,
            "seed": run.seed, "run": run.run}
    if table == TABLE6:
        label = clustering_label(run, cell)
        rows = []
        mean_ap = run_mean(run, "AP")
        if mean_ap is not None:
            rows.append({**base, "dataset": label, "metric": "AP", "value": mean_ap})
        t = run.clustering_ms()
        if t is not None:
            rows.append({**base, "dataset": label, "metric": CLUSTER_TIME, "value": t})
        return rows
    metric = metric_of_table(table)
    lay = (layouts or {}).get(table)
    key = (paradigm, method, variant)
    if lay is not None and key in lay.rows:
        wanted = [c for c in lay.dataset_columns if (key, c) in lay.paper]
    else:
        wanted = list(run.datasets)
    if table != TABLE4 and run.train_datasets:         # in-domain cells: trained-on datasets only
        wanted = [c for c in wanted if c in run.train_datasets]
    rows, values = [], []
    for ds in wanted:
        v = run.metric(ds, metric)
        if v is None:
            continue
        values.append(v)
        rows.append({**base, "dataset": ds, "metric": metric, "value": v})
    if values:
        rows.append({**base, "dataset": "Mean", "metric": metric, "value": float(np.mean(values))})
    return rows


def build_summary(runs: list[RunInfo], layouts: dict[str, TableLayout] | None = None) -> list[dict]:
    """All rows of all runs, sorted by table (paper order), row key, seed, run."""
    order = {t: i for i, t in enumerate(layouts or {})}
    rows = [r for run in runs for cell in run.cells for r in cell_rows(run, cell, layouts)]
    return sorted(rows, key=lambda r: (order.get(r["table"], len(order)), r["table"], r["paradigm"],
                                      r["method"], r["variant"], r["seed"], r["run"]))


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "value": f"{r['value']:.6g}"})
    return buf.getvalue()


def read_summary(path: str | Path) -> list[dict]:
    """Read summary.csv back (value float, seed int); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: summary csv not found (run `come summarize` first)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SUMMARY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        out = []
        for i, r in enumerate(reader, start=2):
            try:
                out.append({**r, "value": float(r["value"]), "seed": int(r["seed"])})
            except ValueError:
                raise ValueError(f"{path}: line {i}: bad value {r['value']!r} or seed {r['seed']!r}") from None
    return out


def summary_metrics(runs: list[RunInfo], rows: list[dict]) -> dict:
    """The DVC metrics file: per run mean AP / Recall and wall times; row counts."""
    per_run = {}
    for run in runs:
        per_run[run.run] = {"mean_AP": run_mean(run, "AP"), "mean_Recall": run_mean(run, "Recall"),
                            "train_seconds": run.timing.get("train_seconds"),
                            "eval_seconds": run.timing.get("eval_seconds"),
                            "cells": len(run.cells)}
    return {"n_runs": len(runs), "n_rows": len(rows), "runs": per_run}


def write_summary(runs_root: str | Path, out_csv: str | Path,
                  layouts: dict[str, TableLayout] | None = None) -> list[dict]:
    """Write summary.csv and summary.json (beside it); return the rows."""
    runs = discover_runs(runs_root)
    rows = build_summary(runs, layouts)
    out_csv = Path(out_csv)
    atomic_write_bytes(out_csv, rows_to_csv(rows).encode())
    write_json(out_csv.with_suffix(".json"), summary_metrics(runs, rows))
    return rows
