"""Issue 12 item 3: the semantic expert's prompt-conditioned spatial output.

The old bank gave one text-free global CLIP vector per image and never used the test prompt
"Diagnosis for Ultrasound Image"; every test here fails on it (no `dense`, no
"semantic_prompt" map, no stored test-prompt embedding read by the bank).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from come.config import load_config
from come.config.schema import FFNConfig, SemanticExpertConfig
from come.experts import semantic
from come.experts.bank import load_shared_experts
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, normalize
from come.experts.prompts import TEST_PROMPT
from come.model.ffn import FFNContext
from come.model.moe.shared import SharedProjections

from .conftest import write_experts


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("vision,size,grid", [("resnet10t", 64, 2), ("vit", 64, 8),
                                              ("vit_tiny_patch16_224", 224, 14)])
def test_dense_map_is_in_the_joint_space(vision: str, size: int, grid: int):
    """Dense features [B, C_t, h, w] of a timm CNN, an open_clip ViT and a timm ViT tower; for
    the average-pooled timm towers their spatial mean is exactly the global embedding."""
    torch.manual_seed(0)
    model, _, info = semantic.build_clip(SemanticExpertConfig(image_size=size, embed_dim=16, embedded_vision=vision))
    model.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        d = semantic.dense_features(model.visual, x)
        g = model.visual(x)
    assert d.shape == (2, 16, grid, grid)
    if vision != "vit":
        assert torch.allclose(d.mean((2, 3)), g, atol=1e-5)


def test_prompt_map_is_the_similarity_to_the_test_prompt_text_embedding(tmp_path: Path):
    """bank(...)["semantic_prompt"] = cosine(dense location, text embedding of TEST_PROMPT),
    the embedding computed once at export and read once when the bank loads."""
    torch.manual_seed(0)
    model, tok, info = semantic.build_clip(SemanticExpertConfig(image_size=64, embed_dim=16))
    model.eval()
    texts = ["Diagnosis for Breast Ultrasound Image: Benign", TEST_PROMPT]
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model.encode_text(tok(texts)), dim=-1)
    semantic.export_encoder(model, info, tmp_path / "trainset" / "all" / "semantic" / "encoder.pt", texts, emb)
    cfg = load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come", "model.ffn.use_ste=false"])
    bank = load_shared_experts(cfg, "cpu")
    assert torch.allclose(bank.test_prompt, emb[1], atol=1e-6)       # not the first (class) prompt
    images = normalize(torch.rand(2, 3, 64, 64), IMAGENET_MEAN, IMAGENET_STD)
    feats = bank(images)
    with torch.no_grad():
        x = normalize(torch.nn.functional.interpolate(
            torch.clamp(images * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
                        + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), 0, 1), size=(64, 64)),
            info["mean"], info["std"])
        dense = torch.nn.functional.normalize(semantic.dense_features(model.visual, x), dim=1)
    want = torch.einsum("bchw,c->bhw", dense, emb[1])[:, None]
    assert feats["semantic"].shape == (2, 16, 2, 2)
    assert torch.allclose(feats["semantic_prompt"], want, atol=1e-4)
    assert torch.allclose(feats["semantic"].norm(dim=1), torch.ones(2, 2, 2), atol=1e-5)
    # prompt-conditioned: another stored prompt embedding gives another map
    bank.test_prompt.copy_(emb[0])
    assert not torch.allclose(bank(images)["semantic_prompt"], feats["semantic_prompt"], atol=1e-3)


def test_global_switch_and_missing_test_prompt(tmp_path: Path):
    write_experts(tmp_path)
    glob = load_shared_experts(load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come",
                                                  "experts.semantic.features=global"]), "cpu")
    out = glob(normalize(torch.rand(1, 3, 40, 50), IMAGENET_MEAN, IMAGENET_STD))
    assert out["semantic"].shape == (1, 16) and "semantic_prompt" not in out
    model, tok, info = semantic.build_clip(SemanticExpertConfig(image_size=64, embed_dim=16))
    path = tmp_path / "trainset" / "all" / "semantic" / "encoder.pt"
    semantic.export_encoder(model, info, path, ["other"], torch.zeros(1, 16))
    with pytest.raises(ValueError, match="test prompt"):
        load_shared_experts(load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come"]), "cpu")


def test_semantic_and_prompt_maps_are_sampled_at_reference_points():
    """The COME block's semantic rows = [dense map, prompt map] sampled at each token's point."""
    proj = SharedProjections(FFNConfig(type="come", use_ste=False), 8)
    sem = torch.zeros(1, 3, 2, 2)
    sem[0, :, 0, 1] = torch.tensor([1.0, 2.0, 3.0])                  # top-right cell
    sim = torch.zeros(1, 1, 2, 2)
    sim[0, 0, 0, 1] = 0.5
    ref = torch.tensor([[[0.75, 0.25], [0.25, 0.75]]])               # top-right, bottom-left centres
    ctx = FFNContext(torch.tensor([0]), ref, None, {"semantic": sem, "semantic_prompt": sim})
    proj(ctx, 1, 2)
    lin = proj.proj["semantic"]
    assert lin.in_features == 4
    rows = torch.tensor([[1.0, 2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(proj(ctx, 1, 2)["semantic"][0], lin(rows), atol=1e-6)
