"""Batched K-means in torch and COME's clustering strategies (run per image, without gradients).

    centres [B, k, D], assign [B, N], inertia [B] = kmeans(x [B, N, D], k, iters, valid, init)
    out = build_clusterer(cfg)(x [B, L, D], valid [B, L] | None)
    out.feature [B, L, D]: the cluster feature of each token (detached);
    out.labels: name -> [B, L] long cluster labels ("fine", "coarse", "step1".."stepR").

K-means: Lloyd iterations over the valid tokens of each image, a fixed number of iterations,
then a final assignment to the final centres (as scikit-learn's Lloyd with max_iter=iters).
Init: given centres, or k-means++ with a seeded private generator (deterministic, never touches
the global RNG; inverse-CDF draws at fractions shared by every image, so tokens outside `valid`
change no draw and an image's centres do not depend on its batch partners). `valid` marks the
tokens that estimate the centres; every token (valid or not) gets the nearest final centre, which
is how COME assigns denoising queries to centres fitted on the matching queries. Empty cluster: keeps its previous centre. Fewer valid tokens than k: centres
repeat (k-means++ draws with replacement once every token is a centre).

Strategies (paper 3.2.3; docs/method.md, section clustering):
- fine2coarse: K-means to `fine_k` centres, the centres (those with members) K-means'd to
  `coarse_k`; a token's feature is the coarse centre of its fine cluster.
- multistep (`multistep_mode`): "residual" (default): step t clusters (k=`multistep_k`) the
  residual the steps < t left unexplained (r_1 = x, r_{t+1} = r_t - c_t[a_t]), so each step
  finds a new attribute subspace with the previous steps as its prior; clusters holding fewer
  than `multistep_min_frac` of an image's valid tokens are suppressed (members merged into the
  nearest remaining centre, centres re-estimated); feature = sum of the steps' centres of the
  token (its reconstruction). "repeat": the literal reading, K-means re-run on x from the
  previous centres (one longer K-means: labels repeat; kept only as the ablation).
- mixing: both, feature = the mean of the two features (our choice; the paper is silent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from come.config.schema import FFNConfig


@dataclass
class ClusterOutput:
    feature: Tensor                                   # [B, L, D]
    labels: dict[str, Tensor] = field(default_factory=dict)   # name -> [B, L] long


def sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances [B, N, k] between x [B, N, D] and c [B, k, D]."""
    d = (x * x).sum(-1, keepdim=True) - 2 * torch.bmm(x, c.transpose(1, 2)) + (c * c).sum(-1)[:, None]
    return d.clamp_min(0)


def draw(w: Tensor, u: Tensor) -> Tensor:
    """One index per row of w [B, N] (>= 0, positive row sums) with probability w / sum(w), by
    inverse-CDF sampling at the fraction u (a 0-d tensor in [0, 1), the same for every row):
    zero-weight tokens (padding, denoising queries) anywhere in the row leave the drawn token
    unchanged, and a row's draw does not depend on the other rows of the batch."""
    c = w.cumsum(1)
    t = u.to(device=w.device, dtype=c.dtype) * c[:, -1:]
    return torch.searchsorted(c, t, right=True).clamp_max(w.shape[1] - 1).squeeze(1)


def kmeanspp_init(x: Tensor, k: int, valid: Optional[Tensor] = None, seed: int = 0) -> Tensor:
    """k-means++ centres [B, k, D] drawn among the valid tokens with a seeded generator."""
    b, n, _ = x.shape
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(k, generator=gen)            # one fraction per draw, shared by every image
    w_valid = torch.ones(b, n, device=x.device) if valid is None else valid.float()
    w_valid = torch.where(w_valid.sum(1, keepdim=True) > 0, w_valid, torch.ones_like(w_valid))
    rows = torch.arange(b, device=x.device)
    first = draw(w_valid, u[0])
    centres = [x[rows, first]]
    closest = sq_dists(x, centres[0][:, None]).squeeze(2)                 # [B, N]
    for j in range(1, k):
        w = closest * w_valid
        w = torch.where(w.sum(1, keepdim=True) > 0, w, w_valid)           # all covered: uniform
        nxt = draw(w, u[j])
        centres.append(x[rows, nxt])
        closest = torch.minimum(closest, sq_dists(x, centres[-1][:, None]).squeeze(2))
    return torch.stack(centres, 1)


