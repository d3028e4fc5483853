"""Torch detection dataset over the split COCO files, and the padding collate.

`build_dataset(cfg, "train")` reads `<data.splits_root>/<DS>/train.json` for every dataset of
`cfg.run.train_datasets` and merges them in memory; an image's `source_id` is the index of its
dataset in `cfg.run.train_datasets` (-1 for an evaluation-only dataset). Labels follow
`cfg.data.class_mode`: "lesion" maps every category to class 0; "pathology" maps benign -> 0,
malignant -> 1 and drops boxes of unknown pathology (category 3), counting them.

Augmentation randomness comes from a generator seeded by (seed, epoch, index), so the same
sample gets the same augmentation whatever the worker count or after a resume.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from come.config.schema import Config
from come.data.coco import load_coco
from come.data.verify import verify_images
from come.data.transforms import DetectionTransform, build_transform, load_image, to_target, xywh_to_xyxy

log = logging.getLogger("come.data")

PATHOLOGY_CLASS = {1: 0, 2: 1}      # COCO category id -> class index in "pathology" mode


def num_classes(class_mode: str) -> int:
    return 1 if class_mode == "lesion" else 2


def category_of_class(class_mode: str, label: int) -> int:
    """Class index -> COCO category id of the predictions file (lesion -> 3, benign/malignant -> 1/2)."""
    return 3 if class_mode == "lesion" else {0: 1, 1: 2}[int(label)]


@dataclass
class Record:
    """One image: where it is, what it holds (boxes [n, 4] COCO xywh px, labels [n])."""
    image_id: int
    path: Path
    width: int
    height: int
    dataset: str
    source_id: int
    boxes: np.ndarray
    labels: np.ndarray


def split_file(cfg: Config, dataset: str, split: str) -> Path:
    return Path(cfg.data.splits_root) / dataset / f"{split}.json"


def read_records(coco_path: Path, data_root: Path, dataset: str, source_id: int,
                 class_mode: str) -> tuple[list[Record], int]:
    """Records of one split file and the number of boxes dropped (unknown pathology)."""
    data = load_coco(coco_path)
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    records, dropped, missing = [], 0, []
    for img in data["images"]:
        boxes, labels = [], []
        for ann in by_image.get(img["id"], []):
            if class_mode == "lesion":
                labels.append(0)
            elif ann["category_id"] in PATHOLOGY_CLASS:
                labels.append(PATHOLOGY_CLASS[ann["category_id"]])
            else:
                dropped += 1
                continue
            boxes.append(ann["bbox"])
        path = data_root / img["file_name"]
        if not path.is_file():
            missing.append(str(path))
        records.append(Record(int(img["id"]), path, int(img["width"]), int(img["height"]), dataset,
                              source_id, np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                              np.asarray(labels, dtype=np.int64)))
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(f"{coco_path}: {len(missing)} image file(s) not found under "
                                f"{data_root}: {', '.join(missing[:3])}{more}")
    return records, dropped


class DetectionDataset(Dataset):
    """Item -> (image [3, h, w] normalised, target dict).

    target: labels long[n], boxes float[n, 4] cxcywh normalised to the resized image,
    image_id int, dataset str, source_id int, orig_size long[2] (h, w), size long[2] (h, w).
    """

    def __init__(self, records: Sequence[Record], transform: DetectionTransform, seed: int = 0,
                 datasets: Sequence[str] = ()):
        self.records = list(records)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def source_ids(self) -> list[int]:
        return [r.source_id for r in self.records]

    def __getitem__(self, idx: int) -> tuple[Tensor, dict[str, Any]]:
        rec = self.records[idx]
        img = load_image(rec.path)
        h, w = img.shape[-2:]
        if (h, w) != (rec.height, rec.width):
            raise RuntimeError(f"{rec.path}: decoded size {w}x{h} differs from the annotation's "
                               f"width x height {rec.width}x{rec.height}")
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        boxes = xywh_to_xyxy(torch.from_numpy(rec.boxes.copy()))
        img, boxes, labels = self.transform(img, boxes, rng, torch.from_numpy(rec.labels.copy()))
        size = tuple(img.shape[-2:])
        target = {"labels": labels, "boxes": to_target(boxes, size),
                  "image_id": rec.image_id, "dataset": rec.dataset, "source_id": rec.source_id,
                  "orig_size": torch.tensor([h, w]), "size": torch.tensor(size)}
        return img, target


def build_dataset(cfg: Config, split: str, datasets: Sequence[str] | None = None) -> DetectionDataset:
    """The dataset of `split` ("train" | "test") over `datasets` (default: the run's train or
    eval datasets). Every image file is checked here, at construction: it exists, decodes and
    has its annotated size (`come.data.verify`, cached by content hash)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if datasets is None:
        datasets = cfg.run.train_datasets if split == "train" else cfg.run.eval_datasets
    records: list[Record] = []
    dropped = 0
    for name in datasets:
        path = split_file(cfg, name, split)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split file not found (make it with `come split`)")
        sid = cfg.run.train_datasets.index(name) if name in cfg.run.train_datasets else -1
        recs, n_drop = read_records(path, Path(cfg.data.root), name, sid, cfg.data.class_mode)
        verify_images([(r.path, (r.width, r.height)) for r in recs], str(path))
        records += recs
        dropped += n_drop
    if dropped:
        log.warning("class_mode=pathology: dropped %d box(es) of unknown pathology from %s %s",
                    dropped, split, list(datasets))
    if not records:
        raise ValueError(f"{split} split of {list(datasets)} holds no image")
    train = split == "train"
    transform = build_transform(cfg.data, train)
    ds = DetectionDataset(records, transform, seed=cfg.train.seed, datasets=datasets)
    ds.dropped_boxes = dropped
    return ds


def collate(batch: list[tuple[Tensor, dict]]) -> dict[str, Any]:
    """Pad to the batch's max size. Returns images [B, 3, H, W], pad_mask [B, H, W] bool
    (True = padding), source_ids [B] long and targets (list of the items' dicts)."""
    imgs = [b[0] for b in batch]
    hmax = max(im.shape[1] for im in imgs)
    wmax = max(im.shape[2] for im in imgs)
    images = imgs[0].new_zeros(len(imgs), 3, hmax, wmax)
    pad_mask = torch.ones(len(imgs), hmax, wmax, dtype=torch.bool)
    for i, im in enumerate(imgs):
        images[i, :, : im.shape[1], : im.shape[2]] = im
        pad_mask[i, : im.shape[1], : im.shape[2]] = False
    targets = [b[1] for b in batch]
    source_ids = torch.tensor([t["source_id"] for t in targets], dtype=torch.long)
    return {"images": images, "pad_mask": pad_mask, "source_ids": source_ids, "targets": targets}
