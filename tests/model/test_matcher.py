"""The Hungarian matcher equals exhaustive search; edge cases (no boxes, Q > n)."""
import itertools

import numpy as np
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
