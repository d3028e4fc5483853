"""Routing statistics of a model's MoE layers (paper Fig. 5 features, source x expert maps).

    with record_routing(model, source_names) as rec:
        ... model forwards ...
    rec.save(run_dir)   # routing.csv, routing.png, routing_summary.json, cluster_features.npz

Counts use the routed (non-padded) tokens. A token's source is ctx.source_ids of its image
(ids outside [0, S) are not counted in the matrices). routing.csv is long format:
`layer,source,expert,top1,topk` (layer "all" = summed over layers). The summary's diagonal
share of source s = fraction of its top-1 choices that went into its expert block
(labels.expert_blocks: contiguous, organs adjacent; the traceability target). The feature
sample (<= `sample_size` tokens, reservoir-sampled with a fixed seed) comes from one layer
(`feature_layer`, default the first layer that clusters), with its fine/coarse/step labels.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import Tensor, nn

from come.utils.io import atomic_write_bytes, write_json

from .labels import expert_blocks
from .variants import RoutedFFN


def routed_layers(model: nn.Module) -> list[RoutedFFN]:
    return [m for m in model.modules() if isinstance(m, RoutedFFN)]


def device_clock(device: torch.device) -> float:
    """time.perf_counter() (s) once the device's queued work is done: CUDA kernels run
    asynchronously, so a clock read without torch.cuda.synchronize would time the launch only
    (Table 6's clustering time on GPU). CPU: no wait."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def clustering_time_ms(model: nn.Module) -> float:
    """Clustering wall time (ms) summed over the layers' last forward (engine metrics)."""
    return float(sum(m.last_cluster_ms for m in routed_layers(model)))


class RoutingRecorder:
    def __init__(self, source_names: list[str], num_experts: int, sample_size: int = 2000,
                 feature_layer: Optional[str] = None, seed: int = 0):
        self.sources, self.E = list(source_names), num_experts
        self.sample_size, self.feature_layer = sample_size, feature_layer
        self.rng = np.random.RandomState(seed)
        self.top1: dict[str, np.ndarray] = {}
        self.topk: dict[str, np.ndarray] = {}
        self.choices = self.dropped = self.tokens = self.top1_dropped = 0
        self.cluster_ms: dict[str, list[float]] = {}
        self.seen = 0
        self.store: dict[str, np.ndarray] = {}

    def _matrix(self, table: dict[str, np.ndarray], layer: str) -> np.ndarray:
        if layer not in table:
            table[layer] = np.zeros((len(self.sources), self.E), dtype=np.int64)
        return table[layer]

    @torch.no_grad()
    def update(self, module: RoutedFFN, info, ctx, x: Tensor,
               clusters: Optional[dict[str, Tensor]] = None) -> None:
        b, l = x.shape[:2]
        src = ctx.source_ids.to(x.device).long().repeat_interleave(l)          # batch-major [B*L]
        if info.valid_index is not None:
            src = src[info.valid_index]
        idx, kept = info.indices, info.kept
        self.tokens += idx.shape[0]
        self.choices += kept.numel()
        self.dropped += int((~kept).sum())
        self.top1_dropped += int((~kept[:, 0]).sum())
        ok = (src >= 0) & (src < len(self.sources))
        s = len(self.sources)
        for table, cols in ((self.top1, idx[:, :1]), (self.topk, idx)):
            flat = (src[ok, None] * self.E + cols[ok]).reshape(-1)
            counts = torch.bincount(flat, minlength=s * self.E).view(s, self.E).cpu().numpy()
            self._matrix(table, module.layer_name)[:] += counts
        self.cluster_ms.setdefault(module.layer_name, []).append(float(module.last_cluster_ms))
        if clusters:
            if self.feature_layer is None:
                self.feature_layer = module.layer_name
            if module.layer_name == self.feature_layer:
                self._sample(x, src, clusters, info.valid_index)

    def _sample(self, x: Tensor, src: Tensor, clusters: dict[str, Tensor],
                valid_index: Optional[Tensor]) -> None:
        """Reservoir sampling of (feature, source, cluster labels) rows."""
        def rows(t: Tensor) -> np.ndarray:
            t = t.reshape(x.shape[0] * x.shape[1], *t.shape[2:])
            return (t if valid_index is None else t[valid_index]).detach().float().cpu().numpy()

        items = {"features": rows(x), "source_ids": src.cpu().numpy()}
        items.update({f"labels_{k}": rows(v) for k, v in clusters.items()})
        m, n = items["features"].shape[0], self.sample_size
        if not self.store:
            self.store = {k: np.zeros((n, *v.shape[1:]), v.dtype) for k, v in items.items()}
        if set(items) != set(self.store):
            return                                   # another strategy's layer: not mixed in
        ts = self.seen + np.arange(m)
        js = np.where(ts < n, ts, (self.rng.random_sample(m) * (ts + 1)).astype(np.int64))
        sel = np.nonzero(js < n)[0]
        for k, v in items.items():
            self.store[k][js[sel]] = v[sel]   # repeated slots: numpy keeps the last (sequential) one
        self.seen += m

    # ------------------------------------------------------------------ outputs
    def total(self, table: dict[str, np.ndarray]) -> np.ndarray:
        return sum(table.values()) if table else np.zeros((len(self.sources), self.E), np.int64)

    def summary(self) -> dict:
        top1 = self.total(self.top1)
        blocks = expert_blocks(self.sources, self.E) if self.sources else []
        per_source = {}
        for i, name in enumerate(self.sources):
            n, hit = int(top1[i].sum()), int(top1[i, blocks[i]].sum())
            per_source[name] = {"tokens": n, "experts": blocks[i],
                                "diagonal_share": float(hit / n) if n else None}
        diag = sum(int(top1[i, blocks[i]].sum()) for i in range(len(self.sources)))
        calls = [v for vs in self.cluster_ms.values() for v in vs]
        forwards = max((len(v) for v in self.cluster_ms.values()), default=0)
        return {
            "layers": sorted(self.top1), "num_experts": self.E, "routed_tokens": self.tokens,
            "diagonal_share": float(diag / top1.sum()) if top1.sum() else None,
            "per_source": per_source,
            "dropped_fraction": float(self.dropped / self.choices) if self.choices else 0.0,
            "top1_dropped_fraction": float(self.top1_dropped / self.tokens) if self.tokens else 0.0,
            "clustering_ms_per_call": float(np.mean(calls)) if calls else 0.0,
            "clustering_ms_per_forward": float(sum(calls) / forwards) if forwards else 0.0,
            "feature_layer": self.feature_layer, "feature_samples": int(min(self.seen, self.sample_size)),
        }

    def save(self, run_dir: str | Path) -> dict[str, Path]:
        """Write the routing files into run_dir; nothing (empty dict) when no layer routed."""
        if not self.top1:
            return {}
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / "routing.csv", "png": out / "routing.png",
                 "summary": out / "routing_summary.json"}
        lines = ["layer,source,expert,top1,topk"]
        for layer in sorted(self.top1) + ["all"]:
            t1 = self.total(self.top1) if layer == "all" else self.top1[layer]
            tk = self.total(self.topk) if layer == "all" else self.topk[layer]
            for i, name in enumerate(self.sources):
                lines += [f"{layer},{name},{e},{t1[i, e]},{tk[i, e]}" for e in range(self.E)]
        atomic_write_bytes(paths["csv"], ("\n".join(lines) + "\n").encode())
        write_json(paths["summary"], self.summary())
        self._heatmap(paths["png"])
        if self.seen:
            n = min(self.seen, self.sample_size)
            paths["npz"] = out / "cluster_features.npz"
            np.savez_compressed(paths["npz"], layer=np.array(self.feature_layer),
                                source_names=np.array(self.sources),
                                **{k: v[:n] for k, v in self.store.items()})
        return paths

    def _heatmap(self, path: Path) -> None:
        """routing.png with PIL (come.model.moe.heatmap): no matplotlib in the training job."""
        from .heatmap import draw_share_heatmap

        top1 = self.total(self.top1).astype(float)
        share = top1 / np.maximum(top1.sum(1, keepdims=True), 1)
        draw_share_heatmap(share, list(self.sources), [str(e) for e in range(self.E)],
                           "Top-1 routing share per source (all MoE layers)", path)


@contextlib.contextmanager
def record_routing(model: nn.Module, source_names: list[str], sample_size: int = 2000,
                   feature_layer: Optional[str] = None) -> Iterator[RoutingRecorder]:
    """Attach a RoutingRecorder to every routed FFN of `model` for the duration of the block."""
    layers = routed_layers(model)
    e = layers[0].cfg.num_experts if layers else 1
    rec = RoutingRecorder(source_names, e, sample_size, feature_layer)
    previous = [m.recorder for m in layers]
    for m in layers:
        m.recorder = rec
    try:
        yield rec
    finally:
        for m, p in zip(layers, previous):
            m.recorder = p
