"""COCO box metrics with pycocotools: AP, AP50, AP75 and AR@maxDets ("Recall").

`coco_metrics(gt, dets, class_mode)` is the single code path used by `come evaluate`.
Lesion mode is class-agnostic: every ground-truth category and every detection is mapped to
the one category 3 ("lesion"). Pathology mode keeps benign (1) / malignant (2) and leaves
ground-truth boxes of unknown pathology (category 3) out of the evaluation, as training does.
A dataset without any ground-truth box has undefined metrics: None.
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Optional

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

METRIC_KEYS = ("AP", "AP50", "AP75", "Recall")
LESION_CATEGORY = {"id": 3, "name": "lesion", "supercategory": "lesion"}


def _prepare_gt(gt: dict, class_mode: str) -> dict:
    gt = copy.deepcopy(gt)
    if class_mode == "lesion":
        for ann in gt["annotations"]:
            ann["category_id"] = 3
        gt["categories"] = [LESION_CATEGORY]
    else:
        gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] in (1, 2)]
        gt["categories"] = [c for c in gt["categories"] if c["id"] in (1, 2)]
    for ann in gt["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    return gt


def _coco_from_dict(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_metrics(gt: dict, dets: list[dict], class_mode: str = "lesion",
                 max_dets: int = 100) -> dict[str, Optional[float]]:
    """Metrics of detections `dets` (COCO results: image_id, category_id, bbox xywh, score)
    against the COCO dict `gt`. Returns {"AP", "AP50", "AP75", "Recall"} (floats in [0, 1],
    None when the ground truth holds no box)."""
    gt = _prepare_gt(gt, class_mode)
    if not gt["annotations"]:
        return {k: None for k in METRIC_KEYS}
    image_ids = {im["id"] for im in gt["images"]}
    dets = [dict(d) for d in dets]
    for d in dets:
        if d["image_id"] not in image_ids:
            raise ValueError(f"detection for image {d['image_id']} which is not in the ground truth")
        if class_mode == "lesion":
            d["category_id"] = 3
    dets = [d for d in dets if d["category_id"] in {c["id"] for c in gt["categories"]}]
    if not dets:
        return {k: 0.0 for k in METRIC_KEYS}
    coco_gt = _coco_from_dict(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = ev.stats
    out = {"AP": stats[0], "AP50": stats[1], "AP75": stats[2], "Recall": stats[8]}
    return {k: (None if v < 0 else float(v)) for k, v in out.items()}


def mean_metrics(per_dataset: dict[str, dict[str, Optional[float]]]) -> dict[str, Optional[float]]:
    """Mean of each metric over the datasets where it is defined."""
    out: dict[str, Optional[float]] = {}
    for k in METRIC_KEYS:
        vals = [m[k] for m in per_dataset.values() if m.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def to_coco_results(dets: list[dict], image_ids: list[int], class_mode: str,
                    max_dets: int = 100) -> list[dict]:
    """Postprocessed detections (per image: scores [K], labels [K], boxes [K, 4] xyxy px) ->
    COCO results (bbox xywh px, category 3 in lesion mode, 1/2 in pathology mode), the
    `max_dets` best per image."""
    from come.data.dataset import category_of_class

    results = []
    for image_id, det in zip(image_ids, dets):
        scores = det["scores"].detach().float().cpu()
        order = scores.argsort(descending=True)[:max_dets]
        boxes = det["boxes"].detach().float().cpu()[order]
        labels = det["labels"].detach().cpu()[order]
        for s, lab, (x0, y0, x1, y1) in zip(scores[order].tolist(), labels.tolist(), boxes.tolist()):
            results.append({"image_id": int(image_id), "category_id": category_of_class(class_mode, lab),
                            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                            "score": round(float(s), 5)})
    return results
