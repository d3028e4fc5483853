"""Contact sheet of the synthetic benchmark: one labelled row per source, true boxes drawn
in colour by pathology (green benign, red malignant)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from come.data.coco import bbox_from_mask

from .overlays import text_bitmap
from .render import SynthSample

SHEET_SAMPLES = 6
CELL = 128
LABEL_W = 84
GAP = 4
COLOURS = {"benign": (40, 220, 60), "malignant": (240, 50, 40)}


def _cell(sample: SynthSample, cell: int) -> np.ndarray:
    """One sample letterboxed into an RGB cell [cell, cell, 3] with its boxes drawn."""
    h, w = sample.image.shape
    s = cell / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    small = np.asarray(Image.fromarray(sample.image).resize((nw, nh), Image.BILINEAR))
    rgb = np.repeat(small[:, :, None], 3, axis=2).copy()
    colour = np.array(COLOURS.get(sample.pathology, (255, 255, 0)), dtype=np.uint8)
    for m in sample.masks:
        x, y, bw, bh = bbox_from_mask(m)
        x0, y0 = int(np.floor(x * s)), int(np.floor(y * s))
        x1, y1 = min(nw - 1, int(np.ceil((x + bw) * s)) - 1), min(nh - 1, int(np.ceil((y + bh) * s)) - 1)
        rgb[y0:y1 + 1, [x0, x1]] = colour
        rgb[[y0, y1], x0:x1 + 1] = colour
    out = np.zeros((cell, cell, 3), dtype=np.uint8)
    oy, ox = (cell - nh) // 2, (cell - nw) // 2
    out[oy:oy + nh, ox:ox + nw] = rgb
    return out


def make_contact_sheet(rows: list[tuple[str, list[SynthSample]]], n: int = SHEET_SAMPLES,
                       cell: int = CELL) -> np.ndarray:
    """RGB uint8 sheet [rows * (cell + gap), label + n * (cell + gap), 3]."""
    height = len(rows) * (cell + GAP) + GAP
    width = LABEL_W + n * (cell + GAP) + GAP
    sheet = np.full((height, width, 3), 24, dtype=np.uint8)
    for r, (name, samples) in enumerate(rows):
        y = GAP + r * (cell + GAP)
        label = text_bitmap(name, scale=3)
        ly, lx = y + (cell - label.shape[0]) // 2, 4
        lw = min(label.shape[1], LABEL_W - 6)
        sheet[ly:ly + label.shape[0], lx:lx + lw][label[:, :lw]] = 255
        for c, sample in enumerate(samples[:n]):
            x = LABEL_W + GAP + c * (cell + GAP)
            sheet[y:y + cell, x:x + cell] = _cell(sample, cell)
    return sheet
