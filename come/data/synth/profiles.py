"""Per-source scanner/protocol profiles of the synthetic stand-ins for the 8 paper datasets.

Each profile fixes what differs between the real collections: probe geometry (linear vs
convex/sector fan), point-spread function size, scatterer density, attenuation and TGC error,
displayed dynamic range and gain, electronic noise, image size/aspect, video-like softness,
speckle-reduction smoothing, the scanner overlays (text, ruler, depth marks, calipers, black
frame/side bar) and the lesion scale. Acquisition values are chosen to be plausible, not measured.
Calibration against real data (targets.py, calibration_before.json): lesion size / aspect /
contrast come from the real reference quantiles, so `lesion_scale` is now the source's field of
view relative to its reference collection (breast 0.9-1.1 of the BUS-BRA frames; DDTI 1.0, a
crop like the DDTI reference; TUD / TUS / TNSCUI 0.5-0.65: full frames, wider than the crops);
BUSBRA is portrait like the real BUS-BRA frames (median 286 x 383 px); the speckle-reduction
`smoothing` of the breast sources and TUD (0.6-0.8 px; DDTI 0.7 -> 1.0) brings the background
speckle SNR of 8x8 patches from 4-6 up toward the real 7.7.
"""
from __future__ import annotations

from dataclasses import dataclass

from come.config import ORGAN_OF


@dataclass(frozen=True)
class SourceProfile:
    """Acquisition and display settings of one synthetic source."""
    name: str
    organ: str
    probe: str = "linear"            # linear | convex | sector
    fan_angle_deg: float = 0.0       # half opening angle of a fan probe
    apex_frac: float = 0.0           # virtual apex distance above the skin / image depth
    aspect: float = 0.78             # height / width of the scanned area
    size_jitter: float = 0.0         # relative per-image jitter of width and height
    psf_axial: float = 0.7           # Gaussian sigma of the axial PSF envelope (px)
    psf_lateral: float = 1.4         # lateral sigma at the focus (px)
    focus_depth: float = 0.45        # focal depth (fraction of image depth)
    carrier: float = 3.0             # two-way carrier phase cycles per px of depth (~2 px / wavelength)
    density: float = 6.0             # scatterers per px at echogenicity 1
    atten_db: float = 30.0           # two-way tissue attenuation over the full depth (dB)
    tgc_error_db: float = 0.0        # residual TGC slope (dB over the depth; >0 = deep brighter)
    dynamic_range_db: float = 50.0   # displayed dynamic range
    gain_db: float = 0.0             # display gain offset
    noise_db: float = -48.0          # electronic noise level relative to tissue
    gamma: float = 1.0               # gray-map curve exponent
    resolution: float = 1.0          # <1: rendered coarser and upsampled (video frames)
    smoothing: float = 0.0           # speckle-reduction filter sigma (px, on the log image)
    jpeg_quality: int = 0            # >0: frames went through lossy (video/JPEG) compression
    frame: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)   # black pad top/bottom/left/right
    side_bar: float = 0.0            # extra black bar on the right (fraction of width), jittered
    text: bool = False               # scanner text labels
    ruler: str = ""                  # "" | "left" | "right": depth scale with tick marks
    caliper_prob: float = 0.0        # chance that a lesion carries "+" calipers
    lesion_scale: float = 1.0        # field of view vs the reference collection: multiplies lesion sizes
    label_text: tuple[str, ...] = ()  # words drawn by the text overlay


def _p(name: str, **kw) -> SourceProfile:
    return SourceProfile(name=name, organ=ORGAN_OF[name], **kw)


