"""Fixtures of the fault tests: a tiny real-detector run on an on-disk benchmark."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path):
    """(config path, run dir, root) of a tiny real-detector run (3 epochs of 1 step, a save at
    each epoch end); the verification cache is warm."""
    sys.path.insert(0, str(REPO / "tests"))
    from engine.conftest import make_benchmark

    data_root, splits_root = make_benchmark(tmp_path / "bench", n_train=6, n_test=2)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"base: {REPO / 'config' / 'tiny.yaml'}\n"
                   f"data: {{root: {data_root}, splits_root: {splits_root}}}\n"
                   "run: {train_datasets: [BUSI, DDTI]}\n"
                   "model: {backbone: {name: resnet10t, pretrained: ''}}\n"   # small checkpoints
                   "train: {epochs: 3, max_steps_per_epoch: 1, checkpoint_every: 0}\n")
    from come.config import load_config
    from come.data.dataset import build_dataset
    build_dataset(load_config(cfg), "train")                       # fills the verification cache
    return cfg, tmp_path / "run", tmp_path
