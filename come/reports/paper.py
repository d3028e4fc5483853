"""The paper's reference numbers (`config/paper_tables.csv`) and the layout of every table.

The csv was transcribed from the paper in reading order, so the first appearance of a row key
(paradigm, method, variant) gives the paper's row order and the first appearance of a `dataset`
within a table gives its column order. These are the only typed-in numbers of the reports.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ("table", "paradigm", "method", "variant", "dataset", "metric", "value")
NOT_REPRODUCED: tuple[str, ...] = ()   # methods shown as "not reproduced" (none: the baselines are trained)
# table id -> (title, caption-like note) as the paper numbers them
TITLES: dict[str, str] = {
    "table2_main": "Table 2: AP of every method under the three training paradigms",
    "table3_experts_topk": "Table 3: number of experts and Top-K (inter-organ)",
    "table4_domain_generalization": "Table 4: domain generalisation (train on BUSI, test on breast sets)",
    "table5_recall": "Table 5: Recall (intra-organ breast)",
    "table6_clustering": "Table 6: clustering strategies (mean AP per paradigm, clustering time)",
    "appendix_table1_ablation": "Appendix Table 1: ablations (inter-organ)",
    "appendix_table2_experts_thyroid": "Appendix Table 2: number of experts (intra-organ thyroid)",
}
TABLE_ORDER = list(TITLES)
TIME_METRIC = "time (unit not stated)"


class PaperTableError(ValueError):
    """The paper csv is malformed; the message names the file and the row."""


RowKey = tuple[str, str, str]          # (paradigm, method, variant)


@dataclass
class TableLayout:
    """Rows and columns of one paper table in the paper's order, plus its reference values."""
    table: str
    rows: list[RowKey] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    metric_of: dict[str, str] = field(default_factory=dict)          # column -> csv metric
    paper: dict[tuple[RowKey, str], float] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES.get(self.table, self.table)

    @property
    def dataset_columns(self) -> list[str]:
        """Columns that are datasets (not Mean, not Table 6's paradigm labels / time)."""
        from come.config.schema import ALL_DATASETS
        return [c for c in self.columns if c in ALL_DATASETS]


def read_paper_rows(path: str | Path) -> list[dict]:
    """The csv rows with `value` as float; raises PaperTableError naming the file and row."""
    path = Path(path)
    if not path.is_file():
        raise PaperTableError(f"{path}: paper tables csv not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PaperTableError(f"{path}: missing columns {missing} (expected {list(COLUMNS)})")
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                value = float(row["value"])
            except ValueError:
                raise PaperTableError(f"{path}: line {i}: value {row['value']!r} is not a number") from None
            rows.append({**{k: row[k] for k in COLUMNS}, "value": value})
    return rows


def paper_layouts(path: str | Path) -> dict[str, TableLayout]:
    """table id -> TableLayout, in the paper's table order (unknown tables follow)."""
    layouts: dict[str, TableLayout] = {}
    for row in read_paper_rows(path):
        lay = layouts.setdefault(row["table"], TableLayout(row["table"]))
        key = (row["paradigm"], row["method"], row["variant"])
        if key not in lay.rows:
            lay.rows.append(key)
        col = row["dataset"]
        if col not in lay.columns:
            lay.columns.append(col)
        lay.metric_of.setdefault(col, row["metric"])
        lay.paper[(key, col)] = row["value"]
    order = {t: i for i, t in enumerate(TABLE_ORDER)}
    return dict(sorted(layouts.items(), key=lambda kv: order.get(kv[0], len(order))))


def is_not_reproduced(method: str) -> bool:
    return method in NOT_REPRODUCED
