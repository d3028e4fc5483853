"""An independent pycocotools reference: class-agnostic box AP of a predictions file.

Written against pycocotools directly (not `come.engine.coco_eval`), so a test comparing the
product's AP with it catches a wrong AP in the product's own evaluation code.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def pycocotools_ap(gt_file: Path, det_file: Path) -> float:
    """COCO AP@[.5:.95] of the detections in `det_file` (all categories merged into one)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        for ann in gt.dataset["annotations"]:
            ann["category_id"] = 1
        gt.createIndex()
        dets = json.loads(Path(det_file).read_text())
        if not dets:
            return 0.0
        for d in dets:
            d["category_id"] = 1
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.params.useCats = 0
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return max(float(ev.stats[0]), 0.0)
