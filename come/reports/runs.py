"""Reading one run directory (`results/runs/<id>/`) defensively.

A run is usable when `metrics.json` exists and parses; everything else (config.yaml, routing.csv,
cluster_features.npz, predictions) is optional and read on demand. Bad files raise ValueError
naming the file and what is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from come.config.loader import read_yaml
from come.utils.io import read_json

CELL_SEP = "|"


@dataclass
class RunInfo:
    """What the reports need from one run."""
    run: str
    path: Path
    method: str
    paradigm: str
    variant: str
    seed: int
    cells: list[tuple[str, ...]]
    datasets: dict[str, dict[str, Optional[float]]]
    timing: dict[str, Any] = field(default_factory=dict)
    train_datasets: list[str] = field(default_factory=list)
    class_mode: str = "lesion"
    config: dict = field(default_factory=dict)
    checkpoint: dict = field(default_factory=dict)     # metrics.json: epoch, step, finished

    def clustering_ms(self) -> Optional[float]:
        """Clustering time per step (ms): metrics.json timing, else routing_summary.json's
        `clustering_ms_per_forward` (the MoE recorder's figure at evaluation)."""
        t = self.timing.get("clustering_ms_per_step")
        if isinstance(t, (int, float)):
            return float(t)
        path = self.path / "routing_summary.json"
        if path.is_file():
            v = read_json(path).get("clustering_ms_per_forward")
            if isinstance(v, (int, float)) and v > 0:
                return float(v)
        return None

    def metric(self, dataset: str, metric: str) -> Optional[float]:
        """One finite metric value or None."""
        v = (self.datasets.get(dataset) or {}).get(metric)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)


def parse_cell(cell: Any, where: str) -> tuple[str, ...]:
    """`"table|paradigm|method|variant[|dataset]"` or a list -> tuple of 4 or 5 strings."""
    parts = cell.split(CELL_SEP) if isinstance(cell, str) else list(cell) if isinstance(cell, (list, tuple)) else None
    if parts is None or not 4 <= len(parts) <= 5 or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"{where}: served cell {cell!r} is not 'table|paradigm|method|variant[|dataset]'")
    return tuple(parts)


def load_run(run_dir: str | Path) -> RunInfo:
    """Read `metrics.json` (+ `config.yaml` when present) of one run directory."""
    run_dir = Path(run_dir)
    mpath = run_dir / "metrics.json"
    metrics = read_json(mpath)
    if not isinstance(metrics, dict):
        raise ValueError(f"{mpath}: top level must be an object")
    if not isinstance(metrics.get("datasets"), dict):
        raise ValueError(f"{mpath}: 'datasets' must be an object {{DS: {{AP, AP50, AP75, Recall}}}}")
    cpath = run_dir / "config.yaml"
    config = read_yaml(cpath) if cpath.is_file() else {}   # errors name the file
    run_cfg = config.get("run") or {}
    raw_cells = metrics.get("tables")
    where = str(mpath)
    if raw_cells is None:
        raw_cells, where = run_cfg.get("tables") or [], str(run_dir / "config.yaml")
    if not isinstance(raw_cells, list):
        raise ValueError(f"{where}: 'tables' must be a list of served cells")
    cells = [parse_cell(c, where) for c in raw_cells]
    seed = metrics.get("seed", (config.get("train") or {}).get("seed", 0))
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise ValueError(f"{mpath}: seed {seed!r} is not an integer") from None
    return RunInfo(
        run=str(metrics.get("run") or run_cfg.get("id") or run_dir.name), path=run_dir,
        method=str(metrics.get("method") or run_cfg.get("method", "")),
        paradigm=str(metrics.get("paradigm") or run_cfg.get("paradigm", "")),
        variant=str(metrics.get("variant") if metrics.get("variant") is not None else run_cfg.get("variant", "")),
        seed=seed, cells=cells, datasets=metrics["datasets"],
        timing=metrics.get("timing") or {},
        train_datasets=list(run_cfg.get("train_datasets") or []),
        class_mode=str((config.get("data") or {}).get("class_mode", "lesion")), config=config,
        checkpoint=dict(metrics.get("checkpoint") or {}))


def discover_runs(runs_root: str | Path) -> list[RunInfo]:
    """Every run under `runs_root` that has a metrics.json, sorted by run id."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    return sorted((load_run(p.parent) for p in root.glob("*/metrics.json")), key=lambda r: r.run)


def clustering_label(run: RunInfo, cell: tuple[str, ...]) -> str:
    """Table 6 column of a run: the cell's fifth item, else from paradigm and training organ."""
    if len(cell) == 5 and cell[4]:
        return cell[4]
    if run.paradigm == "inter-organ":
        return "inter-organ"
    from come.config.schema import ORGAN_OF
    organs = {ORGAN_OF.get(d) for d in (run.train_datasets or list(run.datasets))}
    if organs == {"breast"}:
        return "intra-breast"
    if organs == {"thyroid"}:
        return "intra-thyroid"
    return "inter-organ"
