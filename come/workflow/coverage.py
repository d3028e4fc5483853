"""Which paper-table rows (come_paper_tables.csv) the expanded grid serves.

A csv row (table, paradigm, method, variant, dataset) is covered by a run that serves the cell
(table, paradigm, method, variant) and whose summary would hold a row for that dataset column:
the columns are those `come summarize` writes for the cell (`come.reports.summary.cell_rows`,
given a value for every metric of every dataset the run evaluates), so a run evaluated on BUV
for Table 4 but not trained on it does not cover Table 2's BUV column.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from come.config import Config, ConfigError
from come.reports.runs import RunInfo
from come.reports.summary import CLUSTER_TIME, cell_rows

from .grid import Grid, RunSpec, expand_runs, planned_out


@dataclass
class Coverage:
    covered: list[dict]                   # csv rows with the run ids that serve them ("runs")
    not_reproduced: list[dict]            # csv rows of methods listed as not reproduced
    missing: list[dict]                   # csv rows of implemented methods no run serves
    absent: list[dict] = field(default_factory=list)   # rows needing a dataset this config lacks ("reason")

    @property
    def ok(self) -> bool:
        return not self.missing


def read_paper_rows(csv_path: str | Path) -> list[dict]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ConfigError(f"{csv_path}: paper tables csv not found")
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"table", "paradigm", "method", "variant", "dataset", "metric", "value"}
    if not rows or not need <= set(rows[0]):
        raise ConfigError(f"{csv_path}: expected columns {sorted(need)}")
    return rows


def columns_of(spec: RunSpec, cell: tuple[str, ...]) -> set[str]:
    """The csv `dataset` labels a run fills for one served cell: the summary's own rule
    applied to a stand-in run that has every metric on every dataset it evaluates."""
    values = {m: 1.0 for m in ("AP", "AP50", "AP75", "Recall")}
    run = RunInfo(run=spec.id, path=Path(spec.id), method=spec.row.method,
                  paradigm=spec.row.paradigm, variant=spec.row.variant, seed=spec.seed,
                  cells=[cell], datasets={ds: dict(values) for ds in spec.eval_datasets},
                  timing={CLUSTER_TIME: 1.0}, train_datasets=list(spec.train_datasets))
    return {r["dataset"] for r in cell_rows(run, cell)}


def cell_index(specs: list[RunSpec]) -> dict[tuple[str, str, str, str, str], list[str]]:
    """(table, paradigm, method, variant, dataset) -> run ids that produce it."""
    index: dict[tuple[str, str, str, str, str], list[str]] = {}
    for spec in specs:
        for cell in spec.row.serves:
            for col in columns_of(spec, cell):
                index.setdefault((*cell[:4], col), []).append(spec.id)
    return index


def coverage(cfg: Config, grid: Grid, csv_path: str | Path | None = None) -> Coverage:
    """Split the paper csv rows into covered / not reproduced / missing for this config."""
    rows = read_paper_rows(csv_path or cfg.paper_tables)
    active = cell_index(expand_runs(cfg, grid))
    listed = cell_index([s for s in expand_runs(cfg, grid, include_not_reproduced=True)
                         if s.row.status == "not_reproduced"])
    absent = cfg.absent_datasets()
    out_rows = {tuple(c[:4]): reason for row, reason in planned_out(cfg, grid) for c in row.serves}
    out = Coverage([], [], [])
    for r in rows:
        key = (r["table"], r["paradigm"], r["method"], r["variant"], r["dataset"])
        if key in active:
            out.covered.append({**r, "runs": active[key]})
        elif r["method"] in grid.methods.not_reproduced and key in listed:
            out.not_reproduced.append({**r, "runs": listed[key]})
        elif r["dataset"] in absent:
            out.absent.append({**r, "reason": f"dataset absent ({r['dataset']}: {absent[r['dataset']]})"})
        elif key[:4] in out_rows:
            out.absent.append({**r, "reason": out_rows[key[:4]]})
        else:
            out.missing.append(r)
    return out


def absent_cells(cfg: Config, grid: Grid, csv_path: str | Path | None = None) -> dict[tuple[str, ...], str]:
    """(table, paradigm, method, variant, dataset) -> reason for every paper cell `coverage`
    calls dataset absent, including a present column that only a planned-out row would fill
    (Table 4's BUS-BRA column when BUSI, its training set, is absent): `come tables` prints
    "dataset absent" there, not "missing"."""
    return {(r["table"], r["paradigm"], r["method"], r["variant"], r["dataset"]): r["reason"]
            for r in coverage(cfg, grid, csv_path).absent}
