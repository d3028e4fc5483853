"""Contrastive image-text losses for the semantic expert.

Prompts repeat within a batch (only 2 organs x 3 labels exist), so pairs that share a text id
are positives, not negatives, in both losses.

- `infonce`: symmetric CLIP cross-entropy with soft targets spread uniformly over the pairs
  sharing the anchor's text.
- `dhn_nce`: decoupled hard-negative NCE (MedCLIP-SAMv2). For anchor i with positive p:
      L_i = -s_ip / tau + log sum_{j in N(i)} w_ij exp(s_ij / tau)
  N(i) = pairs with a different text (positives are removed from the denominator: decoupled),
  w_ij = |N(i)| * softmax_{j in N(i)}(beta * s_ij / tau), detached: harder (more similar)
  negatives weigh more; beta = 0 gives plain decoupled NCE. Applied image->text and
  text->image and averaged; anchors without any negative in the batch are skipped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _same_text(text_ids: Tensor) -> Tensor:
    """[B] long -> [B, B] bool, True where two pairs share a prompt."""
    return text_ids.unsqueeze(0) == text_ids.unsqueeze(1)


def infonce(img: Tensor, txt: Tensor, text_ids: Tensor, logit_scale: Tensor) -> Tensor:
    """img, txt [B, C] L2-normalised; text_ids [B] long; logit_scale scalar (1/tau). -> scalar."""
    logits = logit_scale * img @ txt.t()                      # [B, B] image rows, text columns
    pos = _same_text(text_ids).float()
    target = pos / pos.sum(dim=1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(target * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def _dhn_direction(sim: Tensor, neg: Tensor, tau: Tensor, beta: float) -> Tensor:
    """One direction: sim [B, B] anchors in rows (diagonal = positive), neg [B, B] bool."""
    scaled = sim / tau
    has_neg = neg.any(dim=1)
    if not bool(has_neg.any()):
        return sim.sum() * 0.0
    very_neg = torch.finfo(sim.dtype).min
    with torch.no_grad():
        w_logits = (beta * scaled).masked_fill(~neg, very_neg)
        weights = torch.softmax(w_logits, dim=1) * neg.sum(1, keepdim=True)
        weights = weights.masked_fill(~neg, 0.0)
    denom_terms = scaled.masked_fill(~neg, very_neg) + torch.log(weights.clamp_min(1e-12))
    log_denom = torch.logsumexp(denom_terms, dim=1)
    per_anchor = -scaled.diagonal() + log_denom
    return per_anchor[has_neg].mean()


def dhn_nce(img: Tensor, txt: Tensor, text_ids: Tensor, logit_scale: Tensor, beta: float = 0.15) -> Tensor:
    """img, txt [B, C] L2-normalised; text_ids [B]; logit_scale = 1/tau. -> scalar loss."""
    tau = 1.0 / logit_scale
    sim = img @ txt.t()
    neg = ~_same_text(text_ids)
    return (_dhn_direction(sim, neg, tau, beta) + _dhn_direction(sim.t(), neg, tau, beta)) / 2


def contrastive_loss(name: str, img: Tensor, txt: Tensor, text_ids: Tensor, logit_scale: Tensor,
                     beta: float = 0.15) -> Tensor:
    """Dispatch on `cfg.experts.semantic.loss` ('infonce' | 'dhn_nce')."""
    if name == "infonce":
        return infonce(img, txt, text_ids, logit_scale)
    if name == "dhn_nce":
        return dhn_nce(img, txt, text_ids, logit_scale, beta)
    raise ValueError(f"experts.semantic.loss: unknown loss {name!r} (known: infonce, dhn_nce)")
