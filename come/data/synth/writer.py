"""Write the synthetic benchmark to disk in the project's data layout (docs/architecture.md).

    <out>/<DS>/images/<DS>_<nnnn>.png   grayscale 8-bit
    <out>/<DS>/masks/<DS>_<nnnn>.png    0/255, union of the image's lesions
    <out>/<DS>/annotations.json         COCO via come.data.coco.CocoBuilder
    <out>/synth_contact_sheet.png       rows = sources, boxes coloured by pathology
    <out>/synth_config.yaml             resolved config

PNGs are encoded by PIL without metadata, so the bytes depend only on the pixels.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from come.config import ORGAN_OF, Config, dump_config
from come.data.coco import CocoBuilder, bbox_from_mask, category_for
from come.utils.io import atomic_write_bytes

from .contact_sheet import SHEET_SAMPLES, make_contact_sheet
from .generate import iter_source
from .profiles import get_profile
from .render import StageTimer, SynthSample


def png_bytes(arr: np.ndarray) -> bytes:
    """Deterministic PNG encoding of a uint8 [H, W] array (no timestamps or text chunks)."""
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"png_bytes: expected uint8 [H, W] or [H, W, 3], got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def write_source(cfg: Config, name: str, out_root: Path, timer: StageTimer | None = None,
                 keep: int = SHEET_SAMPLES) -> tuple[Path, list[SynthSample]]:
    """Render and write every image of source `name`; return (annotations path, first samples)."""
    synth = cfg.synth
    prof = get_profile(name)
    builder = CocoBuilder(info={"description": f"COME-Repro synthetic stand-in for {name}",
                                "synthetic": True, "seed": synth.seed, "organ": ORGAN_OF[name],
                                "probe": prof.probe, "image_size": synth.image_size})
    kept: list[SynthSample] = []
    for plan, sample in iter_source(synth, name, timer=timer):
        if timer is not None:
            timer.start()
        stem = f"{name}_{plan.index + 1:04d}"
        img_rel, mask_rel = f"{name}/images/{stem}.png", f"{name}/masks/{stem}.png"
        atomic_write_bytes(out_root / img_rel, png_bytes(sample.image))
        atomic_write_bytes(out_root / mask_rel, png_bytes(sample.union_mask.astype(np.uint8) * 255))
        h, w = sample.image.shape
        image_id = builder.add_image(img_rel, w, h, source=name, organ=ORGAN_OF[name],
                                     pathology=sample.pathology, group_id=f"{name}_P{plan.patient:04d}",
                                     mask_file=mask_rel, probe=prof.probe)
        for mask, shape in zip(sample.masks, sample.shapes):
            bbox = bbox_from_mask(mask)
            builder.add_box(image_id, bbox, category_for(sample.pathology), lesion_kind=shape.kind)
        if timer is not None:
            timer.lap("write_png")
        if len(kept) < keep:
            kept.append(sample)
    if timer is not None:
        timer.start()
    _remove_stale(out_root / name, name, {Path(im["file_name"]).name for im in builder.images})
    path = builder.write(out_root / name / "annotations.json")
    if timer is not None:
        timer.lap("write_json")
    return path, kept


def _remove_stale(source_dir: Path, name: str, keep: set[str]) -> None:
    """Delete `<name>_nnnn.png` left by an earlier, larger run (only files of our own pattern)."""
    for sub in ("images", "masks"):
        for p in (source_dir / sub).glob(f"{name}_*.png"):
            if p.name not in keep and p.stem[len(name) + 1:].isdigit():
                p.unlink()


def generate(cfg: Config, out_root: str | Path, timer: StageTimer | None = None) -> dict[str, Path]:
    """Write every source of cfg.synth.sources, the contact sheet and the resolved config."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    sheet_rows: list[tuple[str, list[SynthSample]]] = []
    for name in cfg.synth.sources:
        written[name], kept = write_source(cfg, name, out_root, timer)
        sheet_rows.append((name, kept))
    sheet = make_contact_sheet(sheet_rows)
    atomic_write_bytes(out_root / "synth_contact_sheet.png", png_bytes(sheet))
    dump_config(cfg, out_root / "synth_config.yaml")
    return written
