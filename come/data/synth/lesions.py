"""Lesion shapes and their acoustic signature, following BI-RADS / TI-RADS descriptors.

Benign: oval/round, circumscribed, wider-than-tall, anechoic (cyst) or hypoechoic (solid), low
attenuation -> posterior acoustic enhancement; thyroid benign nodules may be isoechoic with a
thin hypoechoic halo; smooth margins parallel to the beam cast thin lateral edge shadows
(refraction). Malignant: irregular (high-order lobulation) or spiculated (radial spikes)
margins, taller-than-wide, markedly hypoechoic and heterogeneous, high attenuation -> posterior
shadowing, microcalcifications (bright point scatterers), most often in thyroid. A minority
are atypical (benign with indistinct margins and mild shadowing; circumscribed malignant).

Size, height/width ratio and `echo` drawn here are drafts: generate.calibrated_shape replaces
them with targets from the real reference (targets.py); `echo` is relative to the median of the
tissue around the lesion (iso_halo: to the tissue itself, pixel by pixel).

A shape is drawn in elliptical polar coordinates: a pixel at (rho, theta) is inside when
rho <= R(theta) = 1 + sum_k a_k cos(k theta + phi_k) + sum_s A_s exp(-(dtheta_s / w_s)^2 / 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.ndimage import binary_dilation

from .tissue import TissueMap, smooth_field

EDGE_SHADOW_MULT = 12.0   # attenuation boost where a smooth margin is parallel to the beam


@dataclass
class LesionShape:
    """Shape and signature of one lesion, independent of where it sits (sizes in px)."""
    malignant: bool
    kind: str                      # cyst|solid|iso_halo|indistinct|irregular|spiculated|circumscribed
    semi_major: float              # px, before the per-image placement scale
    ratio: float                   # height / width (>1 = taller-than-wide)
    angle: float                   # rad
    harmonics: np.ndarray          # [K, 3] (order, amplitude, phase)
    spikes: np.ndarray             # [S, 3] (theta, amplitude, width)
    echo: float                    # backscatter relative to the surrounding tissue
    texture: float                 # log-std of internal heterogeneity
    atten_mult: float              # lesion attenuation / tissue attenuation
    halo: float = 0.0              # halo thickness (px); 0 = none
    halo_echo: float = 1.0         # echo multiplier inside the halo
    n_calc: int = 0                # microcalcification count


@dataclass
class Lesion:
    """A placed lesion in beam space: centre (cy, cx) px and its shape."""
    shape: LesionShape
    cy: float
    cx: float
    scale: float = 1.0
    mask: np.ndarray = field(default=None, repr=False)   # [H, W] bool, filled by rasterize


ATYPICAL_BENIGN = 0.10      # benign with an indistinct margin and mild shadowing (e.g. fibrosis)
ATYPICAL_MALIGNANT = 0.15   # circumscribed malignant (e.g. mucinous / follicular carcinoma)


def sample_shape(rng: np.random.Generator, organ: str, malignant: bool, size_px: float) -> LesionShape:
    """Draw a lesion shape for `organ` and pathology; `size_px` = typical semi-major axis.

    A minority of lesions are atypical (benign that looks suspicious, malignant that looks
    circumscribed), so pathology is learnable from appearance but not trivially."""
    semi = size_px * rng.uniform(0.6, 1.25)
    angle = rng.uniform(-0.25, 0.25)
    if malignant:
        return _malignant_shape(rng, organ, semi, angle)
    return _benign_shape(rng, organ, semi, angle)


def _harmonics(rng: np.random.Generator, orders: np.ndarray, max_amp: float, keep: float = 1.0) -> np.ndarray:
    amp = rng.uniform(0.0, max_amp, orders.size) * (rng.random(orders.size) < keep)
    return np.stack([orders, amp, rng.uniform(0, 2 * np.pi, orders.size)], 1)


def _benign_shape(rng: np.random.Generator, organ: str, semi: float, angle: float) -> LesionShape:
    no_spikes = np.zeros((0, 3))
    if rng.random() < ATYPICAL_BENIGN:
        return LesionShape(False, "indistinct", semi, rng.uniform(0.75, 1.1), angle,
                           _harmonics(rng, np.arange(3, 8), 0.08), no_spikes, echo=rng.uniform(0.05, 0.14),
                           texture=0.45, atten_mult=rng.uniform(1.0, 1.6))
    if organ == "thyroid":
        kind = str(rng.choice(["cyst", "iso_halo", "solid"], p=[0.35, 0.35, 0.30]))
    else:
        kind = str(rng.choice(["cyst", "solid"], p=[0.4, 0.6]))
    ratio = rng.uniform(0.45, 0.72) if kind != "cyst" else rng.uniform(0.6, 0.85)
    harm = _harmonics(rng, np.arange(2, 5), 0.045)
    if kind == "cyst":
        return LesionShape(False, kind, semi, ratio, angle, harm, no_spikes, echo=0.0, texture=0.0,
                           atten_mult=rng.uniform(0.0, 0.15))
    if kind == "iso_halo":
        return LesionShape(False, kind, semi, ratio, angle, harm, no_spikes,
                           echo=rng.uniform(0.5, 0.8), texture=0.35, atten_mult=rng.uniform(0.6, 0.85),
                           halo=rng.uniform(2.5, 4.0), halo_echo=0.06)
    return LesionShape(False, kind, semi, ratio, angle, harm, no_spikes,
                       echo=rng.uniform(0.06, 0.16), texture=0.3, atten_mult=rng.uniform(0.3, 0.65))


def _malignant_shape(rng: np.random.Generator, organ: str, semi: float, angle: float) -> LesionShape:
    calc_p = 0.75 if organ == "thyroid" else 0.3
    if rng.random() < ATYPICAL_MALIGNANT:
        return LesionShape(True, "circumscribed", semi, rng.uniform(0.6, 0.95), angle,
                           _harmonics(rng, np.arange(2, 6), 0.06), np.zeros((0, 3)),
                           echo=rng.uniform(0.04, 0.12), texture=0.5, atten_mult=rng.uniform(0.7, 1.4),
                           n_calc=int(rng.integers(2, 6)) if rng.random() < calc_p / 3 else 0)
    kind = "spiculated" if rng.random() < (0.55 if organ == "breast" else 0.3) else "irregular"
    harm = _harmonics(rng, np.arange(3, 10), 0.12 if kind == "irregular" else 0.06, keep=0.7)
    if kind == "spiculated":
        n = rng.integers(6, 14)
        spikes = np.stack([rng.uniform(0, 2 * np.pi, n), rng.uniform(0.3, 0.7, n), rng.uniform(0.05, 0.1, n)], 1)
    else:
        spikes = np.zeros((0, 3))
    n_calc = int(rng.integers(3, 12)) if rng.random() < calc_p else 0
    halo = rng.uniform(1.5, 3.0) if (organ == "breast" and rng.random() < 0.4) else 0.0
    return LesionShape(True, kind, semi, rng.uniform(1.0, 1.6), angle, harm, spikes,
                       echo=rng.uniform(0.02, 0.07), texture=0.6, atten_mult=rng.uniform(1.5, 2.6),
                       halo=halo, halo_echo=1.9, n_calc=n_calc)


def second_view(rng: np.random.Generator, shape: LesionShape) -> LesionShape:
    """The same lesion seen in another image of the patient: slightly rotated, resized."""
    return replace(shape, angle=shape.angle + rng.uniform(-0.15, 0.15),
                   semi_major=shape.semi_major * rng.uniform(0.85, 1.15))


def elliptic_radius(shape: LesionShape, h: int, w: int, cy: float, cx: float, scale: float) -> np.ndarray:
    """u = rho / R(theta) for every pixel [h, w]: u <= 1 inside the lesion boundary.

    Computed in a window around the lesion (margin for halo / soft edge); 1e3 elsewhere."""
    r_max = 1.0 + np.abs(shape.harmonics[:, 1]).sum() + np.abs(shape.spikes[:, 1]).sum()
    half = shape.semi_major * scale * r_max + shape.halo + 4.0
    y0, y1 = max(int(cy - half), 0), min(int(np.ceil(cy + half)) + 1, h)
    x0, x1 = max(int(cx - half), 0), min(int(np.ceil(cx + half)) + 1, w)
    out = np.full((h, w), 1e3)
    if y1 <= y0 or x1 <= x0:
        return out
    dy = (np.arange(y0, y1, dtype=np.float64) + 0.5 - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float64) + 0.5 - cx)[None, :]
    c, s = np.cos(shape.angle), np.sin(shape.angle)
    xr, yr = c * dx + s * dy, -s * dx + c * dy
    a = shape.semi_major * scale if shape.ratio <= 1 else shape.semi_major * scale / shape.ratio
    b = a * shape.ratio
    ex, ey = xr / a, yr / b
    rho, theta = np.hypot(ex, ey), np.arctan2(ey, ex)
    out[y0:y1, x0:x1] = rho / boundary_radius(shape, theta)
    return out


def boundary_radius(shape: LesionShape, theta: np.ndarray) -> np.ndarray:
    """R(theta) of the margin (harmonics + spikes, floored at 0.2), same shape as theta."""
    radius = np.ones_like(theta)
    for order, amp, phase in shape.harmonics:
        radius += amp * np.cos(order * theta + phase)
    for t0, amp, width in shape.spikes:
        d = (theta - t0 + np.pi) % (2 * np.pi) - np.pi
        radius += amp * np.exp(-0.5 * (d / width) ** 2)
    return np.maximum(radius, 0.2)


def shape_box(shape: LesionShape, n: int = 360) -> tuple[float, float]:
    """(width, height) of the bounding box of `shape` at scale 1, in its own units."""
    theta = np.linspace(-np.pi, np.pi, n, endpoint=False)
    radius = boundary_radius(shape, theta)
    a = shape.semi_major if shape.ratio <= 1 else shape.semi_major / shape.ratio
    x, y = a * radius * np.cos(theta), a * shape.ratio * radius * np.sin(theta)
    c, s = np.cos(shape.angle), np.sin(shape.angle)
    return float(np.ptp(c * x - s * y)), float(np.ptp(s * x + c * y))


def rasterize(lesion: Lesion, h: int, w: int) -> np.ndarray:
    """Fill and return lesion.mask [h, w] bool."""
    lesion.mask = elliptic_radius(lesion.shape, h, w, lesion.cy, lesion.cx, lesion.scale) <= 1.0
    return lesion.mask


def apply_lesion(rng: np.random.Generator, tissue: TissueMap, lesion: Lesion) -> list[tuple[int, int, float]]:
    """Imprint the lesion on tissue.echo / tissue.atten (in place); return calcification points
    as (row, col, amplitude)."""
    sh = lesion.shape
    h, w = tissue.echo.shape
    u = elliptic_radius(sh, h, w, lesion.cy, lesion.cx, lesion.scale)
    inside = u <= 1.0
    lesion.mask = inside
    r_px = max(sh.semi_major * lesion.scale, 1.0)
    dist = (u - 1.0) * r_px                                    # ~ signed distance to the margin (px)
    soft = 0.5 if not sh.malignant else 0.9
    weight = np.clip(0.5 - dist / (2 * soft), 0.0, 1.0)
    tex = np.exp(sh.texture * smooth_field(rng, (h, w), (1.2, 1.5))) if sh.texture > 0 else 1.0
    if sh.kind == "iso_halo":                                  # follows the tissue texture
        local = tissue.echo
    else:                                                      # echo is relative to the surrounding tissue
        around = (u > 1.0) & (u < 1.6)
        local = float(np.median(tissue.echo[around])) if around.any() else 1.0
    target = sh.echo * tex * local
    echo = tissue.echo * (1 - weight) + target * weight
    if sh.halo > 0:
        ring = (dist > 0) & (dist < sh.halo)
        echo = np.where(ring, echo * sh.halo_echo, echo)
    if sh.kind == "cyst":                                      # bright back wall of a cyst
        back = (dist > -0.5) & (dist < 1.2) & (np.arange(h)[:, None] > lesion.cy)
        echo = np.where(back, echo * 1.6 + 0.3, echo)
    tissue.echo[...] = echo
    atten = np.where(inside, tissue.atten * sh.atten_mult, tissue.atten)
    if not sh.malignant and sh.kind in ("cyst", "solid"):      # refraction: lateral edge shadows
        gy, gx = np.gradient(u)
        steep = np.abs(gx) > 0.93 * np.hypot(gx, gy)
        atten = np.where((np.abs(dist) < 1.0) & steep, atten * EDGE_SHADOW_MULT, atten)
    tissue.atten[...] = atten
    points: list[tuple[int, int, float]] = []
    if sh.n_calc:
        ys, xs = np.nonzero(u <= 0.8)
        if ys.size:
            pick = rng.choice(ys.size, size=min(sh.n_calc, ys.size), replace=False)
            amps = rng.uniform(5.0, 12.0, pick.size)
            points = [(int(ys[i]), int(xs[i]), float(a)) for i, a in zip(pick, amps)]
    return points


def place_lesions(rng: np.random.Generator, tissue: TissueMap, shapes: list[LesionShape],
                  tries: int = 30) -> list[Lesion]:
    """Place each shape at an allowed centre without touching earlier lesions or the edges;
    centres are drawn where the shape's box fits, and the shape shrinks (x0.85) only after 5
    failed tries at one size."""
    h, w = tissue.echo.shape
    allowed = np.flatnonzero(tissue.allowed.ravel())
    if allowed.size == 0:
        allowed = np.arange(h * w)
    placed: list[Lesion] = []
    occupied = np.zeros((h, w), dtype=bool)
    for shape in shapes:
        scale = 1.0
        bw, bh = shape_box(shape)
        for attempt in range(tries):
            if attempt % 5 == 0:          # centres where the whole box fits (no bias towards small lesions)
                ys, xs = np.divmod(allowed, w)
                fit = ((xs >= 0.5 * bw * scale + 2) & (xs <= w - 0.5 * bw * scale - 3)
                       & (ys >= 0.5 * bh * scale + 2) & (ys <= h - 0.5 * bh * scale - 3))
                cand = allowed[fit] if fit.any() else allowed
            idx = int(cand[rng.integers(cand.size)])
            les = Lesion(shape=shape, cy=idx // w + 0.5, cx=idx % w + 0.5, scale=scale)
            mask = rasterize(les, h, w)
            ys, xs = np.nonzero(mask)
            ok = ys.size >= 6 and ys.min() >= 2 and xs.min() >= 2 and ys.max() <= h - 3 and xs.max() <= w - 3
            if ok and not (occupied & mask).any():
                placed.append(les)
                occupied |= binary_dilation(mask, iterations=3)
                break
            if attempt % 5 == 4:
                scale *= 0.85
    return placed
