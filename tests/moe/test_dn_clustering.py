"""COME's clustering with denoising queries (issue 12 item 6, docs/method.md#dn-clustering).

Training decoders see [denoising | matching] queries, tests only matching ones. Centres are
fitted on the matching queries and every denoising query takes its nearest centre, so the
matching queries' router input is the same in training and at test. Fails on the old code,
which clustered all queries together (FFNContext had no `num_denoising`; the far-away dn
queries below pull centres and change the matching queries' cluster features)."""
import pytest
import torch

from come.config.schema import FFNConfig
from come.model.ffn import FFNContext, build_ffn

D, Q, P = 16, 40, 12


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def come_ffn(clustering: str):
    cfg = FFNConfig(type="come", hidden_dim=32, num_experts=4, top_k=2, clustering=clustering,
                    use_ste=False, use_see=False, kmeans_iters=5, fine_k=6, coarse_k=3,
                    multistep_k=3, multistep_rounds=3)
    torch.manual_seed(0)
    return build_ffn(cfg, D, "decoder", 0).eval()


def queries(seed: int = 0):
    """match [2, Q, D]; dn [2, P, D]: P/2 copies of matching queries, P/2 far away (+25)."""
    g = torch.Generator().manual_seed(seed)
    match = torch.randn(2, Q, D, generator=g) + 4 * torch.randn(2, 4, D, generator=g).repeat_interleave(Q // 4, 1)
    far = torch.randn(2, P // 2, D, generator=g) + 25.0
    dn = torch.cat([match[:, : P // 2], far], 1)
    return match, dn


@pytest.mark.parametrize("clustering", ["fine2coarse", "multistep", "mixing"])
def test_matching_queries_cluster_as_at_test_time(clustering):
    ffn = come_ffn(clustering)
    match, dn = queries()
    train_in = torch.cat([dn, match], 1)
    r_test, lab_test = ffn.cluster(match, None, 0)
    r_train, lab_train = ffn.cluster(train_in, None, P)
    assert torch.allclose(r_train[:, P:], r_test, atol=1e-5)
    for name, lab in lab_test.items():
        assert torch.equal(lab_train[name][:, P:], lab)
        # a denoising query identical to a matching one gets that query's centre
        assert torch.equal(lab_train[name][:, : P // 2], lab[:, : P // 2])
    assert torch.allclose(r_train[:, : P // 2], r_test[:, : P // 2], atol=1e-5)
    # the data is sensitive: clustering all queries together (old behaviour) changes the centres
    r_old, _ = ffn.cluster(train_in, None, 0)
    assert not torch.allclose(r_old[:, P:], r_test, atol=1e-3)


def test_forward_reads_num_denoising_from_the_context():
    ffn = come_ffn("fine2coarse")
    match, dn = queries(1)
    src = torch.tensor([0, 1])
    with torch.no_grad():
        y_test, _ = ffn(match, FFNContext(source_ids=src, stage="decoder"))
        y_train, _ = ffn(torch.cat([dn, match], 1), FFNContext(source_ids=src, stage="decoder",
                                                               num_denoising=P))
    # capacity differs with the token count: compare routing inputs, not outputs, for all tokens
    r_test, _ = ffn.cluster(match, None, 0)
    r_train, _ = ffn.cluster(torch.cat([dn, match], 1), None, P)
    assert torch.allclose(r_train[:, P:], r_test, atol=1e-5)
    assert y_train.shape == (2, Q + P, D) and y_test.shape == (2, Q, D)


def test_detector_passes_the_dn_count_to_the_decoder_ffn():
    from come.model.detector import build_detector

    from .test_detector_integration import tiny

    cfg = tiny("come", stages=["decoder"], use_ste=False, use_see=False)
    m = cfg.model
    torch.manual_seed(0)
    model = build_detector(cfg)
    seen = []
    model.decoder.layers[0].ffn.ffn.register_forward_pre_hook(
        lambda mod, args: seen.append((args[1].num_denoising, args[0].shape[1])))
    images, pad = torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.bool)
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.4, 0.4, 0.3, 0.3]])}] * 2
    out = model.train()(images, pad, torch.tensor([0, 1]), targets)
    n_dn = out["dn_meta"]["pad_size"]
    assert n_dn > 0 and seen[-1] == (n_dn, n_dn + m.num_queries)
    with torch.no_grad():
        model.eval()(images, pad, torch.tensor([0, 1]))
    assert seen[-1] == (0, m.num_queries)
