"""Structure expert: USFM-shaped checkpoint loading (shared rel-pos table remap), bad files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from come.config.schema import StructureExpertConfig
from come.experts import structure
from .conftest import usfm_state_dict

torch.set_num_threads(1)


def small_cfg(img: int = 32) -> StructureExpertConfig:
    return StructureExpertConfig(img_size=img, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def test_usfm_checkpoint_loads_with_shared_table_copied(tmp_path: Path):
    sd = usfm_state_dict(32, 8, 32, 2, 2)
    path = tmp_path / "USFM_latest.pth"
    torch.save({"model": sd, "epoch": 3}, path)
    arch = structure.arch_from_cfg(small_cfg())
    vit = structure.build_vit(arch)
    report = structure.load_usfm_checkpoint(vit, path)
    assert "mask_token" in report["unexpected"]
    assert not [k for k in report["missing"] if k.startswith("blocks.")]
    for i, blk in enumerate(vit.blocks):
        assert torch.equal(blk.attn.relative_position_bias_table, sd["rel_pos_bias.relative_position_bias_table"])
        assert torch.equal(blk.attn.qkv.weight, sd[f"blocks.{i}.attn.qkv.weight"])
        assert torch.equal(blk.gamma_1, sd[f"blocks.{i}.gamma_1"])
    enc = structure.StructureEncoder(vit, arch).eval()
    feats = enc(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, 32, 4, 4) and torch.isfinite(feats).all()


def test_table_resized_when_window_differs(tmp_path: Path):
    sd = usfm_state_dict(48, 8, 32, 2, 2)                   # window 6 -> 124 rows
    path = tmp_path / "usfm_48.pth"
    torch.save({"state_dict": {"encoder." + k: v for k, v in sd.items()}}, path)
    vit = structure.build_vit(structure.arch_from_cfg(small_cfg(32)))   # window 4 -> 52 rows
    report = structure.load_usfm_checkpoint(vit, path)
    assert any("resized" in n for n in report["notes"])
    table = vit.blocks[1].attn.relative_position_bias_table
    assert table.shape == (52, 2)
    assert torch.equal(table[-3:], sd["rel_pos_bias.relative_position_bias_table"][-3:])


def test_resize_is_identity_for_same_window():
    t = torch.randn(7 * 7 + 3, 2)
    assert torch.equal(structure.resize_rel_table(t, 52), t)
    assert structure.resize_rel_table(t, 11 * 11 + 3).shape == (124, 2)


@pytest.mark.parametrize("content,match", [
    (b"\x00garbage not a checkpoint", "cannot read the checkpoint"),
    ("resnet", "no transformer block weights"),
    ("wide", "does not fit experts.structure"),
    ("notensor", "not a plain state_dict"),
])
def test_bad_checkpoints_fail_clearly(tmp_path: Path, content, match):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "resnet":
        torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.weight": torch.zeros(2, 4)}, path)
    elif content == "wide":
        torch.save(usfm_state_dict(32, 8, 64, 2, 2), path)
    else:
        torch.save({"model": {"blocks.0.norm1.weight": [1, 2, 3]}}, path)
    vit = structure.build_vit(structure.arch_from_cfg(small_cfg()))
    with pytest.raises(ValueError, match=match) as err:
        structure.load_usfm_checkpoint(vit, path)
    assert "bad.pth" in str(err.value)


def test_export_roundtrip(tmp_path: Path):
    arch = structure.arch_from_cfg(small_cfg())
    torch.manual_seed(0)
    vit = structure.build_vit(arch).eval()
    path = structure.export_encoder(vit, arch, tmp_path / "structure" / "encoder.pt", source="test")
    enc = structure.load_encoder(path)
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(enc(x), structure.StructureEncoder(vit, arch)(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="come pretrain-structure"):
        structure.load_encoder(tmp_path / "nope" / "encoder.pt")


def test_every_torch_load_uses_weights_only(repo: Path):
    import re
    calls = 0
    for f in sorted((repo / "come").rglob("*.py")):       # the whole package, not only experts
        for call in re.findall(r"torch\.load\([^)]*\)", f.read_text()):
            calls += 1
            assert "weights_only=True" in call, f"{f.name}: {call}"
    assert calls >= 3  # torchio (experts), engine checkpoints, backbone checkpoints
