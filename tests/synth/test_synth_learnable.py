"""The synthetic benchmark carries real signal: sources are separable by a linear probe on
simple image statistics, and benign vs malignant is learnable from lesion crops."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from come.config.schema import ALL_DATASETS, SynthConfig
from come.data.synth import iter_source

N_PER_SOURCE = 24
N_TRAIN = 16


@pytest.fixture(scope="module")
def samples():
    """{source: [(plan, sample), ...]} rendered in memory at 96 px."""
    cfg = SynthConfig(seed=7, images_per_source=N_PER_SOURCE, image_size=96)
    return {ds: list(iter_source(cfg, ds)) for ds in ALL_DATASETS}


def image_features(img: np.ndarray) -> np.ndarray:
    """Global statistics: histogram, black fraction, size, speckle SNR, gradient energy, depth profile."""
    f = img.astype(np.float64)
    h, w = f.shape
    hist = np.histogram(f, bins=16, range=(0, 256))[0] / f.size
    tissue = f > 8
    mean_l = ndimage.uniform_filter(f, 5)
    std_l = np.sqrt(np.maximum(ndimage.uniform_filter(f * f, 5) - mean_l ** 2, 0))
    core = tissue & ndimage.binary_erosion(tissue, iterations=3)
    snr = np.median(mean_l[core] / (std_l[core] + 1e-3)) if core.any() else 0.0
    gy, gx = np.gradient(f)
    grad = np.mean((gx ** 2 + gy ** 2)[core]) if core.any() else 0.0
    bands = [f[int(h * a):int(h * (a + 0.25))][tissue[int(h * a):int(h * (a + 0.25))]].mean()
             if tissue[int(h * a):int(h * (a + 0.25))].any() else 0.0 for a in (0, 0.25, 0.5, 0.75)]
    return np.r_[hist, 1 - tissue.mean(), h / 96, w / 96, h / w, snr, np.log1p(grad), np.array(bands) / 255]


def test_linear_probe_separates_sources(samples):
    xtr, ytr, xte, yte = [], [], [], []
    for k, ds in enumerate(ALL_DATASETS):
        for i, (_, s) in enumerate(samples[ds]):
            (xtr if i < N_TRAIN else xte).append(image_features(s.image))
            (ytr if i < N_TRAIN else yte).append(k)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    clf.fit(np.array(xtr), ytr)
    acc = clf.score(np.array(xte), yte)
    assert acc >= 0.6, f"source probe accuracy {acc:.2f} (chance 0.125)"


def lesion_features(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Aspect ratio, internal echo and heterogeneity, posterior contrast, margin irregularity."""
    f = img.astype(np.float64)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    bh, bw = y1 - y0, x1 - x0
    ring = ndimage.binary_dilation(mask, iterations=3) & ~mask
    inside, around = f[mask].mean(), f[ring].mean() + 1.0
    below = f[y1 + 1:min(y1 + 1 + bh, f.shape[0]), x0:x1]
    side = np.r_[f[y1 + 1:min(y1 + 1 + bh, f.shape[0]), max(x0 - bw, 0):x0].ravel(),
                 f[y1 + 1:min(y1 + 1 + bh, f.shape[0]), x1:x1 + bw].ravel()]
    post = np.log((below.mean() + 1) / (side.mean() + 1)) if below.size and side.size else 0.0
    perim = (mask & ~ndimage.binary_erosion(mask)).sum()
    irregular = perim ** 2 / (4 * np.pi * mask.sum())
    solidity = mask.sum() / ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=3)).sum()
    bright = (f[mask] > np.percentile(f, 97)).mean()
    return np.r_[np.log(bh / bw), np.log((inside + 1) / around), f[mask].std() / 64, post,
                 np.log(irregular), solidity, bright]


def test_benign_vs_malignant_learnable_from_crops(samples):
    xtr, ytr, xte, yte = [], [], [], []
    for ds in ALL_DATASETS:
        for plan, s in samples[ds]:
            train = plan.patient % 3 != 0                 # split by patient: no second-view leak
            for m in s.masks:
                (xtr if train else xte).append(lesion_features(s.image, m))
                (ytr if train else yte).append(int(s.pathology == "malignant"))
    assert len(set(ytr)) == 2 and len(yte) >= 30
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(np.array(xtr), ytr)
    acc = clf.score(np.array(xte), yte)
    assert acc >= 0.7, f"benign/malignant accuracy {acc:.2f} on {len(yte)} held-out lesions"
