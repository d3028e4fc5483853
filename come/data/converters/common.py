"""Helpers shared by several converters: root discovery, CSV label tables, pair conversion."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from come.data.converters.base import ConvertContext, LayoutError, read_text, safe_name


def candidate_roots(raw: Path) -> list[Path]:
    """`raw` and its folders up to two levels down, where a release's files may sit."""
    raw = Path(raw)
    candidates = [raw] + sorted(p for p in raw.iterdir() if p.is_dir())
    return candidates + sorted(q for p in candidates[1:] for q in p.iterdir() if q.is_dir())


def find_root(raw: Path, markers: list[str], dataset: str) -> Path:
    """The folder under `raw` (itself or up to two levels down) holding every marker path."""
    raw = Path(raw)
    if not raw.is_dir():
        raise LayoutError(f"{raw}: raw folder of {dataset} does not exist")
    for cand in candidate_roots(raw):
        if all((cand / m).exists() for m in markers):
            return cand
    raise LayoutError(f"{raw}: not a {dataset} layout: expected {markers} in it or in a sub-folder")


def read_label_csv(path: Path, name_cols: tuple[str, ...] = ("ID", "id", "name", "image"),
                   label_cols: tuple[str, ...] = ("CATE", "label", "Label", "class")) -> dict[str, str]:
    """`{image stem: label}` from a 2+-column CSV with or without a header row."""
    if not path.is_file():
        raise LayoutError(f"{path}: label file not found")
    rows = [r for r in csv.reader(io.StringIO(read_text(path), newline=""))
            if r and any(c.strip() for c in r)]
    if not rows:
        return {}
    header = [c.strip() for c in rows[0]]
    ni = next((header.index(c) for c in name_cols if c in header), None)
    li = next((header.index(c) for c in label_cols if c in header), None)
    if ni is not None and li is not None:
        body = rows[1:]
    else:
        ni, li, body = 0, 1, rows
    out = {}
    for lineno, r in enumerate(body, start=2 if body is not rows else 1):
        if len(r) <= max(ni, li):
            raise LayoutError(f"{path}:{lineno}: expected at least {max(ni, li) + 1} columns, got {r}")
        out[Path(r[ni].strip()).stem] = r[li].strip()
    return out


BINARY_PATHOLOGY = {"0": "benign", "1": "malignant", "benign": "benign", "malignant": "malignant"}


@dataclass
class Pair:
    """One image with its mask files (empty list = no mask expected) and labels."""
    image: Path
    masks: list[Path]
    pathology: str
    group_id: str | None
    name: str                     # output file name under images/
    label: str                    # how the image is named in warnings / quarantine
    expect_lesion: bool = True    # False for normal images (no box expected)
    extra: dict | None = None


def convert_pairs(ctx: ConvertContext, pairs: list[Pair], one_lesion_per_mask: bool) -> None:
    """Read each pair, derive boxes from its masks and add it, quarantining problems."""
    for p in pairs:
        size = ctx.read_image(p.image, p.label)
        if size is None:
            continue
        boxes: list[list[float]] = []
        ok = True
        for m in p.masks:
            mask = ctx.read_mask(m, size, p.label)
            if mask is None:
                ok = False
                break
            boxes += ctx.boxes_from_mask(mask, p.label, one_lesion=one_lesion_per_mask)
        if not ok:
            continue
        if p.expect_lesion and not boxes:
            ctx.quarantine.add(p.label, "empty_mask", "mask(s) have no foreground pixel")
            continue
        if not p.expect_lesion:
            boxes = []
        ctx.add_image(p.image, p.name, size, p.pathology, p.group_id, boxes, **(p.extra or {}))


def out_name(*parts: str) -> str:
    """Output image name built from path parts: ('benign', 'a (1).png') -> 'benign_a_1.png'."""
    return safe_name("_".join(parts))
