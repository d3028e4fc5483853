"""Sanity of the whole detector: overfitting two images, and the paper-sized configuration."""
import pytest
import torch

from come.config.schema import BackboneConfig, Config, FFNConfig, ModelConfig
from come.model.detector import build_criterion, build_detector

from .helpers import batch


def paper_config() -> Config:
    """DINO-4scale R50 as in the paper (the keys recommended for config/paper.yaml)."""
    cfg = Config()
    cfg.model = ModelConfig(backbone=BackboneConfig(name="resnet50"), ffn=FFNConfig(hidden_dim=2048),
                            hidden_dim=256, nheads=8, enc_layers=6, dec_layers=6, num_queries=900,
                            dn_number=100, num_select=300)
    return cfg


def test_loss_decreases_when_overfitting_two_images():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = Config()
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    images, pad, src, targets = batch(96)
    targets[0] = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.35, 0.4, 0.3, 0.25]])}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    history = []
    for _ in range(30):
        losses = crit(model(images, pad, src, targets), targets)
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    first = sum(h["loss"] for h in history[:3]) / 3
    last = sum(h["loss"] for h in history[-3:]) / 3
    assert last < 0.7 * first, (first, last)
    assert history[-1]["loss_giou"] < history[0]["loss_giou"]


@pytest.mark.slow
def test_paper_config_forward_backward_low_resolution():
    """ResNet-50, hidden 256, 8 heads, 6+6 layers, 900 queries, dn 100, FFN 2048 at 256 px
    (900 selected proposals need >= 900 encoder tokens: 256 px gives 1360). Slow tier (always
    run by .ci/run): a paper-size backward."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = paper_config()
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    assert sum(p.numel() for p in model.parameters()) > 40e6
    images = torch.randn(1, 3, 256, 256)
    pad = torch.zeros(1, 256, 256, dtype=torch.bool)
    targets = [{"labels": torch.tensor([0, 0]), "boxes": torch.tensor([[0.4, 0.4, 0.2, 0.2], [0.6, 0.6, 0.3, 0.2]])}]
    out = model(images, pad, torch.tensor([0]), targets)
    assert out["pred_logits"].shape == (1, 900, 1) and len(out["aux_outputs"]) == 5
    assert out["dn_meta"] == {"pad_size": 200, "num_groups": 50, "single_pad": 2}
    losses = crit(out, targets)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    assert model.class_embed.weight.grad.abs().sum() > 0
