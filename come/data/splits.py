"""Seeded, grouped, pathology-stratified train/test split of one COCO dataset.

Groups (`group_id`: patient, source frame, video) never straddle the split. Each group gets the
most common pathology of its images (ties: alphabetical); within each pathology stratum the
groups are shuffled with `numpy.random.default_rng(seed)` and taken into the test set while that
brings the stratum's test image count closer to `test_fraction` of its images. Deterministic
given (annotations, seed, fraction); generic (works on synthetic and real data alike).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from come.data.coco import load_coco, subset
from come.utils.io import write_json


def group_labels(images: list[dict]) -> tuple[dict[str, list[int]], dict[str, str]]:
    """`{group: [image ids]}` and `{group: majority pathology}`."""
    members: dict[str, list[int]] = defaultdict(list)
    pats: dict[str, Counter] = defaultdict(Counter)
    for im in images:
        members[str(im["group_id"])].append(im["id"])
        pats[str(im["group_id"])][im["pathology"]] += 1
    label = {g: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for g, c in pats.items()}
    return dict(members), label


def split_groups(members: dict[str, list[int]], label: dict[str, str], seed: int,
                 test_fraction: float) -> set[str]:
    """The set of test groups (see module docstring)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction {test_fraction} must be in (0, 1)")
    rng = np.random.default_rng(seed)
    test: set[str] = set()
    strata: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        strata[label[g]].append(g)
    for stratum in sorted(strata):
        groups = strata[stratum]
        order = [groups[i] for i in rng.permutation(len(groups))]
        total = sum(len(members[g]) for g in groups)
        target = test_fraction * total
        taken = 0
        for g in order:
            n = len(members[g])
            if abs(taken + n - target) < abs(taken - target):
                test.add(g)
                taken += n
    if len(members) >= 2:                      # both sides non-empty whenever possible
        if not test:
            test.add(sorted(members, key=lambda g: (len(members[g]), g))[0])
        elif len(test) == len(members):
            test.discard(sorted(test)[0])
    return test


def make_split(coco: dict, seed: int, test_fraction: float, source: str = "") -> tuple[dict, dict]:
    """(train, test) COCO dicts of `coco` (ids kept)."""
    members, label = group_labels(coco["images"])
    test_groups = split_groups(members, label, seed, test_fraction)
    test_ids = [i for g in sorted(test_groups) for i in members[g]]
    train_ids = [i for g in sorted(set(members) - test_groups) for i in members[g]]
    meta = {"seed": seed, "test_fraction": test_fraction, "annotations": source,
            "grouped_by": "group_id", "stratified_by": "pathology"}
    return (subset(coco, train_ids, {**meta, "split": "train"}),
            subset(coco, test_ids, {**meta, "split": "test"}))


def write_split(annotations: str | Path, out_dir: str | Path, seed: int, test_fraction: float) -> dict:
    """Read `annotations`, write `<out>/train.json` and `<out>/test.json`; return a summary."""
    coco = load_coco(annotations)
    if not coco["images"]:
        raise ValueError(f"{annotations}: no image to split")
    train, test = make_split(coco, seed, test_fraction, str(annotations))
    for part, name in ((train, "train"), (test, "test")):
        if not part["images"]:
            groups = len({im["group_id"] for im in coco["images"]})
            raise ValueError(f"{annotations}: {len(coco['images'])} image(s) in {groups} group(s) "
                             f"leave the {name} split empty (test fraction {test_fraction}); "
                             "a dataset needs at least two groups to be split")
    out_dir = Path(out_dir)
    write_json(out_dir / "train.json", train)
    write_json(out_dir / "test.json", test)

    def stats(part: dict) -> dict:
        return {"images": len(part["images"]), "boxes": len(part["annotations"]),
                "groups": len({im["group_id"] for im in part["images"]}),
                "pathology": dict(sorted(Counter(im["pathology"] for im in part["images"]).items()))}
    return {"train": stats(train), "test": stats(test)}
