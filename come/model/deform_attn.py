"""Multi-scale deformable attention (Zhu et al. 2021), batch-first.

`MSDeformAttn(query [B, Lq, D], reference_points [B, Lq, n_levels, 2 | 4], value [B, N, D],
spatial_shapes [n_levels, 2], level_start_index [n_levels], padding_mask [B, N] | None)
-> [B, Lq, D]`. Reference points are normalised to each level's map (valid ratios already
applied); 4-d references (cx, cy, w, h) scale the offsets by half the box size / n_points.

The reference path `ms_deform_attn_pytorch` uses `grid_sample` (bilinear, zeros padding,
align_corners=False, grid = 2 * loc - 1) and runs anywhere. `impl="auto"` switches to the
compiled Deformable-DETR CUDA op only when it is importable and the tensors are on CUDA.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # compiled op of the Deformable DETR repository (optional, CUDA only)
    import MultiScaleDeformableAttention as _MSDA  # type: ignore
except Exception:  # pragma: no cover - depends on the machine
    _MSDA = None


def cuda_kernel_available() -> bool:
    return _MSDA is not None and torch.cuda.is_available()


def ms_deform_attn_pytorch(value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor,
                           attention_weights: Tensor) -> Tensor:
    """Pure-PyTorch core.

    value [B, N, H, Dh]; spatial_shapes [L, 2] (h, w); sampling_locations [B, Lq, H, L, P, 2]
    in [0, 1] (x, y); attention_weights [B, Lq, H, L, P] -> output [B, Lq, H * Dh].
    """
    b, _, n_heads, dh = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    shapes = spatial_shapes.tolist()
    values = value.split([int(h) * int(w) for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    attn = attention_weights.transpose(1, 2).reshape(b * n_heads, 1, lq, n_levels, n_points)
    out = None
    # level by level: weight and sum each level's samples as they come instead of stacking all
    # levels' [B*H, Dh, Lq, P] samples first (same sum; on CPU at real-cpu.yaml's 256 px about
    # 1.3x faster with a backward pass and 1.6x without: benchmarks/bench_kernels.py)
    for lvl, (h, w) in enumerate(shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * n_heads, dh, int(h), int(w))
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)          # [B*H, Lq, P, 2]
        sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros",
                                align_corners=False)                   # [B*H, Dh, Lq, P]
        term = (sampled * attn[..., lvl, :]).sum(-1)                    # [B*H, Dh, Lq]
        out = term if out is None else out + term
    return out.view(b, n_heads * dh, lq).transpose(1, 2).contiguous()


class _MSDeformAttnCUDA(torch.autograd.Function):  # pragma: no cover - needs the CUDA op
    """Autograd wrapper around the compiled op (same argument order as Deformable DETR)."""

    @staticmethod
    def forward(ctx, value, shapes, starts, locations, weights, im2col_step):
        ctx.im2col_step = im2col_step
        out = _MSDA.ms_deform_attn_forward(value, shapes, starts, locations, weights, im2col_step)
        ctx.save_for_backward(value, shapes, starts, locations, weights)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        value, shapes, starts, locations, weights = ctx.saved_tensors
        gv, gl, gw = _MSDA.ms_deform_attn_backward(value, shapes, starts, locations, weights,
                                                   grad_out.contiguous(), ctx.im2col_step)
        return gv, None, None, gl, gw, None


class MSDeformAttn(nn.Module):
    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int, impl: str = "auto"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MSDeformAttn: d_model {d_model} not divisible by n_heads {n_heads}")
        if impl not in ("auto", "pytorch", "cuda"):
            raise ValueError(f"model.deform_impl: {impl!r} is not auto|pytorch|cuda")
        if impl == "cuda" and not cuda_kernel_available():
            raise RuntimeError("model.deform_impl='cuda' but the MultiScaleDeformableAttention "
                               "extension is not importable or CUDA is absent; use 'auto' or 'pytorch'")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.impl = impl
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets start on a directional grid: head h points at angle 2*pi*h/H, point p at
        distance p+1 (in map cells); attention weights start uniform (zero logits)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def sampling(self, query: Tensor, reference_points: Tensor, spatial_shapes: Tensor
                 ) -> tuple[Tensor, Tensor]:
        """-> sampling locations [B, Lq, H, L, P, 2] and attention weights [B, Lq, H, L, P]."""
        b, lq, _ = query.shape
        h, l, p = self.n_heads, self.n_levels, self.n_points
        offsets = self.sampling_offsets(query).view(b, lq, h, l, p, 2)
        weights = self.attention_weights(query).view(b, lq, h, l * p).softmax(-1).view(b, lq, h, l, p)
        if reference_points.shape[-1] == 2:
            normaliser = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], -1).to(offsets.dtype)
            loc = reference_points[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            loc = (reference_points[:, :, None, :, None, :2]
                   + offsets / p * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f"MSDeformAttn: reference_points last dim must be 2 or 4, got "
                             f"{reference_points.shape[-1]}")
        return loc, weights

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        b, n, _ = value.shape
        if int(spatial_shapes.prod(1).sum()) != n:
            raise ValueError(f"MSDeformAttn: value has {n} tokens but spatial_shapes sum to "
                             f"{int(spatial_shapes.prod(1).sum())}")
        v = self.value_proj(value)
        if padding_mask is not None:
            v = v.masked_fill(padding_mask[..., None], 0.0)
        v = v.view(b, n, self.n_heads, self.d_model // self.n_heads)
        loc, weights = self.sampling(query, reference_points, spatial_shapes)
        use_cuda = self.impl in ("auto", "cuda") and v.is_cuda and _MSDA is not None
        if use_cuda:  # pragma: no cover - needs the CUDA op
            # the compiled op is float32/float64 only: run it in float32 under autocast
            out = _MSDeformAttnCUDA.apply(v.float().contiguous(), spatial_shapes, level_start_index,
                                          loc.float().contiguous(), weights.float().contiguous(), 64)
            out = out.to(query.dtype)
        else:
            out = ms_deform_attn_pytorch(v, spatial_shapes, loc, weights)
        return self.output_proj(out)
