"""COME ("come"): shared experts (STE, SEE) + clustered source-specific experts (S2E), Eq. 1.

    y [B, L, D], aux = COMEFFN(cfg, D, stage, layer_idx)(x [B, L, D], ctx)

S2E: per image, the non-padded tokens are clustered (`cfg.clustering`, no gradients): the
centres are fitted on the matching tokens only (not the first ctx.num_denoising denoising
queries, which exist in training only) and every token takes its nearest centre, so training
and test see the same centres (docs/method.md#dn-clustering). The router input is reduce(concat(x, cluster feature)) with reduce = Linear(2D, D) (gradients flow
through the token part and `reduce`); clustering "none" routes on x alone. The router is the
bias-free gate with a temperature: softmax(logits / cfg.temperature), Top-K, tutel capacity.
Shared experts: SharedProjections (come/model/moe/shared.py) turn ctx.shared into [B, L, D].
Fusion (Eq. 1): "concat" -> Linear(nD, D) over [STE, SEE, S2E] with n = 1 + use_ste + use_see
(a switched-off expert is left out; one switched on but absent from ctx contributes zeros);
with n = 1 (-DSE) the S2E output is used directly. "sum" -> S2E + STE + SEE (absent = 0).
Aux: "moe_balance" = balance_weight * balance loss; "come_trace" = trace_weight * CE(clean
router probabilities, soft target uniform over the source's expert block; labels.py) when
cfg.use_trace_loss.
`last_cluster_ms` holds the clustering wall time of the last forward (CUDA synchronised before
each clock read: stats.device_clock).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from come.config.schema import FFNConfig
from come.model.ffn import FFNContext, register_ffn

from .clustering import build_clusterer
from .layer import RoutingInfo
from .shared import SharedProjections
from .stats import device_clock
from .variants import RoutedFFN, label_ce


@register_ffn("come")
class COMEFFN(RoutedFFN):
    def __init__(self, cfg: FFNConfig, d_model: int, stage: str = "encoder", layer_idx: int = 0):
        super().__init__(cfg, d_model, stage, layer_idx)
        self.clusterer = build_clusterer(cfg)
        self.reduce = nn.Linear(2 * d_model, d_model) if self.clusterer is not None else None
        self.shared = SharedProjections(cfg, d_model)
        n = 1 + len(self.shared.names)
        self.fuse = nn.Linear(n * d_model, d_model) if cfg.fusion == "concat" and n > 1 else None

    native_only = True

    def _temperature(self) -> float:
        return self.cfg.temperature

    def cluster(self, x: Tensor, pad: Optional[Tensor], num_dn: int = 0
                ) -> tuple[Tensor, Optional[dict[str, Tensor]]]:
        """Router input [B, L, D] and the cluster labels (None without clustering); centres from
        the non-padded tokens after the first `num_dn` (denoising queries), all tokens assigned."""
        if self.clusterer is None:
            self.last_cluster_ms = 0.0
            return x, None
        fit = None if pad is None else ~pad
        if num_dn > 0:
            fit = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if fit is None else fit.clone()
            fit[:, :num_dn] = False
        t0 = device_clock(x.device)
        out = self.clusterer(x.detach(), fit)
        self.last_cluster_ms = (device_clock(x.device) - t0) * 1000.0
        feat = out.feature.to(x.dtype)
        return self.reduce(torch.cat([x, feat], -1)), out.labels

    def forward(self, x: Tensor, ctx: FFNContext) -> tuple[Tensor, dict[str, Tensor]]:
        b, l, d = x.shape
        xf, valid, labels = self._flat(x, ctx)
        r, clusters = self.cluster(x, ctx.key_padding_mask, ctx.num_denoising)
        y, info = self.moe(xf, r.reshape(b * l, d), valid)
        self._record(info, ctx, x, clusters)
        y = self._fuse(y.view(b, l, d), ctx, b, l)
        return y, self._losses(info, labels)

    def _fuse(self, s2e: Tensor, ctx: FFNContext, b: int, l: int) -> Tensor:
        feats = self.shared(ctx, b, l)
        parts = [feats[n] for n in self.shared.names]
        if self.cfg.fusion == "sum":
            for p in parts:
                if p is not None:
                    s2e = s2e + p.to(s2e.dtype)
            return s2e
        if self.fuse is None:
            return s2e
        cat = [torch.zeros_like(s2e) if p is None else p.to(s2e.dtype) for p in parts] + [s2e]
        return self.fuse(torch.cat(cat, -1))

    def _losses(self, info: RoutingInfo, labels: Tensor) -> dict[str, Tensor]:
        aux: dict[str, Tensor] = {}
        if self.cfg.balance_weight > 0:
            aux["moe_balance"] = self.cfg.balance_weight * info.balance
        if self.cfg.use_trace_loss and self.cfg.trace_weight > 0:
            ce = label_ce(info, labels, self.trace_target)
            if ce is not None:
                aux["come_trace"] = self.cfg.trace_weight * ce
        return aux
