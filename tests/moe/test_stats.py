"""record_routing: counts, dropped fraction, feature sample and the files it writes."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from come.config.schema import FFNConfig
from come.model.ffn import FFNContext, build_ffn
from come.model.moe.stats import clustering_time_ms, record_routing

SOURCES = ["BUSI", "BUV", "DDTI"]


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


class Stack(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(build_ffn(cfg, 16, "encoder", i) for i in range(2))

    def forward(self, x, ctx):
        for f in self.layers:
            x = x + f(x, ctx)[0]
        return x


def test_counts_summary_and_files(tmp_path):
    torch.manual_seed(0)
    cfg = FFNConfig(type="come", hidden_dim=32, num_experts=4, top_k=2, capacity_factor=1.0,
                    use_ste=False, use_see=False, clustering="mixing", kmeans_iters=2)
    model = Stack(cfg).eval()
    pad = torch.zeros(3, 30, dtype=torch.bool)
    pad[2, 20:] = True
    ctx = FFNContext(source_ids=torch.tensor([0, 2, -1]), key_padding_mask=pad)
    with record_routing(model, SOURCES, sample_size=50) as rec:
        for _ in range(3):
            model(torch.randn(3, 30, 16), ctx)
    assert all(m.recorder is None for m in model.layers)
    assert model.layers[1].last_routing.indices.shape == (80, 2)
    s = rec.summary()
    assert s["routed_tokens"] == 3 * 2 * 80                     # 3 forwards x 2 layers x 80 valid
    top1 = rec.total(rec.top1)
    assert top1.sum() == 3 * 2 * 60 and top1[1].sum() == 0     # source -1 not counted, BUV absent
    assert rec.total(rec.topk).sum() == 2 * top1.sum()
    assert 0.0 < s["dropped_fraction"] < 1.0                    # capacity factor 1.0 drops some
    # E=4, S=3 (BUSI, BUV | DDTI): BUSI owns experts [0, 1] (old: expert 0 only = 0 % 4)
    assert s["per_source"]["BUSI"]["experts"] == [0, 1] and s["per_source"]["DDTI"]["experts"] == [3]
    assert s["per_source"]["BUSI"]["diagonal_share"] == pytest.approx(top1[0, :2].sum() / top1[0].sum())
    assert s["clustering_ms_per_forward"] > 0 and clustering_time_ms(model) > 0
    paths = rec.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"routing.csv", "routing.png",
                                                   "routing_summary.json", "cluster_features.npz"}
    rows = paths["csv"].read_text().strip().splitlines()
    assert rows[0] == "layer,source,expert,top1,topk" and len(rows) == 1 + 3 * 3 * 4
    assert json.loads(paths["summary"].read_text())["num_experts"] == 4
    npz = np.load(paths["npz"])
    assert npz["features"].shape == (50, 16) and str(npz["layer"]) == "encoder.0"
    assert {"labels_fine", "labels_coarse", "labels_step5", "source_ids"} <= set(npz.files)
    assert set(np.unique(npz["source_ids"])) <= {0, 2, -1}
    assert list(npz["source_names"]) == SOURCES


def test_no_routed_layers_saves_nothing(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4))
    with record_routing(model, SOURCES) as rec:
        pass
    assert rec.save(tmp_path) == {} and not any(tmp_path.iterdir())


def test_device_clock_synchronises_cuda_before_reading(monkeypatch):
    """Table 6 on GPU (issue 12 item 10): the clock waits for queued CUDA kernels. Fails on the
    old code (no device_clock; COME read time.perf_counter right after launching the kernels)."""
    from come.model.moe import come_block, stats

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    stats.device_clock(torch.device("cpu"))
    assert calls == []
    stats.device_clock(torch.device("cuda", 0))
    assert calls == [torch.device("cuda", 0)]

    seen = []
    real = stats.device_clock
    monkeypatch.setattr(come_block, "device_clock", lambda dev: seen.append(dev) or real(dev))
    ffn = build_ffn(FFNConfig(type="come", hidden_dim=32, num_experts=4, top_k=2, use_ste=False,
                              use_see=False, kmeans_iters=2), 16, "decoder", 0).eval()
    ffn(torch.randn(2, 20, 16), FFNContext(source_ids=torch.tensor([0, 1])))
    assert seen == [torch.device("cpu")] * 2 and ffn.last_cluster_ms > 0
