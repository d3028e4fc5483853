"""Per-token source labels: batch size > 1, query-major flattening, ignore index."""
import math

import pytest
import torch

from come.model.moe.labels import IGNORE_INDEX, expert_blocks, soft_label_ce, token_labels, trace_targets


def test_batch_major_and_query_major_orders():
    src = torch.tensor([0, 5, 2])                  # B = 3
    b, l, e = 3, 4, 4
    bm = token_labels(src, b, l, "batch_major", e)
    qm = token_labels(src, b, l, "query_major", e)
    assert bm.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert qm.tolist() == [0, 1, 2] * 4
    # each layout matches the tokens flattened in that order
    x = torch.arange(b)[:, None].expand(b, l)      # token value = its image index
    assert torch.equal(src[x.reshape(-1)] % e, bm)
    assert torch.equal(src[x.t().reshape(-1)] % e, qm)
    # DAMEX's pitfall: batch-major labels on query-major tokens are wrong for B > 1
    assert not torch.equal(bm, qm)
    one = torch.tensor([3])
    assert torch.equal(token_labels(one, 1, 5, "batch_major", 4), token_labels(one, 1, 5, "query_major", 4))


def test_unknown_source_and_padding_are_ignored():
    src = torch.tensor([1, -1])
    pad = torch.zeros(2, 3, dtype=torch.bool)
    pad[0, 2] = True
    bm = token_labels(src, 2, 3, "batch_major", 8, pad)
    qm = token_labels(src, 2, 3, "query_major", 8, pad)
    I = IGNORE_INDEX
    assert bm.tolist() == [1, 1, I, I, I, I]
    assert qm.tolist() == [1, I, 1, I, I, I]
    assert token_labels(torch.tensor([9]), 1, 2, num_experts=None).tolist() == [9, 9]


# ---- sources -> expert blocks (issue 12 item 5). Old code: source_id % E (no blocks, no soft
# target): these tests fail on it (no expert_blocks / trace_targets; BUSI and DDTI share expert 0
# at E = 4; one source sends every token to expert 0).
PAPER = ["BUSI", "BUV", "BUSBRA", "BUSC", "DDTI", "TUD", "TUS", "TNSCUI"]
SOURCE_SETS = {1: ["BUSBRA"], 4: ["BUSI", "BUV", "DDTI", "TUD"], 8: PAPER}


@pytest.mark.parametrize("e", [2, 4, 8, 10])
@pytest.mark.parametrize("s", [1, 4, 8])
def test_expert_blocks_are_contiguous_and_cover_the_experts(e, s):
    sources = SOURCE_SETS[s]
    blocks = expert_blocks(sources, e)
    assert len(blocks) == s
    for b in blocks:
        assert b and b == list(range(b[0], b[-1] + 1))              # non-empty, contiguous
    assert sorted({x for b in blocks for x in b}) == list(range(e))   # all experts used
    firsts = [b[0] for b in blocks]
    assert firsts == sorted(firsts)                                  # organ-grouped order kept
    if e >= s:                                                       # disjoint, sizes differ <= 1
        assert sum(len(b) for b in blocks) == e
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    else:                                                            # one expert, neighbours share
        assert all(len(b) == 1 for b in blocks)
    t = trace_targets(sources, e)
    assert t.shape == (s, e) and torch.allclose(t.sum(1), torch.ones(s))
    for i, b in enumerate(blocks):
        assert torch.allclose(t[i, b], torch.full((len(b),), 1.0 / len(b)))


def test_blocks_keep_organs_apart_and_one_source_spreads():
    four = expert_blocks(PAPER, 4)
    assert four[0] == four[1] and four[0] != four[4]                # BUSI+BUV share; not with DDTI
    assert {x for b in four[:4] for x in b}.isdisjoint({x for b in four[4:] for x in b})
    assert expert_blocks(PAPER, 2) == [[0]] * 4 + [[1]] * 4          # one expert per organ
    mixed = expert_blocks(["BUSI", "DDTI", "BUV", "TUD"], 2)          # input order interleaved
    assert mixed == [[0], [1], [0], [1]]
    assert expert_blocks(["BUSI"], 4) == [[0, 1, 2, 3]]              # single paradigm: all experts
    assert expert_blocks(["BUSI", "BUV", "DDTI", "TUD"], 10) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]


def test_single_source_trace_loss_does_not_collapse_to_expert_0():
    """Old: one source -> label 0 -> the loss drives every token to expert 0 (dropped beyond
    capacity). Now the target is uniform over all experts: a uniform router is optimal."""
    t = trace_targets(["TUD"], 4)
    src = torch.zeros(6, dtype=torch.long)
    uniform = soft_label_ce(torch.zeros(6, 4), src, t)
    peaked = soft_label_ce(torch.tensor([[5.0, 0, 0, 0]]).expand(6, 4), src, t)
    assert float(uniform) == pytest.approx(math.log(4)) and float(peaked) > float(uniform)
    assert soft_label_ce(torch.zeros(2, 4), torch.tensor([IGNORE_INDEX, 3]), t) is None
    one_hot = trace_targets(PAPER, 8)
    logits, lab = torch.randn(5, 8), torch.tensor([0, 3, 7, IGNORE_INDEX, 2])
    ok = lab != IGNORE_INDEX
    assert torch.allclose(soft_label_ce(logits, lab, one_hot),
                          torch.nn.functional.cross_entropy(logits[ok], lab[ok]))
