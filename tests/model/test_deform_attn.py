"""Pure-PyTorch multi-scale deformable attention vs a naive per-point bilinear reference."""
import math

import pytest
import torch

from come.model.deform_attn import MSDeformAttn, ms_deform_attn_pytorch


def bilinear_zero_pad(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """img [C, H, W]; (x, y) normalised in [0, 1] with pixel centres at (i + 0.5) / size."""
    c, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(c, dtype=img.dtype)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        wx = 1 - abs(px - xi)
        wy = 1 - abs(py - yi)
        if 0 <= xi < w and 0 <= yi < h:
            out += wx * wy * img[:, yi, xi]
    return out


def naive_core(value, shapes, loc, weights):
    """value [B, N, H, Dh], loc [B, Lq, H, L, P, 2], weights [B, Lq, H, L, P] -> [B, Lq, H*Dh]."""
    b, _, nh, dh = value.shape
    _, lq, _, nl, npt, _ = loc.shape
    out = torch.zeros(b, lq, nh, dh, dtype=value.dtype)
    start = 0
    maps = []
    for h_l, w_l in shapes.tolist():
        maps.append(value[:, start:start + h_l * w_l].reshape(b, h_l, w_l, nh, dh).permute(0, 3, 4, 1, 2))
        start += h_l * w_l
    for bi in range(b):
        for q in range(lq):
            for hd in range(nh):
                for lv in range(nl):
                    for p in range(npt):
                        x, y = loc[bi, q, hd, lv, p].tolist()
                        out[bi, q, hd] += weights[bi, q, hd, lv, p] * bilinear_zero_pad(maps[lv][bi, hd], x, y)
    return out.reshape(b, lq, nh * dh)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    shapes = torch.tensor([[6, 5], [3, 3], [2, 1]])
    n = int(shapes.prod(1).sum())
    return shapes, n


def test_core_matches_naive_bilinear(setup):
    shapes, n = setup
    b, lq, nh, dh, nl, npt = 2, 3, 2, 4, 3, 2
    value = torch.randn(b, n, nh, dh, dtype=torch.float64)
    loc = torch.rand(b, lq, nh, nl, npt, 2, dtype=torch.float64) * 1.4 - 0.2   # some outside [0, 1]
    weights = torch.rand(b, lq, nh, nl, npt, dtype=torch.float64)
    fast = ms_deform_attn_pytorch(value, shapes, loc, weights)
    assert torch.allclose(fast, naive_core(value, shapes, loc, weights), atol=1e-10)


@pytest.mark.parametrize("ref_dim", [2, 4])
def test_module_matches_naive_with_random_offsets(setup, ref_dim):
    shapes, n = setup
    attn = MSDeformAttn(8, n_levels=3, n_heads=2, n_points=2, impl="pytorch").double()
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)
    torch.nn.init.normal_(attn.attention_weights.weight, std=0.5)
    query = torch.randn(2, 4, 8, dtype=torch.float64)
    value = torch.randn(2, n, 8, dtype=torch.float64)
    ref = torch.rand(2, 4, 3, ref_dim, dtype=torch.float64)
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[1, -5:] = True
    starts = torch.tensor([0, 30, 39])
    out = attn(query, ref, value, shapes, starts, mask)
    loc, w = attn.sampling(query, ref, shapes)
    v = attn.value_proj(value).masked_fill(mask[..., None], 0).view(2, n, 2, 4)
    expect = attn.output_proj(naive_core(v, shapes, loc, w))
    assert torch.allclose(out, expect, atol=1e-10)
    assert torch.allclose(w.sum((-1, -2)), torch.ones(2, 4, 2, dtype=torch.float64))


def test_initialisation_is_directional_grid_and_uniform_weights():
    attn = MSDeformAttn(16, n_levels=2, n_heads=4, n_points=3)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    assert torch.allclose(bias[0, 0], torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), atol=1e-6)
    assert torch.allclose(bias[1, 1], torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]]), atol=1e-6)
    assert torch.allclose(bias[2, 0, 0], torch.tensor([-1.0, 0.0]), atol=1e-6)
    assert attn.attention_weights.weight.abs().sum() == 0 and attn.sampling_offsets.weight.abs().sum() == 0
    assert any("sampling_offsets" in name for name, _ in attn.named_parameters())


def test_cuda_impl_unavailable_is_a_clear_error():
    from come.model.deform_attn import cuda_kernel_available
    if cuda_kernel_available():
        pytest.skip("CUDA kernel present on this machine")
    with pytest.raises(RuntimeError, match="deform_impl='cuda'"):
        MSDeformAttn(8, 1, 2, 2, impl="cuda")


@pytest.mark.parametrize("ref_dim", [2, 4])
def test_sampling_locations_by_hand(setup, ref_dim):
    """Locations computed by hand from the initial directional grid (head 0 -> +x, 1 -> +y,
    2 -> -x, 3 -> -y; point p at distance p + 1): a 2-D reference moves (p + 1) cells of each
    level (x in units of 1 / W_l, y of 1 / H_l); a box reference moves (p + 1) / P x half its
    width / height. The module's output equals the naive core at these locations with uniform
    weights 1 / (L * P). Mutations caught: the 2-D normaliser as (H, W) instead of (W, H); the
    box offset without the 1 / P factor; softmax over points of one level only."""
    shapes, n = setup
    heads, levels, points = 4, 3, 2
    attn = MSDeformAttn(8, n_levels=levels, n_heads=heads, n_points=points, impl="pytorch").double()
    query = torch.randn(1, 2, 8, dtype=torch.float64)
    value = torch.randn(1, n, 8, dtype=torch.float64)
    ref = torch.tensor([[[0.3, 0.6, 0.2, 0.4]], [[0.7, 0.25, 0.5, 0.1]]], dtype=torch.float64)
    ref = ref.view(1, 2, 1, 4).expand(1, 2, levels, 4)[..., :ref_dim].contiguous()
    direction = [(1, 0), (0, 1), (-1, 0), (0, -1)]
    loc = torch.zeros(1, 2, heads, levels, points, 2, dtype=torch.float64)
    for q in range(2):
        for h, (dx, dy) in enumerate(direction):
            for lv, (h_l, w_l) in enumerate(shapes.tolist()):
                for p in range(points):
                    cx, cy = ref[0, q, lv, :2].tolist()
                    if ref_dim == 2:
                        loc[0, q, h, lv, p] = torch.tensor([cx + dx * (p + 1) / w_l, cy + dy * (p + 1) / h_l])
                    else:
                        bw, bh = ref[0, q, lv, 2:].tolist()
                        loc[0, q, h, lv, p] = torch.tensor([cx + dx * (p + 1) / points * bw / 2,
                                                            cy + dy * (p + 1) / points * bh / 2])
    got_loc, got_w = attn.sampling(query, ref, shapes)
    assert torch.allclose(got_loc, loc, atol=1e-6)
    assert torch.allclose(got_w, torch.full_like(got_w, 1 / (levels * points)))
    v = attn.value_proj(value).view(1, n, heads, 2)
    expect = attn.output_proj(naive_core(v, shapes, loc, torch.full((1, 2, heads, levels, points),
                                                                   1 / (levels * points), dtype=torch.float64)))
    out = attn(query, ref, value, shapes, torch.tensor([0, 30, 39]))
    assert torch.allclose(out, expect, atol=1e-6)
