"""Hungarian matcher of DINO: focal-style class cost, L1 and GIoU box costs.

`HungarianMatcher(cost_class, cost_bbox, cost_giou, alpha=0.25, gamma=2)(outputs, targets)`
with outputs {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4] cxcywh} and targets list of
{"labels" long[n], "boxes" [n, 4]} -> list of (query_idx long[k], target_idx long[k]) per image,
k = min(Q, n), minimising C = w_bbox * L1 + w_class * focal + w_giou * (-GIoU).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .box_ops import box_cxcywh_to_xyxy, generalized_box_iou


def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a [Q, n] cost matrix (rows sorted); non-finite costs are
    replaced by a large finite value so scipy never fails."""
    if not np.isfinite(cost).all():
        finite = cost[np.isfinite(cost)]
        big = (np.abs(finite).max() if finite.size else 1.0) * 10 + 1e6
        cost = np.nan_to_num(cost, nan=big, posinf=big, neginf=-big)
    return linear_sum_assignment(cost)


class HungarianMatcher:
    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 alpha: float = 0.25, gamma: float = 2.0):
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: all costs are zero")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def cost_matrix(self, logits: Tensor, boxes: Tensor, tgt_labels: Tensor, tgt_boxes: Tensor) -> Tensor:
        """logits [Q, C], boxes [Q, 4], tgt_labels [n], tgt_boxes [n, 4] -> cost [Q, n]."""
        prob = logits.float().sigmoid()
        neg = (1 - self.alpha) * prob.pow(self.gamma) * -(1 - prob + 1e-8).log()
        pos = self.alpha * (1 - prob).pow(self.gamma) * -(prob + 1e-8).log()
        c_class = pos[:, tgt_labels] - neg[:, tgt_labels]
        c_bbox = torch.cdist(boxes.float(), tgt_boxes.float(), p=1)
        c_giou = -generalized_box_iou(box_cxcywh_to_xyxy(boxes.float()), box_cxcywh_to_xyxy(tgt_boxes.float()))
        return self.cost_bbox * c_bbox + self.cost_class * c_class + self.cost_giou * c_giou

    @torch.no_grad()
    def __call__(self, outputs: dict, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if len(targets) != logits.shape[0]:
            raise ValueError(f"HungarianMatcher: {len(targets)} targets for batch of {logits.shape[0]}")
        result = []
        for b, t in enumerate(targets):
            n = int(t["labels"].numel())
            if n == 0:
                empty = torch.zeros(0, dtype=torch.long, device=logits.device)
                result.append((empty, empty))
                continue
            cost = self.cost_matrix(logits[b], boxes[b], t["labels"].long(), t["boxes"])
            rows, cols = assign(cost.cpu().numpy())
            result.append((torch.as_tensor(rows, dtype=torch.long, device=logits.device),
                           torch.as_tensor(cols, dtype=torch.long, device=logits.device)))
        return result
