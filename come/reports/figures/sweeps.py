"""AP against the number of experts and against Top-K (Table 3, Appendix Table 2): ours and paper.

Points are the `Mean` cells of `come.reports.tables`, so the lines match the tables.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from come.reports.figures.ablation import error_of
from come.reports.figures.common import FigureInputs, FigureSkipped, save
from come.reports.tables import build_table

PANELS = [("table3_experts_topk", "experts", "number of experts (inter-organ)"),
          ("table3_experts_topk", "top_k", "Top-K (inter-organ)"),
          ("appendix_table2_experts_thyroid", "experts", "number of experts (intra-organ thyroid)")]


def _series(inputs: FigureInputs, table: str, knob: str):
    lay = inputs.layouts.get(table)
    if lay is None or "Mean" not in lay.columns:
        return None
    t = build_table(lay, inputs.rows, inputs.boot)
    pts = []
    for key in lay.rows:
        m = re.fullmatch(rf"{knob}=(\d+)", key[2])
        if m:
            pts.append((int(m.group(1)), t.cells[(key, "Mean")]))
    return sorted(pts, key=lambda p: p[0]) or None


def draw(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    series = [(_series(inputs, t, k), label) for t, k, label in PANELS]
    if all(s is None or all(c.ours is None for _, c in s) for s, _ in series):
        raise FigureSkipped("no expert-count / Top-K run has produced metrics yet")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6), squeeze=False)
    for ax, (pts, label) in zip(axes[0], series):
        ax.set_xlabel(label)
        ax.set_ylabel("mean AP")
        ax.set_title(f"mean AP vs {label}", fontsize=10)
        if not pts:
            ax.text(0.5, 0.5, "not in the paper csv", ha="center", transform=ax.transAxes)
            continue
        xs = np.array([p[0] for p in pts])
        paper = np.array([c.paper if c.paper is not None else np.nan for _, c in pts])
        ax.plot(xs, paper, "s--", color="#ee6677", label="paper (reference)")
        have = [(x, c) for x, c in pts if c.ours is not None]
        if have:
            err = np.array([error_of(c) for _, c in have]).T
            notes = sorted({c.note for _, c in have if c.status == "partial"})
            ax.errorbar([x for x, _ in have], [c.ours for _, c in have], yerr=err, fmt="o-", color="#4477aa",
                        capsize=3, label="ours" + (f" (partial: {', '.join(notes)})" if notes else ""))
        else:
            ax.text(0.5, 0.1, "ours: missing", ha="center", transform=ax.transAxes, fontsize=8)
        ax.set_xticks(xs)
        ax.legend(fontsize=8)
    fig.suptitle("Parameter analysis: number of experts and Top-K", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_experts_topk")
