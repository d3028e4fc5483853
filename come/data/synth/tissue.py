"""Tissue echogenicity and attenuation maps in beam space (rows = depth, columns = scan lines).

`echo` is the relative backscatter power (1 = bright glandular/parenchymal tissue; specular
interfaces go above 1, fluid is ~0); `atten` is the two-way attenuation per pixel in dB;
`allowed` marks where a lesion centre may be placed (inside the glandular layer or the thyroid
lobe). Breast: skin / subcutaneous fat with lobules and Cooper's ligaments / fibroglandular
layer / fascia + pectoralis muscle (striated) / chest wall with an occasional rib shadow.
Thyroid: skin / subcutaneous / strap muscles / lobe with capsule / carotid artery (anechoic)
and trachea (air: bright arc with a shadow) at the sides / longus colli.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class TissueMap:
    """echo [H, W] >= 0, atten [H, W] dB/px (two-way), allowed [H, W] bool."""
    echo: np.ndarray
    atten: np.ndarray
    allowed: np.ndarray


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field [H, W] with correlation lengths `sigma` (px)."""
    noise = rng.standard_normal(shape)
    f = ndimage.gaussian_filter(noise, sigma=(max(sigma[0], 0.3), max(sigma[1], 0.3)), mode="reflect")
    return (f - f.mean()) / (f.std() + 1e-8)


