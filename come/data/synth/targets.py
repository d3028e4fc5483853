"""Lesion size, aspect and displayed contrast drawn from the real reference (calibration).

The synthetic sources were first tuned by eye; measured against real data
(`benchmarks/calibrate_synth.py`: BUS-BRA for breast, the DDTI crops for thyroid) their lesions
were too small and too isotropic, their contrast spread too wide (anechoic cysts at -14 dB) and
their speckle too grainy. Rather than per-source constants, each lesion now draws its targets by
inverse-CDF sampling of the organ's real quantiles (`reference_stats.json`, 201 quantiles per
statistic):
- size: relative side sqrt(box_w_rel * box_h_rel) at quantile u ~ U(0, 1) (the second lesion of
  an image at u / 2), converted to pixels of the source's nominal canvas and then multiplied by
  the source's `lesion_scale` (its field of view relative to the reference collection);
- aspect: log(box h / w) at u ~ Beta(2, 1) for malignant, Beta(1, 2) for benign lesions (the
  50/50 mixture is exactly U(0, 1), so the pooled aspect follows the reference while malignant
  lesions stay more often taller-than-wide);
- contrast: the displayed lesion/ring contrast (dB of gray level) at u ~ Beta(1, 2) for
  malignant (darker), Beta(2, 1) for benign, U(0, 0.1) for cysts (darkest decile: anechoic
  but with clutter); `source_echo_for_contrast` turns it into an echogenicity relative to the
  surrounding tissue through the source's own image chain (`display_curve`: dynamic range, gray
  map, noise floor and the darker log-mean of sparse scatterers).
`fit_shape` then scales the sampled shape (harmonics, spikes and rotation included) so that its
bounding box has the target width and height. Nothing here looks at the rendered image: the
measurement (`calibration.py`) stays independent of the generator.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .lesions import LesionShape, shape_box
from .profiles import SourceProfile

REFERENCE_FILE = Path(__file__).with_name("reference_stats.json")
QUANTILES = np.linspace(0.0, 1.0, 201)
SECOND_LESION_U = 0.5      # the second lesion of an image is drawn from the lower half of sizes
CYST_U = 0.1               # cysts: darkest decile of the reference contrast


@functools.lru_cache(maxsize=4)
def load_reference(path: Path = REFERENCE_FILE) -> dict[str, dict]:
    """organ -> reference entry (measured on real data by benchmarks/calibrate_synth.py)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: calibration reference missing (benchmarks/calibrate_synth.py writes it)")
    return json.loads(Path(path).read_text())["organs"]


def ref_quantile(organ: str, stat: str, u: float) -> float:
    """The organ's real `stat` at quantile u in [0, 1] (linear between stored quantiles)."""
    q = load_reference()[organ]["quantiles"]
    if stat == "side_rel":      # comonotone width and height: sqrt of the two quantile functions
        return float(np.sqrt(np.interp(u, QUANTILES, q["box_w_rel"]) * np.interp(u, QUANTILES, q["box_h_rel"])))
    return float(np.interp(u, QUANTILES, q[stat]))


@dataclass(frozen=True)
class LesionTarget:
    """What one lesion should measure: relative side, log(h / w) of its box, contrast (dB)."""
    side_rel: float
    aspect: float
    contrast_db: float


def draw_target(rng: np.random.Generator, organ: str, malignant: bool, kind: str, second: bool) -> LesionTarget:
    """Targets of one lesion from the organ's reference quantiles (see the module docstring)."""
    u_size = rng.uniform() * (SECOND_LESION_U if second else 1.0)
    u_aspect = rng.beta(2.0, 1.0) if malignant else rng.beta(1.0, 2.0)
    if kind == "cyst":
        u_contrast = rng.uniform(0.0, CYST_U)
    else:
        u_contrast = rng.beta(1.0, 2.0) if malignant else rng.beta(2.0, 1.0)
    return LesionTarget(ref_quantile(organ, "side_rel", u_size), ref_quantile(organ, "box_aspect", u_aspect),
                        ref_quantile(organ, "contrast_db", u_contrast))


def echo_for_contrast(contrast_db: float, dynamic_range_db: float, gamma: float, tissue_level: float = 0.62) -> float:
    """Echogenicity (backscatter power relative to the surrounding tissue) whose displayed gray
    level is `contrast_db` (20 log10 gray ratio) from tissue shown at `tissue_level` of the
    dynamic range, for the noiseless display map alone (physics.log_compress: gray = v ** gamma,
    v = (dB + 0.62 DR) / DR). `source_echo_for_contrast` adds the speckle statistics."""
    gray_tissue = tissue_level ** gamma
    gray_lesion = gray_tissue * 10.0 ** (contrast_db / 20.0)
    v = min(gray_lesion, 1.0) ** (1.0 / gamma)
    return float(10.0 ** ((v - tissue_level) * dynamic_range_db / 10.0))


CURVE_ECHO = np.logspace(-3.0, 0.6, 19)      # echo levels of the simulated display curve
CURVE_SIZE = 48                              # px of each simulated homogeneous patch


@functools.lru_cache(maxsize=16)
def display_curve(prof: SourceProfile) -> np.ndarray:
    """Mean displayed gray [len(CURVE_ECHO)] of homogeneous patches of each echo level through
    the source's own image chain (scatterers, PSF, attenuation + TGC, noise, log compression,
    display low-pass; seeded). Low echoes are darker than the display map alone predicts:
    sparse scatterers and the noise floor change the mean of the log envelope."""
    from scipy.ndimage import gaussian_filter

    from .physics import beamform, envelope_db, log_compress, scatterer_field
    from .render import DISPLAY_SIGMA
    rng = np.random.default_rng(0)
    n, res = CURVE_SIZE, prof.resolution
    atten = np.full((n, n), prof.atten_db / n)
    out = []
    for e in CURVE_ECHO:
        field = scatterer_field(rng, np.full((n, n), e), prof.density, prof.carrier / res)
        env = envelope_db(rng, beamform(field, prof, res), atten, prof, prof.density, res)
        out.append(gaussian_filter(log_compress(env, prof), DISPLAY_SIGMA * res)[4:-4, 4:-4].mean())
    return np.maximum.accumulate(np.asarray(out))


def source_echo_for_contrast(prof: SourceProfile, contrast_db: float) -> float:
    """Echogenicity relative to echo-1 tissue displayed `contrast_db` darker/brighter in source
    `prof` (inverse of `display_curve`, log-linear between its levels)."""
    g = display_curve(prof)
    target = float(np.interp(1.0, CURVE_ECHO, g)) * 10.0 ** (contrast_db / 20.0)
    return float(10.0 ** np.interp(target, g, np.log10(CURVE_ECHO)))


def fit_shape(shape: LesionShape, box_w: float, box_h: float, iters: int = 6) -> LesionShape:
    """`shape` with semi_major and ratio set so that its bounding box is (box_w, box_h)."""
    out = shape
    for _ in range(iters):
        bw, bh = shape_box(out)
        ratio = float(np.clip(out.ratio * (box_h / box_w) / (bh / bw), 0.15, 6.0))
        out = replace(out, ratio=ratio)
        bw, _ = shape_box(out)
        out = replace(out, semi_major=out.semi_major * box_w / bw)
    return out
