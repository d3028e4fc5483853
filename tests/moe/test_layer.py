"""The MoE layer: reference equality, dispatch implementations, drops, padding, gradients."""
import pytest
import torch

from come.model.moe.layer import MoELayer, resolve_backend, tutel_available


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def reference(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """Loop over experts: every expert on every token, weighted by its renormalised top-k gate."""
    ex = layer.experts
    scores = torch.softmax(layer.gate(x) / layer.temperature, 1)
    top, idx = scores.topk(layer.top_k, 1)
    if layer.normalize_gate and layer.top_k > 1:
        top = top / top.sum(1, keepdim=True)
    y = torch.zeros_like(x)
    for e in range(layer.num_experts):
        h = ex.act(x @ ex.w1[e] + ex.b1[e, 0]) @ ex.w2[e] + ex.b2[e, 0]
        w = (top * (idx == e)).sum(1, keepdim=True)
        y = y + w * h
    return y


@pytest.mark.parametrize("impl", ["bmm", "loop"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_capacity_zero_equals_loop_over_experts(impl, k):
    torch.manual_seed(0)
    layer = MoELayer(16, 32, 5, k, capacity_factor=0.0, activation="gelu", impl=impl).eval()
    x = torch.randn(40, 16)
    y, info = layer(x)
    assert bool(info.kept.all())
    assert torch.allclose(y, reference(layer, x), atol=1e-5)


def test_bmm_and_loop_dispatch_agree_with_drops():
    torch.manual_seed(1)
    a = MoELayer(16, 32, 4, 2, capacity_factor=0.5, impl="bmm").eval()
    b = MoELayer(16, 32, 4, 2, capacity_factor=0.5, impl="loop").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(30, 16)
    ya, ia = a(x)
    yb, _ = b(x)
    assert not bool(ia.kept.all())        # some choices were dropped
    assert torch.allclose(ya, yb, atol=1e-5)


@pytest.mark.parametrize("impl", ["bmm", "loop"])
def test_dropped_tokens_give_zero_output(impl):
    torch.manual_seed(2)
    layer = MoELayer(8, 16, 4, 1, capacity_factor=1.0, impl=impl).eval()
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.weight[0, 0] = 10.0                   # everyone with x[:, 0] > 0 wants expert 0
    x = torch.randn(16, 8)
    x[:, 0] = 1.0
    y, info = layer(x)
    assert info.capacity == 4                            # 1 * int(1.0 * ceil(16 / 4))
    dropped = ~info.kept[:, 0]
    assert int(dropped.sum()) == 12
    assert torch.count_nonzero(y[dropped]) == 0
    assert torch.count_nonzero(y[~dropped]) > 0


def test_gradients_reach_gate_and_experts():
    torch.manual_seed(3)
    layer = MoELayer(16, 32, 4, 2, capacity_factor=1.25).train()
    x = torch.randn(2 * 25, 16, requires_grad=True)
    y, info = layer(x)
    (y.pow(2).mean() + info.balance).backward()
    assert layer.gate.weight.grad is not None and layer.gate.weight.grad.abs().sum() > 0
    for p in layer.experts.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_padding_is_not_routed():
    torch.manual_seed(4)
    layer = MoELayer(8, 16, 4, 2, capacity_factor=0.0).eval()
    x = torch.randn(20, 8)
    valid = torch.ones(20, dtype=torch.bool)
    valid[15:] = False
    y, info = layer(x, valid=valid)
    assert info.indices.shape[0] == 15 and info.valid_index.tolist() == list(range(15))
    assert torch.count_nonzero(y[15:]) == 0
    y_valid, _ = layer(x[:15])
    assert torch.allclose(y[:15], y_valid, atol=1e-6)


def test_separate_router_input_and_temperature():
    torch.manual_seed(5)
    layer = MoELayer(8, 16, 4, 1, capacity_factor=0.0, temperature=0.5).eval()
    x, r = torch.randn(10, 8), torch.randn(10, 8)
    _, info = layer(x, r)
    assert torch.allclose(info.logits, layer.gate(r) / 0.5)
    with pytest.raises(ValueError, match="route_input"):
        layer(x, r[:5])


def test_backend_resolution():
    assert resolve_backend("native") == "native"
    if not tutel_available():
        assert resolve_backend("auto") == "native"
        with pytest.raises(RuntimeError, match="tutel"):
            resolve_backend("tutel")
    with pytest.raises(ValueError):
        resolve_backend("fast")


def test_all_padded_and_all_dropped_batches_are_zero_and_differentiable():
    torch.manual_seed(6)
    layer = MoELayer(8, 16, 4, 2, capacity_factor=1.25).train()
    x = torch.randn(6, 8, requires_grad=True)
    y, info = layer(x, valid=torch.zeros(6, dtype=torch.bool))
    assert info.indices.shape[0] == 0 and torch.count_nonzero(y) == 0
    (y.sum() + info.balance).backward()
    tiny = MoELayer(8, 16, 4, 1, capacity_factor=0.1).train()      # capacity 1 * int(0.1 * 1) = 0
    y, info = tiny(torch.randn(3, 8))
    assert info.capacity == 0 and not bool(info.kept.any()) and torch.count_nonzero(y) == 0
    y.sum().backward()


def _fake_tutel(monkeypatch, with_names: bool = True):
    """A stand-in `tutel` package whose moe_layer records its kwargs and holds tutel's
    parameter names (tutel is not installable here); resolve_backend then accepts "tutel"."""
    import sys
    import types

    from torch import nn

    calls = []

    def moe_layer(**kw):
        calls.append(kw)
        e, h, d = kw["experts"]["count_per_node"], kw["experts"]["hidden_size_per_expert"], kw["model_dim"]
        layer = nn.Module()
        layer.experts = nn.Module()
        if with_names:
            for n, shape in (("batched_fc1_w", (e, h, d)), ("batched_fc2_w", (e, h, d)),
                             ("batched_fc1_bias", (e, h)), ("batched_fc2_bias", (e, d))):
                setattr(layer.experts, n, nn.Parameter(torch.full(shape, 3.0)))
        gate = nn.Module()
        gate.wg = nn.Linear(d, e, bias=False)
        nn.init.constant_(gate.wg.weight, 3.0)
        layer.gates = nn.ModuleList([gate])
        return layer

    pkg = types.ModuleType("tutel")
    pkg.moe = types.SimpleNamespace(moe_layer=moe_layer)
    monkeypatch.setitem(sys.modules, "tutel", pkg)
    monkeypatch.setattr("come.model.moe.layer.tutel_available", lambda: True)
    return calls


def test_tutel_backend_applies_damex_init_and_frozen_zero_fc2_bias(monkeypatch):
    """The tutel backend used to ignore init_std and fc2_bias (tutel's own init, a trained fc2
    bias) while the native backend applied them: DAMEX runs differed by backend. Mutations
    caught: init_tutel_experts not called, the fc2 bias left trainable, the gate left out."""
    calls = _fake_tutel(monkeypatch)
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, 1, backend="tutel", activation="gelu", fc2_bias=False, init_std=0.005,
                     batch_prioritized=True, normalize_gate=False)
    kw = calls[-1]
    assert kw["gate_type"]["k"] == 1 and kw["batch_prioritized_routing"] and not kw["normalize_gate"]
    assert kw["is_gshard_loss"] is False and kw["experts"]["count_per_node"] == 4
    ex = layer.tutel.experts
    for w in (ex.batched_fc1_w, ex.batched_fc2_w, layer.tutel.gates[0].wg.weight):
        w = w.detach()
        assert w.abs().max() < 0.05 and 0.002 < float(w.std()) < 0.008
    assert float(ex.batched_fc1_bias.detach().abs().sum()) == 0.0 and float(ex.batched_fc2_bias.abs().sum()) == 0.0
    assert not ex.batched_fc2_bias.requires_grad and ex.batched_fc1_bias.requires_grad
    plain = MoELayer(8, 16, 4, 1, backend="tutel")                 # defaults: tutel's own init kept
    assert float(plain.tutel.experts.batched_fc2_w.detach().min()) == 3.0 and plain.tutel.experts.batched_fc2_bias.requires_grad


def test_tutel_backend_refuses_an_init_it_cannot_apply(monkeypatch):
    _fake_tutel(monkeypatch, with_names=False)
    with pytest.raises(RuntimeError, match="batched_fc1_w"):
        MoELayer(8, 16, 4, 1, backend="tutel", init_std=0.005)
    MoELayer(8, 16, 4, 1, backend="tutel")                         # nothing to apply: accepted
