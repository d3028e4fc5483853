"""DINO deformable decoder (batch-first) with iterative box refinement and the FFN slot.

`DeformableDecoder(tgt [B, Q, D], ref_unsig [B, Q, 4], memory [B, N, D], tokens, bbox_embed,
attn_mask [Q, Q] | None, source_ids [B], shared, num_dn) -> (hs list of [B, Q, D] (normed, one per
layer), refs list of [B, Q, 4] sigmoid boxes (dec_layers + 1: the initial anchors, then each
layer's undetached refinement), aux list[dict])`.
Each layer: self-attention (query pos from the sine embedding of the current reference box),
deformable cross-attention with 4-d reference boxes, FFN slot with ref_points = the current
reference box centres normalised to the unpadded image (like the boxes and targets; the frame
of the shared-expert maps).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from come.config.schema import ModelConfig

from .deform_attn import MSDeformAttn
from .ffn import FFNContext
from .ffn_block import FFNBlock
from .layers import MLP, inverse_sigmoid, sine_embed_boxes
from .neck import MultiScaleTokens


class DeformableDecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        d = cfg.hidden_dim
        self.self_attn = nn.MultiheadAttention(d, cfg.nheads, dropout=cfg.dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.cross_attn = MSDeformAttn(d, cfg.num_feature_levels, cfg.nheads, cfg.dec_n_points, cfg.deform_impl)
        self.norm1 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(cfg.dropout)
        self.dropout2 = nn.Dropout(cfg.dropout)
        self.ffn = FFNBlock(cfg.ffn, d, "decoder", layer_idx, cfg.dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, ref_input: Tensor, memory: Tensor,
                tokens: MultiScaleTokens, attn_mask: Optional[Tensor], ctx: FFNContext
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """tgt, query_pos [B, Q, D]; ref_input [B, Q, L, 4] -> (tgt [B, Q, D], aux)."""
        q = k = tgt + query_pos
        sa = self.self_attn(q, k, tgt, attn_mask=attn_mask, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(sa))
        ca = self.cross_attn(tgt + query_pos, ref_input, memory, tokens.spatial_shapes,
                             tokens.level_start_index, tokens.mask)
        tgt = self.norm1(tgt + self.dropout1(ca))
        return self.ffn(tgt, ctx)


class DeformableDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.d_model = d
        self.layers = nn.ModuleList(DeformableDecoderLayer(cfg, i) for i in range(cfg.dec_layers))
        self.ref_point_head = MLP(2 * d, d, d, 2)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt: Tensor, ref_unsig: Tensor, memory: Tensor, tokens: MultiScaleTokens,
                bbox_embed: nn.Module, attn_mask: Optional[Tensor], source_ids: Tensor,
                shared: Optional[dict[str, Tensor]] = None, num_dn: int = 0
                ) -> tuple[list[Tensor], list[Tensor], list[dict[str, Tensor]]]:
        """num_dn: the first num_dn queries are denoising queries (FFNContext.num_denoising)."""
        ref = ref_unsig.sigmoid()
        refs, hs, auxes = [ref], [], []
        ratios = torch.cat([tokens.valid_ratios, tokens.valid_ratios], -1)[:, None]   # [B, 1, L, 4]
        out = tgt
        for i, layer in enumerate(self.layers):
            ref_input = ref[:, :, None] * ratios                                     # [B, Q, L, 4]
            query_pos = self.ref_point_head(sine_embed_boxes(ref_input[:, :, 0], self.d_model))
            # box centres normalised to the unpadded image (the frame of the shared-expert maps)
            ctx = FFNContext(source_ids=source_ids, ref_points=ref[:, :, :2], key_padding_mask=None,
                             shared=shared or {}, stage="decoder", layer_idx=i, num_denoising=num_dn)
            out, aux = layer(out, query_pos, ref_input, memory, tokens, attn_mask, ctx)
            auxes.append(aux)
            new_ref = (bbox_embed(out) + inverse_sigmoid(ref)).sigmoid()
            refs.append(new_ref)
            ref = new_ref.detach()
            hs.append(self.norm(out))
        return hs, refs, auxes
