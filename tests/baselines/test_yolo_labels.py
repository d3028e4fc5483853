"""COCO split -> YOLO label cache (come.baselines.yolo_labels)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from come.baselines.yolo_labels import coco_to_yolo, yolo_split, yolo_to_coco
from come.data.coco import load_coco


def read_label_file(path: Path) -> np.ndarray:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return np.asarray([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 4)


def test_label_files_round_trip_boxes_within_half_pixel(yolo_cfg):
    """Mutation: normalising y by the width in coco_to_yolo (or rounding to 3 decimals) fails."""
    cfg = yolo_cfg()
    for ds in ("BUSI", "DDTI"):
        split = yolo_split(cfg, ds, "train")
        gt = load_coco(Path(cfg.data.splits_root) / ds / "train.json")
        by_id = {im["id"]: im for im in gt["images"]}
        for image, iid in zip(split.images, split.image_ids):
            assert image.is_file()
            im = by_id[iid]
            rows = read_label_file(split.root / "labels" / f"{image.stem}.txt")
            boxes = np.asarray([a["bbox"] for a in gt["annotations"] if a["image_id"] == iid]).reshape(-1, 4)
            back = yolo_to_coco(rows, im["width"], im["height"])
            assert back.shape == boxes.shape
            assert np.abs(back - boxes).max() <= 0.5


def test_round_trip_on_large_fractional_boxes():
    """Boxes of a 1333 x 800 image with fractional corners survive the 6-decimal label text."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (50, 2))
    wh = rng.uniform(1, 600, (50, 2))
    boxes = np.concatenate([xy, wh], 1)
    rows = np.round(coco_to_yolo(boxes, 1333, 800), 6)
    back = yolo_to_coco(rows, 1333, 800)
    clipped = np.concatenate([boxes[:, :2], np.minimum(boxes[:, :2] + wh, [1333, 800]) - boxes[:, :2]], 1)
    assert np.abs(back - clipped).max() <= 0.5


def test_cache_is_keyed_by_the_split_hash(yolo_cfg):
    """Same split -> same folder, untouched; an edited split -> a new folder.
    Mutation: a cache keyed by the dataset name alone returns the stale folder."""
    cfg = yolo_cfg()
    first = yolo_split(cfg, "BUSI", "train")
    stamp = (first.root / "labels").stat().st_mtime_ns
    time.sleep(0.01)
    again = yolo_split(cfg, "BUSI", "train")
    assert again.root == first.root and (again.root / "labels").stat().st_mtime_ns == stamp
    path = Path(cfg.data.splits_root) / "BUSI" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"][0] += 3
    path.write_text(json.dumps(data))
    edited = yolo_split(cfg, "BUSI", "train")
    assert edited.root != first.root and first.root.is_dir()
