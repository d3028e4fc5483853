"""Why some cells are low: every (run, test dataset) AP below a threshold, with the training
those runs had, printed under the claims table of results/README.md.

    lines = low_cells_markdown(runs, threshold=0.10)    # [] when no cell is below it

Issue 13 asks that no single-dataset cell sit below 0.10 unless the report says why. The
section states facts computed from the runs (how many cells per paradigm, the optimiser steps,
epochs and batch size of the runs holding them beside those of the other runs) and points to the
learning curve (docs/method.md#demo-budget); it does not guess a cause it cannot compute.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from come.reports.runs import RunInfo

PARADIGMS = ("single", "intra-organ", "inter-organ")         # the grid's paradigm names


def _cells(runs: list[RunInfo]) -> list[tuple[RunInfo, str, float]]:
    out = []
    for r in runs:
        for ds in sorted(r.datasets):
            ap = r.metric(ds, "AP")
            if ap is not None:
                out.append((r, ds, ap))
    return out


def _budget(runs: list[RunInfo]) -> Optional[str]:
    """`median S steps (min-max), E epochs, batch B` of the runs that recorded their checkpoint."""
    steps = [int(r.checkpoint["step"]) for r in runs if isinstance(r.checkpoint.get("step"), int)]
    if not steps:
        return None
    epochs = sorted({int(r.checkpoint["epoch"]) for r in runs if isinstance(r.checkpoint.get("epoch"), int)})
    batch = sorted({int(((r.config.get("train") or {}).get("batch_size")) or 0) for r in runs} - {0})
    text = f"median {int(np.median(steps))} optimiser steps ({min(steps)}-{max(steps)})"
    if epochs:
        text += f", {'/'.join(map(str, epochs))} epochs"
    if batch:
        text += f", batch {'/'.join(map(str, batch))}"
    return text


def low_cells_markdown(runs: list[RunInfo], threshold: float = 0.10) -> list[str]:
    """Markdown lines (a `###` section) listing how many cells fall below `threshold` and the
    training budget of their runs; [] when none does."""
    cells = _cells(runs)
    low = [c for c in cells if c[2] < threshold]
    if not low:
        return []
    counts = []
    for para in PARADIGMS + tuple(sorted({r.paradigm for r, _, _ in cells} - set(PARADIGMS))):
        n_all = sum(1 for r, _, _ in cells if r.paradigm == para)
        n_low = sum(1 for r, _, _ in low if r.paradigm == para)
        if n_all:
            counts.append(f"{para} {n_low} of {n_all}")
    low_ids = {id(r) for r, _, _ in low}
    low_runs = [r for r in runs if id(r) in low_ids]
    other = [r for r in runs if id(r) not in low_ids]
    lines = ["", f"### Cells below AP {threshold:.2f}", "",
             f"{len(low)} of {len(cells)} cells (run x test dataset) are below {threshold:.2f}: "
             + ", ".join(counts) + "."]
    b_low, b_other = _budget(low_runs), _budget(other)
    if b_low:
        lines += ["", f"The {len(low_runs)} runs holding them trained {b_low}"
                  + (f"; the {len(other)} runs with every cell at or above {threshold:.2f} trained {b_other}."
                     if b_other else ".")]
    lines += ["", "A cell this low says the run had not learned that dataset at its budget; read it beside "
              "the learning curve (docs/method.md#demo-budget: more epochs resume the same runs) before "
              "reading it as a verdict on a method. Claims resting on such cells come out inconclusive "
              "when their intervals include 0, or when every run of the claim is below the AP floor "
              "(eval.claim_ap_floor)."]
    return lines
