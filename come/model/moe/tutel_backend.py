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


EXPERT_WEIGHTS = ("batched_fc1_w", "batched_fc2_w")      # tutel's FFN experts, [E, H, D] each
EXPERT_BIASES = ("batched_fc1_bias", "batched_fc2_bias")


def init_tutel_experts(layer: nn.Module, init_std: float, fc2_bias: bool) -> None:
    """DAMEX's `MoEMlp` on tutel's experts (`layer.experts`), as the native backend does:
    init_std > 0 -> truncated-normal expert and gate weights (std init_std, cut at +-2; the gate
    is `layer.gates[i].wg`) and zero expert biases;
    fc2_bias False -> the fc2 bias is zero and frozen. A tutel without these parameter names
    is refused rather than trained with another init."""
    if init_std <= 0 and fc2_bias:
        return
    experts = getattr(layer, "experts", None)
    names = EXPERT_WEIGHTS + EXPERT_BIASES
    found = {n: getattr(experts, n, None) for n in names}
    if any(found[n] is None for n in EXPERT_WEIGHTS):
        raise RuntimeError("model.ffn.backend=tutel: this tutel's experts have no batched_fc1_w / "
                           "batched_fc2_w, so init_std and fc2_bias cannot be applied; use backend=native "
                           "or init_std: 0 and fc2_bias: true")
    with torch.no_grad():
        if init_std > 0:
            for n in EXPERT_WEIGHTS:
                nn.init.trunc_normal_(found[n], std=init_std, a=-2.0, b=2.0)
            for n in EXPERT_BIASES:
                if found[n] is not None:
                    found[n].zero_()
            for gate in getattr(layer, "gates", []):
                nn.init.trunc_normal_(gate.wg.weight, std=init_std, a=-2.0, b=2.0)
        if not fc2_bias and found["batched_fc2_bias"] is not None:
            found["batched_fc2_bias"].zero_()
            found["batched_fc2_bias"].requires_grad_(False)


def build_tutel_layer(owner: "MoELayer", d_model: int, hidden_dim: int, activation: str,
                      fc2_bias: bool = True, init_std: float = 0.0) -> nn.Module:
    """tutel.moe.moe_layer with the owner's gate settings and is_gshard_loss=False; the expert
    and gate init and the fc2 bias follow `init_tutel_experts`."""
    from tutel import moe as tutel_moe  # guarded by resolve_backend

    if owner.temperature != 1.0:
        raise ValueError("model.ffn.backend=tutel: temperature != 1 needs the native backend")
    act = {"relu": torch.relu, "gelu": nn.functional.gelu}[activation]
    owner.gate = None  # tutel owns the gate
    layer = tutel_moe.moe_layer(
        gate_type={"type": "top", "k": owner.top_k, "capacity_factor": owner.capacity_factor,
                   "gate_noise": owner.gate_noise, "fp32_gate": True},
        model_dim=d_model,
        experts={"type": "ffn", "count_per_node": owner.num_experts,
                 "hidden_size_per_expert": hidden_dim, "activation_fn": act},
        batch_prioritized_routing=owner.batch_prioritized, normalize_gate=owner.normalize_gate,
        is_gshard_loss=False)
    init_tutel_experts(layer, init_std, fc2_bias)
    return layer


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
