"""qualitative.png: a few test images per dataset with true and predicted boxes.

Rows = datasets, columns = images. Ground truth in green (solid), predictions with score >=
`cfg.eval.score_threshold` in red (dashed) with their score. Drawn with PIL (no matplotlib).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from come.data.transforms import load_image

PANEL = 200        # panel side in pixels (images are scaled to fit, aspect kept)
LABEL = 14         # height of the dataset label strip above each row


@dataclass
class Sample:
    """One panel: the image file, its true boxes and predictions (xywh px, original image)."""
    dataset: str
    path: Path
    gt_boxes: list[list[float]]
    pred_boxes: list[list[float]] = field(default_factory=list)
    pred_scores: list[float] = field(default_factory=list)


def pick_samples(gt: dict, dets: list[dict], data_root: Path, dataset: str, n: int,
                 threshold: float) -> list[Sample]:
    """The first `n` test images having a lesion (else any), with their boxes."""
    anns: dict[int, list] = {}
    for a in gt["annotations"]:
        anns.setdefault(a["image_id"], []).append(a["bbox"])
    images = sorted(gt["images"], key=lambda im: (im["id"] not in anns, im["id"]))[:n]
    out = []
    for im in images:
        preds = [d for d in dets if d["image_id"] == im["id"] and d["score"] >= threshold]
        out.append(Sample(dataset, data_root / im["file_name"], anns.get(im["id"], []),
                          [d["bbox"] for d in preds], [d["score"] for d in preds]))
    return out


def _dashed_rect(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], color: str,
                 dash: float = 4.0) -> None:
    """Axis-aligned dashed rectangle (x0, y0, x1, y1) in panel pixels."""
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)),
                               ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for n in range(0, steps, 2):
            t0, t1 = n / steps, min(1.0, (n + 1) / steps)
            draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0),
                       (ax + (bx - ax) * t1, ay + (by - ay) * t1)], fill=color, width=1)


def _panel(s: Sample) -> Image.Image:
    """One image scaled into PANEL x PANEL with its true (green) and predicted (red) boxes."""
    img = (np.clip(load_image(s.path).permute(1, 2, 0).numpy(), 0, 1) * 255).astype(np.uint8)
    h, w = img.shape[:2]
    scale = PANEL / max(h, w)
    pic = Image.fromarray(img).resize((max(1, round(w * scale)), max(1, round(h * scale))))
    canvas = Image.new("RGB", (PANEL, PANEL), "white")
    canvas.paste(pic, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for x, y, bw, bh in s.gt_boxes:
        draw.rectangle([x * scale, y * scale, (x + bw) * scale, (y + bh) * scale], outline="lime", width=2)
    for (x, y, bw, bh), sc in zip(s.pred_boxes, s.pred_scores):
        _dashed_rect(draw, (x * scale, y * scale, (x + bw) * scale, (y + bh) * scale), "red")
        draw.text((x * scale, max(0.0, y * scale - 11)), f"{sc:.2f}", fill="red")
    return canvas


def draw_qualitative(samples: dict[str, list[Sample]], path: str | Path, threshold: float) -> Path:
    """Save the grid figure to `path` (PNG). Drawn with PIL: a training job that evaluates in
    process does not import matplotlib."""
    rows = [ds for ds, s in samples.items() if s]
    if not rows:
        raise ValueError("qualitative figure: no sample to draw")
    cols = max(len(samples[ds]) for ds in rows)
    title = 2 * LABEL
    fig = Image.new("RGB", (cols * PANEL, title + len(rows) * (PANEL + LABEL)), "white")
    draw = ImageDraw.Draw(fig)
    draw.text((4, 4), f"Test predictions (red, dashed, score >= {threshold:g}) and ground truth (green)",
              fill="black")
    for r, ds in enumerate(rows):
        top = title + r * (PANEL + LABEL)
        draw.text((4, top), ds, fill="black")
        for c, s in enumerate(samples[ds]):
            fig.paste(_panel(s), (c * PANEL, top + LABEL))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.save(path)
    return path
