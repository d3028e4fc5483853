"""The detector parts the engine drives, behind one small interface.

`default_parts(cfg)` binds `come.model.detector` (build_detector, build_criterion, postprocess,
see docs/architecture.md); tests pass a stand-in `DetectorParts` with the same contract:

    model = build_model(cfg)
    out = model(images [B,3,H,W], pad_mask [B,H,W], source_ids [B], targets=..., shared=...)
    losses = build_criterion(cfg)(out, targets)       # dict of scalars, "loss" = total
    dets = postprocess(out, orig_sizes [B,2] (h, w))  # list of {scores, labels, boxes xyxy px}

Shared experts: `load_bank(cfg, device)` calls `come.experts.bank.load_shared_experts` only
for COME runs with a shared expert switched on, so dense runs never import it.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from come.config.schema import Config


@dataclass
class DetectorParts:
    build_model: Callable[[Config], nn.Module]
    build_criterion: Callable[[Config], Callable[..., dict[str, Tensor]]]
    postprocess: Callable[[dict, Tensor], list[dict[str, Tensor]]]


def default_parts(cfg: Config) -> DetectorParts:
    """The real DINO detector of `come.model.detector` (Open-GroundingDINO for model.arch
    grounding-dino: come.baselines.grounding)."""
    if cfg.model.arch == "grounding-dino":
        from come.baselines.grounding.model import grounding_parts
        return grounding_parts(cfg)
    try:
        from come.model import detector
    except ImportError as exc:
        raise RuntimeError(f"come.model.detector is not importable ({exc}); the detector part "
                           "of the package is missing") from exc
    pp = detector.postprocess
    if "num_select" in inspect.signature(pp).parameters:
        def postprocess(out: dict, orig_sizes: Tensor) -> list[dict[str, Tensor]]:
            return pp(out, orig_sizes, num_select=cfg.model.num_select)
    else:
        postprocess = pp
    return DetectorParts(detector.build_detector, detector.build_criterion, postprocess)


def needs_bank(cfg: Config) -> bool:
    ffn = cfg.model.ffn
    return ffn.type == "come" and (ffn.use_ste or ffn.use_see)


def load_bank(cfg: Config, device: torch.device) -> Optional[Callable[[Tensor], dict[str, Tensor]]]:
    """The frozen shared-expert bank, or None when the method has none."""
    if not needs_bank(cfg):
        return None
    try:
        from come.experts.bank import load_shared_experts
    except ImportError as exc:
        raise RuntimeError("model.ffn.type=come with use_ste/use_see needs come.experts.bank "
                           f"(not importable: {exc}); switch both off for a run without shared "
                           "experts") from exc
    return load_shared_experts(cfg, device)


@torch.no_grad()
def shared_features(bank: Any, images: Tensor, pad_mask: Optional[Tensor] = None) -> Optional[dict[str, Tensor]]:
    """bank(images, pad_mask) without gradients (each image encoded unpadded), or None without a bank."""
    return None if bank is None else bank(images, pad_mask)
