"""Input projections and multi-scale flattening (Deformable DETR / DINO).

Backbone levels get a 1x1 conv + GroupNorm to `hidden_dim`; extra levels (up to
`num_feature_levels`) a stride-2 3x3 conv + GroupNorm on the previous level. Each level's padding
mask is the image mask resized, its position code the sine encoding plus a learned level
embedding. `MultiScaleNeck(features, pad_mask) -> MultiScaleTokens` (batch-first, flattened).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import group_norm_groups
from .position import PositionEmbeddingSine


@dataclass
class MultiScaleTokens:
    """All levels flattened and concatenated; N = sum_l H_l * W_l."""
    src: Tensor                 # [B, N, D] projected features
    mask: Tensor                # [B, N] bool, True = padding
    pos: Tensor                 # [B, N, D] sine position + level embedding
    spatial_shapes: Tensor      # [n_levels, 2] long (H_l, W_l)
    level_start_index: Tensor   # [n_levels] long
    valid_ratios: Tensor        # [B, n_levels, 2] (w, h) fraction of each map that is not padding


def valid_ratio(mask: Tensor) -> Tensor:
    """mask [B, H, W] (True = padding) -> [B, 2] (valid width / W, valid height / H)."""
    _, h, w = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float().clamp(min=1)   # >= 1 row even if fully padded
    valid_w = (~mask[:, 0, :]).sum(1).float().clamp(min=1)
    return torch.stack([valid_w / w, valid_h / h], dim=-1)


class MultiScaleNeck(nn.Module):
    def __init__(self, in_channels: list[int], hidden_dim: int, num_levels: int,
                 pos_temperature: float = 10000.0):
        super().__init__()
        if num_levels < len(in_channels):
            raise ValueError(f"model.num_feature_levels {num_levels} < backbone levels {len(in_channels)}")
        groups = group_norm_groups(hidden_dim)
        projs = [nn.Sequential(nn.Conv2d(c, hidden_dim, 1), nn.GroupNorm(groups, hidden_dim))
                 for c in in_channels]
        prev = in_channels[-1]
        for _ in range(num_levels - len(in_channels)):
            projs.append(nn.Sequential(nn.Conv2d(prev, hidden_dim, 3, stride=2, padding=1),
                                       nn.GroupNorm(groups, hidden_dim)))
            prev = hidden_dim
        self.input_proj = nn.ModuleList(projs)
        self.num_backbone_levels = len(in_channels)
        self.position = PositionEmbeddingSine(hidden_dim // 2, temperature=pos_temperature)
        self.level_embed = nn.Parameter(torch.empty(num_levels, hidden_dim))
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        nn.init.normal_(self.level_embed)

    def forward(self, features: list[Tensor], pad_mask: Tensor) -> MultiScaleTokens:
        """features: backbone maps [B, C_l, H_l, W_l]; pad_mask [B, H, W] bool -> tokens."""
        srcs, masks = [], []
        for lvl, proj in enumerate(self.input_proj):
            if lvl < self.num_backbone_levels:
                src = proj(features[lvl])
            else:   # the first extra level reads the raw last backbone map, later ones the previous level
                src = proj(features[-1] if lvl == self.num_backbone_levels else srcs[-1])
            m = F.interpolate(pad_mask[None].float(), size=src.shape[-2:])[0].bool()
            srcs.append(src)
            masks.append(m)
        flat_src, flat_mask, flat_pos, shapes, ratios = [], [], [], [], []
        for lvl, (src, m) in enumerate(zip(srcs, masks)):
            pos = self.position(m).to(src.dtype)
            shapes.append(src.shape[-2:])
            flat_src.append(src.flatten(2).transpose(1, 2))
            flat_mask.append(m.flatten(1))
            flat_pos.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl][None, None])
            ratios.append(valid_ratio(m))
        device = pad_mask.device
        spatial_shapes = torch.as_tensor([tuple(s) for s in shapes], dtype=torch.long, device=device)
        sizes = spatial_shapes.prod(1)
        starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        return MultiScaleTokens(torch.cat(flat_src, 1), torch.cat(flat_mask, 1), torch.cat(flat_pos, 1),
                                spatial_shapes, starts, torch.stack(ratios, 1))
