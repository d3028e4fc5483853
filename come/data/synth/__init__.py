"""Embedded, physically motivated synthetic ultrasound benchmark (`come synth`).

Eight heterogeneous sources stand in for BUSI, BUV, BUSBRA, BUSC (breast) and DDTI, TUD, TUS,
TNSCUI (thyroid). Modules: `profiles` (per-source scanner settings), `tissue` (echogenicity and
attenuation maps), `lesions` (BI-RADS / TI-RADS shapes and signatures), `physics` (scatterers,
PSF, RF, envelope, TGC, log compression), `geometry` (linear / fan scan conversion, frame),
`overlays` (text, ruler, calipers), `render` (one image), `generate` (seeded plans per source),
`contact_sheet`, `writer` (files + COCO).
"""
from .generate import iter_source, plan_source, render_planned
from .profiles import PROFILES, SourceProfile, get_profile
from .render import StageTimer, SynthSample, render_image
from .writer import generate, write_source

__all__ = ["PROFILES", "SourceProfile", "StageTimer", "SynthSample", "generate", "get_profile",
           "iter_source", "plan_source", "render_image", "render_planned", "write_source"]
