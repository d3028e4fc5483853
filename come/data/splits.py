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


def align_split(coco: dict, train: dict, test: dict, reference: str | Path, key: str = "ddti_case") -> tuple[dict, dict, int]:
    """Move images whose `key` value (e.g. the DDTI case of a TUS image) sits on one side of the
    reference split (`<reference>/{train,test}.json`, e.g. DDTI's) to that side, whole groups at
    a time, so one patient never trains through one dataset and tests through the other.
    Returns (train, test, number of images whose `key` is known)."""
    ref = Path(reference)
    side: dict[str, str] = {}
    for part in ("train", "test"):
        for im in load_coco(ref / f"{part}.json")["images"]:
            if im.get(key) not in (None, ""):
                side[str(im[key])] = part
    groups: dict[str, str] = {}
    known = 0
    for im in coco["images"]:
        value = im.get(key)
        if value not in (None, "") and str(value) in side:
            known += 1
            groups.setdefault(str(im["group_id"]), side[str(value)])
    if not groups:
        return train, test, known
    train_ids = {im["id"] for im in train["images"]}
    where = {im["id"]: ("train" if im["id"] in train_ids else "test") for im in coco["images"]}
    for im in coco["images"]:
        where[im["id"]] = groups.get(str(im["group_id"]), where[im["id"]])
    meta = {**train.get("info", {}), "aligned_with": str(ref), "aligned_by": key}
    ids = {part: [i["id"] for i in coco["images"] if where[i["id"]] == part] for part in ("train", "test")}
    return (subset(coco, ids["train"], {**meta, "split": "train"}),
            subset(coco, ids["test"], {**meta, "split": "test"}), known)


def write_split(annotations: str | Path, out_dir: str | Path, seed: int, test_fraction: float,
                align_with: str | Path | None = None, align_key: str = "ddti_case") -> dict:
    """Read `annotations`, write `<out>/train.json` and `<out>/test.json`; return a summary.
    `align_with`: a reference split folder (see `align_split`)."""
    coco = load_coco(annotations)
    if not coco["images"]:
        raise ValueError(f"{annotations}: no image to split")
    train, test = make_split(coco, seed, test_fraction, str(annotations))
    aligned = None
    if align_with is not None:
        train, test, aligned = align_split(coco, train, test, align_with, align_key)
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
    out = {"train": stats(train), "test": stats(test)}
    if aligned is not None:
        out["aligned"] = {"reference": str(align_with), "key": align_key, "images_with_key": aligned}
    return out
