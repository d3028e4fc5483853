"""DINO post-processing: top-k over (query, class) sigmoid scores, no NMS.

`postprocess(outputs, orig_sizes [B, 2] (h, w), num_select) -> list of {"scores" [K],
"labels" [K] long (0-based detector class), "boxes" [K, 4] xyxy in pixels of the original
image}` with K = min(num_select, Q * C). Boxes are predicted normalised to the unpadded image,
so scaling by the original size undoes any resize.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .box_ops import box_cxcywh_to_xyxy


@torch.no_grad()
def postprocess(outputs: dict, orig_sizes: Tensor, num_select: int = 100) -> list[dict[str, Tensor]]:
    logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
    b, q, c = logits.shape
    orig_sizes = torch.as_tensor(orig_sizes, device=logits.device)
    if orig_sizes.shape != (b, 2):
        raise ValueError(f"postprocess: orig_sizes must be [B={b}, 2] (h, w), got {tuple(orig_sizes.shape)}")
    k = min(int(num_select), q * c)
    scores, flat = logits.sigmoid().reshape(b, -1).topk(k, dim=1)
    query = torch.div(flat, c, rounding_mode="floor")
    labels = flat % c
    xyxy = box_cxcywh_to_xyxy(boxes)
    xyxy = torch.gather(xyxy, 1, query[..., None].expand(-1, -1, 4))
    h, w = orig_sizes.float().unbind(1)
    xyxy = xyxy * torch.stack([w, h, w, h], 1)[:, None]
    return [{"scores": s, "labels": l, "boxes": bx} for s, l, bx in zip(scores, labels, xyxy)]
