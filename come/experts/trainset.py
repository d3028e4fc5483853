"""Training-set keys: which shared experts a run may use (no leakage, issue 12 item 7).

A run's semantic expert is fine-tuned on the diagnosis prompts of ITS training set only, so the
experts live under a folder keyed by that set:

    trainset_key(["BUSI"])                        -> "BUSI"
    trainset_key(BREAST) / (THYROID) / (ALL)      -> "breast" / "thyroid" / "all"
    trainset_key(["DDTI", "BUSI"])                -> "BUSI+DDTI"   (canonical dataset order)
    semantic_dir(root, datasets)                  -> root/trainset/<key>/semantic

The structure expert never sees a benchmark image (USFM weights or MIM on a synthetic corpus
with its own seed), so one structure expert (root/structure) serves every training set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from come.config.schema import ALL_DATASETS, BREAST, THYROID

NAMED = {"all": ALL_DATASETS, "breast": BREAST, "thyroid": THYROID}


def canonical(datasets: Sequence[str]) -> list[str]:
    """The datasets in the paper's order, each once; unknown names raise ValueError."""
    bad = [d for d in datasets if d not in ALL_DATASETS]
    if bad or not datasets:
        raise ValueError(f"training set {list(datasets)}: unknown or no datasets (known: {ALL_DATASETS})")
    return [d for d in ALL_DATASETS if d in set(datasets)]


def trainset_key(datasets: Sequence[str]) -> str:
    """Folder name of a training set: a group name when it is a whole group, else DS+DS+..."""
    ds = canonical(datasets)
    for name, members in NAMED.items():
        if ds == list(members):
            return name
    return "+".join(ds)


def trainset_dir(root: str | Path, datasets: Sequence[str]) -> Path:
    return Path(root) / "trainset" / trainset_key(datasets)


def semantic_dir(root: str | Path, datasets: Sequence[str]) -> Path:
    """Folder of the semantic expert fine-tuned on `datasets` (holds encoder.pt)."""
    return trainset_dir(root, datasets) / "semantic"


def datasets_of_key(key: str) -> list[str]:
    """Inverse of `trainset_key` (for the workflow's wildcard)."""
    if key in NAMED:
        return list(NAMED[key])
    ds = key.split("+")
    if canonical(ds) != ds:
        raise ValueError(f"training-set key {key!r} is not canonical (expected {trainset_key(ds)!r})")
    return ds
