"""Fig. 3: qualitative detections; rows = datasets, columns = methods of the intra-organ paradigm.

Per dataset the first test image (lowest id) holding a true box is drawn for every method:
true boxes in green, predicted boxes with score >= `eval.score_threshold` in red.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle

from come.config.schema import ALL_DATASETS
from come.reports.figures.common import FigureInputs, FigureSkipped, method_rank, save
from come.utils.io import read_json


def _pick_image(test: dict) -> dict | None:
    with_box = {a["image_id"] for a in test["annotations"]}
    imgs = sorted((im for im in test["images"] if im["id"] in with_box), key=lambda im: im["id"])
    return imgs[0] if imgs else None


def _load(path: Path) -> np.ndarray | None:
    from PIL import Image
    if not path.is_file():
        return None
    return np.asarray(Image.open(path).convert("L"))


def _intra_runs(inputs: FigureInputs) -> dict[str, dict[str, object]]:
    """method -> dataset -> run (lowest seed) of the intra-organ paradigm with predictions."""
    out: dict[str, dict[str, object]] = {}
    for run in sorted(inputs.runs, key=lambda r: (r.seed, r.run)):
        if run.paradigm != "intra-organ" or run.variant not in ("", "full"):
            continue
        for ds in run.datasets:
            if (run.path / "predictions" / f"{ds}.json").is_file():
                out.setdefault(run.method, {}).setdefault(ds, run)
    return out


def draw(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    by_method = _intra_runs(inputs)
    methods = sorted(by_method, key=lambda m: (method_rank(m), m))
    datasets = [d for d in ALL_DATASETS if any(d in by_method[m] for m in methods)
                and (inputs.splits_root / d / "test.json").is_file()]
    if not methods or not datasets:
        raise FigureSkipped("no intra-organ run with predictions and a test split")
    tests = {ds: read_json(inputs.splits_root / ds / "test.json") for ds in datasets}
    picked = {ds: _pick_image(t) for ds, t in tests.items()}
    aspect = float(np.mean([im["height"] / im["width"] for im in picked.values() if im] or [0.8]))
    fig, axes = plt.subplots(len(datasets), len(methods), squeeze=False,
                             figsize=(2.4 * len(methods) + 0.6, (2.4 * aspect + 0.35) * len(datasets) + 0.9))
    for i, ds in enumerate(datasets):
        test, im = tests[ds], picked[ds]
        pixels = _load(inputs.data_root / im["file_name"]) if im else None
        gts = [a["bbox"] for a in test["annotations"] if im and a["image_id"] == im["id"]]
        for j, m in enumerate(methods):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(ds, fontsize=10)
            if i == 0:
                ax.set_title(m, fontsize=9)
            run = by_method[m].get(ds)
            if im is None or pixels is None or run is None:
                why = "no run" if run is None else "image not found"
                ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=8)
                continue
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=255)
            for x, y, w, h in gts:
                ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="#22cc44", lw=1.5))
            dets = read_json(run.path / "predictions" / f"{ds}.json")
            for d in dets:
                if d["image_id"] == im["id"] and d["score"] >= inputs.score_threshold:
                    x, y, w, h = d["bbox"]
                    ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="#ee3333", lw=1.2, ls="--"))
                    ax.text(x, y - 1, f"{d['score']:.2f}", color="#ee3333", fontsize=6, va="bottom")
    fig.legend(handles=[Patch(ec="#22cc44", fc="none", label="true box"),
                        Patch(ec="#ee3333", fc="none", ls="--",
                              label=f"prediction (score >= {inputs.score_threshold:g})")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Fig. 3: detections of the intra-organ models (rows: datasets; columns: methods)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return save(fig, out_dir, "fig3_qualitative")
