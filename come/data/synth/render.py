"""Render one synthetic ultrasound image with its per-lesion masks.

Pipeline (beam space, then image space): tissue maps -> lesions imprinted (echo, attenuation,
calcifications) -> scatterers -> PSF/RF -> envelope with attenuation, noise, TGC -> log
compression + display low-pass -> scan conversion (linear / fan) -> speckle-reduction
smoothing -> 8-bit (-> JPEG round trip for video sources) -> black frame -> overlays (text,
ruler, focus marker, calipers).
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image
from scipy import ndimage

from come.data.coco import bbox_from_mask

from . import overlays
from .geometry import beam_grid_size, fan_params, frame_pads, pad_frame, scan_geometry
from .lesions import LesionShape, apply_lesion, place_lesions
from .physics import beamform, envelope_db, log_compress, scatterer_field, to_uint8
from .profiles import SourceProfile
from .tissue import build_tissue


GAIN_JITTER_DB = 2.0  # per-image operator gain / TGC adjustment
LESION_DEPTH = 0.4    # typical lesion depth (fraction of the scan depth): fan lateral scale for lesion sizes
DISPLAY_SIGMA = 0.6   # display-resampling low-pass on the log image (beam px): no 1-px speckle holes


@dataclass
class SynthSample:
    """image uint8 [H, W]; masks: one bool [H, W] per lesion; shapes: their LesionShape."""
    image: np.ndarray
    masks: list[np.ndarray]
    shapes: list[LesionShape]
    pathology: str
    scan_box: tuple[int, int, int, int] = (0, 0, 0, 0)    # x0, y0, x1, y1 of the scanned area

    @property
    def union_mask(self) -> np.ndarray:
        out = np.zeros(self.image.shape, dtype=bool)
        for m in self.masks:
            out |= m
        return out


@dataclass
class StageTimer:
    """Accumulated CPU seconds of this process per pipeline stage (cheap; used by the benchmark;
    CPU time so that figures stay meaningful on a shared machine)."""
    totals: dict[str, float] = field(default_factory=dict)
    _t: float = 0.0

    def start(self) -> None:
        self._t = time.process_time()

    def lap(self, name: str) -> None:
        now = time.process_time()
        self.totals[name] = self.totals.get(name, 0.0) + now - self._t
        self._t = now


def canvas_size(prof: SourceProfile, image_size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(H, W) of the whole canvas: longest side = image_size, per-source aspect, jitter."""
    if prof.aspect <= 1.0:
        h, w = image_size * prof.aspect, float(image_size)
    else:
        h, w = float(image_size), image_size / prof.aspect
    if prof.size_jitter > 0:
        h *= 1.0 + rng.uniform(-prof.size_jitter, prof.size_jitter)
        w *= 1.0 + rng.uniform(-prof.size_jitter, prof.size_jitter)
    return max(32, int(round(h))), max(32, int(round(w)))


def nominal_geometry(prof: SourceProfile, image_size: int) -> tuple[int, int, float, float, float]:
    """(canvas H, canvas W, beam rows per image px, beam columns per image px, beam px per
    100-px lesion unit) of the source without per-image jitter (side bar at its mean width)."""
    ch, cw = canvas_size(replace(prof, size_jitter=0.0), image_size, np.random.default_rng(0))
    t, b, l, r = (int(round(f * s)) for f, s in zip(prof.frame, (ch, ch, cw, cw)))
    r += int(round(prof.side_bar * cw))
    sh, sw = ch - t - b, cw - l - r
    hb, wb = beam_grid_size(prof, sh, sw)
    per_x = wb / sw
    if prof.probe != "linear":               # a beam column spans r * dphi: px per column at the lesions' depth
        r0, depth, theta = fan_params(prof, sh, sw)
        per_x = wb / (2.0 * theta * (r0 + LESION_DEPTH * depth))
    return ch, cw, hb / sh, per_x, min(hb, wb) / 100.0


