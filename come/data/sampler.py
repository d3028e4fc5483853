"""Deterministic, seeded, resumable, DDP-aware sampler with a balanced multi-source option.

The order of epoch `e` depends only on (seed, e): the same on every run, so a resumed run
continues exactly where it stopped. Its state is `(epoch, position)` where `position` counts
the indices of this rank already consumed in the epoch (the engine advances it per completed
batch, not the DataLoader's prefetching). With `balanced=True` each draw picks a source
uniformly, then the next item of that source's own shuffled cycle.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


def dist_info() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_order(source_ids: Sequence[int], seed: int, epoch: int, shuffle: bool = True,
                balanced: bool = False) -> np.ndarray:
    """The full (all-rank) index order of one epoch, length len(source_ids)."""
    n = len(source_ids)
    rng = np.random.default_rng([int(seed), int(epoch)])
    if not balanced:
        return rng.permutation(n) if shuffle else np.arange(n)
    sids = np.asarray(source_ids)
    groups = [np.flatnonzero(sids == s) for s in np.unique(sids)]
    cycles = [rng.permutation(g) for g in groups]
    cursor = [0] * len(groups)
    picks = rng.integers(len(groups), size=n)
    out = np.empty(n, dtype=np.int64)
    for i, g in enumerate(picks):
        if cursor[g] == len(cycles[g]):              # this source is exhausted: new cycle
            cycles[g] = rng.permutation(groups[g])
            cursor[g] = 0
        out[i] = cycles[g][cursor[g]]
        cursor[g] += 1
    return out


class ResumableSampler(Sampler[int]):
    """Yields this rank's indices of the current epoch, from `position` on.

    source_ids: per-item source id (used when balanced). rank/world_size default to the
    initialised process group (shards are `order[rank::world_size]` after padding the order to
    a multiple of world_size by repeating its head, as DistributedSampler does).
    """

    def __init__(self, source_ids: Sequence[int], seed: int = 0, shuffle: bool = True,
                 balanced: bool = False, rank: int | None = None, world_size: int | None = None):
        if len(source_ids) == 0:
            raise ValueError("ResumableSampler: empty dataset")
        r, w = dist_info()
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} not in [0, {self.world_size})")
        self.source_ids = list(source_ids)
        self.seed, self.shuffle, self.balanced = int(seed), shuffle, balanced
        self.epoch, self.position = 0, 0

    @property
    def per_rank(self) -> int:
        """Number of indices per rank in one full epoch."""
        return math.ceil(len(self.source_ids) / self.world_size)

    def indices(self) -> np.ndarray:
        """This rank's full index list for `self.epoch`."""
        order = epoch_order(self.source_ids, self.seed, self.epoch, self.shuffle, self.balanced)
        total = self.per_rank * self.world_size
        if total > len(order):
            order = np.concatenate([order, np.resize(order, total - len(order))])
        return order[self.rank:total:self.world_size]

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        if not 0 <= position <= self.per_rank:
            raise ValueError(f"sampler position {position} outside [0, {self.per_rank}]")
        self.epoch, self.position = int(epoch), int(position)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this run uses {self.seed}")
        if int(state.get("world_size", self.world_size)) != self.world_size:
            raise ValueError(f"sampler state was saved with world_size {state['world_size']}, "
                             f"now {self.world_size}: exact resume needs the same world size")
        self.set_epoch(int(state["epoch"]), int(state["position"]))

    def advance(self, n: int) -> None:
        """Record that `n` more indices of this epoch were consumed."""
        self.position = min(self.position + int(n), self.per_rank)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.position:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.position
