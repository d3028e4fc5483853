"""AdamW with DINO's parameter groups and the step learning-rate schedule.

Groups: backbone parameters (name contains "backbone") at `model.backbone.lr`; parameters
whose name contains "sampling_offsets" or "reference_points" at `train.lr *
train.sampling_offsets_lr_mult`; everything else at `train.lr`. Weight decay
`train.weight_decay` everywhere (as DINO). Frozen parameters are left out.
`adamw` builds every AdamW of the package (detector, YOLO baselines, both experts).
"""
from __future__ import annotations

from typing import Any, Iterable

from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import MultiStepLR

from come.config.schema import Config

LR_MULT_KEYS = ("sampling_offsets", "reference_points")


def group_of(name: str) -> str:
    """"backbone" | "offsets" | "main" for a parameter name."""
    if "backbone" in name:
        return "backbone"
    if any(k in name for k in LR_MULT_KEYS):
        return "offsets"
    return "main"


def param_groups(model: nn.Module, cfg: Config) -> list[dict]:
    """AdamW parameter groups (empty groups dropped); each carries a "name"."""
    lrs = {"main": cfg.train.lr, "backbone": cfg.model.backbone.lr,
           "offsets": cfg.train.lr * cfg.train.sampling_offsets_lr_mult}
    params: dict[str, list] = {"main": [], "backbone": [], "offsets": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            params[group_of(name)].append(p)
    return [{"name": g, "params": ps, "lr": lrs[g], "weight_decay": cfg.train.weight_decay}
            for g, ps in params.items() if ps]


def adamw(params: Iterable[Any], **kwargs: Any) -> AdamW:
    """torch's AdamW with its fused update where this torch has one for the parameters' device
    (CPU since torch 2.4, CUDA): the same arithmetic in one pass over each tensor instead of about
    ten elementwise ops (benchmarks/bench_kernels.py: 3.4x faster on the embedded CLIP's 8 M
    parameters); the plain update elsewhere. `params`: tensors or parameter-group dicts."""
    params = list(params)
    try:
        return AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):      # no fused kernel for this device / dtype
        return AdamW(params, **kwargs)


def build_optimizer(model: nn.Module, cfg: Config) -> AdamW:
    groups = param_groups(model, cfg)
    if not groups:
        raise ValueError("the model has no trainable parameter")
    return adamw(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def build_scheduler(optimizer: AdamW, cfg: Config) -> MultiStepLR:
    """Per-epoch step schedule: lr *= lr_drop_factor at each epoch of `lr_drop_epochs`
    (stepped once at the end of every epoch)."""
    return MultiStepLR(optimizer, milestones=list(cfg.train.lr_drop_epochs),
                       gamma=cfg.train.lr_drop_factor)
