"""Sine position encoding of feature maps honouring the padding mask (DETR / DINO).

`PositionEmbeddingSine(num_pos_feats)(mask [B, H, W] bool, True = padding) -> [B, 2*F, H, W]`
with F = num_pos_feats: y features then x features. Cumulative sums over valid pixels are
normalised to the valid extent (minus a 0.5 offset) and scaled by 2*pi.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    def __init__(self, num_pos_feats: int, temperature: float = 10000.0, normalize: bool = True,
                 scale: float = 2 * math.pi):
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"PositionEmbeddingSine: num_pos_feats {num_pos_feats} must be even")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale

    def forward(self, mask: Tensor) -> Tensor:
        """mask [B, H, W] bool (True = padding) -> pos [B, 2*num_pos_feats, H, W] float32."""
        not_mask = (~mask).float()
        y = not_mask.cumsum(1)
        x = not_mask.cumsum(2)
        if self.normalize:
            eps = 1e-6
            y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
            x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        px = x[..., None] / dim_t
        py = y[..., None] / dim_t
        px = torch.stack([px[..., 0::2].sin(), px[..., 1::2].cos()], dim=4).flatten(3)
        py = torch.stack([py[..., 0::2].sin(), py[..., 1::2].cos()], dim=4).flatten(3)
        return torch.cat([py, px], dim=3).permute(0, 3, 1, 2)
