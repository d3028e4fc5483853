"""Intra-organ (breast, thyroid) and inter-organ (all) merges of per-dataset split files."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from come.config.schema import BREAST, THYROID
from come.data.coco import load_coco, merge
from come.utils.io import write_json

GROUPS = {"breast": BREAST, "thyroid": THYROID, "all": BREAST + THYROID}


def merge_splits(splits_root: str | Path, datasets: list[str], out_dir: str | Path,
                 parts: tuple[str, ...] = ("train", "test")) -> dict:
    """Write `<out>/<part>.json` = concatenation of `<root>/<DS>/<part>.json`; `source` kept."""
    if not datasets:
        raise ValueError("merge: at least one dataset is required")
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"merge: duplicate dataset in {datasets}")
    root, out_dir = Path(splits_root), Path(out_dir)
    summary = {}
    for part in parts:
        pieces = []
        for ds in datasets:
            path = root / ds / f"{part}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: split file of {ds} not found (run `come split` first)")
            pieces.append(load_coco(path))
        merged = merge(pieces, info={"split": part, "datasets": list(datasets), "splits_root": str(root)})
        write_json(out_dir / f"{part}.json", merged)
        summary[part] = dict(sorted(Counter(im["source"] for im in merged["images"]).items()))
    return summary
