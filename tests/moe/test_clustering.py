"""Batched K-means against scikit-learn, and the COME clustering strategies."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from come.config.schema import FFNConfig
from come.model.moe.clustering import (Fine2Coarse, Mixing, MultiStep, build_clusterer,
                                       gather_centres, kmeans)


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


def two_attributes(seed: int, n: int = 256, batch: int = 1):
    """Tokens = A[ia] + B[ib] + noise: two independent 4-way attributes in orthogonal subspaces,
    A (norm 8) dominating B (norm 3). -> x [batch, n, 12], ia, ib [batch, n]."""
    g = torch.Generator().manual_seed(seed)
    a_vec, b_vec = torch.zeros(4, 12), torch.zeros(4, 12)
    a_vec[:, :4], b_vec[:, 4:8] = 8 * torch.eye(4), 3 * torch.eye(4)
    ia = torch.randint(0, 4, (batch, n), generator=g)
    ib = torch.randint(0, 4, (batch, n), generator=g)
    return a_vec[ia] + b_vec[ib] + 0.2 * torch.randn(batch, n, 12, generator=g), ia, ib


def agreement(labels: torch.Tensor, truth: torch.Tensor) -> float:
    from sklearn.metrics import adjusted_rand_score
    return adjusted_rand_score(truth.reshape(-1).numpy(), labels.reshape(-1).numpy())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multistep_steps_add_information_on_two_independent_attributes(seed):
    """Step 2 finds the attribute step 1 could not; the feature reconstructs both attributes.
    Fails on the old (now mode="repeat") reading: every step repeats step 1's labels (ARI with B
    ~0) and the feature equals one K-means centre, whatever the iteration count."""
    x, ia, ib = two_attributes(seed)
    out = MultiStep(k=4, rounds=5, iters=10, seed=seed)(x)
    assert sorted(out.labels) == [f"step{r}" for r in range(1, 6)]
    assert agreement(out.labels["step1"], ia) > 0.95
    assert agreement(out.labels["step2"], ib) > 0.95 and agreement(out.labels["step2"], ia) < 0.1
    ms_err = float(((out.feature - x) ** 2).sum(-1).mean())
    for iters in (1, 5, 10, 50, 200):                       # no single K-means (k=4) gets there
        c, a, _ = kmeans(x, 4, iters, seed=seed)
        single = gather_centres(c, a)
        assert agreement(a, ib) < 0.1
        assert ms_err < 0.2 * float(((single - x) ** 2).sum(-1).mean())
        assert not torch.allclose(out.feature, single, atol=1e-3)


def test_multistep_suppresses_tiny_clusters():
    """A 2-token outlier group (< 5 % of 200 tokens) is merged into the nearest cluster instead of
    holding one of the k=4 centres. Fails without suppression (multistep_min_frac=0)."""
    torch.manual_seed(3)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [60.0, 60.0]])
    x = torch.cat([centres[i] + torch.randn(66, 2) for i in range(3)] + [centres[3] + torch.randn(2, 2)])
    x = x[None]
    for frac, tiny_allowed in ((0.05, False), (0.0, True)):
        out = MultiStep(k=4, rounds=2, iters=10, min_frac=frac)(x)
        sizes = torch.bincount(out.labels["step1"][0], minlength=4)
        has_tiny = bool(((sizes > 0) & (sizes < 0.05 * x.shape[1])).any())
        assert has_tiny == tiny_allowed
    out = MultiStep(k=4, rounds=2, iters=10, min_frac=0.05)(x)
    outlier_label = out.labels["step1"][0, -1]
    assert (out.labels["step1"][0] == outlier_label).sum() > 2     # merged with a big cluster


def test_multistep_residual_respects_padding():
    """Padded tokens (far-away garbage) neither pull centres nor change the structured steps
    (k-means++ draws differ with the token count, so only the found partitions are compared)."""
    x, ia, ib = two_attributes(5, n=100)
    batch = torch.cat([x, x]).clone()
    valid = torch.ones(2, 100, dtype=torch.bool)
    batch[1, 80:], valid[1, 80:] = 1e3, False
    out = MultiStep(4, 3, 10)(batch, valid)
    ref = MultiStep(4, 3, 10)(x[:, :80])
    for step, truth in (("step1", ia), ("step2", ib)):
        assert agreement(out.labels[step][1, :80], truth[0, :80]) > 0.95
        assert agreement(ref.labels[step][0], truth[0, :80]) > 0.95
    assert out.feature[1, :80].abs().max() < 20


def test_multistep_repeat_mode_is_one_longer_kmeans():
    """The literal reading kept as an ablation: 5 rounds of 1 iteration = 1 K-means of 5."""
    torch.manual_seed(1)
    x = torch.randn(1, 80, 4)
    out = MultiStep(k=4, rounds=5, iters=1, mode="repeat")(x)
    c, a, _ = kmeans(x, 4, 5, seed=0)
    assert torch.equal(out.labels["step5"], a)
    assert torch.allclose(out.feature[0], c[0][a[0]])
    with pytest.raises(ValueError, match="multistep_mode"):
        MultiStep(mode="twice")


def test_mixing_inherits_the_residual_steps():
    """Mixing on top of the residual Multi-Step: its step-2 labels follow attribute B (old: A)."""
    x, _, ib = two_attributes(5)
    out = build_clusterer(FFNConfig(type="come", clustering="mixing"))(x)
    assert agreement(out.labels["step2"], ib) > 0.95


def test_mixing_averages_both_and_none_is_none():
    torch.manual_seed(2)
    x = torch.randn(2, 40, 6)
    f2c, ms = Fine2Coarse(16, 8, 3), MultiStep(4, 5, 3)
    out = Mixing(f2c, ms)(x)
    assert torch.allclose(out.feature, 0.5 * (f2c(x).feature + ms(x).feature))
    assert {"fine", "coarse", "step5"} <= set(out.labels)
    assert build_clusterer(FFNConfig(type="come", clustering="none")) is None
    assert isinstance(build_clusterer(FFNConfig(type="come", clustering="multistep")), MultiStep)
