"""DINO set criterion: sigmoid focal + L1 + GIoU on every decoder layer, the encoder
proposals and the denoising queries, plus the FFN auxiliary losses.

`SetCriterion(outputs, targets) -> dict`: raw terms `loss_ce`, `loss_bbox`, `loss_giou` with
suffixes "" (last layer), "_{i}" (earlier layers), "_interm" (encoder proposals), "_dn" and
"_dn_{i}" (denoising), every FFN aux key as given (already weighted), and `loss` = weighted sum.
Normalisation: number of target boxes in the batch (averaged over processes, >= 1); the dn
terms use that number times the number of dn groups.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from .denoising import dn_positive_indices
from .matcher import HungarianMatcher


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Elementwise focal loss (Lin et al. 2017) of logits vs {0, 1} targets, same shape."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


class SetCriterion(nn.Module):
    def __init__(self, num_classes: int, matcher: HungarianMatcher, weights: dict[str, float],
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = dict(weights)        # loss_ce / loss_bbox / loss_giou -> weight
        self.alpha, self.gamma = focal_alpha, focal_gamma

    def _terms(self, out: dict, targets: list[dict], indices: list[tuple[Tensor, Tensor]],
               num_boxes: float) -> dict[str, Tensor]:
        logits, boxes = out["pred_logits"], out["pred_boxes"]
        onehot = torch.zeros_like(logits)
        batch = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
        query = torch.cat([q for q, _ in indices])
        if query.numel():
            labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).long()
            onehot[batch, query, labels] = 1.0
        loss_ce = sigmoid_focal_loss(logits, onehot, self.alpha, self.gamma).sum() / num_boxes
        if query.numel() == 0:
            zero = boxes.sum() * 0.0
            return {"loss_ce": loss_ce, "loss_bbox": zero, "loss_giou": zero}
        src = boxes[batch, query]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(src.dtype)
        loss_bbox = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    @staticmethod
    def _num_boxes(targets: list[dict], device: torch.device) -> float:
        n = torch.tensor([float(sum(int(t["labels"].numel()) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(n)
            n = n / dist.get_world_size()
        return max(float(n.item()), 1.0)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        device = outputs["pred_logits"].device
        targets = [{"labels": t["labels"].to(device), "boxes": t["boxes"].to(device)} for t in targets]
        num_boxes = self._num_boxes(targets, device)
        losses: dict[str, Tensor] = {}
        stages = [("", outputs)] + [(f"_{i}", a) for i, a in enumerate(outputs.get("aux_outputs", []))]
        if outputs.get("interm_outputs") is not None:
            stages.append(("_interm", outputs["interm_outputs"]))
        for suffix, out in stages:
            indices = self.matcher(out, targets)
            for k, v in self._terms(out, targets, indices, num_boxes).items():
                losses[k + suffix] = v
        losses.update(self._dn_losses(outputs, targets, num_boxes))
        weighted = [self.weights["_".join(k.split("_")[:2])] * v for k, v in losses.items()]
        total = torch.stack(weighted).sum()
        for k, v in (outputs.get("aux_ffn") or {}).items():
            losses[k] = v
            total = total + v
        losses["loss"] = total
        return losses

    def _dn_losses(self, outputs: dict, targets: list[dict], num_boxes: float) -> dict[str, Tensor]:
        """dn terms for the last layer ("_dn") and each earlier layer ("_dn_{i}"); zeros when
        there were no dn queries (eval mode or no boxes), so the keys are always present."""
        dn_out, meta = outputs.get("dn_outputs"), outputs.get("dn_meta")
        n_aux = len(outputs.get("aux_outputs", []))
        suffixes = ["_dn"] + [f"_dn_{i}" for i in range(n_aux)]
        if dn_out is None or meta is None:
            zero = outputs["pred_logits"].sum() * 0.0
            return {f"{k}{s}": zero for s in suffixes for k in ("loss_ce", "loss_bbox", "loss_giou")}
        indices = dn_positive_indices(targets, meta)
        scaled = num_boxes * meta["num_groups"]
        losses = {}
        for s, out in zip(suffixes, [dn_out] + list(dn_out.get("aux_outputs", []))):
            for k, v in self._terms(out, targets, indices, scaled).items():
                losses[k + s] = v
        return losses
