"""Tables: the paper's rows and columns in order, every paper number in its cell, ours + diff."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from come.config.schema import ALL_DATASETS
from come.reports.paper import paper_layouts
from come.reports.render import to_csv, to_latex, to_markdown
from come.reports.runs import discover_runs
from come.reports.summary import build_summary
from come.reports.tables import build_table, build_tables

from .fake_results import PAPER_CSV


@pytest.fixture(scope="module")
def layouts():
    return paper_layouts(PAPER_CSV)


@pytest.fixture(scope="module")
def rows(fake_results, layouts):
    return build_summary(discover_runs(fake_results["root"] / "runs"), layouts)


def _paper_rows():
    with PAPER_CSV.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_rows_and_columns_in_paper_order(layouts):
    ordered: dict[str, list] = {}
    for r in _paper_rows():
        key = (r["paradigm"], r["method"], r["variant"])
        ordered.setdefault(r["table"], [])
        if key not in ordered[r["table"]]:
            ordered[r["table"]].append(key)
    assert list(layouts) == ["table2_main", "table3_experts_topk", "table4_domain_generalization",
                             "table5_recall", "table6_clustering", "appendix_table1_ablation",
                             "appendix_table2_experts_thyroid"]
    for t, keys in ordered.items():
        assert layouts[t].rows == keys
    assert layouts["table2_main"].columns == ALL_DATASETS + ["Mean"]
    # stored under the datasets the values belong to (config/paper_notes.yaml), not the printed order
    assert layouts["appendix_table2_experts_thyroid"].columns == ["DDTI", "TUD", "TUS", "TNSCUI", "Mean"]
    assert layouts["table6_clustering"].columns == ["intra-breast", "intra-thyroid", "inter-organ", "all"]
    assert [k[1] for k in layouts["table2_main"].rows[:5]] == ["Open-GroundingDINO", "YOLOv10", "DINO",
                                                               "DINO-MoE", "DAMEX"]


def test_every_paper_number_in_its_cell(layouts, rows):
    """Parse the rendered CSV back: the `paper` line of each row holds the csv value per column."""
    tables = {t.layout.table: t for t in build_tables(layouts, rows)}
    parsed = {}
    for name, t in tables.items():
        lines = list(csv.reader(io.StringIO(to_csv(t))))
        header, body = lines[0], lines[1:]
        n_lab = header.index("value")
        for line in body:
            if line[n_lab] == "paper (reference)":
                parsed[(name, tuple(line[:n_lab]))] = dict(zip(t.layout.columns, line[n_lab + 1:]))
    checked = 0
    for r in _paper_rows():
        lay = layouts[r["table"]]
        labels = [i for i in range(3) if any(k[i] for k in lay.rows)]
        key = tuple((r["paradigm"], r["method"], r["variant"])[i] for i in labels)
        assert float(parsed[(r["table"], key)][r["dataset"]]) == pytest.approx(float(r["value"]))
        checked += 1
    assert checked == len(_paper_rows()) == 334


def test_ours_seed_mean_sd_and_diff(layouts, rows, fake_results):
    t = build_table(layouts["table2_main"], rows)
    key = ("inter-organ", "DINO", "")
    vals = [json.loads((fake_results["root"] / "runs" / f"dino-inter-seed~{s}" / "metrics.json").read_text())
            ["datasets"]["BUSI"]["AP"] for s in range(3)]
    c = t.cells[(key, "BUSI")]
    assert c.ours == pytest.approx(np.mean(vals)) and c.std == pytest.approx(np.std(vals, ddof=1))
    assert c.n_seeds == 3 and c.lo is None
    paper = float(next(r["value"] for r in _paper_rows() if r["table"] == "table2_main"
                       and r["paradigm"] == "inter-organ" and r["method"] == "DINO" and r["dataset"] == "BUSI"))
    assert c.paper == pytest.approx(paper)
    assert c.diff == pytest.approx(np.mean(vals) - paper)
    assert t.cells[(("single", "YOLOv10", ""), "BUSI")].status == "missing"          # no YOLOv10 run here
    assert t.cells[(("single", "DINO", ""), "BUV")].status == "missing"     # tested on BUV, trained on BUSI
    assert t.cells[(("single", "DINO", ""), "BUSI")].status == "ok"
    text = to_markdown(t)
    assert "not reproduced" not in text and "missing" in text and "paper (reference)" in text


def test_intra_organ_mean_combines_runs(layouts, rows):
    t = build_table(layouts["table2_main"], rows)
    key = ("intra-organ", "DAMEX", "")
    per = [t.cells[(key, d)].ours for d in ("BUSI", "BUV", "DDTI")]
    mean = t.cells[(key, "Mean")]
    assert mean.ours == pytest.approx(np.mean(per))
    assert mean.status == "partial" and mean.note == "3/8 datasets" and mean.diff is None


def test_full_mean_and_bootstrap_interval(layouts):
    lay = layouts["table5_recall"]
    rows = [{"table": "table5_recall", "paradigm": "intra-organ (breast)", "method": "DINO", "variant": "",
             "dataset": d, "metric": "Recall", "value": v, "seed": 0, "run": "r"}
            for d, v in zip(("BUSI", "BUV", "BUSBRA", "BUSC"), (0.4, 0.5, 0.6, 0.7))]
    reps = {d: {"replicates": {"Recall": list(np.linspace(v - 0.1, v + 0.1, 41))}}
            for d, v in zip(("BUSI", "BUV", "BUSBRA", "BUSC"), (0.4, 0.5, 0.6, 0.7))}
    t = build_table(lay, rows, lambda rid: {"datasets": reps} if rid == "r" else None)
    mean = t.cells[(("intra-organ (breast)", "DINO", ""), "Mean")]
    assert mean.status == "ok" and mean.ours == pytest.approx(0.55)
    assert mean.diff == pytest.approx(0.55 - 0.54)
    avg = np.linspace(0.45, 0.65, 41)                   # replicates averaged over the 4 datasets
    assert mean.lo == pytest.approx(np.percentile(avg, 2.5)) and mean.hi == pytest.approx(np.percentile(avg, 97.5))
    busi = t.cells[(("intra-organ (breast)", "DINO", ""), "BUSI")]
    assert busi.lo < busi.ours < busi.hi


def test_table6_time_and_latex(layouts, rows):
    t = build_table(layouts["table6_clustering"], rows)
    time = t.cells[(("", "COME (Fine2Coarse)", "Fine2Coarse"), "all")]
    assert time.ours == pytest.approx(np.mean([3.0, 3.0, 4.0])) and time.paper == 132 and time.diff is None
    assert "n/a (units differ)" in to_csv(t)
    tex = to_latex(t)
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\")]
    assert len(body) == 1 + 3 * 3
    assert all(ln.count("&") == 6 for ln in body)        # method, variant, value + 4 columns
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex
    md = to_markdown(t).splitlines()
    table_lines = [ln for ln in md if ln.startswith("|")]
    assert len({ln.count(" | ") for ln in table_lines if "---" not in ln}) == 1
