"""Intra-organ (breast, thyroid) and inter-organ (all) merges of per-dataset split files."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from come.config.schema import BREAST, THYROID
from come.data.coco import load_coco, merge
from come.utils.io import write_json

GROUPS = {"breast": BREAST, "thyroid": THYROID, "all": BREAST + THYROID}
# Datasets re-released from another one (same patients): (derived, original, publisher's word).
DERIVED = [("TUS", "DDTI", "the TUS Kaggle page describes its images as DDTI re-processed")]


class OverlapWarning(UserWarning):
    """A merge holds two datasets built from the same patients."""


def overlap_notes(datasets: list[str], splits_root: str | Path | None = None) -> list[str]:
    """One note per derived/original pair present in `datasets` (says whether the derived
    dataset's split was aligned to the original's, see `come.data.splits.align_split`); none
    for the synthetic stand-ins (their split info says `synthetic`), which share no patients."""
    notes = []
    for derived, original, why in DERIVED:
        if derived in datasets and original in datasets:
            aligned = ""
            if splits_root is not None:
                path = Path(splits_root) / derived / "test.json"
                info = load_coco(path).get("info", {}) if path.is_file() else {}
                if info.get("synthetic"):        # the embedded stand-ins share no patients
                    continue
                aligned = (f"; its split is aligned to {original}'s by {info['aligned_by']}"
                           if info.get("aligned_by") else "; its split is NOT aligned (no case key in its files)")
            notes.append(f"{derived} and {original} share patients ({why}): cross-dataset patient "
                         f"overlap in this merge{aligned}")
    return notes


def merge_splits(splits_root: str | Path, datasets: list[str], out_dir: str | Path,
                 parts: tuple[str, ...] = ("train", "test")) -> dict:
    """Write `<out>/<part>.json` = concatenation of `<root>/<DS>/<part>.json`; `source` kept."""
    if not datasets:
        raise ValueError("merge: at least one dataset is required")
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"merge: duplicate dataset in {datasets}")
    root, out_dir = Path(splits_root), Path(out_dir)
    notes = overlap_notes(list(datasets), root)
    for note in notes:
        warnings.warn(note, OverlapWarning, stacklevel=2)
    summary = {}
    for part in parts:
        pieces = []
        for ds in datasets:
            path = root / ds / f"{part}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: split file of {ds} not found (run `come split` first)")
            pieces.append(load_coco(path))
        merged = merge(pieces, info={"split": part, "datasets": list(datasets), "splits_root": str(root),
                                     **({"overlap": notes} if notes else {})})
        write_json(out_dir / f"{part}.json", merged)
        summary[part] = dict(sorted(Counter(im["source"] for im in merged["images"]).items()))
    return summary