def smooth_curve(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth 1-D curve [n] (boundary undulation)."""
    f = ndimage.gaussian_filter1d(rng.standard_normal(n + 8), sigma=max(sigma, 0.5), mode="reflect")[4:-4]
    return (f - f.mean()) / (f.std() + 1e-8)


def _step(z: np.ndarray, edge: np.ndarray, soft: float) -> np.ndarray:
    """Smooth 0 -> 1 transition of depth `z` across `edge` (both normalised), width `soft`."""
    return 0.5 * (1.0 + np.tanh((z - edge) / soft))


def _line(z: np.ndarray, edge: np.ndarray, width: float) -> np.ndarray:
    """A thin bright band (peak 1) centred on `edge`, Gaussian profile of std `width`."""
    return np.exp(-0.5 * ((z - edge) / width) ** 2)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    z = ((np.arange(h) + 0.5) / h)[:, None]
    x = ((np.arange(w) + 0.5) / w)[None, :]
    return z, x


def breast_map(rng: np.random.Generator, h: int, w: int, atten_px: float) -> TissueMap:
    """Layered breast tissue; returns a TissueMap of shape [h, w]."""
    z, x = _grid(h, w)
    px = 1.0 / h
    skin = 0.03 + 0.006 * smooth_curve(rng, w, w / 6)[None, :]
    fat_end = rng.uniform(0.14, 0.30) + 0.035 * smooth_curve(rng, w, w / 5)[None, :]
    gland_end = np.minimum(fat_end + rng.uniform(0.32, 0.46) + 0.05 * smooth_curve(rng, w, w / 4)[None, :], 0.86)
    muscle_end = gland_end + rng.uniform(0.08, 0.14) + 0.02 * smooth_curve(rng, w, w / 4)[None, :]

    lob = smooth_field(rng, (h, w), (0.05 * h, 0.09 * w))
    fat = 0.05 * np.exp(0.35 * smooth_field(rng, (h, w), (1.2, 2.0)))
    fat = fat + 0.9 * np.exp(-0.5 * (lob / 0.08) ** 2)            # Cooper's ligaments / septa
    streak = smooth_field(rng, (h, w), (0.012 * h + 0.5, 0.07 * w))
    gland = 0.8 * np.exp(0.7 * streak)
    islands = smooth_field(rng, (h, w), (0.05 * h, 0.07 * w))
    gland = np.where(islands > 1.0, 0.06, gland)                    # fat islands in the gland
    period = rng.uniform(3.0, 5.0) * px
    tilt = rng.uniform(-0.08, 0.08)
    stri = np.sin(2 * np.pi * (z + tilt * x + 0.01 * smooth_field(rng, (h, w), (2, 0.2 * w))) / period)
    muscle = 0.06 + 0.6 * np.clip(stri, 0, None) ** 6
    deep = 0.1 * np.exp(0.5 * smooth_field(rng, (h, w), (0.03 * h, 0.1 * w)))

    s = 1.2 * px
    echo = 0.05 * (1 - _step(z, skin, s))
    echo = echo + fat * (_step(z, skin, s) - _step(z, fat_end, 2 * s))
    echo = echo + gland * (_step(z, fat_end, 2 * s) - _step(z, gland_end, s))
    echo = echo + muscle * (_step(z, gland_end, s) - _step(z, muscle_end, s))
    echo = echo + deep * _step(z, muscle_end, s)
    echo = echo + 2.5 * _line(z, skin, 0.9 * px) + 1.4 * _line(z, gland_end, 0.8 * px)
    echo = echo + 1.0 * _line(z, muscle_end, 0.8 * px)

    atten = atten_px * (0.85 + 0.25 * _step(z, fat_end, s) * (1 - _step(z, gland_end, s)))
    atten = np.broadcast_to(atten, (h, w)).copy()
    if rng.random() < 0.25:                                          # a rib: bright arc + shadow
        cx, rx = rng.uniform(0.25, 0.75), rng.uniform(0.12, 0.22)
        top = muscle_end + 0.02 + 0.04 * ((x - cx) / rx) ** 2
        inside = (np.abs(x - cx) < rx) & (z > top)
        echo = echo + 2.5 * _line(z, top, 1.0 * px) * (np.abs(x - cx) < rx)
        atten = np.where(inside, atten_px * 8.0, atten)
    margin = 0.03
    allowed = (z > fat_end + margin) & (z < gland_end - margin)
    allowed = np.broadcast_to(allowed, (h, w)) & (x > 0.12) & (x < 0.88)
    return TissueMap(echo=np.maximum(echo, 0.0), atten=atten, allowed=allowed)


def thyroid_map(rng: np.random.Generator, h: int, w: int, atten_px: float) -> TissueMap:
    """Transverse thyroid lobe with strap muscles, carotid and trachea; TissueMap [h, w]."""
    z, x = _grid(h, w)
    px = 1.0 / h
    skin = 0.025 + 0.005 * smooth_curve(rng, w, w / 6)[None, :]
    sub_end = skin + rng.uniform(0.04, 0.07)
    trachea_left = rng.random() < 0.5
    lobe_x0, lobe_x1 = (0.16, 0.84) if rng.random() < 0.5 else (0.08, 0.92)
    u = np.clip((x - lobe_x0) / (lobe_x1 - lobe_x0), 0, 1)
    bump = np.sqrt(np.clip(1 - (2 * u - 1) ** 2, 0, 1))
    strap_end = sub_end + (0.05 + rng.uniform(0.05, 0.10) * bump) + 0.01 * smooth_curve(rng, w, w / 5)[None, :]
    lobe_depth = rng.uniform(0.40, 0.58)
    lobe_end = strap_end + lobe_depth * bump ** 0.6 + 0.02 * smooth_curve(rng, w, w / 5)[None, :]
    in_lobe = (z > strap_end) & (z < lobe_end) & (bump > 0.05)

    sub = 0.15 * np.exp(0.4 * smooth_field(rng, (h, w), (1.0, 3.0)))
    period = rng.uniform(3.0, 4.5) * px
    stri = np.sin(2 * np.pi * (z + 0.15 * (x - 0.5) ** 2) / period)
    strap = 0.06 + 0.4 * np.clip(stri, 0, None) ** 6
    paren = rng.uniform(0.65, 0.95) * np.exp(0.25 * smooth_field(rng, (h, w), (0.8, 1.2)))
    deep = 0.1 * np.exp(0.5 * smooth_field(rng, (h, w), (0.03 * h, 0.08 * w)))

    s = 1.0 * px
    lobe_soft = np.clip(_step(z, strap_end, s) - _step(z, lobe_end, s), 0, 1) * (bump > 0.05)
    echo = 0.05 * (1 - _step(z, skin, s))
    echo = echo + sub * (_step(z, skin, s) - _step(z, sub_end, s))
    echo = echo + strap * (_step(z, sub_end, s) - _step(z, strap_end, s))
    below = _step(z, strap_end, s) * (1 - lobe_soft)
    echo = echo + paren * lobe_soft + deep * below
    echo = echo + 2.2 * _line(z, skin, 0.9 * px) + 0.9 * _line(z, sub_end, 0.7 * px)
    echo = echo + 1.2 * (_line(z, strap_end, 0.7 * px) + _line(z, lobe_end, 0.8 * px)) * (bump > 0.05)
    atten = np.broadcast_to(atten_px * (0.9 + 0.2 * in_lobe), (h, w)).copy()

    ar = w / h                                                      # aspect to keep vessels round
    mid = float(np.mean(strap_end)) + 0.45 * lobe_depth
    blocked = np.zeros((h, w), dtype=bool)
    if rng.random() < 0.6:                                          # carotid: anechoic, bright wall
        cx = (0.95 if trachea_left else 0.05) + rng.uniform(-0.03, 0.03)
        r = rng.uniform(0.07, 0.11)
        d = np.sqrt(((x - cx) * ar) ** 2 + (z - mid) ** 2)
        echo = np.where(d < r, 0.01, echo) + 1.4 * _line(d, np.full_like(d, r), 0.8 * px)
        atten = np.where(d < r, atten_px * 0.1, atten)
        blocked |= d < 1.4 * r
    if rng.random() < 0.5:                                          # trachea: air arc + shadow
        cx = (0.0 if trachea_left else 1.0) + rng.uniform(-0.02, 0.02)
        r = rng.uniform(0.14, 0.2)
        d = np.sqrt(((x - cx) * ar) ** 2 + (z - mid - r) ** 2)
        arc = _line(d, np.full_like(d, r), 1.0 * px) * (z < mid + r)
        echo = echo + 3.0 * arc
        atten = np.where((d < r) | ((z > mid + r) & (np.abs(x - cx) * ar < r)), atten_px * 12.0, atten)
        blocked |= np.abs(x - cx) * ar < 1.3 * r
    core = ndimage.binary_erosion(in_lobe, iterations=max(2, int(0.05 * h)))
    allowed = core & (x > 0.1) & (x < 0.9) & ~blocked
    if not allowed.any():
        allowed = in_lobe & (x > 0.1) & (x < 0.9)
    return TissueMap(echo=np.maximum(echo, 0.0), atten=atten, allowed=np.asarray(allowed))


def build_tissue(organ: str, rng: np.random.Generator, h: int, w: int, atten_px: float) -> TissueMap:
    """Dispatch on organ (`breast` | `thyroid`)."""
    if organ == "breast":
        return breast_map(rng, h, w, atten_px)
    if organ == "thyroid":
        return thyroid_map(rng, h, w, atten_px)
    raise ValueError(f"synth: unknown organ {organ!r}")
