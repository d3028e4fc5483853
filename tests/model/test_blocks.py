"""Smaller pieces: FFN sub-layer norms, proposals, focal loss, criterion, post-processing."""
import math

import pytest
import torch
from torch import nn

from come.config.schema import FFNConfig
from come.model.ffn import FFNContext, register_ffn
from come.model.ffn_block import FFNBlock
from come.model.layers import DropPath, inverse_sigmoid, sine_embed_boxes
from come.model.losses import SetCriterion, sigmoid_focal_loss
from come.model.matcher import HungarianMatcher
from come.model.postprocess import postprocess
from come.model.two_stage import encoder_proposals


@register_ffn("test_double")
class DoubleFFN(nn.Module):
    def __init__(self, cfg, d_model, stage="encoder", layer_idx=0):
        super().__init__()

    def forward(self, x, ctx):
        return 2 * x, {"k": x.new_tensor(1.0)}


def test_ffn_block_post_and_pre_norm():
    x = torch.randn(2, 5, 8)
    ctx = FFNContext(source_ids=torch.zeros(2, dtype=torch.long))
    post = FFNBlock(FFNConfig(type="test_double", prenorm=False), 8, "decoder", 0, 0.0)
    y, aux = post(x, ctx)
    assert torch.allclose(y, post.norm(3 * x)) and set(aux) == {"k"}
    pre = FFNBlock(FFNConfig(type="test_double", prenorm=True, layers=[0]), 8, "decoder", 0, 0.0)
    assert torch.allclose(pre(x, ctx)[0], x + 2 * pre.norm(x))
    # prenorm only applies to routed layers: layer 1 is dense and post-norm
    dense = FFNBlock(FFNConfig(type="test_double", prenorm=True, layers=[0], hidden_dim=4), 8, "decoder", 1, 0.0)
    assert not dense.prenorm


def test_drop_path_and_inverse_sigmoid():
    torch.manual_seed(0)
    dp = DropPath(0.5).train()
    out = dp(torch.ones(1000, 3))
    kept = (out[:, 0] > 0).float().mean()
    assert 0.4 < float(kept) < 0.6 and set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(DropPath(0.5).eval()(torch.ones(4, 2)), torch.ones(4, 2))
    p = torch.tensor([0.0, 0.25, 0.5, 1.0])
    v = inverse_sigmoid(p)
    assert torch.isfinite(v).all() and v[2] == 0 and v[1].item() == pytest.approx(math.log(1 / 3), abs=1e-4)


def test_sine_embed_boxes_layout():
    e = sine_embed_boxes(torch.tensor([[0.25, 0.5, 0.1, 0.2]]), d_model=8)
    assert e.shape == (1, 16)
    # first block is y: frequency-0 sin of 0.5 * 2pi, then cos at the same frequency
    assert e[0, 0].item() == pytest.approx(math.sin(math.pi), abs=1e-5)
    assert e[0, 1].item() == pytest.approx(math.cos(math.pi), abs=1e-5)
    assert e[0, 4].item() == pytest.approx(math.sin(0.5 * math.pi), abs=1e-5)   # x block
    assert sine_embed_boxes(torch.rand(3, 2), 8).shape == (3, 8)


def test_encoder_proposals_validity():
    shapes = torch.tensor([[4, 4], [2, 2]])
    memory = torch.randn(1, 20, 6)
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[0, [3, 7, 11, 15]] = True                  # last column of level 0 is padding
    mem, props, valid = encoder_proposals(memory, mask, shapes)
    assert not valid[0, 3] and torch.isinf(props[0, 3]).all() and (mem[0, 3] == 0).all()
    box = props[0, 0].sigmoid()                     # first cell: centre (0.5/3, 0.5/4), size 0.05
    assert torch.allclose(box, torch.tensor([0.5 / 3, 0.5 / 4, 0.05, 0.05]), atol=1e-5)
    assert torch.allclose(props[0, 16].sigmoid()[2:], torch.tensor([0.1, 0.1]), atol=1e-5)
    assert valid[0, :3].all() and valid[0, 16:].all()


def test_focal_loss_hand_value():
    x = torch.tensor([0.0])
    # p = 0.5, target 1: ce = log 2, (1 - p_t)^2 = 0.25, alpha 0.25
    assert sigmoid_focal_loss(x, torch.ones(1)).item() == pytest.approx(0.25 * 0.25 * math.log(2))
    assert sigmoid_focal_loss(x, torch.zeros(1)).item() == pytest.approx(0.75 * 0.25 * math.log(2))


def test_criterion_perfect_boxes_give_zero_box_losses():
    crit = SetCriterion(1, HungarianMatcher(), {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0})
    gt = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.3]])
    boxes = torch.cat([gt.flip(0), torch.tensor([[0.5, 0.5, 0.1, 0.1]])])[None]
    logits = torch.tensor([[[8.0], [8.0], [-8.0]]])
    out = {"pred_logits": logits, "pred_boxes": boxes, "aux_outputs": [], "interm_outputs": None,
           "aux_ffn": {"extra": torch.tensor(0.3)}}
    losses = crit(out, [{"labels": torch.zeros(2, dtype=torch.long), "boxes": gt}])
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_ce"].item() < 1e-4 and losses["loss_ce_dn"].item() == 0.0
    assert losses["loss"].item() == pytest.approx(losses["loss_ce"].item() + 0.3, abs=1e-5)


def test_postprocess_topk_and_scaling():
    logits = torch.tensor([[[0.0, 3.0], [2.0, -1.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.5, 0.5]]])
    dets = postprocess({"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([[100, 200]]), num_select=3)[0]
    assert dets["labels"].tolist() == [1, 0, 0]
    assert torch.allclose(dets["scores"], torch.sigmoid(torch.tensor([3.0, 2.0, 0.0])))
    assert torch.allclose(dets["boxes"][0], torch.tensor([80.0, 30.0, 120.0, 70.0]))
    assert torch.allclose(dets["boxes"][1], torch.tensor([0.0, 0.0, 100.0, 50.0]))
    with pytest.raises(ValueError, match="orig_sizes"):
        postprocess({"pred_logits": logits, "pred_boxes": boxes}, torch.tensor([100, 200]))
