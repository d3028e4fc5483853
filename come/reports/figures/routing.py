"""Source x expert routing heatmaps from each run's `routing.csv` (rows normalised to shares).

`routing.csv` in either layout: wide (first column the source name, then one count column per
expert, expert_0..) or the MoE recorder's long format `layer,source,expert,top1,topk` (the
`all` layer's top-1 counts are used; the layers are summed when `all` is absent).
Up to MAX_PANELS runs are drawn, Table 2 runs of the COME family first.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from come.reports.figures.common import FigureInputs, FigureSkipped, method_rank, save
from come.reports.runs import RunInfo

MAX_PANELS = 6


def _read_long(path: Path, rows: list[dict]) -> tuple[list[str], list[str], np.ndarray]:
    layers = {r["layer"] for r in rows}
    use = [r for r in rows if r["layer"] == "all"] if "all" in layers else rows
    sources = list(dict.fromkeys(r["source"] for r in use))
    try:
        experts = sorted({int(r["expert"]) for r in use})
        counts = np.zeros((len(sources), max(experts) + 1))
        for r in use:
            counts[sources.index(r["source"]), int(r["expert"])] += float(r["top1"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad expert or top1 value ({exc})") from None
    return sources, [f"expert_{e}" for e in range(counts.shape[1])], counts


def read_routing(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(sources, experts, counts [S, E]); ValueError naming the file when malformed."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if rows and {"layer", "source", "expert", "top1"} <= set(rows[0]):
        return _read_long(path, [dict(zip(rows[0], r)) for r in rows[1:] if r])
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ValueError(f"{path}: expected a header (source, expert_0, ...) and at least one row")
    experts = rows[0][1:]
    sources, counts = [], []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(rows[0]):
            raise ValueError(f"{path}: line {i} has {len(r)} fields, header has {len(rows[0])}")
        try:
            counts.append([float(v) for v in r[1:]])
        except ValueError:
            raise ValueError(f"{path}: line {i}: non-numeric count in {r[1:]}") from None
        sources.append(r[0])
    return sources, experts, np.asarray(counts)


def _priority(run: RunInfo) -> tuple:
    in_t2 = any(c[0] == "table2_main" for c in run.cells)
    return (not in_t2, not run.method.startswith("COME"), run.paradigm != "inter-organ",
            method_rank(run.method), run.seed, run.run)


def draw(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    import seaborn as sns

    runs = sorted((r for r in inputs.runs if (r.path / "routing.csv").is_file()), key=_priority)
    if not runs:
        raise FigureSkipped("no run wrote routing.csv")
    runs = runs[:MAX_PANELS]
    ncol = min(3, len(runs))
    nrow = (len(runs) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, 3.6 * nrow), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        sources, experts, counts = read_routing(run.path / "routing.csv")
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
        sns.heatmap(share, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=share.shape[1] <= 10,
                    fmt=".2f", annot_kws={"fontsize": 6},
                    xticklabels=[e.replace("expert_", "") for e in experts], yticklabels=sources,
                    cbar_kws={"label": "share of the source's tokens"})
        ax.set_xlabel("expert")
        ax.set_ylabel("source")
        ax.set_title(f"{run.method} ({run.paradigm}{', ' + run.variant if run.variant else ''})\n{run.run}",
                     fontsize=8)
    fig.suptitle("Routing: share of each source's tokens sent to each expert", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "fig_routing_heatmap")
