"""Resumable, balanced, DDP-aware sampler."""
from __future__ import annotations

from collections import Counter

import pytest

from come.data.sampler import ResumableSampler, epoch_order


def test_same_seed_same_order_and_epochs_differ():
    src = [0] * 10 + [1] * 5
    a, b = ResumableSampler(src, seed=3), ResumableSampler(src, seed=3)
    assert list(a) == list(b)
    assert sorted(a) == list(range(15))                         # a permutation
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(ResumableSampler(src, seed=4)) != first


def test_resume_from_position_continues_the_order():
    src = list(range(13))
    full = ResumableSampler(src, seed=0)
    full.set_epoch(2)
    order = list(full)
    s = ResumableSampler(src, seed=0)
    s.set_epoch(2)
    s.advance(5)
    state = s.state_dict()
    t = ResumableSampler(src, seed=0)
    t.load_state_dict(state)
    assert list(t) == order[5:] and len(t) == 8


def test_resume_rejects_other_seed_or_world_size():
    s = ResumableSampler([0, 1, 2], seed=0)
    with pytest.raises(ValueError, match="seed"):
        ResumableSampler([0, 1, 2], seed=1).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="world_size"):
        ResumableSampler([0, 1, 2], seed=0, rank=0, world_size=2).load_state_dict(s.state_dict())


def test_balanced_draws_sources_uniformly():
    src = [0] * 90 + [1] * 10                                   # 9:1 imbalance
    order = epoch_order(src, seed=0, epoch=0, balanced=True)
    share = Counter(src[i] for i in order)
    assert len(order) == 100
    assert 35 <= share[1] <= 65                                 # ~50 % instead of 10 %
    minority = [i for i in order if src[i] == 1]
    assert set(minority[:10]) == set(range(90, 100))            # each cycle covers every item


def test_ddp_shards_are_disjoint_and_cover_the_epoch():
    src = [0, 1] * 7 + [0]                                      # 15 items, 2 ranks -> padded to 16
    shards = [list(ResumableSampler(src, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 8
    assert set(shards[0]) | set(shards[1]) == set(range(15))
    full = epoch_order(src, 1, 0).tolist()
    assert shards[0] == full[0::2][:8]


def test_bad_position_is_rejected():
    s = ResumableSampler([0, 0, 0])
    with pytest.raises(ValueError, match="position"):
        s.set_epoch(0, 7)
