"""The "Cells below AP 0.10" section under the claims table (issue 13: a single-dataset cell
below 0.10 needs the report to say why)."""
from __future__ import annotations

from pathlib import Path

from come.reports.lowcells import low_cells_markdown
from come.reports.runs import RunInfo


def _run(name: str, paradigm: str, aps: dict[str, float], step: int, epoch: int = 2) -> RunInfo:
    return RunInfo(run=name, path=Path(name), method="DINO", paradigm=paradigm, variant="", seed=0, cells=[],
                   datasets={ds: {"AP": ap} for ds, ap in aps.items()}, config={"train": {"batch_size": 4}},
                   checkpoint={"epoch": epoch, "step": step, "finished": True})


def test_counts_low_cells_per_paradigm_with_their_runs_budget():
    """Mutations caught: the threshold compared with <= (0.10 counted low), a paradigm's cells
    counted from every run, the budgets of low and other runs swapped."""
    runs = [_run("s-a", "single", {"BUSI": 0.02}, 16),
            _run("s-b", "single", {"BUV": 0.10}, 16),
            _run("s-c", "single", {"DDTI": 0.05}, 20),
            _run("inter", "inter-organ", {"BUSI": 0.30, "DDTI": 0.08}, 128)]
    text = "\n".join(low_cells_markdown(runs))
    assert "### Cells below AP 0.10" in text
    assert "3 of 5 cells (run x test dataset) are below 0.10" in text
    assert "single 2 of 3" in text and "inter-organ 1 of 2" in text and "intra-organ" not in text
    assert "The 3 runs holding them trained median 20 optimiser steps (16-128), 2 epochs, batch 4" in text
    assert "the 1 runs with every cell at or above 0.10 trained median 16 optimiser steps (16-16)" in text


def test_no_section_when_every_cell_reaches_the_threshold():
    assert low_cells_markdown([_run("s", "single", {"BUSI": 0.5}, 100)]) == []
    assert low_cells_markdown([]) == []
