"""Optional tutel backend for `MoELayer` (only when `tutel` is importable; not installed here).

tutel routes on the token itself with its own bias-free gate, so this path supports the plain
MoE ("moe", "damex"): no temperature, no separate router input (COME's clustered router needs
the native backend). Routing details other than the router logits are not exposed by tutel, so
`RoutingInfo.indices/kept` are derived from the clean logits (top-k, nothing marked dropped).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from .layer import MoELayer, RoutingInfo


def build_tutel_layer(owner: "MoELayer", d_model: int, hidden_dim: int, activation: str) -> nn.Module:
    """tutel.moe.moe_layer with the owner's gate settings and is_gshard_loss=False (expert
    init_std / fc2_bias are native-backend settings: tutel keeps its own expert init)."""
    from tutel import moe as tutel_moe  # guarded by resolve_backend

    if owner.temperature != 1.0:
        raise ValueError("model.ffn.backend=tutel: temperature != 1 needs the native backend")
    act = {"relu": torch.relu, "gelu": nn.functional.gelu}[activation]
    owner.gate = None  # tutel owns the gate
    return tutel_moe.moe_layer(
        gate_type={"type": "top", "k": owner.top_k, "capacity_factor": owner.capacity_factor,
                   "gate_noise": owner.gate_noise, "fp32_gate": True},
        model_dim=d_model,
        experts={"type": "ffn", "count_per_node": owner.num_experts,
                 "hidden_size_per_expert": hidden_dim, "activation_fn": act},
        batch_prioritized_routing=owner.batch_prioritized, normalize_gate=owner.normalize_gate,
        is_gshard_loss=False)


def tutel_forward(owner: "MoELayer", x: Tensor, r: Tensor) -> tuple[Tensor, "RoutingInfo"]:
    from .layer import RoutingInfo

    if r is not x:
        raise ValueError("model.ffn.backend=tutel: a separate router input (COME clustering) "
                         "needs the native backend")
    y = owner.tutel(x)
    wg = owner.tutel.gates[0].wg
    logits = wg(x.to(wg.weight.dtype))
    idx = logits.topk(owner.top_k, dim=1).indices
    gates = torch.softmax(logits, 1).gather(1, idx)
    kept = torch.ones_like(idx, dtype=torch.bool)
    return y, RoutingInfo(logits, idx, gates, kept, -1, y.l_aux)
