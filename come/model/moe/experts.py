"""E expert FFNs stored as stacked tensors and the dispatch/combine around them.

    experts = BatchedExperts(E, D, H, activation, dropout, impl="bmm"|"loop", fc2_bias, init_std)
    y = experts(x [N, D], indices [N, k], gates [N, k], locations [N, k], kept [N, k], capacity)
    y [N, D] = sum over kept choices j of gates[n, j] * FFN_{indices[n, j]}(x[n]); dropped
    choices contribute zero.

Weights: w1 [E, D, H], b1 [E, 1, H], w2 [E, H, D], b2 [E, 1, D]. Init: init_std = 0 -> nn.Linear's
per expert; init_std > 0 -> weights truncated normal (std init_std, cut at +-2 absolute, as
timm's trunc_normal_ DAMEX calls) and zero biases. fc2_bias=False (DAMEX moe_mlp_fc2_bias):
b2 is a zero buffer, not a parameter.
Two dispatch implementations with identical results (benchmarks/bench_moe.py compares them):
- "bmm": scatter the kept tokens into an [E, capacity, D] buffer at their slots (index_copy),
  two batched matmuls, gather back (tutel's layout; pads up to `capacity` per expert);
- "loop": sort the kept (token, choice) pairs by expert and run one matmul pair per expert on
  exactly its tokens (no padding; a Python loop over the E experts, never over tokens).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": torch.relu, "gelu": nn.functional.gelu}


class BatchedExperts(nn.Module):
    def __init__(self, num_experts: int, d_model: int, hidden_dim: int, activation: str = "relu",
                 dropout: float = 0.0, impl: str = "loop", fc2_bias: bool = True,
                 init_std: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"BatchedExperts: activation {activation!r} not in {sorted(ACTIVATIONS)}")
        if impl not in ("bmm", "loop"):
            raise ValueError(f"BatchedExperts: impl {impl!r} must be 'bmm' or 'loop'")
        e, d, h = num_experts, d_model, hidden_dim
        self.num_experts, self.impl, self.init_std = e, impl, float(init_std)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)
        self.w1 = nn.Parameter(torch.empty(e, d, h))
        self.b1 = nn.Parameter(torch.empty(e, 1, h))
        self.w2 = nn.Parameter(torch.empty(e, h, d))
        if fc2_bias:
            self.b2 = nn.Parameter(torch.empty(e, 1, d))
        else:
            self.register_buffer("b2", torch.zeros(e, 1, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """init_std 0: per expert as nn.Linear, U(+-1/sqrt(fan_in)) for weights and biases;
        init_std > 0: truncated-normal weights, zero biases."""
        d, h = self.w1.shape[1], self.w1.shape[2]
        for p, fan_in, is_bias in ((self.w1, d, False), (self.b1, d, True), (self.w2, h, False),
                                   (self.b2, h, True)):
            if not isinstance(p, nn.Parameter):
                continue                                   # fc2 bias off: a zero buffer
            if self.init_std > 0:
                if is_bias:
                    nn.init.zeros_(p)
                else:
                    nn.init.trunc_normal_(p, std=self.init_std, a=-2.0, b=2.0)
            else:
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(p, -bound, bound)

    def expert(self, i: int, x: Tensor) -> Tensor:
        """FFN of expert i on x [n, D] -> [n, D] (one expert; see `_loop` for all of them)."""
        h = self.drop(self.act(torch.addmm(self.b1[i, 0], x, self.w1[i])))
        return self.drop(torch.addmm(self.b2[i, 0], h, self.w2[i]))

    def forward(self, x: Tensor, indices: Tensor, gates: Tensor, locations: Tensor, kept: Tensor,
                capacity: int) -> Tensor:
        n, k = indices.shape
        tok = torch.arange(n, device=x.device).unsqueeze(1).expand(n, k)[kept]   # [M]
        exp = indices[kept]
        g = gates[kept].unsqueeze(1)                                            # [M, 1]
        if tok.numel() == 0:      # everything dropped: zeros, graph still connected to the gate
            return x.new_zeros(x.shape) + 0.0 * gates.sum().to(x.dtype)
        if self.impl == "bmm":
            out = self._bmm(x, tok, exp, locations[kept], capacity)
        else:
            out, tok, g = self._loop(x, tok, exp, g)
        # out's dtype may differ from x's under autocast: combine in out's dtype
        y = out.new_zeros((x.shape[0], out.shape[1]))
        return y.index_add(0, tok, out * g.to(out.dtype))

    def _bmm(self, x: Tensor, tok: Tensor, exp: Tensor, loc: Tensor, capacity: int) -> Tensor:
        e, d = self.num_experts, x.shape[1]
        slot = exp * capacity + loc                                              # unique per kept choice
        buf = x.new_zeros(e * capacity, d).index_copy(0, slot, x[tok]).view(e, capacity, d)
        h = self.drop(self.act(torch.baddbmm(self.b1, buf, self.w1)))            # [E, C, H]
        out = self.drop(torch.baddbmm(self.b2, h, self.w2)).reshape(e * capacity, d)
        return out[slot]

    def _loop(self, x: Tensor, tok: Tensor, exp: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        order = torch.argsort(exp, stable=True)
        tok, exp, g = tok[order], exp[order], g[order]
        counts = torch.bincount(exp, minlength=self.num_experts).tolist()
        xs = x[tok].split(counts)
        # unbind once: per-expert views whose backward stacks the E gradients in one op
        # (indexing w[i] per expert would build E full-size zero gradients)
        w1, b1, w2, b2 = (p.unbind(0) for p in (self.w1, self.b1, self.w2, self.b2))
        outs = []
        for i, xi in enumerate(xs):
            if xi.shape[0] > 0:
                h = self.drop(self.act(torch.addmm(b1[i][0], xi, w1[i])))
                outs.append(self.drop(torch.addmm(b2[i][0], h, w2[i])))
        return torch.cat(outs, 0), tok, g
