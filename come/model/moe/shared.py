"""COME's shared experts inside a block: project frozen STE/SEE features to tokens.

    proj = SharedProjections(cfg, d_model)
    feats = proj(ctx, B, L)    # name -> [B, L, D] or None when ctx.shared lacks it

Only the experts switched on (`cfg.use_ste` -> "structure", `cfg.use_see` -> "semantic") get a
projection. A map [B, C, h, w] is sampled bilinearly at each token's `ctx.ref_points`
(grid_sample, align_corners=False, grid = 2 * p - 1, zero padding); maps are in each image's own
(unpadded) frame, as are the reference points, so tokens in the padding (p > 1) read zeros.
Without ref_points a map is average-pooled. When ctx.shared also holds "semantic_prompt"
[B, 1, h, w] (the semantic map's similarity to the test prompt), its samples are appended to the
semantic rows, so the semantic projection sees C_t + 1 channels. A vector [B, C] is broadcast to every token. Projection: Linear(C, D) when
`cfg.structure_dim` / `cfg.semantic_dim` give C, else nn.LazyLinear(D) sized at the first call
that sees the features (run one forward before building the optimiser, or set the dims).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from come.config.schema import FFNConfig

SHARED_NAMES = ("structure", "semantic")


def tokens_from_feature(f: Tensor, ref_points: Optional[Tensor], batch: int, length: int,
                        name: str = "feature") -> Tensor:
    """A shared feature ([B, C, h, w] map or [B, C] vector) as per-token rows [B, L, C]."""
    if f.shape[0] != batch:
        raise ValueError(f"ctx.shared[{name!r}]: batch {f.shape[0]} != tokens' batch {batch}")
    if f.dim() == 2:
        return f[:, None, :].expand(batch, length, f.shape[1])
    if f.dim() != 4:
        raise ValueError(f"ctx.shared[{name!r}]: expected [B, C, h, w] or [B, C], got {tuple(f.shape)}")
    if ref_points is None:
        return f.mean((2, 3))[:, None, :].expand(batch, length, f.shape[1])
    if ref_points.shape != (batch, length, 2):
        raise ValueError(f"ctx.ref_points: expected {(batch, length, 2)}, got {tuple(ref_points.shape)}")
    grid = (2 * ref_points.to(f.dtype) - 1)[:, :, None, :]                   # [B, L, 1, 2]
    s = F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return s[..., 0].transpose(1, 2)                                         # [B, L, C]


class SharedProjections(nn.Module):
    def __init__(self, cfg: FFNConfig, d_model: int):
        super().__init__()
        dims = {"structure": cfg.structure_dim, "semantic": cfg.semantic_dim}
        on = {"structure": cfg.use_ste, "semantic": cfg.use_see}
        self.proj = nn.ModuleDict({
            n: (nn.Linear(dims[n], d_model) if dims[n] > 0 else nn.LazyLinear(d_model))
            for n in SHARED_NAMES if on[n]})

    @property
    def names(self) -> list[str]:
        return list(self.proj.keys())

    def forward(self, ctx, batch: int, length: int) -> dict[str, Optional[Tensor]]:
        out: dict[str, Optional[Tensor]] = {}
        shared = ctx.shared or {}
        for name, proj in self.proj.items():
            f = shared.get(name)
            if f is None:
                out[name] = None
                continue
            rows = tokens_from_feature(f.detach(), ctx.ref_points, batch, length, name)
            extra = shared.get(f"{name}_prompt")
            if extra is not None:
                extra = tokens_from_feature(extra.detach(), ctx.ref_points, batch, length, f"{name}_prompt")
                rows = torch.cat([rows, extra.to(rows.dtype)], -1)
            if isinstance(proj, nn.Linear) and not isinstance(proj, nn.LazyLinear) \
                    and rows.shape[-1] != proj.in_features:
                raise ValueError(f"ctx.shared[{name!r}] has {rows.shape[-1]} channels (with the test-prompt "
                                 f"map, if any) but model.ffn.{name}_dim = {proj.in_features}")
            out[name] = proj(rows)
        return out
