"""The packaged ImageNet EfficientNet-Lite0 weights mapped onto timm's efficientnet_lite0."""
import statistics

import pytest
import torch
from torch import nn

from come.config.schema import BackboneConfig
from come.model import efficientnet_lite as lite
from come.model.backbone import Backbone

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.skipif(lite.importlib.util.find_spec(lite.MODULE) is None,
                                reason=f"{lite.PACKAGE} is not installed")


@pytest.fixture(scope="module")
def packaged() -> dict[str, torch.Tensor]:
    return torch.load(lite.weights_path(), map_location="cpu", weights_only=True)


def test_every_tensor_mapped_with_its_shape(packaged):
    """Full timm model: all 296 tensors land, none left over (mutation: drop one IR_BLOCK entry)."""
    full = timm.create_model("efficientnet_lite0")
    state, dropped = lite.convert_state_dict(packaged, full.state_dict())
    assert dropped == [] and set(state) == set(full.state_dict()) and len(state) == len(packaged) == 296
    assert torch.equal(state["blocks.5.3.conv_pwl.weight"], packaged["_blocks.14._project_conv.weight"])
    assert torch.equal(state["blocks.0.0.conv_pw.weight"], packaged["_blocks.0._project_conv.weight"])
    assert torch.equal(state["classifier.bias"], packaged["_fc.bias"])


def test_features_only_drops_exactly_the_head(packaged):
    feats = timm.create_model("efficientnet_lite0", features_only=True, out_indices=(2, 3, 4))
    dropped = lite.load_efficientnet_lite0(feats)
    assert sorted(k.partition(".")[0] for k in dropped) == sorted(["_conv_head"] + ["_bn1"] * 5 + ["_fc"] * 2)
    assert torch.equal(feats.blocks[3][1].conv_dw.weight, packaged["_blocks.6._depthwise_conv.weight"])
    assert all(m.eps == lite.BN_EPS for m in feats.modules() if isinstance(m, nn.BatchNorm2d))


def test_batchnorm_statistics_match_the_layers_feeding_them():
    """The weights are semantically placed: each BN's stored running_mean correlates with the
    channel means of its own input. Mutation: swap `_bn0`/`_bn1` of IR_BLOCK (same shapes, so
    only this test catches it) -> median correlation about 0.03 instead of about 0.8."""
    model = timm.create_model("efficientnet_lite0").eval()
    lite.load_efficientnet_lite0(model)
    torch.manual_seed(0)
    x = nn.functional.interpolate(torch.rand(4, 3, 12, 12), size=160, mode="bilinear")
    x = (x - 0.45) / 0.226
    corrs: list[float] = []

    def hook(mod: nn.BatchNorm2d, inp: tuple[torch.Tensor], _out: torch.Tensor) -> None:
        corrs.append(torch.corrcoef(torch.stack([inp[0].mean((0, 2, 3)), mod.running_mean]))[0, 1].item())

    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    assert len(corrs) == 49 and statistics.median(corrs) > 0.6


def test_mapping_errors_name_the_file(packaged, tmp_path):
    target = timm.create_model("efficientnet_lite0", features_only=True).state_dict()
    extra = dict(packaged, **{"_blocks.3._se_reduce.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"weights\.pth.*_se_reduce.weight: no timm counterpart"):
        lite.convert_state_dict(extra, target, "weights.pth")
    bad = dict(packaged, **{"_conv_stem.weight": torch.zeros(16, 3, 3, 3)})
    with pytest.raises(ValueError, match=r"w\.pth.*conv_stem.weight: shape \(16, 3, 3, 3\)"):
        lite.convert_state_dict(bad, target, "w.pth")
    short = {k: v for k, v in packaged.items() if k != "_blocks.7._bn1.running_var"}
    with pytest.raises(ValueError, match=r"blocks.3.2.bn2.running_var: not filled"):
        lite.convert_state_dict(short, target, "w.pth")
    odd = tmp_path / "odd.pth"
    torch.save([1, 2], odd)
    with pytest.raises(ValueError, match="odd.pth is not a state_dict"):
        lite.load_efficientnet_lite0(timm.create_model("efficientnet_lite0"), odd)


def test_backbone_switch_and_frozen_stages():
    """`model.backbone.pretrained` selects the package; frozen_stages=1 freezes the stem, blocks.0
    and blocks.1 only (mutation: the old top-level-child freezing froze all of `blocks`)."""
    bb = Backbone(BackboneConfig(name="efficientnet_lite0", pretrained=lite.PACKAGE, frozen_stages=1))
    assert bb.channels == [40, 112, 320] and bb.strides == [8, 16, 32]
    frozen = {".".join(n.split(".")[:2]) for n, p in bb.body.named_parameters() if not p.requires_grad}
    trainable = {".".join(n.split(".")[:2]) for n, p in bb.body.named_parameters() if p.requires_grad}
    assert frozen == {"conv_stem.weight", "blocks.0", "blocks.1"}
    assert trainable == {"blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6"}
    feats = bb(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 12), (4, 6), (2, 3)]
    with pytest.raises(ValueError, match="model.backbone.name must be one of"):
        Backbone(BackboneConfig(name="resnet18", pretrained=lite.PACKAGE))


def test_demo_config_trains_only_the_stride_32_stage():
    """config/config.yaml's frozen_stages=3 (demo budget, docs/method.md#backbone): stem to
    blocks.4 frozen, blocks.5-6 trained, so the backbone lr group is not empty; no gradient
    reaches the frozen part (mutation: freezing one stage fewer trains blocks.3-4)."""
    from pathlib import Path

    from come.config import load_config
    cfg = load_config(str(Path(__file__).resolve().parents[2] / "config" / "config.yaml")).model.backbone
    assert cfg.frozen_stages == 3
    bb = Backbone(cfg)
    trainable = {".".join(n.split(".")[:2]) for n, p in bb.body.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.5", "blocks.6"}
    sum(f.sum() for f in bb(torch.randn(2, 3, 64, 64))).backward()
    assert all(p.grad is None for p in bb.body.parameters() if not p.requires_grad)
    assert all(p.grad is not None for p in bb.body.parameters() if p.requires_grad)
