"""Bootstrap over test images: equals a direct pycocotools evaluation of the resampled set."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from come.engine.coco_eval import coco_metrics
from come.reports.bootstrap import _evaluator, _prepare, _stats_for, bootstrap_metrics, interval, run_bootstrap
from come.reports.runs import load_run

from .fake_results import make_predictions


def _renumbered(gt: dict, dets: list[dict], draw: list[int]) -> tuple[dict, list[dict]]:
    images, anns, out_dets = [], [], []
    for k, i in enumerate(draw, start=1):
        im = next(x for x in gt["images"] if x["id"] == i)
        images.append({**im, "id": k})
        for a in gt["annotations"]:
            if a["image_id"] == i:
                anns.append({**a, "id": len(anns) + 1, "image_id": k})
        out_dets += [{**d, "image_id": k} for d in dets if d["image_id"] == i]
    return {**gt, "images": images, "annotations": anns}, out_dets


def test_resample_equals_direct_evaluation(fake_results):
    gt = fake_results["splits"]["BUSI"]
    dets = make_predictions(gt, 0.06, seed=3)
    point = bootstrap_metrics(gt, dets, "lesion", resamples=5, seed=1)["point"]
    direct = coco_metrics(gt, dets, "lesion")
    assert point["AP"] == pytest.approx(direct["AP"]) and point["Recall"] == pytest.approx(direct["Recall"])
    g, d = _prepare(gt, dets, "lesion")
    ev = _evaluator(g, d, 100)
    ids = sorted(im["id"] for im in gt["images"])
    rng = np.random.default_rng(0)
    for _ in range(3):
        draw = sorted(rng.choice(ids, len(ids), replace=True).tolist())
        fast = _stats_for(ev, ids, draw)
        slow = coco_metrics(*_renumbered(gt, dets, draw), "lesion")
        assert fast["AP"] == pytest.approx(slow["AP"]) and fast["Recall"] == pytest.approx(slow["Recall"])


def test_interval_contains_point_and_is_seeded(fake_results):
    gt = fake_results["splits"]["DDTI"]
    dets = make_predictions(gt, 0.05, seed=4)
    a = bootstrap_metrics(gt, dets, resamples=60, seed=7)
    b = bootstrap_metrics(gt, dets, resamples=60, seed=7)
    c = bootstrap_metrics(gt, dets, resamples=60, seed=8)
    assert a["replicates"] == b["replicates"] and a["replicates"] != c["replicates"]
    for m in ("AP", "Recall"):
        lo, hi = interval(a["replicates"][m])
        assert lo <= a["point"][m] <= hi and lo < hi


def test_edge_cases(fake_results):
    gt = fake_results["splits"]["BUV"]
    assert bootstrap_metrics({**gt, "annotations": []}, [], resamples=3) is None
    zero = bootstrap_metrics(gt, [], resamples=3)
    assert zero["point"]["AP"] == 0.0 and zero["replicates"]["AP"] == [0.0] * 3


def test_run_cache(fake_results, tmp_path, monkeypatch):
    src = fake_results["root"] / "runs" / "topk-2"
    shutil.copytree(src, tmp_path / "topk-2", ignore=shutil.ignore_patterns("bootstrap.json"))
    run = load_run(tmp_path / "topk-2")
    splits = fake_results["root"] / "splits"
    first = run_bootstrap(run, splits, resamples=10)
    assert sorted(first["datasets"]) == ["BUSI", "BUV", "DDTI"]
    assert (tmp_path / "topk-2" / "bootstrap.json").is_file()
    import come.reports.bootstrap as bs
    monkeypatch.setattr(bs, "bootstrap_metrics", lambda *a, **k: pytest.fail("cache was not used"))
    assert run_bootstrap(run, splits, resamples=10)["datasets"] == json.loads(
        (tmp_path / "topk-2" / "bootstrap.json").read_text())["datasets"]
    calls = []
    monkeypatch.setattr(bs, "bootstrap_metrics", lambda *a, **k: calls.append(1) or None)
    pred = tmp_path / "topk-2" / "predictions" / "BUV.json"
    pred.write_text(json.dumps(json.loads(pred.read_text())[:-1]))     # predictions changed
    run_bootstrap(run, splits, resamples=10)
    assert len(calls) == 1


def test_splits_root_from_run_config(fake_results, tmp_path):
    import yaml
    shutil.copytree(fake_results["root"] / "runs" / "experts-4", tmp_path / "e4",
                    ignore=shutil.ignore_patterns("bootstrap.json"))
    cfg = yaml.safe_load((tmp_path / "e4" / "config.yaml").read_text())
    cfg["data"]["splits_root"] = str(fake_results["root"] / "splits")
    (tmp_path / "e4" / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = run_bootstrap(load_run(tmp_path / "e4"), tmp_path / "nowhere", resamples=5)
    assert sorted(out["datasets"]) == ["BUSI", "BUV", "DDTI"]