def render_image(prof: SourceProfile, image_size: int, shapes: list[LesionShape], pathology: str,
                 rng: np.random.Generator, timer: StageTimer | None = None) -> SynthSample:
    """Render one image of source `prof` with the given lesion shapes (sizes in px per 100 px
    of the beam grid's shorter side; rescaled here). Returns image [H, W] uint8 + masks."""
    timer = timer or StageTimer()
    timer.start()
    prof = replace(prof, gain_db=prof.gain_db + rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB),
                   tgc_error_db=prof.tgc_error_db + rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB))
    ch, cw = canvas_size(prof, image_size, rng)
    pads = frame_pads(prof, rng, ch, cw)
    sh, sw = ch - pads[0] - pads[1], cw - pads[2] - pads[3]
    hb, wb = beam_grid_size(prof, sh, sw)
    tissue = build_tissue(prof.organ, rng, hb, wb, prof.atten_db / hb)
    timer.lap("tissue")

    px_scale = min(hb, wb) / 100.0
    scaled = [_rescale(s, px_scale * prof.lesion_scale) for s in shapes]
    lesions = place_lesions(rng, tissue, scaled)
    points: list[tuple[int, int, float]] = []
    for les in lesions:
        points += apply_lesion(rng, tissue, les)
    timer.lap("lesions")

    field_ = scatterer_field(rng, tissue.echo, prof.density, prof.carrier / prof.resolution, points)
    timer.lap("scatterers")
    rf = beamform(field_, prof, prof.resolution)
    timer.lap("psf_rf")
    env = envelope_db(rng, rf, tissue.atten, prof, prof.density, prof.resolution)
    disp = ndimage.gaussian_filter(log_compress(env, prof), DISPLAY_SIGMA * prof.resolution)
    timer.lap("envelope_log")

    geo = scan_geometry(prof, sh, sw, hb, wb)
    img = geo.convert(disp, order=1)
    masks = [geo.convert(les.mask.astype(np.float64), order=0) > 0.5 for les in lesions]
    if prof.smoothing > 0:
        img = np.where(geo.valid, ndimage.gaussian_filter(img, prof.smoothing), 0.0)
    img8 = to_uint8(img)
    if prof.jpeg_quality > 0:
        img8 = np.where(geo.valid, jpeg_roundtrip(img8, prof.jpeg_quality), 0).astype(np.uint8)
    img8 = pad_frame(img8, pads)
    masks = [pad_frame(m, pads) for m in masks]
    timer.lap("scan_convert")

    _draw_overlays(prof, img8, masks, pads, (sh, sw), rng)
    timer.lap("overlays")
    keep = [i for i, m in enumerate(masks) if m.any()]
    x0, y0 = pads[2], pads[0]
    return SynthSample(image=img8, masks=[masks[i] for i in keep], shapes=[lesions[i].shape for i in keep],
                       pathology=pathology if keep else "normal", scan_box=(x0, y0, x0 + sw, y0 + sh))


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Lossy JPEG encode + decode of a uint8 [H, W] image (video-frame blocking artefacts)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def _rescale(shape: LesionShape, factor: float) -> LesionShape:
    """The shape with its size (and halo, less strongly) multiplied by `factor`."""
    return replace(shape, semi_major=shape.semi_major * factor,
                   halo=shape.halo * max(factor, 0.6))


def _draw_overlays(prof: SourceProfile, img: np.ndarray, masks: list[np.ndarray],
                   pads: tuple[int, int, int, int], scan_hw: tuple[int, int], rng: np.random.Generator) -> None:
    """Text (label + displayed depth), depth ruler with focus marker, and calipers, drawn in place
    on the uint8 canvas."""
    h, w = img.shape
    t, b, l, r = pads
    sh, sw = scan_hw
    scale = max(1, int(round(h / 200)))
    depth_cm = rng.uniform(2.5, 5.5)                      # displayed depth; ruler ticks every cm
    if prof.text and prof.label_text:
        words = list(prof.label_text)
        first = words[int(rng.integers(len(words)))]
        ty = 1 if t < 6 * scale else max(1, (t - 5 * scale) // 2)
        draw_x = l + 2 if prof.probe == "linear" else 1
        overlays.draw_text(img, ty, draw_x, first, value=int(rng.integers(170, 235)), scale=scale)
        depth = f"{depth_cm:.1f}CM"
        bx = w - r - (4 * len(depth)) * scale - 1 if prof.probe == "linear" else w - (4 * len(depth)) * scale - 1
        if r > 4 * len(depth) * scale + 2:
            bx = w - r + 1
        overlays.draw_text(img, h - 5 * scale - 1, bx, depth, value=200, scale=scale)
    if prof.ruler:
        x = l + 1 if prof.ruler == "left" else l + sw - 2
        overlays.draw_ruler(img, t + 1, t + 1 + (sh - 3) / depth_cm * int(depth_cm), x, prof.ruler,
                            int(depth_cm))
        fy = t + int(round(prof.focus_depth * sh))
        overlays.draw_marker(img, fy, x + (4 if prof.ruler == "left" else -4), prof.ruler, scale)
    for m in masks:
        if m.any() and rng.random() < prof.caliper_prob:
            x0, y0, bw, bh = bbox_from_mask(m)
            overlays.draw_calipers(img, rng, (int(x0), int(y0), int(x0 + bw - 1), int(y0 + bh - 1)), arm=scale)
