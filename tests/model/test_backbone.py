"""Backbone (frozen BN, frozen stages, checkpoints), sine position encoding, input projections."""
import math

import pytest
import torch
from torch import nn

from come.config.schema import BackboneConfig
from come.model.backbone import Backbone, FrozenBatchNorm2d, freeze_batchnorm
from come.model.layers import group_norm_groups
from come.model.neck import MultiScaleNeck
from come.model.position import PositionEmbeddingSine


def test_frozen_batchnorm_equals_eval_batchnorm():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    bn.eval()
    seq = freeze_batchnorm(nn.Sequential(nn.Identity(), bn))
    assert isinstance(seq[1], FrozenBatchNorm2d)
    x = torch.randn(2, 5, 4, 4)
    assert torch.allclose(seq(x), bn(x), atol=1e-6)       # no gradient: the fused kernel
    assert not list(seq.parameters())
    xg = x.clone().requires_grad_(True)                   # a gradient flows: the broadcast ops
    out = seq(xg)
    assert out.grad_fn is not None and torch.allclose(out, bn(x), atol=1e-6)
    out.sum().backward()
    per_channel = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach()
    assert torch.allclose(xg.grad, per_channel[None, :, None, None].expand_as(x), atol=1e-6)
    with torch.no_grad():                                 # no_grad wins over requires_grad
        assert torch.allclose(seq(xg), bn(x), atol=1e-6)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_freezing_batchnorm_keeps_the_network_function(name):
    """Frozen BN must compute what the eval-mode network computes. timm's EfficientNets keep
    their ReLU6 inside BatchNormAct2d: replacing that by a bare frozen BN made the demo's
    ImageNet backbone a linear network (caught here: max difference ~12 before the fix)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model(name, features_only=True).eval()
    for bn in net.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.normal_(bn.bias, 0, 0.1)
    keys = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = net(x)
    freeze_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert set(net.state_dict()) == keys                      # checkpoints keep loading
    for grad in (False, True):                                 # fused kernel and broadcast path
        with torch.set_grad_enabled(grad):
            got = net(x.clone().requires_grad_(grad))
        for a, b in zip(got, want):
            torch.testing.assert_close(a.detach(), b, atol=1e-4, rtol=1e-3)


def test_freezing_an_unknown_batchnorm_variant_is_refused():
    class Odd(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * 2
    with pytest.raises(ValueError, match="Odd overrides BatchNorm2d.forward"):
        freeze_batchnorm(nn.Sequential(Odd(3)))


def test_backbone_features_and_frozen_stages():
    bb = Backbone(BackboneConfig(name="resnet18", frozen_stages=1))
    assert bb.channels == [128, 256, 512] and bb.strides == [8, 16, 32]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())
    trainable = {n.split(".")[1] for n, p in bb.named_parameters() if p.requires_grad}
    frozen = {n.split(".")[1] for n, p in bb.named_parameters() if not p.requires_grad}
    assert trainable == {"layer2", "layer3", "layer4"} and frozen == {"conv1", "layer1"}
    feats = bb(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 12), (4, 6), (2, 3)]
    none_frozen = Backbone(BackboneConfig(name="resnet18", frozen_stages=-1))
    assert all(p.requires_grad for p in none_frozen.parameters())


def test_local_checkpoint_loads_with_report(tmp_path):
    import timm
    src = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": src.state_dict()}, path)
    bb = Backbone(BackboneConfig(name="resnet18", pretrained=str(path)))
    missing, unexpected = bb.load_report
    assert missing == [] and set(unexpected) == {"fc.weight", "fc.bias"}
    assert torch.equal(bb.body.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert torch.equal(bb.body.bn1.running_var, src.bn1.running_var)


def test_detr_style_prefixed_checkpoint(tmp_path):
    import timm
    src = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "dino.pth"
    torch.save({"model": {f"backbone.0.body.{k}": v for k, v in src.state_dict().items()}}, path)
    bb = Backbone(BackboneConfig(name="resnet18", pretrained=str(path)))
    assert bb.load_report[0] == []
    assert torch.equal(bb.body.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Backbone(BackboneConfig(pretrained=str(tmp_path / "nope.pt")))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        Backbone(BackboneConfig(pretrained=str(bad)))
    odd = tmp_path / "odd.pt"
    torch.save({"a": [1, 2]}, odd)
    with pytest.raises(ValueError, match="not a state_dict"):
        Backbone(BackboneConfig(pretrained=str(odd)))


def test_sine_position_honours_padding():
    pe = PositionEmbeddingSine(8)
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[1, :, 3:] = True                       # image 1 is 3 columns wide
    pos = pe(mask)
    assert pos.shape == (2, 16, 4, 6)
    # x features of the last valid column: normalised coordinate (3 - 0.5) / 3 * 2pi, frequency 0
    assert pos[1, 8, 0, 2].item() == pytest.approx(math.sin((2.5 / 3) * 2 * math.pi), abs=1e-4)
    assert pos[0, 8, 0, 5].item() == pytest.approx(math.sin((5.5 / 6) * 2 * math.pi), abs=1e-4)
    # y features do not depend on the column and are equal for both images
    assert torch.allclose(pos[0, :8, :, 0], pos[1, :8, :, 1])


def test_neck_levels_masks_and_groups():
    assert group_norm_groups(256) == 32 and group_norm_groups(48) == 24 and group_norm_groups(20) == 10
    assert group_norm_groups(32) == 16  # >= 2 channels per group: 1x1 maps of one image stay valid
    neck = MultiScaleNeck([16, 32], hidden_dim=48, num_levels=4)
    assert neck.input_proj[0][1].num_groups == 24
    feats = [torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    mask[1, :, 16:] = True
    tok = neck(feats, mask)
    assert tok.spatial_shapes.tolist() == [[8, 8], [4, 4], [2, 2], [1, 1]]
    assert tok.level_start_index.tolist() == [0, 64, 80, 84]
    assert tok.src.shape == (2, 85, 48) and tok.pos.shape == (2, 85, 48)
    assert torch.allclose(tok.valid_ratios[1, 0], torch.tensor([0.5, 1.0]))
    assert int(tok.mask[1, :64].sum()) == 32 and not tok.mask[0].any()
