"""Helpers for the data-layer tests: tiny images and masks written to the documented layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write_image(path: Path, size=(40, 30), seed=0, fmt=None) -> Path:
    """A noisy grayscale image of `size` (w, h)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_mask(path: Path, size=(40, 30), boxes=(), value=255, fmt=None) -> Path:
    """Binary mask with filled rectangles `boxes` = [(x, y, w, h), ...]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    for x, y, w, h in boxes:
        arr[y:y + h, x:x + w] = value
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_corrupt(path: Path) -> Path:
    """A file that starts like a PNG and then stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return path


