"""Splits (grouped, stratified, seeded, deterministic), merges and data cards on synthetic COCO."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from come.cli import main
from come.data.coco import CocoBuilder, load_coco
from come.data.datacard import write_datacard
from come.data.splits import make_split


def _coco(source="BUSI", organ="breast", n_groups=60, seed=0):
    rng = np.random.default_rng(seed)
    b = CocoBuilder(info={"dataset": source})
    for g in range(n_groups):
        pat = "malignant" if g % 3 == 0 else "benign"
        for k in range(int(rng.integers(1, 4))):
            i = b.add_image(f"{source}/images/{g}_{k}.png", 64, 48, source, organ, pat, f"{source}:p{g}")
            b.add_box(i, [4, 4, 10 + k, 8], 1 if pat == "benign" else 2)
    return b.to_dict()


def test_split_grouped_stratified_deterministic():
    coco = _coco()
    train, test = make_split(coco, seed=3, test_fraction=0.2)
    tg = {i["group_id"] for i in train["images"]}
    sg = {i["group_id"] for i in test["images"]}
    assert tg and sg and not tg & sg
    assert len(train["images"]) + len(test["images"]) == len(coco["images"])
    assert abs(len(test["images"]) / len(coco["images"]) - 0.2) < 0.05
    for pat in ("benign", "malignant"):
        n_all = sum(i["pathology"] == pat for i in coco["images"])
        n_test = sum(i["pathology"] == pat for i in test["images"])
        assert abs(n_test / n_all - 0.2) < 0.08
    again = make_split(coco, seed=3, test_fraction=0.2)
    assert json.dumps(again, sort_keys=True) == json.dumps((train, test), sort_keys=True)
    other = make_split(coco, seed=4, test_fraction=0.2)[1]
    assert {i["id"] for i in other["images"]} != {i["id"] for i in test["images"]}


def test_split_tiny_dataset_keeps_both_sides():
    coco = _coco(n_groups=2)
    train, test = make_split(coco, seed=0, test_fraction=0.2)
    assert train["images"] and test["images"]


def test_split_merge_datacard_cli(tmp_path, capsys):
    for ds, organ in (("BUSI", "breast"), ("DDTI", "thyroid")):
        path = tmp_path / "data" / ds / "annotations.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_coco(ds, organ, seed=len(ds))))
        assert main(["split", "--coco", str(path), "--out", str(tmp_path / "splits" / ds),
                     "--seed", "0", "--test-fraction", "0.2"]) == 0
    out = tmp_path / "splits" / "merged" / "all"
    assert main(["merge", "--splits-root", str(tmp_path / "splits"), "--datasets", "BUSI", "DDTI", "--out", str(out)]) == 0
    train = load_coco(out / "train.json")
    test = load_coco(out / "test.json")
    per_src = Counter(i["source"] for i in train["images"])
    assert set(per_src) == {"BUSI", "DDTI"}
    assert per_src["BUSI"] == len(load_coco(tmp_path / "splits" / "BUSI" / "train.json")["images"])
    assert len({i["id"] for i in train["images"]}) == len(train["images"])   # ids renumbered
    assert {i["organ"] for i in test["images"]} == {"breast", "thyroid"}
    rc = main(["merge", "--splits-root", str(tmp_path / "splits"), "--datasets", "breast", "--out", str(tmp_path / "m")])
    assert rc == 1 and "BUV/train.json" in capsys.readouterr().err          # missing split named


def test_datacard_reads_quarantine(tmp_path):
    coco = _coco()
    ann = tmp_path / "BUSI" / "annotations.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(coco))
    (ann.parent / "quarantine.json").write_text(json.dumps(
        {"dataset": "BUSI", "counts": {"empty_mask": 1},
         "entries": [{"file": "x.png", "reason": "empty_mask", "detail": "", "action": "excluded"}]}))
    card = write_datacard(ann, tmp_path / "cards")
    assert card["counts"]["images"] == len(coco["images"]) and card["counts"]["groups"] == 60
    assert card["quarantine"]["counts"] == {"empty_mask": 1}
    assert card["quarantine"]["files"] == ["x.png (empty_mask, excluded)"]
    assert sum(card["class_balance"]["pathology"].values()) == len(coco["images"])
    assert (tmp_path / "cards" / "BUSI.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "cards" / "BUSI.json").read_text())["dataset"] == "BUSI"


def test_split_rejects_bad_fraction(tmp_path):
    with pytest.raises(ValueError, match="test_fraction"):
        make_split(_coco(), seed=0, test_fraction=1.5)
