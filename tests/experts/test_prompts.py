"""Prompt construction: wording, labels, determinism, one prompt per image, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from come.cli import main
from come.data.coco import load_coco
from come.experts.prompts import (TEST_PROMPT, build_prompt_records, class_prompt, image_label,
                                  read_prompts, train_prompt, write_jsonl)


def test_wording():
    assert train_prompt("breast", "Benign") == "Diagnosis for Breast Ultrasound Image: Benign"
    assert train_prompt("thyroid", "Omit") == "Diagnosis for Thyroid Ultrasound Image: Omit"
    assert TEST_PROMPT == "Diagnosis for Ultrasound Image"
    assert class_prompt(None, "Malignant") == "Diagnosis for Ultrasound Image: Malignant"
    with pytest.raises(ValueError, match="not in"):
        train_prompt("breast", "Maybe")


def test_labels_from_annotations():
    im = {"pathology": "unknown"}
    assert image_label(im, []) == "Omit"
    assert image_label(im, [{"category_id": 3}]) == "Omit"
    assert image_label({"pathology": "benign"}, [{"category_id": 3}]) == "Benign"
    assert image_label(im, [{"category_id": 1}, {"category_id": 2}]) == "Malignant"
    assert image_label({"pathology": "normal"}, []) == "Omit"


def test_one_prompt_per_image_and_deterministic(tiny_data: Path, tmp_path: Path):
    coco = load_coco(tiny_data)
    root = tiny_data.parent
    recs = build_prompt_records(coco, root)
    assert [r["image_id"] for r in recs] == sorted(im["id"] for im in coco["images"])
    assert len(recs) == len(coco["images"])
    by_id = {im["id"]: im for im in coco["images"]}
    for r in recs:
        im = by_id[r["image_id"]]
        assert Path(r["image"]).is_file()
        expect = {"benign": "Benign", "malignant": "Malignant"}.get(im["pathology"], "Omit")
        assert r["text"] == train_prompt(im["organ"], expect)
    a = write_jsonl(recs, tmp_path / "a.jsonl").read_bytes()
    b = write_jsonl(build_prompt_records(load_coco(tiny_data), root), tmp_path / "b.jsonl").read_bytes()
    assert a == b
    assert len(read_prompts(tmp_path / "a.jsonl")) == len(recs)


def test_cli_and_bad_input(tiny_data: Path, tmp_path: Path, repo: Path):
    out = tmp_path / "prompts" / "train.jsonl"
    rc = main(["prompts", "--config", str(repo / "config" / "config.yaml"), "--set",
               f"data.root={tiny_data.parent}", "--train", str(tiny_data), "--out", str(out)])
    assert rc == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 24 and {"image", "file_name", "source", "organ", "text"} <= set(lines[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl: line 1 lacks"):
        read_prompts(bad)
