"""A tiny DINO with each FFN type trains a few steps on CPU; record_routing on the detector."""
import pytest
import torch

from come.config.schema import Config

detector = pytest.importorskip("come.model.detector", reason="come.model.detector not importable")

SOURCES = ["BUSI", "BUV", "BUSBRA", "BUSC"]


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def tiny(kind: str, **ffn) -> Config:
    cfg = Config()
    m = cfg.model
    m.hidden_dim, m.nheads, m.enc_layers, m.dec_layers = 32, 2, 2, 2
    m.num_queries, m.dn_number, m.num_feature_levels = 10, 4, 3
    m.backbone.out_indices = [2, 3, 4]
    f = m.ffn
    f.type, f.hidden_dim, f.num_experts, f.top_k, f.kmeans_iters = kind, 32, 4, 2, 2
    for k, v in ffn.items():
        setattr(f, k, v)
    return cfg


def inputs(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, size, size, generator=g)
    pad = torch.zeros(2, size, size, dtype=torch.bool)
    pad[0, :, 48:] = True
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.4, 0.4, 0.3, 0.3]])},
               {"labels": torch.tensor([0, 0]), "boxes": torch.tensor([[0.3, 0.6, 0.2, 0.2],
                                                                       [0.7, 0.3, 0.2, 0.3]])}]
    shared = {"structure": torch.randn(2, 12, 8, 8, generator=g), "semantic": torch.randn(2, 10, generator=g)}
    return images, pad, torch.tensor([0, 3]), targets, shared


CASES = {
    "moe": {},
    "damex": {"stages": ["decoder"], "layers": [0], "prenorm": True, "drop_path": 0.2,
              "activation": "gelu", "balance_weight": 0.0},
    "come": {"clustering": "fine2coarse", "fine_k": 8, "coarse_k": 4},
    "come-multistep-noshared": {"clustering": "multistep", "use_ste": False, "use_see": False},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_detector_trains_with_each_ffn(case):
    torch.manual_seed(0)
    cfg = tiny(case.split("-")[0], **CASES[case])
    model, crit = detector.build_detector(cfg), detector.build_criterion(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)          # built before the first forward
    images, pad, src, targets, shared = inputs()
    model.train()
    keys = set()
    for _ in range(3):
        out = model(images, pad, src, targets, shared=shared)
        losses = crit(out, targets)
        loss = losses["loss"] + sum(out["aux_ffn"].values())
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        keys |= set(out["aux_ffn"])
    expected = {"moe": {"moe_balance"}, "damex": {"damex_route"},
                "come": {"moe_balance", "come_trace"}}[case.split("-")[0]]
    assert keys == expected


def test_record_routing_on_full_detector(tmp_path):
    from come.model.moe.stats import record_routing

    torch.manual_seed(0)
    cfg = tiny("come", use_ste=False, use_see=False)
    model = detector.build_detector(cfg).eval()
    images, pad, src, _, _ = inputs()
    with record_routing(model, SOURCES) as rec, torch.no_grad():
        model(images, pad, src)
    s = rec.summary()
    assert len(s["layers"]) == 4                                   # 2 encoder + 2 decoder layers
    assert s["routed_tokens"] > 0
    paths = rec.save(tmp_path)
    assert paths["csv"].exists() and paths["png"].exists() and paths["npz"].exists()
