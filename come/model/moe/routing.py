"""Top-K routing with tutel's semantics: noise, scores, capacity, slots, balance loss.

Pure functions on router logits; no parameters live here.

    r = route(logits [N, E], k, capacity_factor, gate_noise, normalize_gate,
              batch_prioritized, training)
    r.indices [N, k] expert of each choice (1st choice first), r.gates [N, k] combine weights,
    r.locations [N, k] slot inside the expert, r.kept [N, k] (location < capacity),
    r.capacity int, r.noisy_logits [N, E], r.scores [N, E] = softmax(noisy logits).

Semantics (tutel `moe_layer` / `extract_critical`):
- training-only noise: noisy = logits + gate_noise * randn / E; scores = softmax(noisy);
- Top-K on scores; gate = chosen score, renormalised over the k choices when
  `normalize_gate` and k > 1;
- slots: a running count per expert over the tokens, all first choices before all second
  choices and so on; with batch-prioritised routing tokens are visited in order of decreasing
  max score (the same order for every choice);
- capacity = k * int(capacity_factor * ceil(N / E)); capacity_factor 0 = no drops (capacity
  = the largest slot + 1). A choice whose slot is >= capacity is dropped (contributes zero).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Routing:
    indices: Tensor        # [N, k] long
    gates: Tensor          # [N, k] float (differentiable w.r.t. the logits)
    locations: Tensor      # [N, k] long
    kept: Tensor           # [N, k] bool
    capacity: int
    noisy_logits: Tensor   # [N, E]
    scores: Tensor         # [N, E]


def capacity_of(num_tokens: int, num_experts: int, k: int, capacity_factor: float) -> int:
    """tutel: k * int(capacity_factor * ceil(N / E)); only meaningful for capacity_factor > 0."""
    per_expert = (num_tokens + num_experts - 1) // num_experts
    return k * int(capacity_factor * per_expert)


def slot_locations(indices: Tensor, num_experts: int, order: Tensor | None = None) -> Tensor:
    """Slot of every (token, choice) inside its expert.

    indices [N, k] expert ids; order [N] visiting order of the tokens (None = 0..N-1).
    Choices are counted choice-major: every 1st choice, then every 2nd choice, ...
    Returns locations [N, k] long.
    """
    n, k = indices.shape
    if n == 0:
        return indices.new_zeros((0, k))
    if order is not None:
        indices = indices[order]
    onehot = F.one_hot(indices.t().reshape(-1), num_experts)              # [k*N, E] choice-major
    running = onehot.cumsum(0) - 1
    loc = (running * onehot).sum(1).view(k, n).t()                         # [N, k] in visit order
    if order is not None:
        out = torch.empty_like(loc)
        out[order] = loc
        loc = out
    return loc


def route(logits: Tensor, k: int, capacity_factor: float, gate_noise: float,
          normalize_gate: bool = True, batch_prioritized: bool = False,
          training: bool = True) -> Routing:
    """Route N tokens among E experts from their clean router logits [N, E]."""
    if logits.dim() != 2:
        raise ValueError(f"route: logits must be [N, E], got {tuple(logits.shape)}")
    n, e = logits.shape
    if not 1 <= k <= e:
        raise ValueError(f"route: top_k={k} must be in [1, num_experts={e}]")
    if training and gate_noise > 0:
        noisy = logits + gate_noise * torch.randn_like(logits) / e
    else:
        noisy = logits
    scores = F.softmax(noisy, dim=1)
    top_scores, indices = scores.topk(k, dim=1)                            # sorted, 1st choice first
    gates = top_scores
    if normalize_gate and k > 1:
        gates = gates / gates.sum(1, keepdim=True).clamp_min(torch.finfo(gates.dtype).eps)
    order = None
    if batch_prioritized and n > 0:
        order = torch.argsort(scores.detach().max(1).values, descending=True, stable=True)
    loc = slot_locations(indices, e, order)
    if capacity_factor > 0:
        cap = capacity_of(n, e, k, capacity_factor)
    else:
        cap = int(loc.max()) + 1 if n > 0 else 0
    return Routing(indices, gates, loc, loc < cap, cap, noisy, scores)


def cv_squared(v: Tensor) -> Tensor:
    """Squared coefficient of variation var/(mean^2 + 1e-10) with the unbiased variance."""
    if v.numel() < 2:
        return v.new_zeros(())
    v = v.float()
    return v.var() / (v.mean() ** 2 + 1e-10)


def balance_loss(logits: Tensor, noisy_logits: Tensor, indices: Tensor, gate_noise: float) -> Tensor:
    """tutel's load/importance loss (CV^2(importance) + CV^2(load)) / 2.

    logits [N, E] clean, noisy_logits [N, E], indices [N, k] chosen experts (sorted by score).
    importance_e = sum_n softmax(clean)_ne; load_e = sum_n Phi((softmax(clean)_ne - t_n) / s)
    with t_n the noisy logit of token n's k-th choice and s = gate_noise / E. (tutel compares
    the clean *probabilities* with the noisy *logit* threshold; kept as is.) With
    gate_noise <= 0 the load term is undefined and left out (importance term only).
    """
    n, e = logits.shape
    if n == 0:
        return logits.sum() * 0.0
    probs = F.softmax(logits.float(), dim=1)
    l_imp = cv_squared(probs.sum(0))
    if gate_noise <= 0:
        return l_imp / 2
    threshold = noisy_logits.float().gather(1, indices)[:, -1:]           # [N, 1] k-th choice
    sigma = gate_noise / e
    load = 0.5 * (1.0 + torch.erf((probs - threshold) / (sigma * math.sqrt(2.0))))
    return (l_imp + cv_squared(load.sum(0))) / 2
