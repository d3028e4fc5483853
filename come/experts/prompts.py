"""Diagnosis prompts for the semantic expert (MedCLIP-SAMv2 style, COME section 3).

Training image -> "Diagnosis for {Organ} Ultrasound Image: {Benign|Malignant|Omit}" with the
organ capitalised; "Omit" when the pathology is unknown or the image is normal (no lesion).
Test time uses the organ- and label-free prompt "Diagnosis for Ultrasound Image".
Records are ordered by image id, so the JSONL file is byte-identical across runs.
"""
from __future__ import annotations

import json
from pathlib import Path

from come.utils.io import atomic_write_bytes

TEST_PROMPT = "Diagnosis for Ultrasound Image"
LABELS = ("Benign", "Malignant", "Omit")


def train_prompt(organ: str, label: str) -> str:
    """The training prompt of one organ ('breast'|'thyroid') and label (one of LABELS)."""
    if label not in LABELS:
        raise ValueError(f"prompt label {label!r} not in {LABELS}")
    return f"Diagnosis for {organ.strip().capitalize()} Ultrasound Image: {label}"


def class_prompt(organ: str | None, label: str) -> str:
    """Zero-shot class prompt; organ None gives the generic "Diagnosis for Ultrasound Image: X"."""
    return f"{TEST_PROMPT}: {label}" if organ is None else train_prompt(organ, label)


def image_label(image: dict, annotations: list[dict]) -> str:
    """Prompt label of one image from its lesion annotations and `pathology`.

    No lesion -> Omit. Category 2 (malignant) anywhere -> Malignant; else category 1 -> Benign;
    category 3 (pathology unknown) falls back to the image's `pathology` field.
    """
    if not annotations:
        return "Omit"
    cats = {a["category_id"] for a in annotations}
    if 2 in cats:
        return "Malignant"
    if 1 in cats:
        return "Benign"
    return {"benign": "Benign", "malignant": "Malignant"}.get(image.get("pathology", "unknown"), "Omit")


def build_prompt_records(coco: dict, data_root: str | Path, where: str = "<coco>") -> list[dict]:
    """One record per image (sorted by id): image path, file_name, source, organ, label, text, boxes."""
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    records = []
    for im in sorted(coco["images"], key=lambda r: r["id"]):
        organ = im.get("organ")
        if organ not in ("breast", "thyroid"):
            raise ValueError(f"{where}: image {im['id']} has organ {organ!r}, expected 'breast' or 'thyroid'")
        anns = sorted(by_image.get(im["id"], []), key=lambda a: a["id"])
        label = image_label(im, anns)
        records.append({
            "image_id": im["id"],
            "image": (Path(data_root) / im["file_name"]).as_posix(),
            "file_name": im["file_name"],
            "source": im["source"],
            "organ": organ,
            "label": label,
            "text": train_prompt(organ, label),
            "boxes": [list(map(float, a["bbox"])) for a in anns],
        })
    return records


def write_jsonl(records: list[dict], path: str | Path) -> Path:
    """Write records as JSON lines (sorted keys), atomically."""
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    return atomic_write_bytes(path, body.encode())


def read_prompts(path: str | Path) -> list[dict]:
    """Read a prompts JSONL; every line must hold at least `image`, `organ`, `label`, `text`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prompts file not found (make it with `come prompts`)")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {n} is not valid JSON: {exc}") from None
        missing = [k for k in ("image", "organ", "label", "text") if k not in rec]
        if missing:
            raise ValueError(f"{path}: line {n} lacks keys {missing}")
        records.append(rec)
    if not records:
        raise ValueError(f"{path}: no prompt records")
    return records
