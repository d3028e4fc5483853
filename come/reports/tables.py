"""Paper tables from summary rows: ours (mean over seeds or bootstrap interval), paper, difference.

Uncertainty of "ours": with several seeds, the mean and sample standard deviation over seeds;
with one seed, the bootstrap 95% interval over test images (`come.reports.bootstrap`), when
the run's predictions and test split are on disk. The `Mean` column is recomputed per seed over
the row's dataset columns (two intra-organ runs fill one row), its interval from the averaged
bootstrap replicates. Table 6's `all` time column is the mean clustering time over the
strategy's runs (ours: ms per step; the paper does not state its unit, so no difference).
A column of a dataset the config does not have says "dataset absent" (with the reason), and a
`Mean` over fewer datasets names the ones present. `config/paper_notes.yaml` (beside the paper
csv) holds notes on ambiguous paper cells, printed under their table.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import yaml

from come.reports.bootstrap import interval
from come.reports.paper import TIME_METRIC, RowKey, TableLayout, is_not_reproduced
from come.reports.summary import CLUSTER_TIME, TABLE6

BootFn = Callable[[str], Optional[dict]]     # run id -> bootstrap cache (or None)


@dataclass
class Cell:
    """One (row, column) of a table: our value with uncertainty, the paper's, the difference."""
    ours: Optional[float]
    paper: Optional[float]
    status: str = "ok"                 # ok | partial | missing | not reproduced | dataset absent
    std: Optional[float] = None
    lo: Optional[float] = None
    hi: Optional[float] = None
    n_seeds: int = 0
    note: str = ""
    is_time: bool = False

    @property
    def diff(self) -> Optional[float]:
        if self.is_time or self.status == "partial" or self.ours is None or self.paper is None:
            return None
        return self.ours - self.paper


@dataclass
class Table:
    layout: TableLayout
    cells: dict[tuple[RowKey, str], Cell]
    notes: list[str] = field(default_factory=list)     # printed under the table


def load_paper_notes(paper_csv: str | Path) -> list[dict]:
    """Entries of `paper_notes.yaml` beside the paper csv (`table`, `note`, optional `relabel`);
    [] when there is none. Raises ValueError naming the file when it is malformed."""
    path = Path(paper_csv).with_name("paper_notes.yaml")
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    notes = data.get("notes") if isinstance(data, dict) else None
    if not isinstance(notes, list) or not all(isinstance(n, dict) and {"table", "note"} <= set(n)
                                              for n in notes):
        raise ValueError(f"{path}: expected `notes:` as a list of {{table, note}} entries")
    return notes


def _index(rows: list[dict]) -> dict[tuple, list[dict]]:
    idx: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        idx[(r["table"], r["paradigm"], r["method"], r["variant"], r["dataset"], r["metric"])].append(r)
    return idx


def _per_seed(rows: list[dict]) -> dict[int, tuple[float, list[str]]]:
    """seed -> (mean value over that seed's rows, run ids)."""
    by: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["seed"]].append(r)
    return {s: (float(np.mean([r["value"] for r in rs])), sorted({r["run"] for r in rs}))
            for s, rs in by.items()}


def _replicates(boot: BootFn, run_ids: list[str], datasets: list[str], metric: str) -> Optional[np.ndarray]:
    """Bootstrap replicates averaged over `datasets` (each found in one of `run_ids`)."""
    arrays = []
    for ds in datasets:
        found = None
        for rid in run_ids:
            cache = boot(rid) or {}
            reps = ((cache.get("datasets") or {}).get(ds) or {}).get("replicates")
            if reps and reps.get(metric):
                found = np.asarray(reps[metric], dtype=float)
                break
        if found is None:
            return None
        arrays.append(found)
    if not arrays or len({a.size for a in arrays}) != 1:
        return None
    return np.mean(arrays, axis=0)


def _finish(seeds: dict[int, float], paper: Optional[float], reps: Optional[np.ndarray],
            status: str = "ok", note: str = "", is_time: bool = False) -> Cell:
    vals = [seeds[s] for s in sorted(seeds)]
    cell = Cell(ours=float(np.mean(vals)), paper=paper, status=status, n_seeds=len(vals),
                note=note, is_time=is_time)
    if len(vals) > 1:
        cell.std = float(np.std(vals, ddof=1))
    elif reps is not None:
        cell.lo, cell.hi = interval(reps)
    return cell


def _dataset_cell(idx, table: str, key: RowKey, col: str, metric: str, paper, boot: BootFn) -> Cell:
    rows = idx.get((table, *key, col, metric), [])
    if not rows:
        return Cell(None, paper, "missing")
    seeds = _per_seed(rows)
    reps = None
    if len(seeds) == 1:
        (_, runs), = seeds.values()
        reps = _replicates(boot, runs, [col], metric)
    return _finish({s: v for s, (v, _) in seeds.items()}, paper, reps)


