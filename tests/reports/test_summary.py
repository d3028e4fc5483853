"""summary.csv: one row per served cell and dataset, names as in the paper csv."""
from __future__ import annotations

import json

import numpy as np
import pytest

from come.reports.paper import paper_layouts
from come.reports.runs import discover_runs, load_run, parse_cell
from come.reports.summary import (SUMMARY_COLUMNS, build_summary, read_summary, write_summary)

from .fake_results import PAPER_CSV


@pytest.fixture(scope="module")
def rows(fake_results):
    return build_summary(discover_runs(fake_results["root"] / "runs"), paper_layouts(PAPER_CSV))


def _metrics(root, run):
    return json.loads((root / "runs" / run / "metrics.json").read_text())


def _pick(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def test_table2_cell_expands_to_datasets_and_mean(rows, fake_results):
    got = _pick(rows, table="table2_main", paradigm="inter-organ", method="COME (Fine2Coarse)")
    assert [r["dataset"] for r in got] == ["BUSI", "BUV", "DDTI", "Mean"]
    m = _metrics(fake_results["root"], "come-f2c-inter")      # cells read from config.yaml
    for r in got[:3]:
        assert r["metric"] == "AP" and r["run"] == "come-f2c-inter" and r["seed"] == 0
        assert r["value"] == pytest.approx(m["datasets"][r["dataset"]]["AP"])
    assert got[3]["value"] == pytest.approx(np.mean([m["datasets"][d]["AP"] for d in ("BUSI", "BUV", "DDTI")]))


def test_recall_table_and_seeds(rows, fake_results):
    rec = _pick(rows, table="table5_recall", method="DAMEX")
    assert {r["metric"] for r in rec} == {"Recall"}
    assert [r["dataset"] for r in rec] == ["BUSI", "BUV", "Mean"]
    m = _metrics(fake_results["root"], "damex-intra-breast")
    assert rec[0]["value"] == pytest.approx(m["datasets"]["BUSI"]["Recall"])
    seeds = _pick(rows, table="table2_main", paradigm="inter-organ", method="DINO", dataset="BUSI")
    assert sorted(r["seed"] for r in seeds) == [0, 1, 2]


def test_single_dataset_run_fills_only_its_dataset_outside_table4(rows):
    t2 = _pick(rows, table="table2_main", paradigm="single", method="DINO")
    assert [r["dataset"] for r in t2] == ["BUSI", "Mean"]
    t4 = _pick(rows, table="table4_domain_generalization", method="DINO")
    assert [r["dataset"] for r in t4] == ["BUSI", "BUV", "Mean"]


def test_table6_rows_use_run_mean_and_timing(rows, fake_results):
    got = _pick(rows, table="table6_clustering", method="COME (Fine2Coarse)")
    labels = {(r["dataset"], r["metric"]) for r in got}
    assert ("intra-breast", "AP") in labels and ("inter-organ", "clustering_ms_per_step") in labels
    m = _metrics(fake_results["root"], "come-fine2coarse-intra-breast")
    ap = _pick(got, dataset="intra-breast", metric="AP")[0]["value"]
    assert ap == pytest.approx(np.mean([v["AP"] for v in m["datasets"].values()]))
    assert _pick(got, dataset="intra-breast", metric="clustering_ms_per_step")[0]["value"] == 3.0


def test_names_match_paper_csv(rows):
    import csv
    with PAPER_CSV.open() as fh:
        keys = {(r["table"], r["paradigm"], r["method"], r["variant"]) for r in csv.DictReader(fh)}
    assert all((r["table"], r["paradigm"], r["method"], r["variant"]) in keys for r in rows)


def test_write_and_read_back(fake_results, tmp_path):
    out = tmp_path / "metrics" / "summary.csv"
    rows = write_summary(fake_results["root"] / "runs", out, paper_layouts(PAPER_CSV))
    assert out.read_text().splitlines()[0].split(",") == list(SUMMARY_COLUMNS)
    back = read_summary(out)
    assert len(back) == len(rows)
    assert all(a["value"] == pytest.approx(b["value"], rel=1e-5) for a, b in zip(rows, back))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["n_runs"] == 21 and meta["n_rows"] == len(rows)


def test_bad_inputs_name_the_file(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    (run / "metrics.json").write_text('{"run": "r1", "datasets": []}')
    with pytest.raises(ValueError, match=r"r1/metrics.json.*datasets"):
        load_run(run)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run(run)
    with pytest.raises(ValueError, match="served cell"):
        parse_cell("table2_main|DINO", "x.json")
    bad = tmp_path / "s.csv"
    bad.write_text("table,value\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_summary(bad)
