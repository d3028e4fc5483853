"""Per-token source labels: batch size > 1, query-major flattening, ignore index."""
import torch

from come.model.moe.labels import IGNORE_INDEX, token_labels


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
