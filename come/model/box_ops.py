"""Box conversions and overlaps. Boxes are float tensors [..., 4].

cxcywh = (centre x, centre y, width, height); xyxy = (x0, y0, x1, y1). Both may be normalised
or in pixels; the functions are scale-free.
"""
from __future__ import annotations

import torch
from torch import Tensor


def box_cxcywh_to_xyxy(b: Tensor) -> Tensor:
    """[..., 4] cxcywh -> [..., 4] xyxy."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(b: Tensor) -> Tensor:
    """[..., 4] xyxy -> [..., 4] cxcywh."""
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(b: Tensor) -> Tensor:
    """[..., 4] xyxy -> [...] area (negative extents count as zero)."""
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> tuple[Tensor, Tensor]:
    """Pairwise IoU of a [N, 4] and b [M, 4] (xyxy) -> (iou [N, M], union [N, M])."""
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp(min=eps), union


def generalized_box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise generalised IoU (Rezatofighi et al. 2019) of a [N, 4], b [M, 4] xyxy -> [N, M].

    GIoU = IoU - (|C| - |A u B|) / |C| with C the smallest enclosing box; in [-1, 1].
    """
    if a.numel() and not bool((a[:, 2:] >= a[:, :2]).all()):
        raise ValueError("generalized_box_iou: boxes in `a` have x1 < x0 or y1 < y0")
    if b.numel() and not bool((b[:, 2:] >= b[:, :2]).all()):
        raise ValueError("generalized_box_iou: boxes in `b` have x1 < x0 or y1 < y0")
    iou, union = box_iou(a, b, eps)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclose = wh[..., 0] * wh[..., 1]
    return iou - (enclose - union) / enclose.clamp(min=eps)
