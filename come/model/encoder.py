"""Deformable transformer encoder (batch-first) with the pluggable FFN slot.

`DeformableEncoder(tokens: MultiScaleTokens, source_ids [B], shared) -> (memory [B, N, D],
aux list[dict])`. Each layer: multi-scale deformable self-attention over all levels (post-norm
residual), then the FFN sub-layer built by `build_ffn(cfg, D, "encoder", i)` and called with
FFNContext(ref_points = each token's cell centre normalised to its image's unpadded extent,
the frame of the shared-expert maps (come.experts.bank); tokens in the padding get values > 1;
key_padding_mask = the token padding mask).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from come.config.schema import ModelConfig

from .deform_attn import MSDeformAttn
from .ffn import FFNContext
from .ffn_block import FFNBlock
from .neck import MultiScaleTokens


def encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
    """Cell centres of every level normalised to the valid (unpadded) extent.

    spatial_shapes [L, 2], valid_ratios [B, L, 2] (w, h) -> [B, N, 2] (x, y); tokens inside the
    padding get values > 1.
    """
    refs = []
    device = valid_ratios.device
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device) + 0.5,
                                torch.arange(w, dtype=torch.float32, device=device) + 0.5, indexing="ij")
        ry = ys.reshape(1, -1) / (valid_ratios[:, None, lvl, 1] * h)
        rx = xs.reshape(1, -1) / (valid_ratios[:, None, lvl, 0] * w)
        refs.append(torch.stack([rx, ry], -1))
    return torch.cat(refs, 1)


class DeformableEncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        d = cfg.hidden_dim
        self.layer_idx = layer_idx
        self.self_attn = MSDeformAttn(d, cfg.num_feature_levels, cfg.nheads, cfg.enc_n_points, cfg.deform_impl)
        self.dropout = nn.Dropout(cfg.dropout)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = FFNBlock(cfg.ffn, d, "encoder", layer_idx, cfg.dropout)

    def forward(self, src: Tensor, pos: Tensor, ref_levels: Tensor, tokens: MultiScaleTokens,
                ctx: FFNContext) -> tuple[Tensor, dict[str, Tensor]]:
        """src, pos [B, N, D]; ref_levels [B, N, L, 2] -> (src [B, N, D], aux)."""
        attn = self.self_attn(src + pos, ref_levels, src, tokens.spatial_shapes,
                              tokens.level_start_index, tokens.mask)
        src = self.norm1(src + self.dropout(attn))
        return self.ffn(src, ctx)


class DeformableEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(cfg, i) for i in range(cfg.enc_layers))

    def forward(self, tokens: MultiScaleTokens, source_ids: Tensor,
                shared: Optional[dict[str, Tensor]] = None) -> tuple[Tensor, list[dict[str, Tensor]]]:
        ref = encoder_reference_points(tokens.spatial_shapes, tokens.valid_ratios)   # [B, N, 2]
        ref_levels = ref[:, :, None] * tokens.valid_ratios[:, None]                  # [B, N, L, 2]
        src, auxes = tokens.src, []
        for i, layer in enumerate(self.layers):
            ctx = FFNContext(source_ids=source_ids, ref_points=ref, key_padding_mask=tokens.mask,
                             shared=shared or {}, stage="encoder", layer_idx=i)
            src, aux = layer(src, tokens.pos, ref_levels, tokens, ctx)
            auxes.append(aux)
        return src, auxes
