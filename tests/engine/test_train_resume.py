"""Training engine: logging, checkpoints and exact resume after an interruption."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from come.config import load_config
from come.engine.checkpoint import load_checkpoint
from come.engine.train import train

from .conftest import tiny_config


class Interrupt(RuntimeError):
    pass


def stop_after(k: int):
    def hook(step: int) -> None:
        if step == k:
            raise Interrupt(f"killed after step {k}")
    return hook


def final_state(out_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(out_dir / "checkpoints" / "last.pt")["model"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter {k} differs"


class Records(logging.Handler):
    """Collects the messages of the (non-propagating) `come.train` logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def train_messages():
    handler = Records()
    logger = logging.getLogger("come.train")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def read_log(out_dir) -> list[dict]:
    return [json.loads(x) for x in (out_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kill_at,extra", [
    (5, {}),                                              # mid-epoch 1, last checkpoint at step 4
    (3, {"train__grad_accum_steps": 2, "train__balanced_sampler": "true"}),
    (7, {"train__max_steps_per_epoch": 5, "train__lr_drop_epochs": "[1]"}),
])
def test_interrupted_run_resumes_to_identical_weights(bench, parts, tmp_path, kill_at, extra,
                                                      train_messages):
    """Mutation caught: `Trainer.resume = lambda self: False` (a deterministic restart from
    scratch reaches the same weights, but its first step is 1, it logs no "resumed from" and
    it rewrites the interrupted run's log lines with new times)."""
    cfg = tiny_config(*bench, **extra)
    train(cfg, tmp_path / "straight", parts)
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "resumed", parts, step_hook=stop_after(kill_at))
    ck = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert not ck["finished"] and 0 < ck["step"] < kill_at
    before = read_log(tmp_path / "resumed")[: ck["step"]]
    assert [r["step"] for r in before] == list(range(1, ck["step"] + 1))
    train_messages.clear()
    steps: list[int] = []
    train(cfg, tmp_path / "resumed", parts, step_hook=steps.append)
    assert steps[0] == ck["step"] + 1, f"the resumed run started at step {steps[0]}"
    assert any(m.startswith("resumed from") for m in train_messages), train_messages
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    log_a, log_b = read_log(tmp_path / "straight"), read_log(tmp_path / "resumed")
    assert log_b[: ck["step"]] == before                 # interrupted lines kept, times included
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b] == list(range(1, len(log_a) + 1))
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_log_checkpoint_and_config_contents(bench, parts, tmp_path):
    cfg = tiny_config(*bench, train__lr_drop_epochs="[1]")
    out = tmp_path / "run"
    train(cfg, out, parts)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 16                                       # 2 epochs x 16 images / batch 2
    assert {"step", "epoch", "loss", "loss_ce", "loss_bbox", "lr", "time", "images"} <= log[0].keys()
    assert log[0]["lr"] == pytest.approx(1e-3) and log[-1]["lr"] == pytest.approx(1e-4)
    assert log[-1]["epoch"] == 1
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["finished"] and ck["step"] == 16 and ck["epoch"] == 2
    assert load_config(out / "config.yaml").train.lr_drop_epochs == [1]
    first = log[0]["loss"]
    assert min(r["loss"] for r in log[-4:]) < first              # it learns something


def test_finished_run_is_a_no_op(bench, parts, tmp_path):
    cfg = tiny_config(*bench, train__epochs=1)
    out = tmp_path / "run"
    train(cfg, out, parts)
    stamp = (out / "checkpoints" / "last.pt").stat().st_mtime_ns
    calls = []
    train(cfg, out, parts, step_hook=calls.append)
    assert calls == [] and (out / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp


def test_non_finite_loss_stops_with_a_clear_error(bench, tmp_path):
    from come.engine.parts import DetectorParts

    from .conftest import TinyDetector, tiny_postprocess

    def nan_criterion(out, targets):
        loss = out["pred_boxes"].sum() * float("nan")
        return {"loss": loss}

    bad = DetectorParts(lambda c: TinyDetector(), lambda c: nan_criterion, tiny_postprocess)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        train(tiny_config(*bench), tmp_path / "run", bad)


def test_real_detector_resumes_to_identical_weights(bench, tmp_path):
    """The same acceptance check on the real DINO (tiny: 1+1 layers, 10 queries, 64-96 px).

    Mutation caught: `Trainer.resume = lambda self: False` (the second run starts at step 1)."""
    torch.set_num_threads(1)
    cfg = tiny_config(*bench, train__max_steps_per_epoch=3, model__num_queries=10,
                      model__dn_number=4, model__hidden_dim=32, model__ffn__hidden_dim=64,
                      model__enc_layers=1, model__dec_layers=1, data__image_size=96,
                      data__min_size=64, model__num_select=10)
    train(cfg, tmp_path / "straight")
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "resumed", step_hook=stop_after(5))
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"]
    steps: list[int] = []
    train(cfg, tmp_path / "resumed", step_hook=steps.append)
    assert steps[0] == saved + 1 == 5
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))


def test_finished_run_given_more_epochs_continues(bench, parts, tmp_path, train_messages):
    """Mutation caught: `Trainer.resume = lambda self: False` (epoch 2 would retrain epoch 1
    from step 1 and drop its log lines)."""
    out = tmp_path / "run"
    train(tiny_config(*bench, train__epochs=1), out, parts)
    first_epoch = read_log(out)
    steps: list[int] = []
    train(tiny_config(*bench, train__epochs=2), out, parts, step_hook=steps.append)
    assert steps == list(range(len(first_epoch) + 1, 2 * len(first_epoch) + 1))
    assert any(m.startswith("resumed from") for m in train_messages)
    assert read_log(out)[: len(first_epoch)] == first_epoch
    train(tiny_config(*bench, train__epochs=2), tmp_path / "straight", parts)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2
    assert_same_state(final_state(out), final_state(tmp_path / "straight"))
