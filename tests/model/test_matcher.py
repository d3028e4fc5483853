"""The Hungarian matcher equals exhaustive search; edge cases (no boxes, Q > n)."""
import itertools
import math

import numpy as np
import pytest
import torch

from come.model.matcher import HungarianMatcher, assign


def brute_force(cost: np.ndarray) -> float:
    """Minimum total cost assigning every column to a distinct row (Q >= n)."""
    q, n = cost.shape
    return min(sum(cost[r, c] for c, r in enumerate(rows)) for rows in itertools.permutations(range(q), n))


def test_assign_equals_brute_force_on_random_costs():
    rng = np.random.default_rng(0)
    for _ in range(30):
        q = int(rng.integers(1, 6))
        n = int(rng.integers(1, q + 1))
        cost = rng.normal(size=(q, n))
        rows, cols = assign(cost)
        assert len(rows) == n and len(set(rows)) == n and sorted(cols) == list(range(n))
        assert np.isclose(cost[rows, cols].sum(), brute_force(cost))


def test_matcher_optimal_for_its_own_cost_matrix():
    torch.manual_seed(1)
    matcher = HungarianMatcher(2.0, 5.0, 2.0)
    logits = torch.randn(2, 5, 1)
    boxes = torch.rand(2, 5, 4) * 0.5 + 0.25
    targets = [{"labels": torch.zeros(3, dtype=torch.long), "boxes": torch.rand(3, 4) * 0.4 + 0.3},
               {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}]
    out = matcher({"pred_logits": logits, "pred_boxes": boxes}, targets)
    q_idx, t_idx = out[0]
    cost = matcher.cost_matrix(logits[0], boxes[0], targets[0]["labels"], targets[0]["boxes"]).numpy()
    assert np.isclose(cost[q_idx.numpy(), t_idx.numpy()].sum(), brute_force(cost), atol=1e-5)
    assert out[1][0].numel() == 0 and out[1][1].numel() == 0


def test_matcher_prefers_the_right_box():
    matcher = HungarianMatcher(2.0, 5.0, 2.0)
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.2, 0.2], [0.5, 0.5, 0.3, 0.3]]])
    logits = torch.zeros(1, 3, 1)
    targets = [{"labels": torch.tensor([0, 0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.21, 0.2, 0.1, 0.1]])}]
    q_idx, t_idx = matcher({"pred_logits": logits, "pred_boxes": boxes}, targets)[0]
    assert dict(zip(t_idx.tolist(), q_idx.tolist())) == {0: 2, 1: 0}


def test_assign_survives_non_finite_costs():
    cost = np.array([[np.nan, 1.0], [0.0, np.inf], [2.0, 3.0]])
    rows, cols = assign(cost)
    assert list(cols[np.argsort(rows)]) == [1, 0] and list(sorted(rows)) == [0, 1]


def test_cost_matrix_of_a_two_by_two_case_worked_by_hand():
    """C = 5 * L1(cxcywh) + 2 * (focal pos - focal neg at the target's class) + 2 * (-GIoU),
    focal alpha 0.25, gamma 2. Boxes: P0 = T0 = [0, 0, .5, .5] (xyxy), P1 = [.5, 0, 1, 1],
    T1 = [0, 0, 1, 1]; probabilities 0.5 and 0.75 (logits 0 and ln 3). Mutations caught: the
    class cost as neg - pos; alpha in place of 1 - alpha in the negative term; +GIoU; an L2 box distance."""
    ln2, ln3, ln4 = math.log(2), math.log(3), math.log(4)
    logits = torch.tensor([[0.0, ln3], [ln3, 0.0]])
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.5, 0.5, 1.0]])
    labels = torch.tensor([0, 1])
    tgt = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])

    def focal(p: float) -> float:        # pos - neg
        return 0.25 * (1 - p) ** 2 * -math.log(p) - 0.75 * p ** 2 * -math.log(1 - p)

    assert focal(0.5) == pytest.approx(-0.125 * ln2)
    assert focal(0.75) == pytest.approx(0.015625 * (ln4 - ln3) - 0.421875 * ln4)
    l1 = [[0.0, 1.5], [1.25, 0.75]]
    giou = [[1.0, 0.25], [-0.25, 0.5]]
    cls = [[focal(0.5), focal(0.75)], [focal(0.75), focal(0.5)]]
    want = torch.tensor([[5 * l1[i][j] + 2 * cls[i][j] - 2 * giou[i][j] for j in range(2)] for i in range(2)])
    got = HungarianMatcher(2.0, 5.0, 2.0).cost_matrix(logits, boxes, labels, tgt)
    assert torch.allclose(got, want, atol=1e-6), (got, want)
    q_idx, t_idx = HungarianMatcher(2.0, 5.0, 2.0)({"pred_logits": logits[None], "pred_boxes": boxes[None]},
                                                   [{"labels": labels, "boxes": tgt}])[0]
    assert q_idx.tolist() == [0, 1] and t_idx.tolist() == [0, 1]
