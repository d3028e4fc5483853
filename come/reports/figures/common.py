"""Shared pieces of the figure modules: inputs (`FigureInputs`), saving PNG + PDF, palettes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from come.reports.paper import TableLayout  # noqa: E402
from come.reports.runs import RunInfo  # noqa: E402

METHOD_ORDER = ["DINO", "DINO-MoE", "DAMEX", "COME (Multi-Step)", "COME (Fine2Coarse)", "COME (Mixing)"]


class FigureSkipped(RuntimeError):
    """No run output feeds this figure yet; the message says what is missing."""


@dataclass
class FigureInputs:
    """Everything a figure may read; built once by `come figures`."""
    runs: list[RunInfo]
    rows: list[dict]                         # summary rows (come.reports.summary)
    layouts: dict[str, TableLayout]
    data_root: Path
    splits_root: Path
    datacards: Path
    score_threshold: float = 0.3
    boot: Callable[[str], dict | None] = field(default=lambda _: None)
    seed: int = 0


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """`<out>/<name>.png` (dpi 110) and `.pdf`; closes the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Creator": None, "Producer": None,
                                                          "CreationDate": None})
    plt.close(fig)
    return paths


def method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
