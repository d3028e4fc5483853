"""The FFN sub-layer of an encoder/decoder layer around the pluggable slot `come.model.ffn`.

Post-norm (DINO): x = norm(x + dropout(ffn(x))). Pre-norm (DAMEX, only for routed layers when
`cfg.prenorm`): x = x + DropPath(ffn(norm(x))). `FFNBlock(x [B, L, D], ctx) -> (x, aux)`.
"""
from __future__ import annotations

from torch import Tensor, nn

from come.config.schema import FFNConfig

from .ffn import FFNContext, build_ffn, uses_routed_ffn
from .layers import DropPath


class FFNBlock(nn.Module):
    def __init__(self, cfg: FFNConfig, d_model: int, stage: str, layer_idx: int, dropout: float):
        super().__init__()
        self.ffn = build_ffn(cfg, d_model, stage, layer_idx)
        self.prenorm = bool(cfg.prenorm and uses_routed_ffn(cfg, stage, layer_idx))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(cfg.drop_path if self.prenorm else 0.0)

    def forward(self, x: Tensor, ctx: FFNContext) -> tuple[Tensor, dict[str, Tensor]]:
        if self.prenorm:
            y, aux = self.ffn(self.norm(x), ctx)
            return x + self.drop_path(y), aux
        y, aux = self.ffn(x, ctx)
        return self.norm(x + self.dropout(y)), aux
