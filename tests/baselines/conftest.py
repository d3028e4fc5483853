"""Baseline test fixtures: the engine tests' tiny on-disk benchmark and config (BUSI + DDTI)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.conftest import make_benchmark, tiny_config


@pytest.fixture()
def yolo_cfg(tmp_path: Path):
    """A factory: tiny config for a YOLO-family run (one optimiser step per epoch, 64 px)."""
    data_root, splits_root = make_benchmark(tmp_path / "bench")

    def make(arch: str = "yolov10", **extra):
        base = {"model__arch": arch, "baselines__yolo__label_cache": str(tmp_path / "cache"),
                "data__image_size": 64, "train__epochs": 1, "train__max_steps_per_epoch": 1,
                "eval__qualitative_per_dataset": 0}
        return tiny_config(data_root, splits_root, **{**base, **extra})
    return make
