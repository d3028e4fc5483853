"""The frozen shared-expert bank: when it exists, shapes, frozen-ness, errors, caching."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from come.config import load_config
from come.experts.bank import SharedExpertBank, load_shared_experts
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, normalize

from .conftest import write_experts

torch.set_num_threads(1)


def _cfg(root: Path, **ffn):
    sets = [f"experts.root={root}", "model.ffn.type=come"] + [f"model.ffn.{k}={v}" for k, v in ffn.items()]
    return load_config(None, sets)


def test_none_when_method_has_no_shared_expert(tmp_path: Path):
    assert load_shared_experts(load_config(None, [f"experts.root={tmp_path}"]), "cpu") is None
    assert load_shared_experts(_cfg(tmp_path, use_ste="false", use_see="false"), "cpu") is None


def test_missing_file_names_it_and_the_command(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"structure/encoder.pt.*come pretrain-structure"):
        load_shared_experts(_cfg(tmp_path), "cpu")
    with pytest.raises(FileNotFoundError, match=r"semantic/encoder.pt.*come finetune-semantic"):
        load_shared_experts(_cfg(tmp_path, use_ste="false"), "cpu")


def test_bank_shapes_frozen_and_cache(tmp_path: Path):
    write_experts(tmp_path)
    bank = load_shared_experts(_cfg(tmp_path), "cpu")
    assert isinstance(bank, SharedExpertBank)
    assert all(not p.requires_grad for p in bank.parameters())
    bank.train()
    assert not bank.training and not bank.structure.training
    images = normalize(torch.rand(2, 3, 50, 70), IMAGENET_MEAN, IMAGENET_STD)
    feats = bank(images)
    assert feats["structure"].shape == (2, 32, 4, 4)
    assert feats["semantic"].shape == (2, 16, 2, 2) and feats["semantic_prompt"].shape == (2, 1, 2, 2)
    assert bank.channels == {"structure": 32, "semantic": 16, "semantic_prompt": 1}
    assert torch.equal(bank(images)["structure"], feats["structure"])       # deterministic
    only_see = load_shared_experts(_cfg(tmp_path, use_ste="false"), "cpu")
    assert set(only_see(images)) == {"semantic", "semantic_prompt"}
    cached = load_shared_experts(load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come",
                                                    "experts.cache_features=true",
                                                    "experts.semantic.features=global"]), "cpu")
    a = cached(images)
    b = cached(torch.cat([images, images.flip(-1)]))
    assert cached.cache.hits == 4 and cached.cache.misses == 8
    assert torch.allclose(a["structure"], b["structure"][:2], atol=1e-6)
    plain = load_shared_experts(load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come",
                                                   "experts.semantic.features=global"]), "cpu")
    assert torch.allclose(b["semantic"][2:], feats_flip(plain, images), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        bank(torch.rand(3, 8, 8))


def feats_flip(bank: SharedExpertBank, images: torch.Tensor) -> torch.Tensor:
    return bank(images.flip(-1))["semantic"]
