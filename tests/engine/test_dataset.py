"""Dataset, transforms and collate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from come.data.dataset import build_dataset, collate
from come.data.transforms import DetectionTransform, denormalize, load_image, target_size, xywh_to_xyxy

from .conftest import tiny_config


def test_sources_labels_and_targets(bench):
    cfg = tiny_config(*bench)
    ds = build_dataset(cfg, "train")
    assert len(ds) == 16
    assert sorted(set(ds.source_ids)) == [0, 1]
    assert ds.source_ids[:8] == [0] * 8                      # BUSI first, as in run.train_datasets
    img, t = ds[0]
    assert img.shape[0] == 3 and max(img.shape[1:]) <= 48
    assert t["labels"].tolist() == [0] and t["boxes"].shape == (1, 4)
    assert ((t["boxes"] >= 0) & (t["boxes"] <= 1)).all()
    assert t["orig_size"].tolist() == [40, 56] and t["dataset"] == "BUSI"


def test_eval_only_dataset_gets_source_minus_one(bench):
    cfg = tiny_config(*bench, run__train_datasets="[BUSI]")
    ds = build_dataset(cfg, "test", ["BUSI", "DDTI"])
    assert set(ds.source_ids) == {0, -1}


def test_pathology_mode_drops_unknown_boxes(bench, caplog):
    cfg = tiny_config(*bench, data__class_mode="pathology")
    ds = build_dataset(cfg, "train")
    assert ds.dropped_boxes == 2                            # image 1 of each source is "unknown"
    labels = {i: ds.records[i].labels.tolist() for i in range(4)}
    assert labels == {0: [0], 1: [], 2: [0], 3: [1]}


def test_eval_transform_matches_boxes_in_original_pixels(bench):
    cfg = tiny_config(*bench)
    ds = build_dataset(cfg, "test", ["BUSI"])
    rec = ds.records[0]
    img, t = ds[0]
    h, w = img.shape[1:]
    assert (h, w) == target_size(40, 56, 48, 48) == (34, 48)
    cx, cy, bw, bh = t["boxes"][0].tolist()
    x, y, bw0, bh0 = rec.boxes[0].tolist()
    assert cx * 56 == pytest.approx(x + bw0 / 2, abs=1e-3) and bw * 56 == pytest.approx(bw0, abs=1e-3)
    assert cy * 40 == pytest.approx(y + bh0 / 2, abs=1e-3) and bh * 40 == pytest.approx(bh0, abs=1e-3)


def test_flip_moves_box_and_pixels_consistently():
    img = torch.zeros(3, 20, 30)
    img[:, 5:10, 2:8] = 1.0
    boxes = xywh_to_xyxy(torch.tensor([[2.0, 5.0, 6.0, 5.0]]))
    tf = DetectionTransform(train=True, min_size=20, max_size=30, flip=True)
    seen = set()
    for seed in range(12):
        out, b = tf(img, boxes, np.random.default_rng(seed))
        raw = denormalize(out)[0]
        x0, y0, x1, y1 = b[0].round().long().tolist()
        assert raw[y0:y1, x0:x1].mean() > 0.95               # the box still covers the bright patch
        seen.add(x0 < out.shape[-1] / 2)
    assert seen == {True, False}                              # both flipped and unflipped occur


def test_augmentation_is_a_function_of_seed_epoch_index(bench):
    cfg = tiny_config(*bench)
    ds = build_dataset(cfg, "train")
    a, b = ds[3], ds[3]
    assert torch.equal(a[0], b[0])
    sizes = set()
    for e in range(6):
        ds.set_epoch(e)
        sizes.add(tuple(ds[3][0].shape))
    assert len(sizes) > 1                                     # random resize varies with the epoch


def test_collate_pads_and_masks(bench):
    cfg = tiny_config(*bench)
    ds = build_dataset(cfg, "test")
    batch = collate([ds[0], ds[5]])                           # 34x48 BUSI and 48x48 DDTI
    assert batch["images"].shape == (2, 3, 48, 48)
    assert batch["pad_mask"].shape == (2, 48, 48)
    assert batch["pad_mask"][0, 34:].all() and not batch["pad_mask"][0, :34].any()
    assert not batch["pad_mask"][1].any()
    assert batch["source_ids"].tolist() == [0, 1]


def test_missing_image_is_named_at_construction(bench):
    data_root, splits_root = bench
    (data_root / "DDTI" / "images" / "002.png").unlink()
    with pytest.raises(FileNotFoundError, match="DDTI/images/002.png"):
        build_dataset(tiny_config(data_root, splits_root), "train")


def test_corrupt_image_is_named(bench):
    data_root, splits_root = bench
    (data_root / "BUSI" / "images" / "000.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="BUSI/train.json: 1 image.*BUSI/images/000.png: cannot be decoded"):
        build_dataset(tiny_config(data_root, splits_root), "train")     # at construction


def test_missing_split_file_is_named(bench):
    data_root, splits_root = bench
    with pytest.raises(FileNotFoundError, match="TUD/train.json"):
        build_dataset(tiny_config(data_root, splits_root, run__train_datasets="[TUD]"), "train")


def test_size_mismatch_is_named(bench):
    data_root, splits_root = bench
    path = splits_root / "BUSI" / "train.json"
    coco = json.loads(path.read_text())
    coco["images"][0]["width"] = 99
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="000.png: decoded size"):
        build_dataset(tiny_config(data_root, splits_root), "train")


def test_load_image_grayscale_16bit_and_rgb(tmp_path):
    Image.fromarray(np.full((4, 5), 128, np.uint8), mode="L").save(tmp_path / "g.png")
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "c.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 5) and torch.allclose(g, torch.full_like(g, 128 / 255))
    assert load_image(tmp_path / "g16.png").max() == pytest.approx(1.0)
    assert load_image(tmp_path / "c.png").shape == (3, 4, 5)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
