"""Per-token source labels in the order the tokens are flattened (the DAMEX pitfall).

DINO's reference decoder flattens tokens query-major ([L, B, D] -> t = l * B + b) while DAMEX
builds labels batch-major (t = b * L + l): right only at batch size 1. This detector is
batch-first (t = b * L + l); `layout` names the order explicitly so both are testable.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

IGNORE_INDEX = -100


def token_labels(source_ids: Tensor, batch: int, length: int, layout: str = "batch_major",
                 num_experts: Optional[int] = None, padding: Optional[Tensor] = None,
                 ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Expert label of every flattened token.

    source_ids [B] long (-1 = unknown source); padding [B, L] bool (True = padded), given in
    batch-first shape whatever the layout. Returns [B * L] long: source_id % num_experts
    (source_id when num_experts is None), `ignore_index` for unknown sources and padding.
    """
    if source_ids.shape != (batch,):
        raise ValueError(f"token_labels: source_ids must be [{batch}], got {tuple(source_ids.shape)}")
    if padding is not None and padding.shape != (batch, length):
        raise ValueError(f"token_labels: padding must be [{batch}, {length}], got {tuple(padding.shape)}")
    sid = source_ids.long()
    lab = sid % num_experts if num_experts else sid.clone()
    lab = torch.where(sid < 0, torch.full_like(lab, ignore_index), lab)
    grid = lab[:, None].expand(batch, length)                              # [B, L]
    if padding is not None:
        grid = grid.masked_fill(padding, ignore_index)
    if layout == "batch_major":
        return grid.reshape(-1)
    if layout == "query_major":
        return grid.t().reshape(-1)
    raise ValueError(f"token_labels: layout {layout!r} must be 'batch_major' or 'query_major'")
