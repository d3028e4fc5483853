"""MIM pretraining: masks, frequency masking, falling loss, figures, CLI."""
from __future__ import annotations

from pathlib import Path

import torch

from come.cli import main
from come.config import load_config
from come.experts import mim, structure

torch.set_num_threads(1)


def test_patchify_roundtrip_and_masks():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(mim.unpatchify(mim.patchify(x, 4), 4), x)
    g = torch.Generator().manual_seed(0)
    m = mim.random_patch_mask(3, 16, 0.6, g)
    assert m.shape == (3, 16) and (m.sum(1) == 10).all()


def test_frequency_mask_removes_a_band_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    y = mim.frequency_mask(x, 0.3, g)
    assert y.shape == x.shape and not torch.allclose(x, y)
    removed = (torch.fft.fft2(y).abs() < 1e-4) & (torch.fft.fft2(x).abs() > 1e-3)
    frac = removed.float().mean().item()
    assert 0.0 < frac < 0.7
    assert torch.equal(mim.frequency_mask(x, 0.0, g), x)


def test_mim_loss_falls_and_cli_writes_figures(tiny_data: Path, tmp_path: Path, repo: Path):
    out = tmp_path / "experts" / "structure"
    sets = [f"data.root={tiny_data.parent}", "experts.structure.img_size=32",
            "experts.structure.embed_dim=48", "experts.structure.depth=2", "experts.structure.num_heads=2",
            "experts.structure.mim_epochs=5", "experts.structure.batch_size=8"]
    argv = ["pretrain-structure", "--config", str(repo / "config" / "config.yaml"), "--train", str(tiny_data),
            "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    from come.utils.io import read_json
    rep = read_json(out / "structure_report.json")
    assert rep["epoch_losses"][0] > rep["epoch_losses"][-1]
    for name in ("mim_loss.png", "mim_reconstructions.png"):
        assert (out.parent / name).stat().st_size > 5000
    enc = structure.load_encoder(out / "encoder.pt")
    assert enc(torch.randn(1, 3, 32, 32)).shape == (1, 48, 4, 4)


def test_cli_checkpoint_mode(tmp_path: Path, repo: Path):
    from .conftest import usfm_state_dict
    ck = tmp_path / "usfm.pth"
    torch.save(usfm_state_dict(32, 8, 32, 2, 2), ck)
    out = tmp_path / "experts" / "structure"
    argv = ["pretrain-structure", "--config", str(repo / "config" / "config.yaml"), "--train", "unused.json",
            "--out", str(out), "--set", f"experts.structure.checkpoint={ck}", "--set", "experts.structure.img_size=32",
            "--set", "experts.structure.embed_dim=32", "--set", "experts.structure.depth=2",
            "--set", "experts.structure.num_heads=2"]
    assert main(argv) == 0
    enc = structure.load_encoder(out / "encoder.pt")
    sd = usfm_state_dict(32, 8, 32, 2, 2)
    assert torch.equal(enc.vit.blocks[0].attn.qkv.weight, sd["blocks.0.attn.qkv.weight"])
    cfg = load_config(repo / "config" / "config.yaml")
    assert cfg.experts.structure.checkpoint == ""