def assign(x: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centre [B, N] and its squared distance [B, N]."""
    d, a = sq_dists(x, centres).min(-1)
    return a, d


def update(x: Tensor, a: Tensor, centres: Tensor, w: Tensor) -> Tensor:
    """Mean of the (weighted) members of each cluster; an empty cluster keeps its centre."""
    k = centres.shape[1]
    onehot = torch.nn.functional.one_hot(a, k).to(x.dtype) * w[..., None]   # [B, N, k]
    counts = onehot.sum(1)                                                  # [B, k]
    sums = torch.bmm(onehot.transpose(1, 2), x)                             # [B, k, D]
    new = sums / counts.clamp_min(1e-12)[..., None]
    return torch.where(counts[..., None] > 0, new, centres)


@torch.no_grad()
def kmeans(x: Tensor, k: int, iters: int = 10, valid: Optional[Tensor] = None,
           init: Optional[Tensor] = None, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Batched Lloyd K-means -> (centres [B, k, D], assignment [B, N], inertia [B])."""
    if x.dim() != 3:
        raise ValueError(f"kmeans: x must be [B, N, D], got {tuple(x.shape)}")
    if k < 1 or iters < 0:
        raise ValueError(f"kmeans: need k >= 1 and iters >= 0 (k={k}, iters={iters})")
    x = x.detach()
    w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if valid is None else valid.to(x.dtype)
    if init is None:
        centres = kmeanspp_init(x, k, valid, seed)
    else:
        if init.shape != (x.shape[0], k, x.shape[2]):
            raise ValueError(f"kmeans: init must be {(x.shape[0], k, x.shape[2])}, got {tuple(init.shape)}")
        centres = init.detach().to(x.dtype).clone()
    for _ in range(iters):
        a, _ = assign(x, centres)
        centres = update(x, a, centres, w)
    a, d = assign(x, centres)
    return centres, a, (d * w).sum(1)


def gather_centres(centres: Tensor, a: Tensor) -> Tensor:
    """centres [B, k, D] picked by a [B, L] -> [B, L, D]."""
    return torch.gather(centres, 1, a[..., None].expand(-1, -1, centres.shape[-1]))


class Fine2Coarse:
    def __init__(self, fine_k: int = 16, coarse_k: int = 8, iters: int = 10, seed: int = 0):
        self.fine_k, self.coarse_k, self.iters, self.seed = fine_k, coarse_k, iters, seed

    @torch.no_grad()
    def __call__(self, x: Tensor, valid: Optional[Tensor] = None) -> ClusterOutput:
        fc, fa, _ = kmeans(x, self.fine_k, self.iters, valid, seed=self.seed)
        w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if valid is None else valid.to(x.dtype)
        members = torch.zeros(fc.shape[:2], dtype=x.dtype, device=x.device).scatter_add_(1, fa, w)
        cc, ca, _ = kmeans(fc, self.coarse_k, self.iters, members > 0, seed=self.seed + 1)
        coarse = torch.gather(ca, 1, fa)                                        # [B, L]
        return ClusterOutput(gather_centres(cc, coarse), {"fine": fa, "coarse": coarse})


def suppress_small(x: Tensor, centres: Tensor, a: Tensor, w: Tensor, min_frac: float
                   ) -> tuple[Tensor, Tensor]:
    """Merge clusters with fewer than `min_frac` of an image's valid tokens into the nearest
    kept centre, then re-estimate the kept centres -> (centres [B, k, D], assignment [B, N]).
    The largest cluster of an image is always kept; merged centres stay (without members)."""
    if min_frac <= 0:
        return centres, a
    k = centres.shape[1]
    counts = torch.zeros(centres.shape[:2], dtype=x.dtype, device=x.device).scatter_add_(1, a, w)
    keep = counts >= min_frac * w.sum(1, keepdim=True)                     # [B, k]
    keep.scatter_(1, counts.argmax(1, keepdim=True), True)
    if bool(keep.all()):
        return centres, a
    d = sq_dists(x, centres).masked_fill(~keep[:, None, :], float("inf"))  # [B, N, k]
    a = d.argmin(-1)
    return update(x, a, centres, w), a


class MultiStep:
    """Multi-Step clustering (see the module docstring): `mode` "residual" or "repeat"."""

    def __init__(self, k: int = 4, rounds: int = 5, iters: int = 10, seed: int = 0,
                 mode: str = "residual", min_frac: float = 0.05):
        if mode not in ("residual", "repeat"):
            raise ValueError(f"model.ffn.multistep_mode: {mode!r} must be 'residual' or 'repeat'")
        self.k, self.rounds, self.iters, self.seed = k, rounds, iters, seed
        self.mode, self.min_frac = mode, float(min_frac)

    @torch.no_grad()
    def __call__(self, x: Tensor, valid: Optional[Tensor] = None) -> ClusterOutput:
        if self.mode == "repeat":
            return self._repeat(x, valid)
        x = x.detach()
        w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if valid is None else valid.to(x.dtype)
        r, feature, labels = x, torch.zeros_like(x), {}
        for t in range(self.rounds):
            centres, a, _ = kmeans(r, self.k, self.iters, valid, seed=self.seed + t)
            centres, a = suppress_small(r, centres, a, w, self.min_frac)
            part = gather_centres(centres, a)                                  # [B, L, D]
            feature = feature + part
            r = r - part
            labels[f"step{t + 1}"] = a
        return ClusterOutput(feature, labels)

    def _repeat(self, x: Tensor, valid: Optional[Tensor]) -> ClusterOutput:
        centres, labels = None, {}
        for r in range(self.rounds):
            centres, a, _ = kmeans(x, self.k, self.iters, valid, init=centres, seed=self.seed)
            labels[f"step{r + 1}"] = a
        return ClusterOutput(gather_centres(centres, a), labels)


class Mixing:
    def __init__(self, f2c: Fine2Coarse, ms: MultiStep):
        self.f2c, self.ms = f2c, ms

    @torch.no_grad()
    def __call__(self, x: Tensor, valid: Optional[Tensor] = None) -> ClusterOutput:
        a, b = self.f2c(x, valid), self.ms(x, valid)
        return ClusterOutput(0.5 * (a.feature + b.feature), {**a.labels, **b.labels})


def build_clusterer(cfg: FFNConfig, seed: int = 0):
    """The clustering strategy of `cfg.clustering`, or None for "none"."""
    f2c = Fine2Coarse(cfg.fine_k, cfg.coarse_k, cfg.kmeans_iters, seed)
    ms = MultiStep(cfg.multistep_k, cfg.multistep_rounds, cfg.kmeans_iters, seed,
                   cfg.multistep_mode, cfg.multistep_min_frac)
    table = {"fine2coarse": f2c, "multistep": ms, "mixing": Mixing(f2c, ms), "none": None}
    if cfg.clustering not in table:
        raise ValueError(f"model.ffn.clustering: {cfg.clustering!r} not in {sorted(table)}")
    return table[cfg.clustering]
