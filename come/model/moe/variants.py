"""DINO-MoE ("moe") and DAMEX ("damex") in the detector's FFN slot.

    ffn = build_ffn(cfg, D, stage, layer_idx)          # come.model.ffn
    y [B, L, D], aux = ffn(x [B, L, D], ctx: FFNContext)

Tokens are flattened batch-major (t = b * L + l; the detector is batch-first) and padded
tokens (ctx.key_padding_mask) are not routed (zero output, no capacity, not in any loss).
- "moe":   tutel MoE; aux "moe_balance" = balance_weight * (CV^2(imp) + CV^2(load)) / 2.
- "damex": tutel MoE with `cfg.activation` experts (preset: gelu); aux "damex_route" =
  route_weight * CE(clean router logits, soft target of the token's source) over the routed
  tokens with a known source; no balance loss. Targets (labels.trace_targets): each source of
  `set_sources(names)` (default: the 8 paper datasets; build_detector passes
  cfg.run.train_datasets) is uniform over its contiguous expert block (one-hot when E = S). The pre-norm x + DropPath(MoE(norm(x))) wrapper is applied by the
  detector's FFNBlock (come/model/ffn_block.py) when cfg.prenorm is set (DAMEX preset).
A recorder (come.model.moe.stats) attached as `.recorder` receives every forward's routing.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from come.config.schema import ALL_DATASETS, FFNConfig
from come.model.ffn import FFNContext, register_ffn

from .labels import soft_label_ce, token_labels, trace_targets
from .layer import MoELayer, RoutingInfo

LAYOUT = "batch_major"


def build_moe_layer(cfg: FFNConfig, d_model: int, temperature: float = 1.0,
                    native_only: bool = False) -> MoELayer:
    """The MoE layer of `cfg`; `native_only` (COME's clustered router) maps backend auto to
    native and rejects an explicit tutel backend."""
    backend = cfg.backend
    if native_only and backend != "native":
        if backend == "tutel":
            raise ValueError("model.ffn.backend=tutel: COME routes on reduce(token, cluster "
                             "feature), which tutel's layer cannot take; use backend native or auto")
        backend = "native"
    return MoELayer(d_model, cfg.hidden_dim, cfg.num_experts, cfg.top_k, cfg.capacity_factor,
                    cfg.gate_noise, cfg.normalize_gate, cfg.batch_prioritized_routing,
                    cfg.activation, cfg.dropout, temperature, backend,
                    fc2_bias=cfg.fc2_bias, init_std=cfg.init_std)


def routed_labels(info: RoutingInfo, labels: Tensor) -> Tensor:
    """Labels [N] of all flattened tokens -> labels [n] of the routed ones."""
    return labels if info.valid_index is None else labels[info.valid_index]


def label_ce(info: RoutingInfo, sources: Tensor, targets: Tensor) -> Optional[Tensor]:
    """Mean soft CE [] of the routed tokens' router logits against the targets [S, E] of their
    sources [N] (ignore index: unlabelled); None if no routed token is labelled."""
    return soft_label_ce(info.logits, routed_labels(info, sources), targets)


def set_trace_sources(model: nn.Module, sources: list[str]) -> None:
    """Give every routed FFN of `model` the training sources (index = source_id)."""
    for m in model.modules():
        if isinstance(m, RoutedFFN):
            m.set_sources(sources)


class RoutedFFN(nn.Module):
    """Base of the routed FFNs: flattening, padding, routing call, recorder hook."""

    native_only = False                 # True in COME: the router input is not the token itself

    def __init__(self, cfg: FFNConfig, d_model: int, stage: str = "encoder", layer_idx: int = 0):
        super().__init__()
        self.cfg, self.d_model = cfg, d_model
        self.layer_name = f"{stage}.{layer_idx}"
        self.recorder: Any = None
        self.last_cluster_ms = 0.0          # clustering time of the last forward (COME)
        self.last_routing: Optional[RoutingInfo] = None   # set while a recorder is attached
        self.moe = build_moe_layer(cfg, d_model, self._temperature(), self.native_only)
        self.register_buffer("trace_target", torch.zeros(0), persistent=False)
        self.set_sources(list(ALL_DATASETS))

    def set_sources(self, sources: list[str]) -> None:
        """Training sources in source_id order -> routing targets [S, E] (labels.trace_targets)."""
        self.sources = list(sources)
        self.trace_target = trace_targets(self.sources, self.cfg.num_experts).to(self.trace_target.device)

    def _temperature(self) -> float:
        return 1.0

    def _flat(self, x: Tensor, ctx: FFNContext) -> tuple[Tensor, Optional[Tensor], Tensor]:
        """-> x [B*L, D], valid [B*L] or None, sources [B*L] (source_id; ignore index for
        padding and unknown sources)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{type(self).__name__} {self.layer_name}: x must be [B, L, "
                             f"{self.d_model}], got {tuple(x.shape)}")
        b, l, d = x.shape
        pad = ctx.key_padding_mask
        if pad is not None and pad.shape != (b, l):
            raise ValueError(f"{self.layer_name}: key_padding_mask {tuple(pad.shape)} != {(b, l)}")
        labels = token_labels(ctx.source_ids.to(x.device), b, l, LAYOUT, None, pad)
        valid = None if pad is None else ~pad.reshape(-1)
        return x.reshape(b * l, d), valid, labels

    def _record(self, info: RoutingInfo, ctx: FFNContext, x: Tensor,
                clusters: Optional[dict[str, Tensor]] = None) -> None:
        if self.recorder is not None:
            self.last_routing = info      # expert per token, gates, kept (dropped = ~kept)
            self.recorder.update(self, info, ctx, x, clusters)

    def forward(self, x: Tensor, ctx: FFNContext) -> tuple[Tensor, dict[str, Tensor]]:
        b, l, d = x.shape
        xf, valid, labels = self._flat(x, ctx)
        y, info = self.moe(xf, None, valid)
        self._record(info, ctx, x)
        return y.view(b, l, d), self._losses(info, labels)

    def _losses(self, info: RoutingInfo, labels: Tensor) -> dict[str, Tensor]:
        aux: dict[str, Tensor] = {}
        if self.cfg.balance_weight > 0:
            aux["moe_balance"] = self.cfg.balance_weight * info.balance
        return aux


@register_ffn("moe")
class MoEFFN(RoutedFFN):
    """DINO-MoE: every FFN of cfg.stages (cfg.layers) is a tutel MoE with the balance loss."""


@register_ffn("damex")
class DamexFFN(RoutedFFN):
    """DAMEX: dataset-aware routing CE, no balance loss."""

    def _losses(self, info: RoutingInfo, labels: Tensor) -> dict[str, Tensor]:
        aux: dict[str, Tensor] = {}
        ce = label_ce(info, labels, self.trace_target)
        if ce is not None and self.cfg.route_weight > 0:
            aux["damex_route"] = self.cfg.route_weight * ce
        return aux
