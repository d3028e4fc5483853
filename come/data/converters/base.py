"""Shared machinery of every converter: safe image/mask reads, mask -> boxes, image placement.

A converter walks its native layout and calls `ConvertContext` methods; every problem becomes
a quarantine entry (see `come.data.quarantine`), never an exception deep inside a reader.
Times are split into `read` (decode images and masks, parse annotation files), `label`
(connected components, boxes) and `write` (link/copy images, JSON).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from scipy import ndimage

from come.data.coco import CocoBuilder, category_for
from come.data.quarantine import Quarantine

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
_STRUCT8 = np.ones((3, 3), dtype=bool)       # 8-connectivity for lesion components


class LayoutError(ValueError):
    """The raw folder does not look like the documented native layout."""


def safe_name(name: str) -> str:
    """File-system and URL friendly name: `benign (1).png` -> `benign_1.png`."""
    stem, ext = os.path.splitext(name)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "img"
    return stem + ext.lower()


def natural_key(text: str) -> list:
    """Sort key that orders `a (2)` before `a (10)`."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def list_images(folder: Path, quarantine: Quarantine | None = None) -> list[Path]:
    """Image files of `folder` (not recursive), naturally sorted. With `quarantine`, every other
    visible file there gets a `not_an_image` entry instead of being skipped silently."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if quarantine is not None:
        for p in sorted(p for p in files if p.suffix.lower() not in IMAGE_EXTS):
            quarantine.add(f"{folder.name}/{p.name}", "not_an_image",
                           f"{p.suffix or 'no extension'} is not one of {', '.join(IMAGE_EXTS)}")
    return sorted((p for p in files if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))


def read_text(path: Path) -> str:
    """A text file (label table, CSV) as str; a binary or non-UTF-8 file raises naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                          "is it the label table of the release?") from None


@dataclass
class ConvertContext:
    """State of one conversion: COCO builder, quarantine, output folder, timings."""
    dataset: str
    organ: str
    out: Path                                   # results/data/<DS> (or a temp twin of it)
    prefix: str                                 # file_name prefix, e.g. "BUSBRA/images"
    link: bool = True                           # hard-link images when possible, else copy
    min_component_px: int = 16                  # smaller mask components are speckle noise
    builder: CocoBuilder = field(default_factory=CocoBuilder)
    quarantine: Quarantine | None = None
    timings: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "label": 0.0, "write": 0.0})
    notes: list[str] = field(default_factory=list)
    keep_normal: bool = False                   # BUSI: keep `normal` (lesion-free) images (data.keep_normal)
    excluded: dict[str, int] = field(default_factory=dict)   # images left out by a config switch

    def __post_init__(self) -> None:
        if self.quarantine is None:
            self.quarantine = Quarantine(self.dataset)
        (self.out / "images").mkdir(parents=True, exist_ok=True)

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] += time.perf_counter() - t0

    def rel(self, path: Path, root: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    # ---- reads -------------------------------------------------------------------------
    def read_image(self, path: Path, label: str) -> tuple[int, int] | None:
        """Fully decode `path`; return (width, height) or quarantine it and return None."""
        with self.timed("read"):
            if not path.is_file():
                self.quarantine.add(label, "missing_image", f"{path.name} not found")
                return None
            try:
                with Image.open(path) as im:
                    im.load()
                    return int(im.width), int(im.height)
            except Exception as exc:  # PIL raises many types for broken files
                self.quarantine.add(label, "corrupt_image", f"{type(exc).__name__}: {exc}")
                return None

    def read_mask(self, path: Path, size: tuple[int, int], label: str) -> np.ndarray | None:
        """Binary mask [H, W] bool (any non-zero pixel is foreground) or None (quarantined)."""
        with self.timed("read"):
            if not path.is_file():
                self.quarantine.add(label, "missing_mask", f"expected {path.name}")
                return None
            try:
                with Image.open(path) as im:
                    im.load()
                    arr = np.asarray(im if im.mode in ("1", "L", "I", "I;16") else im.convert("L"))
            except Exception as exc:
                self.quarantine.add(label, "corrupt_mask", f"{path.name}: {type(exc).__name__}: {exc}")
                return None
        if (arr.shape[1], arr.shape[0]) != tuple(size):
            self.quarantine.add(label, "mask_size_mismatch",
                                f"{path.name} is {arr.shape[1]}x{arr.shape[0]}, image is {size[0]}x{size[1]}")
            return None
        if arr.dtype == bool:
            return arr
        top = int(arr.max())
        # 0/1 label maps -> > 0; 8-bit or JPEG masks -> half of the maximum (JPEG ringing)
        return arr > (top // 2 if top > 1 else 0)

    # ---- masks -> boxes ----------------------------------------------------------------
    def boxes_from_mask(self, mask: np.ndarray, label: str, one_lesion: bool) -> list[list[float]]:
        """Boxes `[x, y, w, h]` from a binary mask [H, W].

        Components smaller than `min_component_px` are speckle (flagged, dropped). With
        `one_lesion` the mask is one lesion: one box around every kept component; otherwise
        each 8-connected component is a lesion.
        """
        with self.timed("label"):
            lab, n = ndimage.label(mask, structure=_STRUCT8)
            if n == 0:
                return []
            if n == 1:                         # the common case: nothing to compare
                keep = [1]
            else:
                sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
                keep = [i + 1 for i, s in enumerate(sizes) if s >= self.min_component_px]
                if not keep:                   # only specks: keep the largest rather than nothing
                    keep = [int(np.argmax(sizes)) + 1]
            if len(keep) < n:
                self.quarantine.add(label, "speck_dropped",
                                    f"{n - len(keep)} component(s) < {self.min_component_px} px")
            objs = ndimage.find_objects(lab)
            spans = [(objs[k - 1][1].start, objs[k - 1][0].start, objs[k - 1][1].stop, objs[k - 1][0].stop)
                     for k in keep]                       # (x0, y0, x1, y1) pixel edges
            if one_lesion:                                # one box around every kept component
                x0, y0 = min(s[0] for s in spans), min(s[1] for s in spans)
                x1, y1 = max(s[2] for s in spans), max(s[3] for s in spans)
                spans = [(x0, y0, x1, y1)]
            return [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in spans]

    # ---- writes ------------------------------------------------------------------------
    def place_image(self, src: Path, name: str) -> str:
        """Hard-link (or copy) `src` to `<out>/images/<name>`; return the COCO file_name."""
        with self.timed("write"):
            dst = self.out / "images" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                raise LayoutError(f"{src}: two source images map to the same output name {name!r}")
            if self.link:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copyfile(src, dst)
            else:
                shutil.copyfile(src, dst)
        return f"{self.prefix}/{name}"

    def add_image(self, src: Path, name: str, size: tuple[int, int], pathology: str,
                  group_id: str | None, boxes: list[list[float]], **extra) -> int:
        """Place the image and record it with its boxes (category from the pathology)."""
        file_name = self.place_image(src, name)
        image_id = self.builder.add_image(file_name, size[0], size[1], self.dataset, self.organ,
                                          pathology=pathology, group_id=group_id, **extra)
        for box in boxes:
            self.builder.add_box(image_id, box, category_for(pathology))
        return image_id

    def summary(self) -> dict:
        return {"dataset": self.dataset, "images": len(self.builder.images),
                "boxes": len(self.builder.annotations), "quarantined": self.quarantine.excluded,
                "flagged": len(self.quarantine.entries) - self.quarantine.excluded,
                "quarantine_counts": self.quarantine.counts(),
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}
