"""Plan and render a whole synthetic source, deterministically from (seed, source name).

Every source gets its own seed sequence derived from cfg.synth.seed and a CRC32 of the source
name; every image and every patient its own child seed, so image k of a source does not depend
on how many images are requested. A share cfg.second_view_prob of patients have a second image
(same pathology and lesions, seen again with another speckle/tissue realisation), so `group_id`
matters for splits.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from come.config.schema import SynthConfig

from .lesions import LesionShape, sample_shape, second_view
from .profiles import get_profile
from .render import StageTimer, SynthSample, render_image

LESION_SIZE_PER_100PX = {"breast": 14.0, "thyroid": 14.0}   # typical semi-major axis per 100 px


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
    """The patient's lesion shapes (shared by both of its images), in 100-px units."""
    prof = get_profile(name)
    rng = rng_for(cfg.seed, name, 2, plan.patient)
    size = LESION_SIZE_PER_100PX[prof.organ]
    shapes = []
    for k in range(plan.n_lesions):
        s = sample_shape(rng, prof.organ, plan.pathology == "malignant", size * (1.0 if k == 0 else 0.7))
        shapes.append(s)
    if plan.view == 1:
        vrng = rng_for(cfg.seed, name, 3, plan.patient)
        shapes = [second_view(vrng, s) for s in shapes]
    return shapes


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
