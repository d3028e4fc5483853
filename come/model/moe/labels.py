"""Per-token source labels in the order the tokens are flattened (the DAMEX pitfall).

DINO's reference decoder flattens tokens query-major ([L, B, D] -> t = l * B + b) while DAMEX
builds labels batch-major (t = b * L + l): right only at batch size 1. This detector is
batch-first (t = b * L + l); `layout` names the order explicitly so both are testable.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from come.config.schema import ORGAN_OF

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


def organ_order(sources: Sequence[str]) -> list[int]:
    """Indices of `sources` regrouped so that sources of one organ are adjacent (organs in order of
    first appearance, sources in their given order inside an organ; unknown names: own group)."""
    organs = [ORGAN_OF.get(s, s) for s in sources]
    rank = {o: i for i, o in reversed(list(enumerate(organs)))}
    return sorted(range(len(sources)), key=lambda i: (rank[organs[i]], i))


def expert_blocks(sources: Sequence[str], num_experts: int) -> list[list[int]]:
    """The contiguous block of experts of each source (docs/method.md#traceability).

    Sources are laid out organ by organ (`organ_order`); position p of S gets, when E >= S, its
    own block of E // S experts (+1 for the first E % S positions): disjoint, covering all E;
    when E < S, the single expert floor(p * E / S): neighbours share one. S = 1 owns all E.
    """
    s, e = len(sources), num_experts
    if s < 1 or e < 1:
        raise ValueError(f"expert_blocks: need >= 1 source and expert (got {s}, {e})")
    blocks: list[list[int]] = [[] for _ in range(s)]
    start = 0
    for p, i in enumerate(organ_order(sources)):
        if e >= s:
            size = e // s + (1 if p < e % s else 0)
            blocks[i] = list(range(start, start + size))
            start += size
        else:
            blocks[i] = [p * e // s]
    return blocks


def trace_targets(sources: Sequence[str], num_experts: int) -> Tensor:
    """Soft routing targets [S, E]: row s uniform over the expert block of source s."""
    t = torch.zeros(len(sources), num_experts)
    for i, block in enumerate(expert_blocks(sources, num_experts)):
        t[i, block] = 1.0 / len(block)
    return t


def soft_label_ce(logits: Tensor, sources: Tensor, targets: Tensor,
                  ignore_index: int = IGNORE_INDEX) -> Optional[Tensor]:
    """Mean over the labelled tokens of -sum_e target[source, e] * log softmax(logits)_e.

    logits [n, E]; sources [n] long source index (ignore_index or >= S: unlabelled);
    targets [S, E]. None when no token is labelled. One-hot targets give F.cross_entropy."""
    known = (sources != ignore_index) & (sources >= 0) & (sources < targets.shape[0])
    if not bool(known.any()):
        return None
    logp = torch.log_softmax(logits[known].float(), dim=1)
    return -(targets.to(logp.device)[sources[known]] * logp).sum(1).mean()
