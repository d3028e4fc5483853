"""How close is a synthetic source to a real collection? Lesion and speckle statistics + distance.

`image_stats(coco, root)` measures, per lesion box / per image of a COCO dataset:
- `box_w_rel`, `box_h_rel`: box width / image width, box height / image height;
- `box_aspect`: log(box height / box width);
- `contrast_db`: 20 log10 of the mean gray level in the box's central 60% over the mean of the
  ring around the box (box grown by half its size, clipped to the image, black padding ignored);
- `speckle_snr`: per image, the median over 8x8 background patches (outside every grown box,
  no black padding) of mean / std of the gray level (fully developed speckle: about 1.9 in
  envelope, higher after log compression).
`distance(real, synth)`: per statistic, the 1-D Wasserstein distance divided by the real
statistic's interquartile range (scale-free; 0 = same distribution), and their mean.
`calibration_card` (data cards) shows it beside `distance_before`, the figure of the same source
before the generator drew its lesions from the reference (calibration_before.json, see targets.py).
Gray levels are 0-255 of the first channel of `come.data.transforms.load_image`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from come.data.transforms import load_image

from .targets import QUANTILES, REFERENCE_FILE, load_reference  # noqa: F401  (re-exported)

STATS = ("box_w_rel", "box_h_rel", "box_aspect", "contrast_db", "speckle_snr")
PATCH = 8
BLACK = 5.0          # gray levels <= this are padding / frame, not tissue


def _grown(box: list[float], w: int, h: int, f: float = 0.5) -> tuple[int, int, int, int]:
    x, y, bw, bh = box
    return (max(0, int(x - f * bw)), max(0, int(y - f * bh)),
            min(w, int(np.ceil(x + bw + f * bw))), min(h, int(np.ceil(y + bh + f * bh))))


def lesion_contrast(img: np.ndarray, box: list[float]) -> float | None:
    """contrast_db of one box in a [H, W] gray image (None when the ring is empty)."""
    h, w = img.shape
    x, y, bw, bh = box
    cx0, cy0 = int(x + 0.2 * bw), int(y + 0.2 * bh)
    cx1, cy1 = max(cx0 + 1, int(x + 0.8 * bw)), max(cy0 + 1, int(y + 0.8 * bh))
    inner = img[cy0:cy1, cx0:cx1]
    gx0, gy0, gx1, gy1 = _grown(box, w, h)
    ring_mask = np.zeros_like(img, dtype=bool)
    ring_mask[gy0:gy1, gx0:gx1] = True
    ring_mask[max(0, int(y)):int(np.ceil(y + bh)), max(0, int(x)):int(np.ceil(x + bw))] = False
    ring_mask &= img > BLACK
    if inner.size == 0 or not ring_mask.any():
        return None
    return float(20 * np.log10((inner.mean() + 1.0) / (img[ring_mask].mean() + 1.0)))


def speckle_snr(img: np.ndarray, boxes: list[list[float]]) -> float | None:
    """Median mean/std over 8x8 background patches of a [H, W] gray image."""
    h, w = img.shape
    bg = img > BLACK
    for box in boxes:
        gx0, gy0, gx1, gy1 = _grown(box, w, h)
        bg[gy0:gy1, gx0:gx1] = False
    hh, ww = h // PATCH * PATCH, w // PATCH * PATCH
    if hh == 0 or ww == 0:
        return None
    tiles = img[:hh, :ww].reshape(hh // PATCH, PATCH, ww // PATCH, PATCH).transpose(0, 2, 1, 3)
    keep = bg[:hh, :ww].reshape(hh // PATCH, PATCH, ww // PATCH, PATCH).transpose(0, 2, 1, 3).all(axis=(2, 3))
    patches = tiles[keep].reshape(-1, PATCH * PATCH)
    std = patches.std(axis=1)
    ok = std > 1e-6
    if not ok.any():
        return None
    return float(np.median(patches[ok].mean(axis=1) / std[ok]))


def image_stats(coco: dict, root: str | Path, max_images: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """The statistics of up to `max_images` images with a box (seeded choice) of a COCO dict;
    `file_name`s are relative to `root`."""
    boxes: dict[int, list[list[float]]] = {}
    for a in coco["annotations"]:
        boxes.setdefault(a["image_id"], []).append(a["bbox"])
    images = [im for im in coco["images"] if im["id"] in boxes]
    rng = np.random.default_rng(seed)
    if len(images) > max_images:
        images = [images[i] for i in sorted(rng.choice(len(images), max_images, replace=False))]
    out: dict[str, list[float]] = {k: [] for k in STATS}
    for im in images:
        img = load_image(Path(root) / im["file_name"])[0].numpy() * 255.0
        h, w = img.shape
        for box in boxes[im["id"]]:
            out["box_w_rel"].append(box[2] / w)
            out["box_h_rel"].append(box[3] / h)
            out["box_aspect"].append(float(np.log(max(box[3], 1e-3) / max(box[2], 1e-3))))
            c = lesion_contrast(img, box)
            if c is not None:
                out["contrast_db"].append(c)
        s = speckle_snr(img, boxes[im["id"]])
        if s is not None:
            out["speckle_snr"].append(s)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """W1 distance of two 1-D samples (quantile functions on a common grid)."""
    q = np.linspace(0.0, 1.0, 201)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def distance(real: dict[str, np.ndarray], synth: dict[str, np.ndarray]) -> dict[str, float]:
    """Per statistic W1 / IQR of the real statistic; "mean" over the statistics both have."""
    out = {}
    for k in STATS:
        r, s = real.get(k), synth.get(k)
        if r is None or s is None or r.size < 2 or s.size < 2:
            continue
        iqr = float(np.subtract(*np.percentile(r, [75, 25]))) or 1e-6
        out[k] = round(wasserstein_1d(r, s) / iqr, 4)
    if out:
        out["mean"] = round(float(np.mean(list(out.values()))), 4)
    return out


def summary(stats: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Median and interquartile range per statistic (for the data card)."""
    return {k: {"n": int(v.size), "median": round(float(np.median(v)), 4),
                "p25": round(float(np.percentile(v, 25)), 4), "p75": round(float(np.percentile(v, 75)), 4)}
            for k, v in stats.items() if v.size}


