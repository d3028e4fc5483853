"""`come synth` output: byte-identical per seed, valid COCO, boxes that match the masks."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from come.cli import main
from come.config import ALL_DATASETS, ORGAN_OF, load_config
from come.data.coco import bbox_from_mask, load_coco

N_IMAGES = 6
SIZE = 64


def _run_synth(tmp: Path, seed: int) -> Path:
    cfg = tmp / "synth.yaml"
    cfg.write_text(yaml.safe_dump({"synth": {"seed": seed, "images_per_source": N_IMAGES,
                                             "image_size": SIZE}}))
    out = tmp / "data"
    assert main(["synth", "--config", str(cfg), "--out", str(out)]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return {"a": _run_synth(tmp_path_factory.mktemp("a"), 0),
            "b": _run_synth(tmp_path_factory.mktemp("b"), 0),
            "c": _run_synth(tmp_path_factory.mktemp("c"), 1)}


def test_same_seed_is_byte_identical(runs):
    a, b = _files(runs["a"]), _files(runs["b"])
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.endswith(".png")]) == 8 * N_IMAGES * 2 + 1
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, f"files differ between two runs with the same seed: {diff[:5]}"


def test_different_seed_differs(runs):
    a, c = _files(runs["a"]), _files(runs["c"])
    imgs = [k for k in a if "/images/" in k]
    same = [k for k in imgs if k in c and a[k] == c[k]]
    assert not same, f"images identical across seeds 0 and 1: {same[:5]}"


def test_layout_and_resolved_config(runs):
    root = runs["a"]
    for ds in ALL_DATASETS:
        assert (root / ds / "annotations.json").is_file()
        assert len(list((root / ds / "images").glob(f"{ds}_*.png"))) == N_IMAGES
        assert (root / ds / "images" / f"{ds}_0001.png").is_file()
    cfg = load_config(root / "synth_config.yaml")
    assert cfg.synth.images_per_source == N_IMAGES and cfg.synth.image_size == SIZE
    sheet = Image.open(root / "synth_contact_sheet.png")
    assert sheet.mode == "RGB" and sheet.height > 8 * SIZE // 2
    arr = np.asarray(sheet)
    coloured = (arr[..., 0].astype(int) - arr[..., 2]) ** 2 + (arr[..., 1].astype(int) - arr[..., 2]) ** 2
    assert (coloured > 2000).sum() > 50, "contact sheet has no coloured boxes"


def test_coco_valid_and_boxes_match_masks(runs):
    root = runs["a"]
    groups: Counter = Counter()
    n_boxes = 0
    for ds in ALL_DATASETS:
        coco = load_coco(root / ds / "annotations.json")
        anns: dict[int, list] = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        for im in coco["images"]:
            assert im["file_name"].startswith(f"{ds}/images/{ds}_") and im["source"] == ds
            assert im["organ"] == ORGAN_OF[ds]
            groups[(ds, im["group_id"])] += 1
            img = np.asarray(Image.open(root / im["file_name"]))
            assert img.dtype == np.uint8 and img.shape == (im["height"], im["width"])
            mask = np.asarray(Image.open(root / im["mask_file"]))
            assert mask.shape == img.shape and set(np.unique(mask)) <= {0, 255}
            boxes = anns.get(im["id"], [])
            if im["pathology"] == "normal":
                assert not boxes and not mask.any()
                continue
            assert boxes, f"{im['file_name']}: {im['pathology']} image without a box"
            cover = np.zeros(mask.shape, dtype=bool)
            for a in boxes:
                assert a["category_id"] == {"benign": 1, "malignant": 2}[im["pathology"]]
                x, y, w, h = (int(round(v)) for v in a["bbox"])
                assert 0 <= x and 0 <= y and x + w <= im["width"] and y + h <= im["height"]
                sub = mask[y:y + h, x:x + w] > 0
                # tight: every edge row/column of the box touches the lesion mask
                assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()
                cover[y:y + h, x:x + w] = True
                n_boxes += 1
            assert not (mask.astype(bool) & ~cover).any(), f"{im['file_name']}: mask outside its boxes"
            assert bbox_from_mask(mask) is not None
    assert n_boxes > 30
    assert max(groups.values()) == 2 and min(groups.values()) == 1, "expected 1- and 2-image patients"


def test_unknown_source_is_a_clear_config_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("synth:\n  sources: [BUSI, NOPE]\n")
    assert main(["synth", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "NOPE" in err


def test_rerun_with_fewer_images_leaves_no_stale_files(tmp_path):
    cfg = tmp_path / "c.yaml"
    out = tmp_path / "d"
    for n in (3, 2):
        cfg.write_text(yaml.safe_dump({"synth": {"images_per_source": n, "image_size": 48,
                                                 "sources": ["BUV", "TUD"]}}))
        assert main(["synth", "--config", str(cfg), "--out", str(out)]) == 0
    for ds in ("BUV", "TUD"):
        assert sorted(p.name for p in (out / ds / "images").iterdir()) == [f"{ds}_0001.png", f"{ds}_0002.png"]
        assert len(list((out / ds / "masks").iterdir())) == 2
        assert len(load_coco(out / ds / "annotations.json")["images"]) == 2
    assert not (out / "BUSI").exists()
