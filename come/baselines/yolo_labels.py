"""COCO split -> YOLO label folder, cached by the split's hash.

ultralytics' YOLODataset reads `<root>/images/<name>` and `<root>/labels/<name>.txt` (one line
per box: `class cx cy w h`, normalised to the image). `yolo_split(cfg, dataset, split)` writes
that layout under `baselines.yolo.label_cache/<hash>/` where the hash covers the split file's
bytes, the data root and the class mode, so two runs on the same split share one folder and an
edited split gets a new one. Images are symlinked (copied where links fail); the folder is
built in a temporary sibling and renamed, so concurrent jobs never see half a cache.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from come.config.schema import Config
from come.data.dataset import Record, read_records, split_file


@dataclass
class YoloSplit:
    root: Path                 # <cache>/<hash>
    images: list[Path]         # root/images/<name>, in the COCO file's image order
    image_ids: list[int]       # COCO image ids, same order
    records: list[Record]


def coco_to_yolo(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """COCO xywh px [n, 4] -> YOLO cx cy w h normalised [n, 4] (clipped to the image)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0 = np.clip(b[:, 0], 0, width), np.clip(b[:, 1], 0, height)
    x1, y1 = np.clip(b[:, 0] + b[:, 2], 0, width), np.clip(b[:, 1] + b[:, 3], 0, height)
    return np.stack([(x0 + x1) / 2 / width, (y0 + y1) / 2 / height,
                     (x1 - x0) / width, (y1 - y0) / height], axis=1)


def yolo_to_coco(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """YOLO cx cy w h normalised [n, 4] -> COCO xywh px [n, 4]."""
    r = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    w, h = r[:, 2] * width, r[:, 3] * height
    return np.stack([r[:, 0] * width - w / 2, r[:, 1] * height - h / 2, w, h], axis=1)


def label_text(rec: Record) -> str:
    """The YOLO label file of one record (empty for an image without boxes)."""
    rows = coco_to_yolo(rec.boxes, rec.width, rec.height)
    return "".join(f"{int(c)} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}\n"
                   for c, r in zip(rec.labels, rows) if r[2] > 0 and r[3] > 0)


def split_hash(coco_path: Path, data_root: Path, class_mode: str) -> str:
    h = hashlib.sha256(coco_path.read_bytes())
    h.update(f"|{data_root.resolve()}|{class_mode}|v1".encode())
    return h.hexdigest()[:16]


def image_name(rec: Record) -> str:
    return f"{rec.image_id:08d}_{rec.path.stem}{rec.path.suffix.lower()}"


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def _build(root: Path, records: list[Record]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for rec in records:
            name = image_name(rec)
            _link(rec.path, tmp / "images" / name)
            (tmp / "labels" / f"{Path(name).stem}.txt").write_text(label_text(rec))
        try:
            tmp.rename(root)
        except OSError:          # another job finished the same cache first
            if not root.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def yolo_split(cfg: Config, dataset: str, split: str) -> YoloSplit:
    """The cached YOLO layout of `<splits_root>/<dataset>/<split>.json` (built when absent)."""
    coco_path = split_file(cfg, dataset, split)
    if not coco_path.is_file():
        raise FileNotFoundError(f"{coco_path}: split file not found (run `come split` first)")
    data_root = Path(cfg.data.root)
    records, _ = read_records(coco_path, data_root, dataset, 0, cfg.data.class_mode)
    root = Path(cfg.baselines.yolo.label_cache) / split_hash(coco_path, data_root, cfg.data.class_mode)
    if not (root / "labels").is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        _build(root, records)
    images = [root / "images" / image_name(r) for r in records]
    return YoloSplit(root, images, [r.image_id for r in records], records)
