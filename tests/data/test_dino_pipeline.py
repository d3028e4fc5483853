"""DINO's data pipeline in config/paper.yaml (issue 12 item 9): scales, eval size, the
RandomSizeCrop branch, the sine position temperature, and BUSI's `normal` switch.

Each test fails on the code before the change: `build_transform`, `data.max_short`,
`data.crop_resize`, `model.pos_temperature` and `data.keep_normal` did not exist, and
paper.yaml trained on shorter sides 480..1333 and evaluated at 1333.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from come.config import load_config
from come.data.transforms import DetectionTransform, build_transform

REPO = Path(__file__).resolve().parents[2]


def test_paper_yaml_is_dinos_resize_schedule():
    cfg = load_config(REPO / "config" / "paper.yaml")
    train, test = build_transform(cfg.data, True), build_transform(cfg.data, False)
    assert train.scales == list(range(480, 801, 32))          # 480, 512, ..., 800
    assert train.max_size == 1333 and train.crop_resize == [400, 500, 600]
    assert (train.crop_min, train.crop_max) == (384, 600)
    img = torch.rand(3, 400, 600)
    out, boxes = test(img, torch.tensor([[10.0, 20.0, 110.0, 220.0]]), np.random.default_rng(0))
    assert tuple(out.shape[-2:]) == (800, 1200)                 # shorter side 800, longest <= 1333
    assert torch.allclose(boxes, torch.tensor([[20.0, 40.0, 220.0, 440.0]]))
    wide = test(torch.rand(3, 300, 1000), torch.zeros(0, 4), np.random.default_rng(0))[0]
    assert tuple(wide.shape[-2:]) == (400, 1333)               # longest side capped
    assert cfg.model.pos_temperature == 20
    assert cfg.data.keep_normal is False


def test_random_size_crop_branch_drops_boxes_outside_the_crop():
    t = DetectionTransform(True, 64, 200, flip=False, step=32, max_short=96,
                           crop_resize=[120], crop_min=40, crop_max=60)
    img = torch.rand(3, 120, 240)
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [200.0, 90.0, 239.0, 119.0]])
    labels = torch.tensor([0, 1])
    cropped = dropped = 0
    for seed in range(40):
        out, b, lab = t(img, boxes, np.random.default_rng(seed), labels)
        h, w = out.shape[-2:]
        assert len(b) == len(lab) and min(h, w) in range(64, 97)      # then the multi-scale resize
        assert (b[:, 0::2] <= w).all() and (b[:, 1::2] <= h).all() and (b[:, 2] > b[:, 0]).all()
        if max(h, w) / min(h, w) < 1.9:                                  # a 40..60 px crop, not 2:1
            cropped += 1
            dropped += len(b) < 2
    assert cropped > 5 and dropped > 0                                   # p 0.5 branch, boxes dropped


def test_without_crop_the_augmentation_is_unchanged():
    """The default (no crop_resize) draws scale then flip from the rng, as before the crop existed
    (so the embedded demo's augmentation is unchanged). Mutation caught: drawing the flip first."""
    t = DetectionTransform(True, 96, 200, flip=True, max_short=128)
    img, boxes = torch.rand(3, 100, 150), torch.tensor([[10.0, 10.0, 50.0, 40.0]])
    for seed in range(5):
        rng = np.random.default_rng(seed)
        short = t.scales[int(rng.integers(len(t.scales)))]
        flip = bool(rng.random() < 0.5)
        out, b = t(img, boxes, np.random.default_rng(seed))
        assert min(out.shape[-2:]) == short
        assert (b[0, 0] > out.shape[-1] / 2) == flip


def test_position_temperature_reaches_the_detector():
    from come.model.detector import build_detector
    cfg = load_config(REPO / "config" / "tiny.yaml", {"model": {"pos_temperature": 20}})
    model = build_detector(cfg)
    assert model.neck.position.temperature == 20
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    a = model.neck.position(mask)
    model.neck.position.temperature = 10000.0
    assert not torch.allclose(a, model.neck.position(mask))
    with pytest.raises(Exception, match="pos_temperature"):
        load_config(REPO / "config" / "tiny.yaml", {"model": {"pos_temperature": 0}})
