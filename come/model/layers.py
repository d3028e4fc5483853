"""Small building blocks shared by the detector: MLP, inverse sigmoid, DropPath, sine
embedding of box coordinates, GroupNorm group choice."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """`num_layers` Linear layers with ReLU in between: [..., in_dim] -> [..., out_dim]."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """logit(x) with x clamped to [0, 1] and both terms to >= eps (finite everywhere)."""
    x = x.clamp(min=0.0, max=1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


class DropPath(nn.Module):
    """Stochastic depth per sample: drops the whole residual branch with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep


def sine_embed_boxes(boxes: Tensor, d_model: int, temperature: float = 10000.0) -> Tensor:
    """Sine embedding of normalised boxes [..., 4] (cx, cy, w, h) -> [..., 2 * d_model].

    Each coordinate gets d_model // 2 features (sin on even, cos on odd frequencies), concatenated
    in the order (y, x, w, h) as DINO does; 2-d points [..., 2] give [..., d_model].
    """
    half = d_model // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)

    def embed(coord: Tensor) -> Tensor:
        pos = coord[..., None] * (2 * math.pi) / dim_t
        return torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], dim=-1).flatten(-2)

    parts = [embed(boxes[..., 1]), embed(boxes[..., 0])]
    if boxes.shape[-1] == 4:
        parts += [embed(boxes[..., 2]), embed(boxes[..., 3])]
    elif boxes.shape[-1] != 2:
        raise ValueError(f"sine_embed_boxes: last dim must be 2 or 4, got {boxes.shape[-1]}")
    return torch.cat(parts, dim=-1)


def group_norm_groups(channels: int, max_groups: int = 32) -> int:
    """Largest number of groups <= max_groups that divides `channels` (32 for 256).

    At least 2 channels per group: a 1x1 feature map of a single image would otherwise give
    GroupNorm one value per group (an error, and a meaningless normalisation).
    """
    for g in range(min(max_groups, channels // 2 or 1), 0, -1):
        if channels % g == 0:
            return g
    return 1
