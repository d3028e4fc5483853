"""The project's COCO dialect: one writer, one reader, one validator.

Every image carries `source`, `organ`, `pathology`, `group_id`; categories are fixed
(`1 benign`, `2 malignant`, `3 lesion` = pathology unknown); `file_name` is relative to the data
root (`results/data/`). See docs/architecture.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from come.utils.io import read_json, write_json

CATEGORIES = [
    {"id": 1, "name": "benign", "supercategory": "lesion"},
    {"id": 2, "name": "malignant", "supercategory": "lesion"},
    {"id": 3, "name": "lesion", "supercategory": "lesion"},
]
CATEGORY_OF_PATHOLOGY = {"benign": 1, "malignant": 2}
PATHOLOGIES = ("benign", "malignant", "normal", "unknown")
ORGANS = ("breast", "thyroid")
REQUIRED_IMAGE_KEYS = ("id", "file_name", "width", "height", "source", "organ", "pathology", "group_id")


def category_for(pathology: str) -> int:
    """COCO category of a lesion given its image's pathology (unknown -> 3 `lesion`)."""
    return CATEGORY_OF_PATHOLOGY.get(pathology, 3)


def bbox_from_mask(mask: np.ndarray) -> list[float] | None:
    """Tight `[x, y, w, h]` of the non-zero pixels (pixel-edge convention), None if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) + 1.0 - x0, float(ys.max()) + 1.0 - y0]


@dataclass
class CocoBuilder:
    """Accumulates images and annotations with sequential ids, then writes a COCO file."""
    info: dict[str, Any] = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add_image(self, file_name: str, width: int, height: int, source: str, organ: str,
                  pathology: str = "unknown", group_id: str | None = None, **extra: Any) -> int:
        if pathology not in PATHOLOGIES:
            raise ValueError(f"{file_name}: pathology {pathology!r} not in {PATHOLOGIES}")
        if organ not in ORGANS:
            raise ValueError(f"{file_name}: organ {organ!r} not in {ORGANS}")
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": int(width),
                            "height": int(height), "source": source, "organ": organ,
                            "pathology": pathology,
                            "group_id": str(group_id) if group_id is not None else f"{source}:{image_id}",
                            **extra})
        return image_id

    def add_box(self, image_id: int, bbox: Iterable[float], category_id: int, **extra: Any) -> int:
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise ValueError(f"image {image_id}: degenerate box {[x, y, w, h]}")
        ann_id = len(self.annotations) + 1
        self.annotations.append({"id": ann_id, "image_id": image_id, "category_id": int(category_id),
                                 "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                                 "area": round(w * h, 2), "iscrowd": 0, **extra})
        return ann_id

    def to_dict(self) -> dict:
        return {"info": self.info, "images": self.images, "annotations": self.annotations,
                "categories": CATEGORIES}

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def validate_coco(data: dict, where: str = "<coco>") -> None:
    """Raise ValueError naming the file and the first problem found."""
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{where}: missing top-level key {key!r}")
    ids = set()
    for img in data["images"]:
        missing = [k for k in REQUIRED_IMAGE_KEYS if k not in img]
        if missing:
            raise ValueError(f"{where}: image {img.get('id', '?')} lacks {missing}")
        if img["id"] in ids:
            raise ValueError(f"{where}: duplicate image id {img['id']}")
        ids.add(img["id"])
    cat_ids = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        if ann["image_id"] not in ids:
            raise ValueError(f"{where}: annotation {ann['id']} points at unknown image {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            raise ValueError(f"{where}: annotation {ann['id']} has unknown category {ann['category_id']}")
        x, y, w, h = ann["bbox"]
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: annotation {ann['id']} has a degenerate box {ann['bbox']}")


def load_coco(path: str | Path) -> dict:
    """Read and validate a project COCO file."""
    data = read_json(path)
    validate_coco(data, str(path))
    return data


def subset(data: dict, image_ids: Iterable[int], info: dict | None = None) -> dict:
    """A COCO dict restricted to `image_ids` (ids kept as they are)."""
    keep = set(image_ids)
    return {"info": {**data.get("info", {}), **(info or {})},
            "images": [im for im in data["images"] if im["id"] in keep],
            "annotations": [a for a in data["annotations"] if a["image_id"] in keep],
            "categories": data["categories"]}


def merge(parts: list[dict], info: dict | None = None) -> dict:
    """Concatenate COCO dicts, renumbering image and annotation ids; `source` is kept."""
    images, anns = [], []
    for part in parts:
        remap = {}
        for im in part["images"]:
            remap[im["id"]] = len(images) + 1
            images.append({**im, "id": remap[im["id"]], "orig_id": im.get("orig_id", im["id"])})
        for ann in part["annotations"]:
            anns.append({**ann, "id": len(anns) + 1, "image_id": remap[ann["image_id"]]})
    return {"info": info or {}, "images": images, "annotations": anns, "categories": CATEGORIES}
