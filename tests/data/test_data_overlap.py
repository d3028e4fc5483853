"""Data facts of issue 16: the 652-image DDTI layout (NEU-LX ThyroidDatasets), TUS = DDTI
re-processed (merge warning, TUS split aligned to DDTI's by case).

All fail on the old code: there was no `ddti_neu` format, no `ddti_case` field, no
`align_split` and no overlap warning.
"""
from __future__ import annotations

import warnings

import pytest

from come.data.coco import CocoBuilder, load_coco
from come.data.converters import convert_dataset
from come.data.merge import OverlapWarning, merge_splits
from come.data.registry import load_registry
from come.data.splits import write_split
from come.utils.io import write_json
from tests.data.helpers import write_image, write_mask

S = (32, 32)


def test_ddti_neu_layout_binary01_masks(tmp_path):
    """The TUD publisher's DDTI: images/{training,test} + annotations/{training,test}, masks {0,1}."""
    root = tmp_path / "raw" / "DDTI"
    for part, stems in (("training", ["12_1", "12_2"]), ("test", ["40_1"])):
        for stem in stems:
            write_image(root / "images" / part / f"{stem}.png", S)
            write_mask(root / "annotations" / part / f"{stem}.png", S, [(4, 5, 10, 8)], value=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = convert_dataset("DDTI_NEU", "ddti_neu", "thyroid", root, tmp_path / "out" / "DDTI",
                                  project_name="DDTI", card=False)
    coco = load_coco(tmp_path / "out" / "DDTI" / "annotations.json")
    assert summary["images"] == 3 and all(a["bbox"] == [4, 5, 10, 8] for a in coco["annotations"])
    assert {im["ddti_case"] for im in coco["images"]} == {"12", "40"}
    assert {im["group_id"] for im in coco["images"]} == {"DDTI:case12", "DDTI:case40"}   # one patient, one side
    entry = load_registry()["DDTI_NEU"]
    assert entry.expected_images == 652 and entry.format == "ddti_neu" and entry.project_name == "DDTI"


def _coco(path, source, cases):
    b = CocoBuilder()
    for i, case in enumerate(cases):
        iid = b.add_image(f"{source}/images/{i}.png", 32, 32, source, "thyroid", "unknown",
                          group_id=f"{source}:{i}" if source == "TUS" else f"DDTI:case{case}",
                          ddti_case=case)
        b.add_box(iid, [1, 1, 5, 5], 3)
    write_json(path, b.to_dict())


def test_tus_split_follows_ddti_by_case_and_merge_warns(tmp_path):
    cases = [str(c) for c in range(1, 21)]
    _coco(tmp_path / "ddti.json", "DDTI", cases)
    _coco(tmp_path / "tus.json", "TUS", cases + ["", ""])          # two TUS images without a case key
    splits = tmp_path / "splits"
    write_split(tmp_path / "ddti.json", splits / "DDTI", seed=0, test_fraction=0.3)
    summary = write_split(tmp_path / "tus.json", splits / "TUS", seed=5, test_fraction=0.3,
                          align_with=splits / "DDTI")
    assert summary["aligned"]["images_with_key"] == 20
    side = {}
    for part in ("train", "test"):
        for im in load_coco(splits / "DDTI" / f"{part}.json")["images"]:
            side[im["ddti_case"]] = part
    for part in ("train", "test"):
        for im in load_coco(splits / "TUS" / f"{part}.json")["images"]:
            if im["ddti_case"]:
                assert side[im["ddti_case"]] == part, im        # a patient never on both sides
    with pytest.warns(OverlapWarning, match="TUS and DDTI share patients.*aligned to DDTI's by ddti_case"):
        merge_splits(splits, ["DDTI", "TUS"], tmp_path / "merged")
    info = load_coco(tmp_path / "merged" / "test.json")["info"]
    assert "overlap" in info
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverlapWarning)
        merge_splits(splits, ["DDTI"], tmp_path / "merged_ddti")  # no TUS, no warning


def test_synthetic_stand_ins_get_no_overlap_warning(tmp_path):
    """The embedded benchmark's TUS and DDTI are generated independently: merging them must not
    claim shared patients (it did, in every `make demo` log). Mutation caught: the `synthetic`
    check removed from `overlap_notes`."""
    splits = tmp_path / "splits"
    for ds in ("DDTI", "TUS"):
        _coco(tmp_path / f"{ds}.json", ds, ["1", "2", "3", "4"])
        write_split(tmp_path / f"{ds}.json", splits / ds, seed=0, test_fraction=0.5)
        for part in ("train", "test"):                      # what `come synth` + split record
            coco = load_coco(splits / ds / f"{part}.json")
            coco["info"]["synthetic"] = True
            write_json(splits / ds / f"{part}.json", coco)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverlapWarning)
        merge_splits(splits, ["DDTI", "TUS"], tmp_path / "merged")
    assert "overlap" not in load_coco(tmp_path / "merged" / "test.json")["info"]
