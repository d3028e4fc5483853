"""qualitative.png: a few test images per dataset with true and predicted boxes.

Rows = datasets, columns = images. Ground truth in green (solid), predictions with score >=
`cfg.eval.score_threshold` in red (dashed) with their score.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from come.data.transforms import load_image  # noqa: E402


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


def draw_qualitative(samples: dict[str, list[Sample]], path: str | Path, threshold: float) -> Path:
    """Save the grid figure to `path` (PNG)."""
    rows = [ds for ds, s in samples.items() if s]
    if not rows:
        raise ValueError("qualitative figure: no sample to draw")
    cols = max(len(samples[ds]) for ds in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.6 * len(rows)), squeeze=False)
    for r, ds in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(samples[ds]):
                continue
            s = samples[ds][c]
            img = load_image(s.path).permute(1, 2, 0).numpy()
            ax.imshow(np.clip(img, 0, 1))
            for x, y, w, h in s.gt_boxes:
                ax.add_patch(Rectangle((x, y), w, h, fill=False, color="lime", lw=1.5))
            for (x, y, w, h), sc in zip(s.pred_boxes, s.pred_scores):
                ax.add_patch(Rectangle((x, y), w, h, fill=False, color="red", lw=1.2, ls="--"))
                ax.text(x, y, f"{sc:.2f}", color="red", fontsize=6, va="bottom")
            if c == 0:
                ax.set_title(ds, fontsize=9, loc="left")
    fig.suptitle(f"Test predictions (red, score >= {threshold:g}) and ground truth (green)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.6 * len(rows))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
