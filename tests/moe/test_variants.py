"""Every variant in the FFN slot with a realistic context (B=2, L=50, D=64)."""
import pytest
import torch
import torch.nn.functional as F

from come.config.schema import ALL_DATASETS, FFNConfig
from come.model.ffn import FFNContext, build_ffn
from come.model.moe import COMEFFN, DamexFFN, MoEFFN
from come.model.moe.labels import token_labels, trace_targets

B, L, D = 2, 50, 64


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def context(shared: bool, padded: bool = True, stage: str = "encoder") -> FFNContext:
    g = torch.Generator().manual_seed(0)
    pad = None
    if padded:
        pad = torch.zeros(B, L, dtype=torch.bool)
        pad[1, 42:] = True
    feats = {}
    if shared:
        feats = {"structure": torch.randn(B, 24, 8, 8, generator=g),
                 "semantic": torch.randn(B, 32, generator=g)}
    return FFNContext(source_ids=torch.tensor([1, 6]), ref_points=torch.rand(B, L, 2, generator=g),
                      key_padding_mask=pad, shared=feats, stage=stage, layer_idx=0)


def cfg_of(kind: str, **kw) -> FFNConfig:
    base = dict(type=kind, hidden_dim=96, num_experts=4, top_k=2, capacity_factor=1.25,
                kmeans_iters=3)
    base.update(kw)
    cfg = FFNConfig(**base)
    cfg.validate()
    return cfg


COME_SWITCHES = [
    {}, {"use_ste": False}, {"use_see": False}, {"use_ste": False, "use_see": False},
    {"clustering": "none"}, {"clustering": "multistep"}, {"clustering": "mixing"},
    {"use_trace_loss": False}, {"fusion": "sum"}, {"temperature": 0.5, "top_k": 3},
]


def run(ffn, ctx):
    torch.manual_seed(1)
    x = torch.randn(B, L, D, requires_grad=True)
    ffn.train()
    y, aux = ffn(x, ctx)
    assert y.shape == (B, L, D) and torch.isfinite(y).all()
    loss = y.pow(2).mean() + sum(aux.values())
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    return y, aux


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("switch", COME_SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "full")
def test_come_variants_forward_backward(switch, shared):
    cfg = cfg_of("come", **switch)
    ffn = build_ffn(cfg, D, "encoder", 0)
    assert isinstance(ffn, COMEFFN)
    y, aux = run(ffn, context(shared))
    assert "moe_balance" in aux
    assert ("come_trace" in aux) == cfg.use_trace_loss
    assert ffn.moe.gate.weight.grad.abs().sum() > 0
    if cfg.clustering != "none":
        assert ffn.reduce.weight.grad.abs().sum() > 0 and ffn.last_cluster_ms > 0
    if shared and cfg.use_ste:
        assert ffn.shared.proj["structure"].weight.grad.abs().sum() > 0
    if ffn.fuse is None and not (shared and ffn.shared.names):
        assert torch.count_nonzero(y[1, 42:]) == 0          # padded tokens are not routed


def test_come_trace_loss_is_ce_of_router_probabilities():
    cfg = cfg_of("come", clustering="none", use_ste=False, use_see=False, balance_weight=0.0,
                 trace_weight=0.3, temperature=2.0)
    ffn = build_ffn(cfg, D, "decoder", 1).eval()
    ctx = context(False, padded=True)
    x = torch.randn(B, L, D)
    _, aux = ffn(x, ctx)
    logits = ffn.moe.gate(x) / 2.0
    src = token_labels(ctx.source_ids, B, L, "batch_major", None, ctx.key_padding_mask).view(B, L)
    ok = src >= 0
    target = trace_targets(list(ALL_DATASETS), 4)[src[ok]]        # soft, uniform over the block
    expected = 0.3 * -(target * F.log_softmax(logits[ok], 1)).sum(1).mean()
    assert torch.allclose(aux["come_trace"], expected, atol=1e-6)
    assert set(aux) == {"come_trace"}


@pytest.mark.parametrize("padded", [True, False])
def test_moe_and_damex_forward_backward(padded):
    moe = build_ffn(cfg_of("moe"), D, "encoder", 0)
    assert isinstance(moe, MoEFFN)
    _, aux = run(moe, context(False, padded))
    assert set(aux) == {"moe_balance"}
    damex_cfg = cfg_of("damex", stages=["decoder"], layers=[0, 2, 4], activation="gelu", prenorm=True)
    assert not isinstance(build_ffn(damex_cfg, D, "decoder", 1), DamexFFN)   # layer 1 stays dense
    damex = build_ffn(damex_cfg, D, "decoder", 2)
    assert isinstance(damex, DamexFFN)
    _, aux = run(damex, context(False, padded, "decoder"))
    assert set(aux) == {"damex_route"}


