"""routing.png: the source x expert top-1 share map of one run, drawn with PIL.

A training job evaluates in its own process and writes this figure; drawing it with PIL keeps
matplotlib and seaborn (1.1-1.4 s of import per job, benchmarks/bench_demo_time.py) out of
that process, as `come.engine.qualitative` does for qualitative.png. The report's
`fig_routing_heatmap` (come.reports.figures.routing) draws the same shares with matplotlib
for the headline runs.

    draw_share_heatmap(share [S, E] in [0, 1], row_labels (S), col_labels (E), title, path)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CELL_W, CELL_H = 44, 26      # pixels per cell
LEFT, TOP, BAR = 80, 34, 14  # row-label margin, title strip, colour bar height
# viridis at 0, 0.25, 0.5, 0.75, 1 (matplotlib's published colour values), interpolated linearly
ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)


def colour(value: float) -> tuple[int, int, int]:
    """Share in [0, 1] (clipped) -> RGB on the viridis ramp."""
    pos = float(np.clip(value, 0.0, 1.0)) * (len(ANCHORS) - 1)
    lo = min(int(pos), len(ANCHORS) - 2)
    rgb = ANCHORS[lo] + (pos - lo) * (ANCHORS[lo + 1] - ANCHORS[lo])
    return tuple(int(round(c)) for c in rgb)


def draw_share_heatmap(share: np.ndarray, row_labels: list[str], col_labels: list[str], title: str,
                       path: str | Path) -> Path:
    """Save the share matrix as a PNG: one cell per (row, column) with its value printed, rows
    labelled on the left, columns below, a 0-1 colour bar at the bottom."""
    share = np.asarray(share, dtype=float)
    if share.ndim != 2 or share.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"heatmap: share shape {share.shape} does not match {len(row_labels)} rows "
                         f"x {len(col_labels)} columns")
    rows, cols = share.shape
    width = max(LEFT + cols * CELL_W + 10, 7 * len(title) + 10)
    height = TOP + rows * CELL_H + 18 + BAR + 22
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((6, 6), title, fill="black")
    draw.text((6, 19), "rows: source, columns: expert (top-1), each row sums to 1", fill="dimgray")
    for r in range(rows):
        y = TOP + r * CELL_H
        draw.text((6, y + 7), row_labels[r][:12], fill="black")
        for c in range(cols):
            x = LEFT + c * CELL_W
            rgb = colour(share[r, c])
            draw.rectangle([x, y, x + CELL_W - 1, y + CELL_H - 1], fill=rgb)
            light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140
            draw.text((x + 8, y + 7), f"{share[r, c]:.2f}", fill="black" if light else "white")
    y = TOP + rows * CELL_H + 3
    for c in range(cols):
        draw.text((LEFT + c * CELL_W + CELL_W // 2 - 3 * len(col_labels[c]), y), col_labels[c], fill="black")
    y += 15
    span = cols * CELL_W
    for i in range(span):
        draw.line([LEFT + i, y, LEFT + i, y + BAR], fill=colour(i / max(span - 1, 1)))
    draw.text((LEFT - 10, y + BAR + 3), "0", fill="black")
    draw.text((LEFT + span - 6, y + BAR + 3), "1", fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