def _mean_cell(idx, lay: TableLayout, key: RowKey, metric: str, paper, boot: BootFn,
               absent: dict[str, str]) -> Cell:
    cols = [c for c in lay.dataset_columns if (key, c) in lay.paper] or lay.dataset_columns
    if absent and all(c in absent for c in cols):
        return Cell(None, paper, "dataset absent", note="no dataset of this row is present")
    per_seed: dict[int, dict[str, tuple[float, list[str]]]] = defaultdict(dict)
    for col in cols:
        for s, vr in _per_seed(idx.get((lay.table, *key, col, metric), [])).items():
            per_seed[s][col] = vr
    if not per_seed:
        return Cell(None, paper, "missing")
    if absent and any(c in absent for c in cols):
        present = [c for c in cols if c not in absent]
        if any(set(d) == set(present) for d in per_seed.values()):
            cols = present           # a group row on the present members: say which
    full = {s: d for s, d in per_seed.items() if len(d) == len(cols)}
    use, status, note = full, "ok", ""
    if not full:
        best = max(len(d) for d in per_seed.values())
        use = {s: d for s, d in per_seed.items() if len(d) == best}
        status, note = "partial", f"{best}/{len(cols)} datasets"
    if len(cols) < len([c for c in lay.dataset_columns if (key, c) in lay.paper] or lay.dataset_columns):
        status, note = "partial", f"mean of {', '.join(cols)} (present datasets)"
    seeds = {s: float(np.mean([v for v, _ in d.values()])) for s, d in use.items()}
    reps = None
    if len(seeds) == 1:
        (d,) = use.values()
        runs = sorted({r for _, rs in d.values() for r in rs})
        reps = _replicates(boot, runs, list(d), metric)
    return _finish(seeds, paper, reps, status, note)


def _table6_cell(idx, rows: list[dict], key: RowKey, col: str, metric: str, paper, boot: BootFn) -> Cell:
    if metric == TIME_METRIC:
        vals = [r for r in rows if r["table"] == TABLE6 and (r["paradigm"], r["method"], r["variant"]) == key
                and r["metric"] == CLUSTER_TIME]
        if not vals:
            return Cell(None, paper, "missing", is_time=True)
        v = [r["value"] for r in vals]
        cell = Cell(float(np.mean(v)), paper, n_seeds=len({r["seed"] for r in vals}), is_time=True,
                    note=f"ms/step, mean of {len(v)} runs")
        if len(v) > 1:
            cell.std = float(np.std(v, ddof=1))
        return cell
    found = idx.get((TABLE6, *key, col, "AP"), [])
    if not found:
        return Cell(None, paper, "missing")
    seeds = _per_seed(found)
    reps = None
    if len(seeds) == 1:
        (_, runs), = seeds.values()
        cache = boot(runs[0]) or {}
        dss = sorted(d for d, e in (cache.get("datasets") or {}).items() if e.get("replicates"))
        reps = _replicates(boot, runs, dss, "AP") if dss else None
    return _finish({s: v for s, (v, _) in seeds.items()}, paper, reps)


def build_table(lay: TableLayout, rows: list[dict], boot: BootFn = lambda _: None,
                absent: dict[str, str] | None = None, notes: list[str] | None = None,
                absent_cells: dict[tuple[str, ...], str] | None = None) -> Table:
    """Every (row, column) cell of one paper table. `absent`: dataset -> why this config lacks it;
    `absent_cells`: (table, paradigm, method, variant, dataset) -> why only a planned-out row
    would fill that cell (`come.workflow.coverage.absent_cells`)."""
    absent, absent_cells = absent or {}, absent_cells or {}
    idx = _index(rows)
    cells: dict[tuple[RowKey, str], Cell] = {}
    for key in lay.rows:
        for col in lay.columns:
            paper = lay.paper.get((key, col))
            metric = lay.metric_of[col]
            if is_not_reproduced(key[1]):
                cells[(key, col)] = Cell(None, paper, "not reproduced", is_time=metric == TIME_METRIC)
            elif lay.table == TABLE6:
                cells[(key, col)] = _table6_cell(idx, rows, key, col, metric, paper, boot)
            elif col == "Mean":
                cells[(key, col)] = _mean_cell(idx, lay, key, metric, paper, boot, absent)
            else:
                cell = _dataset_cell(idx, lay.table, key, col, metric, paper, boot)
                if cell.status == "missing" and col in absent:
                    cell = Cell(None, paper, "dataset absent", note=absent[col])
                elif cell.status == "missing" and (lay.table, *key, col) in absent_cells:
                    cell = Cell(None, paper, "dataset absent", note=absent_cells[(lay.table, *key, col)])
                cells[(key, col)] = cell
    table_notes = list(notes or [])
    if absent and any(c in absent for c in lay.dataset_columns):
        table_notes.append("dataset absent: " + "; ".join(f"{d} ({absent[d]})" for d in lay.dataset_columns
                                                           if d in absent)
                           + ". Group rows (intra-organ, inter-organ) were trained on the present members.")
    return Table(lay, cells, table_notes)


def build_tables(layouts: dict[str, TableLayout], rows: list[dict], boot: BootFn = lambda _: None,
                 absent: dict[str, str] | None = None, notes: list[dict] | None = None,
                 absent_cells: dict[tuple[str, ...], str] | None = None) -> list[Table]:
    """Every table; `notes`: entries of `load_paper_notes` (each printed under its table)."""
    by_table: dict[str, list[str]] = defaultdict(list)
    for n in notes or []:
        by_table[n["table"]].append(" ".join(str(n["note"]).split()))
    return [build_table(lay, rows, boot, absent, by_table.get(lay.table), absent_cells) for lay in layouts.values()]
