"""Issue 12 item 2: shared experts encode each image UNPADDED, in its own frame.

Before, `bank(images)` squashed the padded canvas to the expert's square, so an image's
structure/semantic features (and the COME block output built from them) depended on its batch
partners and on the eval batch size. Both tests below fail on that code (the bank ignored the
padding mask; reference points were normalised to the padded canvas).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from come.config import load_config
from come.config.schema import FFNConfig
from come.experts.bank import load_shared_experts
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, normalize
from come.model.encoder import encoder_reference_points
from come.model.ffn import FFNContext
from come.model.moe import COMEFFN

from .conftest import write_experts

H, W, S = 64, 96, 128          # image A (h, w); the canvas of the batch with the larger image B


@pytest.fixture()
def bank(tmp_path: Path):
    torch.set_num_threads(1)
    write_experts(tmp_path)
    return load_shared_experts(load_config(None, [f"experts.root={tmp_path}", "model.ffn.type=come"]), "cpu")


def _pair():
    """A alone [1,3,H,W] (no padding) and the batch [A padded, B] [2,3,S,S] with its pad mask."""
    g = torch.Generator().manual_seed(0)
    a = normalize(torch.rand(1, 3, H, W, generator=g), IMAGENET_MEAN, IMAGENET_STD)
    b = normalize(torch.rand(1, 3, S, S, generator=g), IMAGENET_MEAN, IMAGENET_STD)
    imgs = torch.zeros(2, 3, S, S)
    imgs[0, :, :H, :W], imgs[1] = a[0], b[0]
    pad = torch.ones(2, S, S, dtype=torch.bool)
    pad[0, :H, :W] = False
    pad[1] = False
    return a, torch.zeros(1, H, W, dtype=torch.bool), imgs, pad


def test_bank_features_of_an_image_do_not_depend_on_its_batch(bank):
    a, pa, imgs, pad = _pair()
    alone, batched = bank(a, pa), bank(imgs, pad)
    assert set(alone) == {"structure", "semantic", "semantic_prompt"}
    for key in alone:
        assert torch.allclose(alone[key][0], batched[key][0], atol=1e-5), key
    with pytest.raises(ValueError, match="top-left rectangle"):
        bank(imgs, torch.flip(pad, (1,)))


@pytest.mark.parametrize("clustering", ["none", "fine2coarse", "multistep", "mixing"])
def test_come_block_output_of_an_image_alone_equals_batched_with_a_larger_image(bank, clustering):
    """The COME FFN on image A's tokens (a stride-16 token grid, reference points from the
    detector's encoder) gives the same output (1e-5) alone and batched with a larger image.

    With every clustering: k-means++ draws at fractions shared by the images, so an image's
    centres do not depend on its partners (mutation caught: one uniform draw per row of the
    batch, as before). The whole detector is not batch-invariant (backbone convolutions and
    GroupNorm see the padding); this isolates the shared experts, clustering, fusion and routing
    (capacity 0 = no token dropped)."""
    torch.manual_seed(0)
    ffn = COMEFFN(FFNConfig(type="come", hidden_dim=32, num_experts=4, top_k=2, capacity_factor=0.0,
                            kmeans_iters=3, fine_k=4, coarse_k=2, clustering=clustering), 16, "encoder", 0).eval()
    a, pa, imgs, pad = _pair()
    ha, wa, hs = H // 16, W // 16, S // 16
    xa = torch.randn(1, ha * wa, 16)
    canvas = torch.randn(2, hs, hs, 16)
    canvas[0, :ha, :wa] = xa.view(ha, wa, 16)
    kpm = torch.ones(2, hs, hs, dtype=torch.bool)
    kpm[0, :ha, :wa] = False
    kpm[1] = False
    ratios = torch.tensor([[[wa / hs, ha / hs]], [[1.0, 1.0]]])
    ref_b = encoder_reference_points(torch.tensor([[hs, hs]]), ratios)
    ref_a = encoder_reference_points(torch.tensor([[ha, wa]]), torch.ones(1, 1, 2))
    ctx_a = FFNContext(torch.tensor([0]), ref_a, torch.zeros(1, ha * wa, dtype=torch.bool), bank(a, pa))
    ctx_b = FFNContext(torch.tensor([0, 1]), ref_b, kpm.view(2, -1), bank(imgs, pad))
    with torch.no_grad():
        ya, _ = ffn(xa, ctx_a)
        yb, _ = ffn(canvas.view(2, -1, 16), ctx_b)
    yb_a = yb[0].view(hs, hs, 16)[:ha, :wa].reshape(-1, 16)
    assert torch.allclose(ya[0], yb_a, atol=1e-5), float((ya[0] - yb_a).abs().max())
