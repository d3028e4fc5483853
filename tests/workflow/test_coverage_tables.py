"""Grid coverage agrees with the tables: fake metrics.json for every expanded run -> summary ->
tables, and a grid row removed shows up as "missing" in both (unit tier, no training)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from come.config import load_config
from come.reports.paper import is_not_reproduced, paper_layouts
from come.reports.runs import discover_runs
from come.reports.summary import CLUSTER_TIME, build_summary
from come.reports.tables import build_tables
from come.workflow.coverage import coverage
from come.workflow.grid import RunSpec, expand_runs, load_grid

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)          # grid.file and paper_tables are repository-relative


def write_fake_run(root: Path, spec: RunSpec, k: int) -> None:
    """metrics.json + config.yaml as `come evaluate` / `come train` write them, every metric
    set (distinct values) on every dataset the run evaluates."""
    run_dir = root / spec.id
    run_dir.mkdir(parents=True)
    per_ds = {ds: {"AP": 0.1 + 0.01 * k + 0.001 * i, "AP50": 0.5, "AP75": 0.2, "Recall": 0.6}
              for i, ds in enumerate(spec.eval_datasets)}
    metrics = {"run": spec.id, "method": spec.row.method, "paradigm": spec.row.paradigm,
               "variant": spec.row.variant, "seed": spec.seed, "datasets": per_ds,
               "tables": spec.cells, "timing": {CLUSTER_TIME: 2.0 + k}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    cfg = {"run": {"id": spec.id, "method": spec.row.method, "paradigm": spec.row.paradigm,
                   "variant": spec.row.variant, "train_datasets": spec.train_datasets,
                   "test_datasets": spec.eval_datasets, "tables": spec.cells},
           "train": {"seed": spec.seed}, "data": {"class_mode": "lesion"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


def missing_table_cells(layouts, runs, statuses=("missing",)) -> set[tuple[str, str, str, str, str]]:
    """(table, paradigm, method, variant, column) of every paper value of an implemented
    method that the tables built from these runs show with one of `statuses` (a `Mean` over
    fewer dataset columns than the row has is "partial": coverage counts it as served)."""
    out = set()
    for table in build_tables(layouts, build_summary(runs, layouts)):
        for (key, col), cell in table.cells.items():
            if (key, col) in table.layout.paper and not is_not_reproduced(key[1]):
                if cell.status in statuses:
                    out.add((table.layout.table, *key, col))
    return out


def coverage_missing(cfg, grid) -> set[tuple[str, str, str, str, str]]:
    return {(r["table"], r["paradigm"], r["method"], r["variant"], r["dataset"])
            for r in coverage(cfg, grid).missing}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = load_config(REPO / "config" / "config.yaml")
    grid = load_grid(REPO / cfg.grid.file, REPO / cfg.paper_tables)
    specs = expand_runs(cfg, grid)
    root = tmp_path_factory.mktemp("runs")
    for k, spec in enumerate(specs):
        write_fake_run(root, spec, k)
    return cfg, grid, specs, discover_runs(root), paper_layouts(REPO / cfg.paper_tables)


def test_every_implemented_table_cell_is_filled_by_the_expanded_grid(world):
    """Mutation caught: a grid row deleted (e.g. single-dino-BUV) or a served cell dropped from
    a row: the tables then show a "missing" cell."""
    cfg, grid, specs, runs, layouts = world
    assert len(runs) == len(specs)
    assert missing_table_cells(layouts, runs, ("missing", "partial")) == set()
    assert coverage_missing(cfg, grid) == set()


def test_coverage_sees_each_deleted_row_exactly_as_the_tables_do(world):
    """For every grid row in turn: drop it; `coverage` must report exactly the cells the tables
    then show as missing. Mutation caught: the old coverage rule (any evaluated dataset counts),
    under which deleting single-dino-BUV left 0 missing (single-dino-BUSI, evaluated on BUV for
    Table 4, was credited with Table 2's BUV column)."""
    cfg, grid, specs, runs, layouts = world
    for row in grid.rows:
        if row.status != "active":
            continue
        fewer = dataclasses.replace(grid, rows=[r for r in grid.rows if r is not row])
        kept = {s.id for s in specs if s.row is not row}
        expected = missing_table_cells(layouts, [r for r in runs if r.run in kept])
        assert coverage_missing(cfg, fewer) == expected, f"without row {row.id}"
    busi_only = dataclasses.replace(grid, rows=[r for r in grid.rows if r.id != "single-dino-BUV"])
    assert ("table2_main", "single", "DINO", "", "BUV") in coverage_missing(cfg, busi_only)
