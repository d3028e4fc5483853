"""Optimiser groups, schedule, checkpoint I/O and RNG capture."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from come.config import load_config
from come.engine.checkpoint import is_finished, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from come.engine.optim import adamw, build_optimizer, build_scheduler

from .conftest import TinyDetector


def test_param_groups_follow_dino():
    cfg = load_config(None, ["train.lr=1.0e-4", "model.backbone.lr=1.0e-5",
                             "train.sampling_offsets_lr_mult=0.1", "train.weight_decay=1.0e-4"])
    model = TinyDetector()
    model.backbone[0].bias.requires_grad_(False)                # frozen params are left out
    opt = build_optimizer(model, cfg)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"main": 1e-4, "backbone": 1e-5, "offsets": 1e-5})
    names = {g["name"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert id(model.sampling_offsets.weight) in names["offsets"]
    assert id(model.backbone[0].weight) in names["backbone"]
    assert id(model.backbone[0].bias) not in set().union(*names.values())
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)


def test_adamw_is_fused_where_torch_has_it_and_steps_like_the_plain_update():
    """On CPU (torch >= 2.4) `adamw` is the fused AdamW; 20 steps with weight decay land on the
    plain AdamW's parameters to float rounding. Where no fused kernel exists it falls back.
    Mutation: dropping weight_decay or betas from the kwargs it forwards fails the comparison."""
    torch.manual_seed(0)
    plain_model, fused_model = TinyDetector(), TinyDetector()
    fused_model.load_state_dict(plain_model.state_dict())
    kwargs = dict(lr=1e-2, weight_decay=0.05, betas=(0.9, 0.95))
    plain = torch.optim.AdamW(list(plain_model.parameters()), **kwargs)
    fused = adamw(fused_model.parameters(), **kwargs)            # a generator is accepted too
    assert fused.param_groups[0]["fused"] is True
    start = [p.detach().clone() for p in plain_model.parameters()]
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        for a, b in zip(plain_model.parameters(), fused_model.parameters()):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        plain.step()
        fused.step()
    for a, b in zip(plain_model.parameters(), fused_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert all(not torch.allclose(a, s0) for a, s0 in zip(plain_model.parameters(), start))  # they moved


def test_adamw_falls_back_without_a_fused_kernel(monkeypatch):
    import come.engine.optim as optim
    real = optim.AdamW

    def no_fused(params, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors "
                               "of supported devices")
        return real(params, **kw)

    monkeypatch.setattr(optim, "AdamW", no_fused)
    opt = optim.adamw((p for p in TinyDetector().parameters()), lr=1e-3)
    assert not opt.param_groups[0]["fused"] and len(opt.param_groups[0]["params"]) > 0


def test_step_schedule_drops_at_the_given_epoch():
    cfg = load_config(None, ["train.lr=0.001", "train.lr_drop_epochs=[2]", "train.lr_drop_factor=0.1"])
    opt = build_optimizer(TinyDetector(), cfg)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()                                              # no grads: only the order matters
        sched.step()
    assert seen == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()                                          # leaves a cached gaussian
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": [rng_state()], "finished": True})
    expect = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt = load_checkpoint(tmp_path / "c.pt")                  # weights_only=True inside
    set_rng_state(ckpt["rng"][0])
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expect[:3] and torch.equal(got[3], expect[3])
    assert is_finished(tmp_path / "c.pt")
    assert not list(tmp_path.glob("*.tmp"))                     # atomic write leaves no temp file


def test_bad_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="bad.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="other.pt: not a COME checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    assert not is_finished(tmp_path / "bad.pt")
