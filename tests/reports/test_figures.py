"""Figures: skip cleanly without inputs; malformed inputs raise errors naming the file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from come.reports.figures import FIGURES, FigureInputs, draw_all
from come.reports.figures.clustering import load_features
from come.reports.figures.routing import read_routing
from come.reports.paper import paper_layouts
from come.reports.runs import load_run

from .fake_results import PAPER_CSV


def test_all_figures_skip_without_runs(tmp_path):
    """Mutation caught: `draw_all` returning an empty manifest (or leaving a figure out)."""
    inputs = FigureInputs(runs=[], rows=[], layouts=paper_layouts(PAPER_CSV), data_root=tmp_path,
                          splits_root=tmp_path, datacards=tmp_path / "none")
    manifest = draw_all(inputs, tmp_path / "figs")
    assert [e["name"] for e in manifest] == list(FIGURES)
    assert all(e["status"] == "skipped" and e["reason"] for e in manifest)
    assert not list((tmp_path / "figs").glob("*.png"))


def test_bad_routing_csv(tmp_path):
    p = tmp_path / "routing.csv"
    p.write_text("source,expert_0,expert_1\nBUSI,3,x\n")
    with pytest.raises(ValueError, match=r"routing.csv: line 2"):
        read_routing(p)
    p.write_text("source,expert_0,expert_1\nBUSI,3\n")
    with pytest.raises(ValueError, match="2 fields"):
        read_routing(p)
    p.write_text("source,expert_0,expert_1\nBUSI,3,1\nBUV,0,4\n")
    src, exp, counts = read_routing(p)
    assert src == ["BUSI", "BUV"] and exp == ["expert_0", "expert_1"] and counts.tolist() == [[3, 1], [0, 4]]


def test_cluster_features_shape_check(fake_results, tmp_path):
    shutil.copytree(fake_results["root"] / "runs" / "come-f2c-inter", tmp_path / "r")
    run = load_run(tmp_path / "r")
    assert load_features(run)["features"].shape == (600, 16)
    np.savez(tmp_path / "r" / "cluster_features.npz", features=np.zeros((5, 3)), source=np.zeros(4))
    with pytest.raises(ValueError, match="'source' has 4 entries"):
        load_features(run)


def test_recorder_layouts(fake_results):
    """The MoE recorder's long routing.csv and labels_* npz keys are read like the wide ones."""
    run = load_run(fake_results["root"] / "runs" / "come-multi-step-intra-breast")
    src, exp, counts = read_routing(run.path / "routing.csv")
    assert src == ["BUSI", "BUV"] and len(exp) == 8
    assert counts[0, 0] > 400 and counts[1, 1] > 400             # the "all" layer, not summed twice
    data = load_features(run)
    assert data["source"].shape == (600,) and data["multistep"].shape == (5, 600)
    run = load_run(fake_results["root"] / "runs" / "come-fine2coarse-intra-breast")
    data = load_features(run)
    assert {"source", "fine", "coarse"} <= set(data) and run.clustering_ms() == 3.0
