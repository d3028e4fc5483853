"""Plan and render a whole synthetic source, deterministically from (seed, source name).

Every source gets its own seed sequence derived from cfg.synth.seed and a CRC32 of the source
name; every image and every patient its own child seed, so image k of a source does not depend
on how many images are requested. A share cfg.second_view_prob of patients have a second image
(same pathology and lesions, seen again with another speckle/tissue realisation), so `group_id`
matters for splits.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from come.config.schema import SynthConfig

from .lesions import LesionShape, sample_shape, second_view
from .profiles import SourceProfile, get_profile
from .render import StageTimer, SynthSample, nominal_geometry, render_image
from .targets import draw_target, fit_shape, source_echo_for_contrast

LESION_SIZE_PER_100PX = {"breast": 14.0, "thyroid": 14.0}   # draft size; fit_shape sets the real one


@dataclass
class ImagePlan:
    """What image `index` of a source shows: its patient, pathology and lesion count."""
    index: int
    patient: int
    pathology: str            # benign | malignant | normal
    n_lesions: int
    view: int                 # 0 = first image of the patient, 1 = second


def source_key(name: str) -> int:
    """Stable 32-bit key of a source name (CRC32; Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def rng_for(seed: int, name: str, *path: int) -> np.random.Generator:
    """Generator for (seed, source, path...) -- independent streams per image / patient."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), source_key(name), *path]))


def plan_source(cfg: SynthConfig, name: str, n_images: int | None = None) -> list[ImagePlan]:
    """Patient / pathology / lesion-count plan of the source's images, in order."""
    n = cfg.images_per_source if n_images is None else n_images
    rng = rng_for(cfg.seed, name, 0)
    plans: list[ImagePlan] = []
    patient, view = -1, 1
    for i in range(n):
        if view == 0 and rng.random() < cfg.second_view_prob:
            prev = plans[-1]
            plans.append(ImagePlan(i, prev.patient, prev.pathology, prev.n_lesions, 1))
            view = 1
            continue
        patient, view = patient + 1, 0
        if rng.random() < cfg.empty_prob:
            plans.append(ImagePlan(i, patient, "normal", 0, 0))
            continue
        pathology = "malignant" if rng.random() < cfg.malignant_prob else "benign"
        n_les = 2 if rng.random() < cfg.two_lesion_prob else 1
        plans.append(ImagePlan(i, patient, pathology, n_les, 0))
    return plans


def patient_shapes(cfg: SynthConfig, name: str, plan: ImagePlan) -> list[LesionShape]:
    """The patient's lesion shapes (shared by both of its images), in 100-px units: kind and
    margin from `sample_shape`, box size / aspect / contrast from the real reference
    (`targets.draw_target`, own random stream)."""
    prof = get_profile(name)
    rng = rng_for(cfg.seed, name, 2, plan.patient)
    trng = rng_for(cfg.seed, name, 4, plan.patient)
    size = LESION_SIZE_PER_100PX[prof.organ]
    malignant = plan.pathology == "malignant"
    shapes = []
    for k in range(plan.n_lesions):
        s = sample_shape(rng, prof.organ, malignant, size * (1.0 if k == 0 else 0.7))
        shapes.append(calibrated_shape(trng, prof, cfg.image_size, s, second=k > 0))
    if plan.view == 1:
        vrng = rng_for(cfg.seed, name, 3, plan.patient)
        shapes = [second_view(vrng, s) for s in shapes]
    return shapes


def calibrated_shape(rng: np.random.Generator, prof: SourceProfile, image_size: int, shape: LesionShape,
                     second: bool = False) -> LesionShape:
    """`shape` resized (box width / height, 100-px units of the nominal beam grid) and given the
    echogenicity of a lesion target drawn from the organ's real reference."""
    t = draw_target(rng, prof.organ, shape.malignant, shape.kind, second)
    ch, cw, beam_per_img_y, beam_per_img_x, unit = nominal_geometry(prof, image_size)
    side = t.side_rel * np.sqrt(ch * cw)
    box_w = side * np.exp(-0.5 * t.aspect) * beam_per_img_x / unit
    box_h = side * np.exp(0.5 * t.aspect) * beam_per_img_y / unit
    fitted = fit_shape(shape, box_w, box_h)
    return replace(fitted, echo=source_echo_for_contrast(prof, t.contrast_db))


def render_planned(cfg: SynthConfig, name: str, plan: ImagePlan,
                   timer: StageTimer | None = None) -> SynthSample:
    """Render the image described by `plan`."""
    prof = get_profile(name)
    rng = rng_for(cfg.seed, name, 1, plan.index)
    return render_image(prof, cfg.image_size, patient_shapes(cfg, name, plan), plan.pathology, rng, timer)


def iter_source(cfg: SynthConfig, name: str, n_images: int | None = None,
                timer: StageTimer | None = None) -> Iterator[tuple[ImagePlan, SynthSample]]:
    """Yield (plan, sample) for every image of source `name`."""
    for plan in plan_source(cfg, name, n_images):
        yield plan, render_planned(cfg, name, plan, timer)
