"""Fig. 4: mean AP per ablation variant (Appendix Table 1), ours as bars, the paper as markers.

Bars are the `Mean` cells of `come.reports.tables` (same numbers as the table); error bars are
the seed sd or the bootstrap 95% interval.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from come.reports.figures.common import FigureInputs, FigureSkipped, save
from come.reports.tables import Cell, build_table

TABLE = "appendix_table1_ablation"


def error_of(c: Cell) -> tuple[float, float]:
    """(below, above) error bar lengths of a cell."""
    if c.ours is None:
        return 0.0, 0.0
    if c.std is not None:
        return c.std, c.std
    if c.lo is not None:
        return max(c.ours - c.lo, 0.0), max(c.hi - c.ours, 0.0)
    return 0.0, 0.0


def draw(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    lay = inputs.layouts.get(TABLE)
    if lay is None or "Mean" not in lay.columns:
        raise FigureSkipped(f"{TABLE} is not in the paper csv")
    table = build_table(lay, inputs.rows, inputs.boot)
    cells = [table.cells[(k, "Mean")] for k in lay.rows]
    if all(c.ours is None for c in cells):
        raise FigureSkipped("no ablation run has produced metrics yet")
    names = [(k[2] or k[1]) + (f"\n(partial: {c.note})" if c.status == "partial" else "")
             for k, c in zip(lay.rows, cells)]
    x = np.arange(len(names))
    ours = [c.ours if c.ours is not None else 0.0 for c in cells]
    err = np.array([error_of(c) for c in cells]).T
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names)), 4.2))
    bars = ax.bar(x, ours, 0.6, color="#4477aa", label="ours (mean AP)", yerr=err, capsize=3)
    for b, c in zip(bars, cells):
        if c.ours is None:
            b.set_alpha(0.0)
            ax.text(b.get_x() + b.get_width() / 2, 0.01, c.status, ha="center", va="bottom",
                    rotation=90, fontsize=8)
    paper = [c.paper if c.paper is not None else np.nan for c in cells]
    ax.scatter(x + 0.38, paper, marker="D", color="#ee6677", zorder=3, label="paper (reference)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("mean AP over datasets")
    ax.set_xlabel("variant of COME (Fine2Coarse), inter-organ")
    ax.set_title("Fig. 4: ablations (Appendix Table 1)")
    ax.set_ylim(0, max([v for v in ours + paper if np.isfinite(v)] + [0.1]) * 1.2)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out_dir, "fig4_ablation")
