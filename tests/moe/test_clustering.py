"""Batched K-means against scikit-learn, and the COME clustering strategies."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from come.config.schema import FFNConfig
from come.model.moe.clustering import Fine2Coarse, Mixing, MultiStep, build_clusterer, kmeans


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def blobs(seed: int, n: int = 200, d: int = 8, k: int = 5) -> np.ndarray:
    rng = np.random.RandomState(seed)
    centres = rng.randn(k, d) * 4
    return (centres[rng.randint(0, k, n)] + rng.randn(n, d)).astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_matches_sklearn_with_same_init(seed):
    x = blobs(seed)
    init = x[np.random.RandomState(seed + 10).choice(len(x), 5, replace=False)]
    for iters in (1, 3, 20):
        sk = KMeans(5, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(x)
        c, a, inertia = kmeans(torch.from_numpy(x)[None], 5, iters, init=torch.from_numpy(init)[None])
        assert float(inertia[0]) == pytest.approx(sk.inertia_, rel=1e-6)
        assert np.allclose(c[0].numpy(), sk.cluster_centers_, atol=1e-6)
        assert (a[0].numpy() == sk.labels_).all()


def test_kmeanspp_is_deterministic_and_close_to_sklearn_quality():
    x = torch.from_numpy(blobs(3)).float()[None]
    c1, a1, i1 = kmeans(x, 5, 10, seed=0)
    c2, a2, i2 = kmeans(x, 5, 10, seed=0)
    assert torch.equal(c1, c2) and torch.equal(a1, a2)
    sk = KMeans(5, n_init=10, random_state=0).fit(x[0].double().numpy())
    assert float(i1[0]) <= 1.5 * sk.inertia_


def test_batched_kmeans_ignores_padding_per_image():
    x = torch.from_numpy(blobs(4, n=100)).float()
    batch = torch.stack([x, x])
    valid = torch.ones(2, 100, dtype=torch.bool)
    batch[1, 80:] = 1e3                                  # padded garbage far away
    valid[1, 80:] = False
    init = x[:4][None].expand(2, -1, -1)
    c, _, inertia = kmeans(batch, 4, 10, valid=valid, init=init)
    c_ref, _, i_ref = kmeans(x[:80][None], 4, 10, init=x[:4][None])
    assert torch.allclose(c[1], c_ref[0], atol=1e-5)
    assert float(inertia[1]) == pytest.approx(float(i_ref[0]), rel=1e-5)
    assert c[1].abs().max() < 100


def test_empty_cluster_keeps_its_centre_and_few_tokens_work():
    x = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]]])
    init = torch.tensor([[[0.0, 0.0], [50.0, 50.0]]])
    c, a, _ = kmeans(x, 2, 5, init=init)
    assert torch.equal(c[0, 1], init[0, 1]) and (a == 0).all()
    c, a, _ = kmeans(x, 8, 5)                            # k > number of tokens
    assert c.shape == (1, 8, 2) and torch.isfinite(c).all()


def test_fine2coarse_feature_is_coarse_centre_of_fine_cluster():
    torch.manual_seed(0)
    x = torch.randn(2, 60, 8)
    valid = torch.ones(2, 60, dtype=torch.bool)
    valid[0, 50:] = False
    out = Fine2Coarse(16, 8, 5)(x, valid)
    assert out.feature.shape == x.shape and not out.feature.requires_grad
    fine, coarse = out.labels["fine"], out.labels["coarse"]
    assert fine.max() < 16 and coarse.max() < 8
    for b in range(2):
        for f in fine[b].unique():
            members = fine[b] == f
            assert coarse[b][members].unique().numel() == 1          # one coarse per fine cluster
    for b in range(2):                                               # same coarse label -> same feature
        for c in coarse[b].unique():
            feats = out.feature[b][coarse[b] == c]
            assert torch.allclose(feats, feats[:1].expand_as(feats))
    assert out.feature[b].unique(dim=0).shape[0] <= 8


def test_multistep_rounds_continue_from_previous_centres():
    torch.manual_seed(1)
    x = torch.randn(1, 80, 4)
    out = MultiStep(k=4, rounds=5, iters=1)(x)
    assert sorted(out.labels) == [f"step{r}" for r in range(1, 6)]
    # 5 rounds of 1 iteration each == one K-means of 5 iterations from the same k-means++ start
    c, a, _ = kmeans(x, 4, 5, seed=0)
    assert torch.equal(out.labels["step5"], a)
    assert torch.allclose(out.feature[0], c[0][a[0]])


def test_mixing_averages_both_and_none_is_none():
    torch.manual_seed(2)
    x = torch.randn(2, 40, 6)
    f2c, ms = Fine2Coarse(16, 8, 3), MultiStep(4, 5, 3)
    out = Mixing(f2c, ms)(x)
    assert torch.allclose(out.feature, 0.5 * (f2c(x).feature + ms(x).feature))
    assert {"fine", "coarse", "step5"} <= set(out.labels)
    assert build_clusterer(FFNConfig(type="come", clustering="none")) is None
    assert isinstance(build_clusterer(FFNConfig(type="come", clustering="multistep")), MultiStep)
