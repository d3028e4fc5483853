"""Contrastive denoising (CDN) queries of DINO, device-agnostic.

With m = max gt boxes per image in the batch, the dn part holds `groups` = dn_number // m
groups (`dn_groups`, >= 1); group g occupies 2*m consecutive queries: m positives (gt boxes with noise in
[0, 1) x half their size x box_noise_scale) then m negatives (noise in [1, 2) x half size x
scale). Image i fills the first n_i slots of each half; unused slots stay zero. Labels are
flipped to a random class with probability label_noise_ratio * 0.5.

Attention mask ([pad + Q, pad + Q] bool, True = blocked): matching queries cannot see any dn
query; a dn group cannot see other dn groups; dn queries see the matching queries.
`prepare_cdn(...) -> CDNQueries | None` (None when there is no box in the batch or dn is off).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from .layers import inverse_sigmoid


@dataclass
class CDNQueries:
    label_queries: Tensor   # [B, pad, D] content queries (label embeddings)
    box_queries: Tensor     # [B, pad, 4] unsigmoided noisy boxes
    attn_mask: Tensor       # [pad + Q, pad + Q] bool, True = blocked
    meta: dict              # pad_size, num_groups, single_pad


def dn_groups(dn_number: int, max_gt: int) -> int:
    """Number of CDN groups, as DINO: (2 * dn_number) // (2 * max_gt) = dn_number // max_gt,
    at least one. Each group holds 2 * max_gt queries (positive + negative half), so the dn
    part has about 2 * dn_number queries (200 for DINO's dn_number = 100)."""
    return max(1, dn_number // max(1, max_gt))


def build_dn_attn_mask(single_pad: int, groups: int, num_queries: int, device: torch.device) -> Tensor:
    """[pad + Q, pad + Q] bool mask with pad = 2 * single_pad * groups (True = blocked)."""
    pad = 2 * single_pad * groups
    size = pad + num_queries
    mask = torch.zeros(size, size, dtype=torch.bool, device=device)
    mask[pad:, :pad] = True
    block = 2 * single_pad
    for g in range(groups):
        lo, hi = g * block, (g + 1) * block
        mask[lo:hi, :lo] = True
        mask[lo:hi, hi:pad] = True
    return mask


def prepare_cdn(targets: list[dict], dn_number: int, label_noise_ratio: float, box_noise_scale: float,
                num_classes: int, num_queries: int, label_enc: nn.Embedding) -> CDNQueries | None:
    """Build noised dn queries from `targets` (labels long[n], boxes [n, 4] cxcywh normalised)."""
    if dn_number <= 0 or targets is None:
        return None
    counts = [int(t["labels"].numel()) for t in targets]
    max_gt = max(counts) if counts else 0
    if max_gt == 0:
        return None
    device = label_enc.weight.device
    groups = dn_groups(dn_number, max_gt)
    labels = torch.cat([t["labels"].to(device).long() for t in targets])
    boxes = torch.cat([t["boxes"].to(device).float() for t in targets])
    batch_idx = torch.cat([torch.full((n,), i, dtype=torch.long, device=device) for i, n in enumerate(counts)])
    local_idx = torch.cat([torch.arange(n, device=device) for n in counts])
    total = labels.numel()
    copies = 2 * groups

    noisy_labels = labels.repeat(copies)
    if label_noise_ratio > 0:
        flip = torch.rand(noisy_labels.shape, device=device) < label_noise_ratio * 0.5
        noisy_labels = torch.where(flip, torch.randint_like(noisy_labels, 0, num_classes), noisy_labels)

    noisy_boxes = boxes.repeat(copies, 1)
    if box_noise_scale > 0:
        xyxy = box_cxcywh_to_xyxy(noisy_boxes)
        half = noisy_boxes[:, 2:].repeat(1, 2) / 2                             # [n, 4]
        sign = torch.randint(0, 2, xyxy.shape, device=device).float() * 2 - 1
        part = torch.rand(xyxy.shape, device=device)
        negative = (torch.arange(copies, device=device) % 2 == 1).repeat_interleave(total)
        part = part + negative[:, None].float()
        xyxy = (xyxy + sign * part * half * box_noise_scale).clamp(0.0, 1.0)
        noisy_boxes = box_xyxy_to_cxcywh(xyxy)

    pad = copies * max_gt
    d = label_enc.embedding_dim
    label_q = torch.zeros(len(targets), pad, d, device=device)
    box_q = torch.zeros(len(targets), pad, 4, device=device)
    slot = (local_idx[None] + max_gt * torch.arange(copies, device=device)[:, None]).flatten()
    rows = batch_idx.repeat(copies)
    label_q = label_q.index_put((rows, slot), label_enc(noisy_labels))
    box_q = box_q.index_put((rows, slot), inverse_sigmoid(noisy_boxes))
    mask = build_dn_attn_mask(max_gt, groups, num_queries, device)
    meta = {"pad_size": pad, "num_groups": groups, "single_pad": max_gt}
    return CDNQueries(label_q, box_q, mask, meta)


def dn_positive_indices(targets: list[dict], meta: dict) -> list[tuple[Tensor, Tensor]]:
    """Per image (query index into the dn part, target index) of every positive dn query."""
    out = []
    for t in targets:
        n = int(t["labels"].numel())
        device = t["labels"].device
        if n == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            out.append((empty, empty))
            continue
        tgt = torch.arange(n, device=device)
        starts = torch.arange(meta["num_groups"], device=device) * 2 * meta["single_pad"]
        out.append(((starts[:, None] + tgt[None]).flatten(), tgt.repeat(meta["num_groups"])))
    return out