def test_damex_route_loss_value_and_unknown_sources():
    cfg = cfg_of("damex", route_weight=0.1)
    ffn = build_ffn(cfg, D, "decoder", 0).eval()
    x = torch.randn(B, L, D)
    ctx = FFNContext(source_ids=torch.tensor([2, 7]))
    _, aux = ffn(x, ctx)
    logits = ffn.moe.gate(x.reshape(-1, D))
    # default sources = the 8 paper datasets, E=4: BUSBRA (2) -> expert 1, TNSCUI (7) -> 3
    lab = torch.tensor([1, 3]).repeat_interleave(L)
    assert torch.allclose(aux["damex_route"], 0.1 * F.cross_entropy(logits, lab), atol=1e-6)
    _, aux = ffn(x, FFNContext(source_ids=torch.tensor([-1, -1])))
    assert aux == {}


def test_shared_features_are_sampled_at_ref_points():
    cfg = cfg_of("come", clustering="none", use_see=False, fusion="sum", structure_dim=3)
    ffn = build_ffn(cfg, D, "encoder", 0)
    fmap = torch.zeros(B, 3, 4, 4)
    fmap[:, 0, 0, 0] = 1.0                                  # top-left cell only
    ctx = FFNContext(source_ids=torch.tensor([0, 1]),
                     ref_points=torch.tensor([[[0.125, 0.125], [0.875, 0.875]]] * B),
                     shared={"structure": fmap})
    proj = ffn.shared(ctx, B, 2)["structure"]
    lin = ffn.shared.proj["structure"]
    assert torch.allclose(proj[:, 0], lin(torch.tensor([1.0, 0, 0])).expand(B, D), atol=1e-6)
    assert torch.allclose(proj[:, 1], lin.bias.expand(B, D), atol=1e-6)
    with pytest.raises(ValueError, match="structure"):
        ffn.shared(FFNContext(source_ids=torch.tensor([0, 1]), shared={"structure": torch.zeros(B, 5)}), B, 2)


def test_deterministic_given_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        ffn = build_ffn(cfg_of("come"), D, "encoder", 0)
        torch.manual_seed(8)
        outs.append(run(ffn, context(True))[0].detach())
    assert torch.equal(outs[0], outs[1])


def test_come_backend_choice():
    assert build_ffn(cfg_of("come", backend="auto"), D, "encoder", 0).moe.backend == "native"
    with pytest.raises(ValueError, match="tutel"):
        build_ffn(cfg_of("come", backend="tutel"), D, "encoder", 0)


def test_config_validation_names_the_key():
    from come.config.schema import ConfigError

    for key, bad in (("fine_k", 0), ("kmeans_iters", -1), ("structure_dim", -3), ("trace_weight", -0.1)):
        with pytest.raises(ConfigError, match=f"model.ffn.{key}"):
            cfg_of("come", **{key: bad})


@pytest.mark.parametrize("kind", ["come", "damex"])
def test_source_losses_teach_the_router_source_to_expert_mapping(kind):
    """Training on the traceability (COME) / routing (DAMEX) loss alone makes each source's
    tokens pick their expert block (6 sources, 4 experts: 0,0,1,2,2,3); the recorder's
    diagonal share measures it."""
    from torch import nn

    from come.model.moe.stats import record_routing

    torch.manual_seed(0)
    e, d = 4, 16
    cfg = cfg_of(kind, num_experts=e, top_k=1, hidden_dim=16, clustering="none", use_ste=False,
                 use_see=False, balance_weight=0.0, trace_weight=1.0, route_weight=1.0)
    ffn = build_ffn(cfg, d, "decoder", 0)
    names = [f"S{i}" for i in range(6)]
    ffn.set_sources(names)
    offsets = torch.randn(6, d) * 2
    src = torch.arange(6)
    opt = torch.optim.Adam(ffn.parameters(), lr=3e-2)
    ffn.train()
    for _ in range(60):
        x = offsets[:, None, :] + torch.randn(6, 20, d)
        _, aux = ffn(x, FFNContext(source_ids=src))
        opt.zero_grad()
        sum(aux.values()).backward()
        opt.step()
    ffn.eval()
    with record_routing(nn.ModuleList([ffn]), names) as rec, torch.no_grad():
        ffn(offsets[:, None, :] + torch.randn(6, 50, d), FFNContext(source_ids=src))
    assert rec.summary()["diagonal_share"] > 0.9