PROFILES: dict[str, SourceProfile] = {p.name: p for p in [
    # Breast
    _p("BUSI", probe="linear", aspect=0.80, size_jitter=0.08, psf_axial=0.7, psf_lateral=1.5,
       density=6.0, atten_db=32.0, tgc_error_db=4.0, dynamic_range_db=50.0, gain_db=1.0,
       noise_db=-48.0, gamma=1.0, smoothing=0.8, frame=(0.07, 0.04, 0.05, 0.05), text=True, ruler="right",
       caliper_prob=0.35, lesion_scale=1.0, label_text=("L BREAST", "12MHZ", "GN 52")),
    _p("BUV", probe="linear", aspect=0.62, size_jitter=0.0, psf_axial=1.0, psf_lateral=2.0,
       density=4.0, atten_db=36.0, tgc_error_db=-6.0, dynamic_range_db=38.0, gain_db=3.0,
       noise_db=-40.0, gamma=1.15, resolution=0.6, smoothing=0.6, jpeg_quality=35, lesion_scale=1.1),
    _p("BUSBRA", probe="linear", aspect=1.34, size_jitter=0.15, psf_axial=0.55, psf_lateral=1.1,
       density=10.0, atten_db=28.0, tgc_error_db=2.0, dynamic_range_db=56.0, gain_db=-2.0,
       noise_db=-52.0, gamma=0.9, smoothing=0.8, side_bar=0.16, text=True, caliper_prob=0.55, lesion_scale=1.0,
       label_text=("MAMA DIR", "QSE")),
    _p("BUSC", probe="convex", fan_angle_deg=28.0, apex_frac=1.1, aspect=0.85, size_jitter=0.05,
       psf_axial=0.9, psf_lateral=1.5, density=5.0, atten_db=34.0, tgc_error_db=0.0,
       dynamic_range_db=46.0, gain_db=2.0, noise_db=-46.0, gamma=1.2, smoothing=0.8, text=True, ruler="left",
       caliper_prob=0.2, lesion_scale=0.9, label_text=("BR", "C5-2")),
    # Thyroid
    _p("DDTI", probe="linear", aspect=1.0, size_jitter=0.0, psf_axial=0.8, psf_lateral=1.6,
       density=8.0, atten_db=30.0, tgc_error_db=-3.0, dynamic_range_db=44.0, gain_db=2.0,
       noise_db=-46.0, gamma=1.0, smoothing=1.0, lesion_scale=1.0),
    _p("TUD", probe="sector", fan_angle_deg=38.0, apex_frac=0.12, aspect=0.80, size_jitter=0.04,
       psf_axial=0.8, psf_lateral=1.3, density=6.0, atten_db=34.0, tgc_error_db=3.0,
       dynamic_range_db=52.0, gain_db=0.0, noise_db=-45.0, gamma=1.1, smoothing=0.6, text=True, ruler="right",
       caliper_prob=0.3, lesion_scale=0.5, label_text=("THY", "7.5MHZ")),
    _p("TUS", probe="linear", aspect=0.66, size_jitter=0.06, psf_axial=0.5, psf_lateral=1.0,
       density=12.0, atten_db=26.0, tgc_error_db=1.0, dynamic_range_db=60.0, gain_db=-3.0,
       noise_db=-54.0, gamma=0.85, frame=(0.10, 0.0, 0.0, 0.0), text=True, ruler="left",
       caliper_prob=0.4, lesion_scale=0.55, label_text=("THYROID", "R LOBE")),
    _p("TNSCUI", probe="linear", aspect=0.82, size_jitter=0.12, psf_axial=0.75, psf_lateral=1.7,
       density=7.0, atten_db=30.0, tgc_error_db=-2.0, dynamic_range_db=46.0, gain_db=3.0,
       noise_db=-46.0, gamma=1.05, smoothing=1.0, frame=(0.03, 0.03, 0.08, 0.0), text=True,
       caliper_prob=0.6, lesion_scale=0.65, label_text=("TRANS", "L")),
]}


def get_profile(name: str) -> SourceProfile:
    """The profile of dataset `name` (one of come.config.ALL_DATASETS)."""
    if name not in PROFILES:
        raise KeyError(f"no synthetic profile for dataset {name!r} (known: {sorted(PROFILES)})")
    return PROFILES[name]
