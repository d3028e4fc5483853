"""Image formation: scatterers -> PSF -> complex RF -> envelope -> attenuation/TGC -> log image.

Scatterers are drawn at uniform random (sub-pixel) positions; their density follows the
echogenicity where it is low (thinning: sparse echoes in fluid-like regions, none in a cyst) and
their Gaussian amplitudes carry the rest, each with the two-way carrier phase of its exact
depth. They are summed on the beam grid and convolved with the PSF in its demodulated (IQ,
analytic) form: the pulse is a Gaussian-modulated cosine axially and a Gaussian laterally, and
after demodulation at the centre frequency only the Gaussian envelope (plus the carrier phase
carried by each scatterer) remains; the lateral width grows away from the focal depth
(blended over depth bands).
The envelope |RF| then has Rayleigh-like speckle. Attenuation is the cumulative two-way loss
along each scan line, receiver noise is added after it, time-gain compensation restores the
nominal tissue loss, and the result is log-compressed over the source's dynamic range.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import fftconvolve

from .profiles import SourceProfile

LOW_ECHO = 0.15   # below this echogenicity scatterers thin out (full density above)


def psf_kernel(sigma_axial: float, sigma_lateral: float, offset: float = 0.0) -> np.ndarray:
    """IQ PSF [ky, kx], sum |h|^2 = 1: exp(-y^2/2sa^2 - x^2/2sl^2) exp(i 2 pi offset y).

    The RF pulse env * cos(2 pi f y) demodulated at f' has this form with offset = f - f'
    (0 = demodulated exactly at the centre frequency)."""
    ry = max(1, int(np.ceil(3 * sigma_axial)))
    rx = max(1, int(np.ceil(3 * sigma_lateral)))
    y = np.arange(-ry, ry + 1, dtype=np.float64)[:, None]
    x = np.arange(-rx, rx + 1, dtype=np.float64)[None, :]
    env = np.exp(-0.5 * (y / sigma_axial) ** 2 - 0.5 * (x / sigma_lateral) ** 2)
    h = env * np.exp(2j * np.pi * offset * y)
    return h / np.sqrt(np.sum(np.abs(h) ** 2))


def scatterer_field(rng: np.random.Generator, echo: np.ndarray, density: float, carrier: float,
                    points: list[tuple[int, int, float]] = ()) -> np.ndarray:
    """Complex scatterer map [H, W]: random positions/amplitudes, density ~ echogenicity.

    E|field|^2 per pixel = density * echo (so the envelope power follows the echo map).
    """
    h, w = echo.shape
    n = int(rng.poisson(density * h * w))
    flat = rng.integers(0, h * w, size=n)                    # pixel of each scatterer
    sub = rng.random(n, dtype=np.float32)                    # its sub-pixel depth
    e = echo.ravel()[flat]
    p_keep = np.minimum(e / LOW_ECHO, 1.0)                   # thinning: sparse in dark regions
    keep = rng.random(n, dtype=np.float32) < p_keep
    flat, sub, e, p_keep = flat[keep], sub[keep], e[keep], p_keep[keep]
    amp = rng.standard_normal(flat.size, dtype=np.float32) * np.sqrt(e / p_keep)  # E|f|^2 = density * echo
    depth = (flat // w).astype(np.float32) + sub
    phase = (-2 * np.pi * carrier) * depth                    # two-way carrier phase at the exact depth
    re = np.bincount(flat, weights=amp * np.cos(phase), minlength=h * w)
    im = np.bincount(flat, weights=amp * np.sin(phase), minlength=h * w)
    field = (re + 1j * im).reshape(h, w)
    for r, c, a in points:                                   # microcalcifications: strong points
        field[r, c] += a * np.sqrt(density) * np.exp(2j * np.pi * rng.random())
    return field


def beamform(field: np.ndarray, prof: SourceProfile, res: float = 1.0) -> np.ndarray:
    """Complex RF [H, W]: the field convolved with a depth-dependent PSF (3 bands blended)."""
    h = field.shape[0]
    depths = np.array([0.1, prof.focus_depth, 0.9])
    z = (np.arange(h) + 0.5) / h
    rf_bands = []
    for d in depths:
        widen = np.sqrt(1.0 + ((d - prof.focus_depth) / 0.3) ** 2)
        k = psf_kernel(prof.psf_axial * res, prof.psf_lateral * res * widen)
        rf_bands.append(fftconvolve(field, k, mode="same"))
    wts = np.stack([np.interp(z, depths, np.eye(3)[i]) for i in range(3)])   # [3, H] hat functions
    return sum(rf * wts[i][:, None] for i, rf in enumerate(rf_bands))


def envelope_db(rng: np.random.Generator, rf: np.ndarray, atten: np.ndarray, prof: SourceProfile,
                density: float, res: float = 1.0) -> np.ndarray:
    """Attenuation (cumulative along each line, spread over the beam width), receiver noise,
    TGC and gain -> envelope in dB re. echo-1 tissue [H, W]."""
    h = rf.shape[0]
    loss_db = np.cumsum(atten, axis=0) - 0.5 * atten          # two-way loss down to each sample
    loss_db = gaussian_filter1d(loss_db, prof.psf_lateral * res, axis=1, mode="nearest")  # beam width
    rf = rf * 10.0 ** (-loss_db / 20.0) / np.sqrt(density)
    sigma = 10.0 ** (prof.noise_db / 20.0) / np.sqrt(2.0)
    rf = rf + sigma * (rng.standard_normal(rf.shape) + 1j * rng.standard_normal(rf.shape))
    env = np.abs(rf)
    z = (np.arange(h) + 0.5) / h
    tgc_db = prof.atten_db * z + prof.tgc_error_db * (z - 0.5) + prof.gain_db
    return 20.0 * np.log10(env + 1e-9) + tgc_db[:, None]


def log_compress(env_db: np.ndarray, prof: SourceProfile) -> np.ndarray:
    """Map dB to display [0, 1]: echo-1 tissue lands at ~62 % of the dynamic range."""
    v = (env_db + 0.62 * prof.dynamic_range_db) / prof.dynamic_range_db
    return np.clip(v, 0.0, 1.0) ** prof.gamma


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 (rounded)."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
