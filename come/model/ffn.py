"""The pluggable FFN slot: context, registry, builder and the dense (DINO) FFN.

Every encoder/decoder layer calls `build_ffn(cfg, d_model, stage, layer_idx)`; the result is
called as `y, aux = ffn(x, ctx)` with x [B, L, D] and returns y [B, L, D] plus a dict of
already-weighted scalar auxiliary losses. MoE variants register themselves in
`come.model.moe` with `@register_ffn("name")`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from come.config.schema import FFNConfig


@dataclass
class FFNContext:
    """What a routed FFN may need to know about the tokens it transforms.

    source_ids:       [B] long, index of each image's dataset in `cfg.run.train_datasets`
                      (-1 for an evaluation-only dataset).
    ref_points:       [B, L, 2] (x, y) position of each token normalised to its image's unpadded
                      extent (the frame of the shared-expert maps), or None.
    key_padding_mask: [B, L] bool, True = padded token, or None.
    shared:           name -> frozen shared-expert features, [B, C, h, w] or [B, C].
    num_denoising:    the first `num_denoising` of the L tokens are denoising queries (decoder,
                      training); COME fits its cluster centres on the other (matching) tokens.
    """
    source_ids: Tensor
    ref_points: Optional[Tensor] = None
    key_padding_mask: Optional[Tensor] = None
    shared: dict[str, Tensor] = field(default_factory=dict)
    stage: str = "encoder"
    layer_idx: int = 0
    num_denoising: int = 0


FFN_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_ffn(name: str):
    """Class decorator: make `name` a valid `model.ffn.type`."""
    def deco(cls):
        FFN_REGISTRY[name] = cls
        return cls
    return deco


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU}[name]()


@register_ffn("dense")
class DenseFFN(nn.Module):
    """DINO's FFN: Linear(D, H) -> act -> dropout -> Linear(H, D) -> dropout."""

    def __init__(self, cfg: FFNConfig, d_model: int, stage: str = "encoder", layer_idx: int = 0):
        super().__init__()
        self.fc1 = nn.Linear(d_model, cfg.hidden_dim)
        self.fc2 = nn.Linear(cfg.hidden_dim, d_model)
        self.act = _activation(cfg.activation)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, ctx: Optional[FFNContext] = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x))))), {}


def uses_routed_ffn(cfg: FFNConfig, stage: str, layer_idx: int) -> bool:
    """True when layer (`stage`, `layer_idx`) gets `cfg.type` rather than the dense FFN."""
    if cfg.type == "dense" or stage not in cfg.stages:
        return False
    return cfg.layers is None or layer_idx in cfg.layers


def build_ffn(cfg: FFNConfig, d_model: int, stage: str, layer_idx: int) -> nn.Module:
    """The FFN of one layer: `cfg.type` where `cfg.stages`/`cfg.layers` select it, else dense."""
    kind = cfg.type if uses_routed_ffn(cfg, stage, layer_idx) else "dense"
    if kind not in FFN_REGISTRY:
        import come.model.moe  # noqa: F401  (registers the MoE family)
    if kind not in FFN_REGISTRY:
        raise ValueError(f"model.ffn.type: {kind!r} is not registered (known: {sorted(FFN_REGISTRY)})")
    return FFN_REGISTRY[kind](cfg, d_model, stage=stage, layer_idx=layer_idx)


def merge_aux(per_layer: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Average each auxiliary loss over the layers that returned it."""
    sums: dict[str, list[Tensor]] = {}
    for aux in per_layer:
        for k, v in aux.items():
            sums.setdefault(k, []).append(v)
    return {k: torch.stack(v).mean() for k, v in sums.items()}
