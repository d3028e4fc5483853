"""Contrastive denoising: groups, slots, noise ranges and the attention mask (batch of 2)."""
import torch
from torch import nn

from come.model.box_ops import box_cxcywh_to_xyxy
from come.model.denoising import build_dn_attn_mask, dn_groups, dn_positive_indices, prepare_cdn

TARGETS = [
    {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])},
    {"labels": torch.tensor([0, 1, 0]),
     "boxes": torch.tensor([[0.3, 0.3, 0.1, 0.2], [0.6, 0.5, 0.2, 0.1], [0.5, 0.6, 0.3, 0.3]])},
]


def test_group_count():
    assert dn_groups(100, 3) == 33          # DINO: (2 * 100) // (2 * 3)
    assert dn_groups(100, 101) == 1          # at least one group
    assert dn_groups(20, 1) == 20


def test_attention_mask_structure():
    m = build_dn_attn_mask(single_pad=3, groups=2, num_queries=5, device=torch.device("cpu"))
    assert m.shape == (17, 17)
    assert m[12:, :12].all() and not m[12:, 12:].any()      # matching queries never see dn
    assert not m[:12, 12:].any()                              # dn queries see matching queries
    assert not m[0:6, 0:6].any() and not m[6:12, 6:12].any()  # a group sees itself
    assert m[0:6, 6:12].all() and m[6:12, 0:6].all()          # groups are kept apart
    assert not m.diagonal().any()


def test_prepare_cdn_slots_noise_and_indices():
    torch.manual_seed(0)
    enc = nn.Embedding(3, 8)
    cdn = prepare_cdn(TARGETS, dn_number=6, label_noise_ratio=0.0, box_noise_scale=0.4,
                      num_classes=2, num_queries=5, label_enc=enc)
    assert cdn.meta == {"pad_size": 12, "num_groups": 2, "single_pad": 3}
    assert cdn.label_queries.shape == (2, 12, 8) and cdn.box_queries.shape == (2, 12, 4)
    assert cdn.attn_mask.shape == (17, 17)
    filled0 = cdn.label_queries[0].abs().sum(-1) > 0
    assert filled0.nonzero().flatten().tolist() == [0, 3, 6, 9]    # 1 box: first slot of each half
    assert (cdn.label_queries[1].abs().sum(-1) > 0).all()           # 3 boxes fill every slot
    with torch.no_grad():
        assert torch.allclose(cdn.label_queries[1, 4], enc.weight[1])   # no label noise at ratio 0
        assert torch.allclose(cdn.label_queries[0, 9], enc.weight[1])
    boxes = box_cxcywh_to_xyxy(cdn.box_queries.sigmoid())
    for img, t in enumerate(TARGETS):
        gt = box_cxcywh_to_xyxy(t["boxes"])
        half = t["boxes"][:, 2:].repeat(1, 2) / 2 * 0.4
        for copy in range(4):
            n = len(t["labels"])
            err = (boxes[img, copy * 3: copy * 3 + n] - gt).abs() / half
            if copy % 2 == 0:
                assert (err < 1 + 1e-3).all(), (img, copy, err)       # positives: [0, 1) x
            else:
                assert (err > 1 - 1e-3).all() and (err < 2 + 1e-3).all(), (img, copy, err)
    idx = dn_positive_indices(TARGETS, cdn.meta)
    assert idx[0][0].tolist() == [0, 6] and idx[0][1].tolist() == [0, 0]
    assert idx[1][0].tolist() == [0, 1, 2, 6, 7, 8] and idx[1][1].tolist() == [0, 1, 2, 0, 1, 2]


def test_label_noise_flips_about_a_quarter():
    torch.manual_seed(0)
    enc = nn.Embedding(11, 4)
    many = [{"labels": torch.zeros(50, dtype=torch.long), "boxes": torch.full((50, 4), 0.3)}]
    cdn = prepare_cdn(many, dn_number=1000, label_noise_ratio=0.5, box_noise_scale=0.0,
                      num_classes=10, num_queries=1, label_enc=enc)
    same = torch.isclose(cdn.label_queries[0], enc.weight[0].detach()).all(-1).float().mean()
    # flip prob 0.25, and a flip picks class 0 again with prob 1/10 -> kept fraction 0.775
    assert 0.72 < float(same) < 0.83


def test_no_boxes_or_no_dn_gives_none():
    enc = nn.Embedding(2, 4)
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}] * 2
    assert prepare_cdn(empty, 10, 0.5, 0.4, 1, 5, enc) is None
    assert prepare_cdn(TARGETS, 0, 0.5, 0.4, 2, 5, nn.Embedding(3, 4)) is None
