"""Routing semantics on hand-built logits: capacity, slots, drops, gates, balance loss."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from come.model.moe.routing import balance_loss, capacity_of, cv_squared, route, slot_locations


def one_hot_logits(choices, e, scale=10.0):
    """Logits that rank experts in the given per-token order (first = best)."""
    n = len(choices)
    logits = torch.zeros(n, e)
    for i, order in enumerate(choices):
        for rank, ex in enumerate(order):
            logits[i, ex] = scale - rank
    return logits


def test_capacity_formula():
    assert capacity_of(8, 4, 1, 1.25) == 2          # 1 * int(1.25 * 2)
    assert capacity_of(9, 4, 2, 1.25) == 6          # 2 * int(1.25 * 3)
    assert capacity_of(100, 8, 3, 1.0) == 39        # 3 * int(1.0 * 13)


def test_k1_drops_past_capacity():
    # 8 tokens, 4 experts: 6 prefer expert 0, capacity = 2 -> tokens 2..5 of expert 0 dropped
    logits = one_hot_logits([[0]] * 6 + [[1], [2]], 4)
    r = route(logits, 1, 1.25, gate_noise=1.0, training=False)
    assert r.capacity == 2
    assert r.indices[:, 0].tolist() == [0] * 6 + [1, 2]
    assert r.locations[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 0, 0]
    assert r.kept[:, 0].tolist() == [True, True, False, False, False, False, True, True]
    # k = 1: the gate is the softmax score itself (no renormalisation)
    assert torch.allclose(r.gates[:, 0], torch.softmax(logits, 1).max(1).values)


def test_k1_capacity_factor_zero_keeps_everything():
    logits = one_hot_logits([[0]] * 6 + [[1], [2]], 4)
    r = route(logits, 1, 0.0, gate_noise=1.0, training=False)
    assert r.capacity == 6 and bool(r.kept.all())


def test_k2_second_choices_after_all_first_choices():
    # 4 tokens, 2 experts; first choices: e0, e1, e0, e0; second choices the other expert
    logits = one_hot_logits([[0, 1], [1, 0], [0, 1], [0, 1]], 2)
    r = route(logits, 2, 1.25, gate_noise=1.0, training=False)
    # capacity = 2 * int(1.25 * 2) = 4
    assert r.capacity == 4
    assert r.locations[:, 0].tolist() == [0, 0, 1, 2]          # first choices
    # expert 1 already holds one first choice; expert 0 holds three
    assert r.locations[:, 1].tolist() == [1, 3, 2, 3]
    assert r.kept.all()
    # capacity factor 0.5 -> capacity 2 * int(0.5 * 2) = 2
    r = route(logits, 2, 0.5, gate_noise=1.0, training=False)
    assert r.capacity == 2
    assert r.kept[:, 0].tolist() == [True, True, True, False]
    assert r.kept[:, 1].tolist() == [True, False, False, False]
    # normalised gates sum to one over the k choices
    assert torch.allclose(r.gates.sum(1), torch.ones(4))


def test_k2_capacity_factor_zero_and_unnormalised_gates():
    logits = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    r = route(logits, 2, 0.0, gate_noise=1.0, normalize_gate=False, training=False)
    assert bool(r.kept.all())
    counts = torch.bincount(r.indices.reshape(-1), minlength=4)
    assert r.capacity == int(counts.max())
    assert torch.allclose(r.gates, torch.softmax(logits, 1).topk(2, 1).values)


def test_batch_prioritised_routing_orders_by_max_score():
    # three tokens on expert 0; the last one is the most confident -> gets slot 0
    logits = torch.tensor([[1.0, 0.0], [2.0, 0.0], [5.0, 0.0]])
    plain = route(logits, 1, 0.0, 1.0, batch_prioritized=False, training=False)
    prio = route(logits, 1, 0.0, 1.0, batch_prioritized=True, training=False)
    assert plain.locations[:, 0].tolist() == [0, 1, 2]
    assert prio.locations[:, 0].tolist() == [2, 1, 0]
    # with a capacity of 1 slot per expert only the most confident token survives
    r = route(logits, 1, 0.5, 1.0, batch_prioritized=True, training=False)
    assert r.capacity == 1 and r.kept[:, 0].tolist() == [False, False, True]


def test_slot_locations_handles_empty_input():
    assert slot_locations(torch.zeros(0, 2, dtype=torch.long), 4).shape == (0, 2)


def test_noise_only_in_training():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    ev = route(logits, 1, 0.0, 1.0, training=False)
    assert torch.equal(ev.noisy_logits, logits)
    torch.manual_seed(0)
    tr = route(logits, 1, 0.0, 1.0, training=True)
    torch.manual_seed(0)
    expected = logits + torch.randn_like(logits) / 4
    assert torch.allclose(tr.noisy_logits, expected)


def test_balance_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(3)
    n, e, k, noise = 12, 4, 2, 1.0
    logits = torch.randn(n, e, generator=g)
    noisy = logits + noise * torch.randn(n, e, generator=g) / e
    idx = torch.softmax(noisy, 1).topk(k, 1).indices
    got = float(balance_loss(logits, noisy, idx, noise))
    L, NL = logits.numpy().astype(np.float64), noisy.numpy().astype(np.float64)
    p = np.exp(L) / np.exp(L).sum(1, keepdims=True)
    imp = p.sum(0)
    thr = np.array([NL[i, idx[i, -1]] for i in range(n)])[:, None]
    load = norm.cdf((p - thr) / (noise / e)).sum(0)
    cv2 = lambda v: v.var(ddof=1) / (v.mean() ** 2 + 1e-10)
    assert got == pytest.approx((cv2(imp) + cv2(load)) / 2, rel=1e-4, abs=1e-7)


def test_cv_squared_uses_unbiased_variance():
    v = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert float(cv_squared(v)) == pytest.approx(np.var([1, 2, 3, 6], ddof=1) / 9.0, rel=1e-6)
    assert float(cv_squared(torch.tensor([2.0]))) == 0.0


def test_balance_loss_is_zero_for_uniform_routing_and_grows_with_imbalance():
    e = 4
    uniform = torch.zeros(8, e)
    idx = torch.arange(8).remainder(e)[:, None]
    assert float(balance_loss(uniform, uniform, idx, 1.0)) == pytest.approx(0.0, abs=1e-6)
    skewed = torch.zeros(8, e)
    skewed[:, 0] = 5.0
    assert float(balance_loss(skewed, skewed, torch.zeros(8, 1, dtype=torch.long), 1.0)) > 0.5
    assert math.isfinite(float(balance_loss(skewed, skewed, torch.zeros(8, 1, dtype=torch.long), 0.0)))
