"""Two-stage mixed query selection of DINO.

Every encoder token becomes a proposal box (its cell centre, size 0.05 * 2^level); the
encoder-output heads score and refine them; the top-k tokens by best class logit give the
decoder's initial anchors (positional part) while the content queries stay learned.
`QuerySelector(memory [B, N, D], tokens, num_queries) -> Selection`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import MLP
from .neck import MultiScaleTokens


def encoder_proposals(memory: Tensor, mask: Tensor, spatial_shapes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """memory [B, N, D], mask [B, N] -> (memory with invalid tokens zeroed [B, N, D],
    proposals [B, N, 4] unsigmoided (inf where invalid), valid [B, N] bool).

    A proposal is invalid on padding or when any coordinate leaves (0.01, 0.99)."""
    b = memory.shape[0]
    props, start = [], 0
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        m = mask[:, start:start + h * w].view(b, h, w)
        valid_h = (~m[:, :, 0]).sum(1).clamp(min=1).float()
        valid_w = (~m[:, 0, :]).sum(1).clamp(min=1).float()
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=memory.device),
                                torch.arange(w, dtype=torch.float32, device=memory.device), indexing="ij")
        grid = torch.stack([xs, ys], -1)[None] + 0.5                       # [1, h, w, 2]
        scale = torch.stack([valid_w, valid_h], -1).view(b, 1, 1, 2)
        centres = grid / scale
        wh = torch.full_like(centres, 0.05 * (2.0 ** lvl))
        props.append(torch.cat([centres, wh], -1).view(b, -1, 4))
        start += h * w
    p = torch.cat(props, 1)
    valid = ((p > 0.01) & (p < 0.99)).all(-1) & ~mask
    p = torch.log(p / (1 - p)).masked_fill(~valid[..., None], float("inf"))
    return memory.masked_fill(~valid[..., None], 0.0), p, valid


@dataclass
class Selection:
    ref_unsig: Tensor        # [B, Q, 4] detached unsigmoided anchors for the decoder
    interm_logits: Tensor    # [B, Q, C] encoder-head class logits of the selected tokens
    interm_boxes: Tensor     # [B, Q, 4] sigmoid boxes of the selected tokens (with gradient)


def prior_bias(prior_prob: float = 0.01) -> float:
    return -math.log((1 - prior_prob) / prior_prob)


class QuerySelector(nn.Module):
    def __init__(self, d_model: int, num_classes: int):
        super().__init__()
        self.enc_output = nn.Linear(d_model, d_model)
        self.enc_output_norm = nn.LayerNorm(d_model)
        self.enc_out_class_embed = nn.Linear(d_model, num_classes)
        self.enc_out_bbox_embed = MLP(d_model, d_model, 4, 3)
        nn.init.constant_(self.enc_out_class_embed.bias, prior_bias())
        nn.init.zeros_(self.enc_out_bbox_embed.layers[-1].weight)
        nn.init.zeros_(self.enc_out_bbox_embed.layers[-1].bias)

    def forward(self, memory: Tensor, tokens: MultiScaleTokens, num_queries: int) -> Selection:
        n = memory.shape[1]
        if num_queries > n:
            raise ValueError(f"model.num_queries {num_queries} exceeds the {n} encoder tokens of this "
                             "input: use larger images or fewer queries")
        mem, props, valid = encoder_proposals(memory, tokens.mask, tokens.spatial_shapes)
        mem = self.enc_output_norm(self.enc_output(mem))
        logits = self.enc_out_class_embed(mem)                               # [B, N, C]
        coords = self.enc_out_bbox_embed(mem) + props                        # [B, N, 4] unsig
        score = logits.max(-1)[0].detach().masked_fill(~valid, torch.finfo(logits.dtype).min)
        idx = score.topk(num_queries, dim=1)[1]                              # [B, Q]
        ref_unsig = torch.gather(coords, 1, idx[..., None].expand(-1, -1, 4))
        tgt = torch.gather(mem, 1, idx[..., None].expand(-1, -1, mem.shape[-1]))
        return Selection(ref_unsig.detach(), self.enc_out_class_embed(tgt), ref_unsig.sigmoid())
