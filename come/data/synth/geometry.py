"""Probe geometry: beam space (depth x scan line) -> image space, and the black frame.

Linear probe: a rectangular scan (a plain resample when the beam grid is coarser, e.g. video
frames). Convex / sector probe: polar scan conversion around a virtual apex above the skin,
black outside the fan.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .profiles import SourceProfile


@dataclass
class ScanGeometry:
    """Beam-space sampling coordinates for every image pixel: rows/cols [H, W], valid [H, W]."""
    rows: np.ndarray
    cols: np.ndarray
    valid: np.ndarray

    def convert(self, beam: np.ndarray, order: int = 1, fill: float = 0.0) -> np.ndarray:
        """Resample a beam-space map [Hb, Wb] onto the image grid [H, W] (fill outside the fan)."""
        out = ndimage.map_coordinates(beam, [self.rows, self.cols], order=order, mode="nearest")
        return np.where(self.valid, out, fill)


def fan_params(prof: SourceProfile, h: int, w: int) -> tuple[float, float, float]:
    """(apex distance r0, depth, half angle theta) of a fan that fits an image [h, w]."""
    depth = float(h)
    r0 = prof.apex_frac * depth
    theta = np.deg2rad(prof.fan_angle_deg)
    theta = min(theta, 0.98 * np.arcsin(min(1.0, w / (2.0 * (r0 + depth)))))
    return r0, depth, float(theta)


def beam_grid_size(prof: SourceProfile, h: int, w: int) -> tuple[int, int]:
    """Beam grid (depth samples, scan lines) for an image [h, w]: square pixels for a linear
    probe, square at mid-depth for a fan; scaled by the profile's resolution."""
    if prof.probe == "linear":
        hb, wb = h, w
    else:
        r0, depth, theta = fan_params(prof, h, w)
        hb, wb = h, 2.0 * theta * (r0 + 0.5 * depth)
    return max(24, int(round(hb * prof.resolution))), max(24, int(round(wb * prof.resolution)))


def scan_geometry(prof: SourceProfile, h: int, w: int, hb: int, wb: int) -> ScanGeometry:
    """Image [h, w] <- beam grid [hb, wb] mapping for the profile's probe."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if prof.probe == "linear":
        rows = (yy + 0.5) * hb / h - 0.5
        cols = (xx + 0.5) * wb / w - 0.5
        return ScanGeometry(rows, cols, np.ones((h, w), dtype=bool))
    if prof.probe not in ("convex", "sector"):
        raise ValueError(f"synth profile {prof.name}: unknown probe {prof.probe!r}")
    r0, depth, theta = fan_params(prof, h, w)
    dx = xx + 0.5 - w / 2.0
    dy = yy + 0.5 + r0
    r = np.hypot(dx, dy)
    phi = np.arctan2(dx, dy)
    rows = (r - r0) / depth * hb - 0.5
    cols = (phi + theta) / (2 * theta) * wb - 0.5
    valid = (r >= r0) & (r <= r0 + depth) & (np.abs(phi) <= theta)
    return ScanGeometry(rows, cols, valid)


def pad_frame(img: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Place img [h, w] in a black canvas with (top, bottom, left, right) pads."""
    t, b, l, r = pads
    return np.pad(img, ((t, b), (l, r)), mode="constant", constant_values=0)


def frame_pads(prof: SourceProfile, rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    """Black pads (top, bottom, left, right) in px for a canvas of [h, w]."""
    t, b, l, r = (int(round(f * s)) for f, s in zip(prof.frame, (h, h, w, w)))
    if prof.side_bar > 0:
        r += int(round(prof.side_bar * w * rng.uniform(0.6, 1.4)))
    return t, b, l, r
