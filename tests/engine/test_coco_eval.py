"""COCO metrics agree with known values and with pycocotools run by hand."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from come.data.coco import CocoBuilder
from come.engine.coco_eval import coco_metrics, mean_metrics, to_coco_results


def gt_two_images() -> dict:
    b = CocoBuilder()
    a = b.add_image("X/a.png", 64, 64, "BUSI", "breast", "benign")
    b.add_box(a, [10, 10, 20, 20], 1)
    c = b.add_image("X/b.png", 64, 64, "BUSI", "breast", "malignant")
    b.add_box(c, [30, 20, 16, 24], 2)
    return b.to_dict()


def by_hand(gt: dict, dets: list[dict], tmp_path) -> list[float]:
    """pycocotools the usual way (files, loadRes from a file), class-agnostic via useCats=0."""
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(cg, cg.loadRes(str(tmp_path / "dt.json")), "bbox")
        ev.params.useCats = 0
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return [ev.stats[0], ev.stats[1], ev.stats[2], ev.stats[8]]


def test_perfect_predictions_give_ap_one():
    gt = gt_two_images()
    dets = [{"image_id": a["image_id"], "category_id": 3, "bbox": a["bbox"], "score": 0.9}
            for a in gt["annotations"]]
    m = coco_metrics(gt, dets, "lesion")
    assert m == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "Recall": 1.0})


def test_shifted_box_gives_the_known_ap_and_matches_pycocotools(tmp_path):
    gt = gt_two_images()
    gt["annotations"] = gt["annotations"][:1]
    gt["images"] = gt["images"][:1]
    # shifted by 4 px: IoU = 320 / 480 = 0.667 -> matched at IoU 0.50 ... 0.65 (4 of 10 thresholds)
    dets = [{"image_id": 1, "category_id": 3, "bbox": [14, 10, 20, 20], "score": 0.8}]
    m = coco_metrics(gt, dets, "lesion")
    assert m == pytest.approx({"AP": 0.4, "AP50": 1.0, "AP75": 0.0, "Recall": 0.4})
    assert [m["AP"], m["AP50"], m["AP75"], m["Recall"]] == pytest.approx(by_hand(gt, dets, tmp_path))


def test_mixed_ranking_matches_pycocotools(tmp_path):
    gt = gt_two_images()
    dets = [{"image_id": 1, "category_id": 3, "bbox": [11, 9, 20, 21], "score": 0.9},
            {"image_id": 1, "category_id": 3, "bbox": [40, 40, 10, 10], "score": 0.95},
            {"image_id": 2, "category_id": 3, "bbox": [33, 22, 16, 22], "score": 0.6},
            {"image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.7}]
    m = coco_metrics(gt, dets, "lesion")
    assert 0 < m["AP"] < 1
    assert [m["AP"], m["AP50"], m["AP75"], m["Recall"]] == pytest.approx(by_hand(gt, dets, tmp_path))


def test_pathology_mode_needs_the_right_class_and_ignores_unknown():
    gt = gt_two_images()
    b = CocoBuilder()
    b.images, b.annotations = gt["images"], gt["annotations"]
    b.add_box(1, [40, 40, 10, 10], 3)                            # pathology unknown: left out
    gt = b.to_dict()
    right = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
             {"image_id": 2, "category_id": 2, "bbox": [30, 20, 16, 24], "score": 0.9}]
    wrong = [{**d, "category_id": 3 - d["category_id"]} for d in right]
    assert coco_metrics(gt, right, "pathology")["AP"] == pytest.approx(1.0)
    assert coco_metrics(gt, wrong, "pathology")["AP"] == pytest.approx(0.0)
    assert coco_metrics(gt, wrong, "lesion")["Recall"] == pytest.approx(2 / 3)


def test_empty_cases():
    gt = gt_two_images()
    assert coco_metrics(gt, [], "lesion") == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "Recall": 0.0}
    gt["annotations"] = []
    assert coco_metrics(gt, [], "lesion")["AP"] is None
    assert mean_metrics({"A": {"AP": 0.2, "AP50": None, "AP75": 0.1, "Recall": 0.3},
                         "B": {"AP": 0.4, "AP50": None, "AP75": 0.3, "Recall": 0.5}}) == \
        pytest.approx({"AP": 0.3, "AP50": None, "AP75": 0.2, "Recall": 0.4})
    with pytest.raises(ValueError, match="image 99"):
        coco_metrics(gt_two_images(), [{"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1],
                                        "score": 1.0}])


def test_to_coco_results_converts_and_caps():
    det = {"scores": torch.tensor([0.1, 0.9, 0.5]), "labels": torch.tensor([0, 1, 0]),
           "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 15, 25], [1, 2, 3, 4]])}
    res = to_coco_results([det], [7], "pathology", max_dets=2)
    assert [r["score"] for r in res] == [0.9, 0.5]
    assert res[0] == {"image_id": 7, "category_id": 2, "bbox": [5.0, 5.0, 10.0, 20.0], "score": 0.9}
    assert to_coco_results([det], [7], "lesion")[0]["category_id"] == 3