BEFORE_FILE = Path(__file__).with_name("calibration_before.json")


def reference_entry(stats: dict[str, np.ndarray], source: str) -> dict:
    """What reference_stats.json stores per organ: 201 quantiles per statistic + provenance."""
    return {"source": source, "n": {k: int(v.size) for k, v in stats.items()},
            "quantiles": {k: [round(float(x), 5) for x in np.quantile(v, QUANTILES)]
                          for k, v in stats.items() if v.size}}


def load_before(path: Path = BEFORE_FILE) -> dict[str, dict]:
    """source -> per-statistic distance measured before the generator was calibrated
    (calibration_before.json: commit and commands inside)."""
    import json
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the pre-calibration distances are missing")
    return {k: v["distance_w1_over_iqr"] for k, v in json.loads(path.read_text())["sources"].items()}


def calibration_card(coco: dict, root: str | Path, organ: str, max_images: int = 40, name: str | None = None) -> dict:
    """Data-card block of a synthetic source: its statistics, their distance to the real
    reference of its organ (BUS-BRA for breast, DDTI for thyroid) and, for one of the 8 sources
    (`name`), the distance before calibration (`distance_before`)."""
    ref = load_reference()[organ]
    stats = image_stats(coco, root, max_images)
    real = {k: np.asarray(v, dtype=float) for k, v in ref["quantiles"].items()}
    card = {"reference": ref["source"], "statistics": summary(stats),
            "reference_statistics": summary(real), "distance_w1_over_iqr": distance(real, stats)}
    before = load_before().get(name or "")
    if before is not None:
        card["distance_before"] = before
    return card
