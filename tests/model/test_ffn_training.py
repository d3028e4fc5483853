"""A tiny DINO with each FFN type learns on one batch, its FFN auxiliary losses counted once.

The criterion's `loss` already holds the FFN's auxiliary losses (`out["aux_ffn"]`, weighted):
a training step uses `losses["loss"]` alone, as `come.engine.train` does.
"""
from __future__ import annotations

import pytest
import torch

from come.config import load_config
from come.model.detector import build_criterion, build_detector

from .helpers import batch

FFN = {"dense": [], "moe": ["model.ffn.num_experts=4", "model.ffn.top_k=2"],
       "damex": ["model.ffn.num_experts=4", "model.ffn.top_k=2", "model.ffn.stages=[decoder]",
                 "model.ffn.balance_weight=0.0"],
       "come": ["model.ffn.num_experts=4", "model.ffn.top_k=2", "model.ffn.fine_k=8",
                "model.ffn.coarse_k=4", "model.ffn.kmeans_iters=2", "model.ffn.use_ste=false",
                "model.ffn.use_see=false"]}
AUX = {"dense": set(), "moe": {"moe_balance"}, "damex": {"damex_route"}, "come": {"moe_balance", "come_trace"}}
STEPS = 10


def tiny_config(kind: str):
    return load_config(None, [f"model.ffn.type={kind}", "model.hidden_dim=32", "model.nheads=2",
                              "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=10",
                              "model.dn_number=4", "model.ffn.hidden_dim=32", *FFN[kind]])


@pytest.mark.parametrize("kind", sorted(FFN))
def test_each_ffn_learns_with_its_aux_losses_counted_once(kind):
    """Mutations caught: the criterion adding the FFN aux losses twice (`total + 2 * v`) or not
    at all (moe, damex, come); an FFN that gets no gradient (`y = y.detach()` after the FFN in
    FFNBlock: dense, moe, damex; COME's block still trains through its aux losses)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = tiny_config(kind)
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    images, pad, src, targets = batch(64)
    ffn_params = {n: p.detach().clone() for n, p in model.named_parameters() if ".ffn." in n}
    assert ffn_params, "no FFN parameter found"
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(STEPS):
        out = model(images, pad, src, targets)
        losses = crit(out, targets)
        aux = out.get("aux_ffn") or {}
        assert set(aux) == AUX[kind]
        detection = sum(crit.weights["_".join(k.split("_")[:2])] * v for k, v in losses.items()
                        if k != "loss" and k not in aux)
        total = float(losses["loss"].detach())
        assert total == pytest.approx(float((detection + sum(aux.values())).detach()), rel=1e-5)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append(total)
    assert sum(history[-3:]) < 0.9 * sum(history[:3]), history
    moved = [n for n, p in model.named_parameters() if n in ffn_params and not torch.equal(p, ffn_params[n])]
    assert len(moved) >= len(ffn_params) // 2, f"only {len(moved)} of {len(ffn_params)} FFN tensors trained"
