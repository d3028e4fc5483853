"""Acceptance on the real BUS-BRA and DDTI copies in ../shared/data (skipped when absent)."""
from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import pytest
from .helpers import SHARED_DATA

from come.data.converters import convert_dataset
from come.data.converters.busbra import published_box
from come.data.splits import make_split

pytestmark = pytest.mark.realdata


def _need(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (../shared/data beside the repo)")
    return path


@pytest.fixture(scope="module")
def busbra(tmp_path_factory):
    raw = _need("busbra")
    out = tmp_path_factory.mktemp("real") / "BUSBRA"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = convert_dataset("BUSBRA", "busbra", "breast", raw, out)
    return raw, out, summary, json.loads((out / "annotations.json").read_text())


@pytest.fixture(scope="module")
def ddti(tmp_path_factory):
    raw = _need("ddti")
    out = tmp_path_factory.mktemp("real") / "DDTI"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = convert_dataset("DDTI_PRE", "ddti_preprocessed", "thyroid", raw, out, project_name="DDTI")
    return raw, out, summary, json.loads((out / "annotations.json").read_text())


def test_busbra_counts_and_boxes(busbra):
    raw, out, summary, coco = busbra
    assert summary["images"] == 1875 and summary["boxes"] == 1875
    with (raw / "bus_data.csv").open(newline="") as fh:
        pub = {r["ID"]: published_box(r["BBOX"]) for r in csv.DictReader(fh)}
    q = json.loads((out / "quarantine.json").read_text())
    flagged = {e["file"] for e in q["entries"] if e["reason"] == "bbox_disagrees"}
    by_id = {im["id"]: im for im in coco["images"]}
    far = set()
    for a in coco["annotations"]:
        im = by_id[a["image_id"]]
        if max(abs(x - y) for x, y in zip(a["bbox"], pub[im["native_id"]])) > 2:
            far.add(Path(im["file_name"]).name)
    assert far == flagged                    # every disagreement is flagged, never hidden
    assert len(far) <= 1                     # the release has one mask/BBOX disagreement (bus_0845-s)
    assert len({im["group_id"] for im in coco["images"]}) == 1064


def test_busbra_split_has_no_patient_on_both_sides(busbra):
    coco = busbra[3]
    train, test = make_split(coco, seed=0, test_fraction=0.2)
    assert not {i["group_id"] for i in train["images"]} & {i["group_id"] for i in test["images"]}
    assert abs(len(test["images"]) / 1875 - 0.2) < 0.01


def test_ddti_every_mask_accounted_for(ddti):
    raw, out, summary, coco = ddti
    n_masks = len(list((raw / "mask").iterdir()))
    assert n_masks == 655
    q = json.loads((out / "quarantine.json").read_text())
    excluded = [e for e in q["entries"] if e["action"] == "excluded"]
    assert summary["boxes"] == summary["images"]                 # one nodule per crop
    assert summary["boxes"] + len(excluded) == n_masks           # each mask is a box or a named entry
    assert {e["reason"] for e in excluded} <= {"empty_mask", "missing_label"}


def test_ddti_crops_of_one_frame_stay_together(ddti):
    coco = ddti[3]
    frames = {re.sub(r"\(\d+\)$", "", im["native_id"]) for im in coco["images"]}
    assert len({im["group_id"] for im in coco["images"]}) == len(frames)
    train, test = make_split(coco, seed=0, test_fraction=0.2)
    tr = {re.sub(r"\(\d+\)$", "", i["native_id"]) for i in train["images"]}
    te = {re.sub(r"\(\d+\)$", "", i["native_id"]) for i in test["images"]}
    assert not tr & te


@pytest.mark.slow
def test_ddti_conversion_is_reproducible(ddti, tmp_path):
    """Slow tier (always run by .ci/run): a second full 655-mask conversion."""
    raw, out, _, _ = ddti
    again = tmp_path / "DDTI"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert_dataset("DDTI_PRE", "ddti_preprocessed", "thyroid", raw, again, project_name="DDTI")
    for name in ("annotations.json", "quarantine.json", "DDTI.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_auto_release_recognises_the_preprocessed_ddti_copy():
    """config/real-cpu.yaml says `DDTI: auto`: the shared copy must be recognised as DDTI_PRE
    (and the BUS-BRA folder as no DDTI release at all)."""
    from come.data.converters.base import LayoutError
    from come.data.converters.ddti import detect_release
    assert detect_release(_need("ddti")) == "DDTI_PRE"
    with pytest.raises(LayoutError, match="no DDTI release"):
        detect_release(_need("busbra"))
