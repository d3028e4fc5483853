"""A mixture-of-experts layer with tutel's semantics (native PyTorch; optional tutel backend).

    layer = MoELayer(d_model, hidden_dim, num_experts, top_k, capacity_factor, gate_noise, ...)
    y, info = layer(x [N, D], route_input [N, D] | None, valid [N] bool | None)

The gate is a bias-free Linear(D, E) applied to `route_input` (default: x), divided by
`temperature` (COME's temperature-scaled router; 1 = tutel). `fc2_bias`, `init_std`: see
experts.py (init_std > 0 also draws the gate weight from the truncated normal). Only valid tokens are routed:
padded tokens neither take capacity nor enter the balance loss, and their output is zero.
`info` (RoutingInfo) describes the routed (valid) tokens: clean logits, choices, gates, kept
mask, capacity and the unweighted balance loss.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from .experts import BatchedExperts
from .routing import balance_loss, route


@dataclass
class RoutingInfo:
    logits: Tensor          # [n, E] clean (temperature-scaled) router logits of the routed tokens
    indices: Tensor         # [n, k] expert per choice
    gates: Tensor           # [n, k]
    kept: Tensor            # [n, k] bool
    capacity: int
    balance: Tensor         # scalar, unweighted
    valid_index: Optional[Tensor] = None   # [n] positions of the routed tokens in the input


def tutel_available() -> bool:
    return importlib.util.find_spec("tutel") is not None


def resolve_backend(backend: str) -> str:
    """"native" | "tutel" | "auto" (tutel when importable and CUDA is available) -> concrete."""
    if backend == "native":
        return "native"
    if backend == "tutel":
        if not tutel_available():
            raise RuntimeError("model.ffn.backend=tutel but the `tutel` package is not importable "
                               "(install it from github.com/microsoft/tutel, or use backend=native)")
        return "tutel"
    if backend == "auto":
        return "tutel" if tutel_available() and torch.cuda.is_available() else "native"
    raise ValueError(f"model.ffn.backend: {backend!r} is not auto|native|tutel")


class MoELayer(nn.Module):
    def __init__(self, d_model: int, hidden_dim: int, num_experts: int, top_k: int,
                 capacity_factor: float = 1.25, gate_noise: float = 1.0, normalize_gate: bool = True,
                 batch_prioritized: bool = False, activation: str = "relu", dropout: float = 0.0,
                 temperature: float = 1.0, backend: str = "native", impl: str = "loop",
                 fc2_bias: bool = True, init_std: float = 0.0):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"MoELayer: top_k={top_k} must be in [1, num_experts={num_experts}]")
        self.num_experts, self.top_k = num_experts, top_k
        self.capacity_factor, self.gate_noise = float(capacity_factor), float(gate_noise)
        self.normalize_gate, self.batch_prioritized = normalize_gate, batch_prioritized
        self.temperature = float(temperature)
        self.backend = resolve_backend(backend)
        self.gate = nn.Linear(d_model, num_experts, bias=False)
        if init_std > 0:                 # DAMEX: every Linear of its MoE decoder layer, std 0.005
            nn.init.trunc_normal_(self.gate.weight, std=init_std, a=-2.0, b=2.0)
        if self.backend == "tutel":
            from .tutel_backend import build_tutel_layer
            self.tutel = build_tutel_layer(self, d_model, hidden_dim, activation, fc2_bias, init_std)
        else:
            self.experts = BatchedExperts(num_experts, d_model, hidden_dim, activation, dropout, impl,
                                          fc2_bias, init_std)

    def forward(self, x: Tensor, route_input: Optional[Tensor] = None,
                valid: Optional[Tensor] = None) -> tuple[Tensor, RoutingInfo]:
        if x.dim() != 2:
            raise ValueError(f"MoELayer: x must be [N, D], got {tuple(x.shape)}")
        r = x if route_input is None else route_input
        if r.shape[0] != x.shape[0]:
            raise ValueError(f"MoELayer: route_input has {r.shape[0]} rows for {x.shape[0]} tokens")
        idx = None
        if valid is not None:
            if valid.shape != (x.shape[0],):
                raise ValueError(f"MoELayer: valid must be [{x.shape[0]}] bool, got {tuple(valid.shape)}")
            if not bool(valid.all()):
                idx = valid.nonzero().squeeze(1)
                x, r = x[idx], r[idx]
        if self.backend == "tutel":
            from .tutel_backend import tutel_forward
            y, info = tutel_forward(self, x, r)
        else:
            y, info = self._native(x, r)
        info.valid_index = idx
        if idx is not None:
            full = y.new_zeros((valid.shape[0], y.shape[1]))
            y = full.index_copy(0, idx, y)
        return y, info

    def _native(self, x: Tensor, r: Tensor) -> tuple[Tensor, RoutingInfo]:
        logits = self.gate(r) / self.temperature                                   # [n, E]
        rt = route(logits, self.top_k, self.capacity_factor, self.gate_noise, self.normalize_gate,
                   self.batch_prioritized, self.training)
        y = self.experts(x, rt.indices, rt.gates, rt.locations, rt.kept, rt.capacity)
        bal = balance_loss(logits, rt.noisy_logits, rt.indices, self.gate_noise)
        return y, RoutingInfo(logits, rt.indices, rt.gates, rt.kept, rt.capacity, bal)
