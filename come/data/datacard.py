"""Data card of one converted dataset: `<DS>.json` (figures) and `<DS>.png` (four panels).

Counts, class balance, image sizes, boxes per image, box-size distribution and the quarantined
files read from `quarantine.json` beside the annotations (when present). A synthetic source's card
also carries `calibration`: its lesion/speckle statistics, their distance to the real reference
of its organ and the distance before calibration (`come.data.synth.calibration`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from come.data.coco import load_coco
from come.data.quarantine import read_quarantine
from come.utils.io import write_json


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    q = np.percentile(a, [0, 5, 25, 50, 75, 95, 100])
    keys = ("min", "p5", "p25", "median", "p75", "p95", "max")
    return {"n": int(a.size), "mean": round(float(a.mean()), 4), **{k: round(float(v), 4) for k, v in zip(keys, q)}}


def build_datacard(coco: dict, quarantine: dict | None = None, name: str | None = None) -> dict:
    """The card's figures from a project COCO dict (and its quarantine dict, if any)."""
    images, anns = coco["images"], coco["annotations"]
    info = coco.get("info", {})
    per_image = Counter(a["image_id"] for a in anns)
    size_of = {im["id"]: (im["width"], im["height"]) for im in images}
    rel_side = [float(np.sqrt(a["bbox"][2] * a["bbox"][3] / (size_of[a["image_id"]][0] * size_of[a["image_id"]][1])))
                for a in anns]
    sizes = Counter(f"{w}x{h}" for w, h in size_of.values())
    card = {
        "dataset": name or info.get("dataset") or (images[0]["source"] if images else "?"),
        "organ": sorted({im["organ"] for im in images}),
        "format": info.get("format", ""),
        "verified_on_real_files": info.get("verified_on_real_files"),
        "counts": {"images": len(images), "boxes": len(anns),
                   "groups": len({im["group_id"] for im in images}),
                   "images_without_box": sum(1 for im in images if per_image[im["id"]] == 0)},
        "class_balance": {"pathology": dict(sorted(Counter(im["pathology"] for im in images).items())),
                          "category_id": {str(k): v for k, v in sorted(Counter(a["category_id"] for a in anns).items())}},
        "image_sizes": {"distinct": len(sizes), "most_common": [[s, c] for s, c in sizes.most_common(5)],
                        "width": _quantiles([w for w, _ in size_of.values()]),
                        "height": _quantiles([h for _, h in size_of.values()])},
        "boxes_per_image": {str(k): v for k, v in sorted(Counter(per_image[im["id"]] for im in images).items())},
        "box_size": {"width_px": _quantiles([a["bbox"][2] for a in anns]),
                     "height_px": _quantiles([a["bbox"][3] for a in anns]),
                     "sqrt_area_over_image": _quantiles(rel_side)},
        "pathology_basis": sorted({im.get("pathology_basis", "published label") for im in images}),
        "quarantine": {"present": quarantine is not None,
                       "counts": (quarantine or {}).get("counts", {}),
                       "excluded": sum(e["action"] == "excluded" for e in (quarantine or {}).get("entries", [])),
                       "flagged": sum(e["action"] == "flagged" for e in (quarantine or {}).get("entries", [])),
                       "files": [f"{e['file']} ({e['reason']}, {e['action']})"
                                 for e in (quarantine or {}).get("entries", [])]},
    }
    return card


def plot_datacard(card: dict, coco: dict, path: str | Path) -> Path:
    """Four panels: pathology balance, boxes per image, image sizes, relative box size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7))
    pat = card["class_balance"]["pathology"]
    axes[0, 0].bar(list(pat), list(pat.values()), color="#4477aa")
    axes[0, 0].set_title("images per pathology")
    bpi = card["boxes_per_image"]
    axes[0, 1].bar(list(bpi), list(bpi.values()), color="#66ccee")
    axes[0, 1].set_title("boxes per image")
    axes[0, 1].set_xlabel("boxes")
    ws = [im["width"] for im in coco["images"]]
    hs = [im["height"] for im in coco["images"]]
    axes[1, 0].scatter(ws, hs, s=6, alpha=0.4, color="#228833")
    axes[1, 0].set_title(f"image sizes ({card['image_sizes']['distinct']} distinct)")
    axes[1, 0].set_xlabel("width px")
    axes[1, 0].set_ylabel("height px")
    size_of = {im["id"]: im["width"] * im["height"] for im in coco["images"]}
    rel = [np.sqrt(a["bbox"][2] * a["bbox"][3] / size_of[a["image_id"]]) for a in coco["annotations"]]
    axes[1, 1].hist(rel, bins=30, range=(0, 1), color="#ee6677")
    axes[1, 1].set_title("box size: sqrt(box area / image area)")
    c, q = card["counts"], card["quarantine"]
    detail = ", ".join(f"{k} {v}" for k, v in q["counts"].items()) or "none"
    fig.suptitle(f"{card['dataset']}: {c['images']} images, {c['boxes']} boxes, {c['groups']} groups\n"
                 f"quarantine: {q['excluded']} excluded, {q['flagged']} flagged ({detail})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def write_datacard(annotations: str | Path, out_dir: str | Path, name: str | None = None) -> dict:
    """Read `annotations` (+ `quarantine.json` beside it), write `<out>/<DS>.json` and `.png`."""
    annotations = Path(annotations)
    coco = load_coco(annotations)
    quarantine = read_quarantine(annotations.parent / "quarantine.json")
    card = build_datacard(coco, quarantine, name)
    info = coco.get("info") or {}
    if info.get("synthetic") and info.get("organ"):   # distance to the real reference (BUS-BRA / DDTI)
        from come.data.synth.calibration import calibration_card
        card["calibration"] = calibration_card(coco, annotations.parent.parent, info["organ"],
                                               name=card["dataset"])
    out_dir = Path(out_dir)
    write_json(out_dir / f"{card['dataset']}.json", card)
    plot_datacard(card, coco, out_dir / f"{card['dataset']}.png")
    return card
