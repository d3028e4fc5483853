"""Benchmark of the DINO detector on CPU: forward / loss / backward time per step and the share
of time spent in the backbone, multi-scale deformable attention, the Hungarian matcher and the
rest of the loss.

    .venv/bin/python benchmarks/bench_model.py [--config config/config.yaml] [--set k=v ...]
        [--size 128] [--batch 2] [--iters 5] [--threads 1]

Paper-sized model: --config config/paper.yaml --set model.backbone.pretrained='""' --size 256
--batch 1 (900 queries need >= 900 encoder tokens, i.e. images of >= ~240 px).
Figures are wall-clock means over `--iters` steps after one warm-up step.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from collections import defaultdict

import torch

from come.config.loader import load_config
from come.model.deform_attn import MSDeformAttn
from come.model.detector import build_criterion, build_detector


class Timer:
    """Accumulates wall time of module forwards (pre/post hooks) and of wrapped callables."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self._start: dict[int, float] = {}

    def hook(self, module: torch.nn.Module, name: str) -> None:
        def pre(mod, args):
            self._start[id(mod)] = time.perf_counter()

        def post(mod, args, out):
            self.total[name] += time.perf_counter() - self._start.pop(id(mod))

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def wrap(self, fn, name: str):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] += time.perf_counter() - t
        return timed


def synthetic_batch(batch: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=g)
    pad = torch.zeros(batch, size, size, dtype=torch.bool)
    targets = []
    for i in range(batch):
        n = 1 + i % 3
        cxcy = torch.rand(n, 2, generator=g) * 0.5 + 0.25
        wh = torch.rand(n, 2, generator=g) * 0.2 + 0.1
        targets.append({"labels": torch.zeros(n, dtype=torch.long), "boxes": torch.cat([cxcy, wh], 1)})
    return images, pad, torch.arange(batch) % 8, targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"))
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config, args.overrides)
    model, crit = build_detector(cfg).train(), build_criterion(cfg)
    timer = Timer()
    timer.hook(model.backbone, "backbone")
    for mod in model.modules():
        if isinstance(mod, MSDeformAttn):
            timer.hook(mod, "deform_attn")
    crit.matcher = timer.wrap(crit.matcher, "matcher")
    images, pad, src, targets = synthetic_batch(args.batch, args.size)
    phases: dict[str, float] = defaultdict(float)
    for it in range(args.iters + 1):
        if it == 1:   # discard the warm-up step
            timer.total.clear()
            phases.clear()
        t0 = time.perf_counter()
        out = model(images, pad, src, targets)
        t1 = time.perf_counter()
        losses = crit(out, targets)
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        losses["loss"].backward()
        t3 = time.perf_counter()
        phases["forward"] += t1 - t0
        phases["loss"] += t2 - t1
        phases["backward"] += t3 - t2
    n = args.iters
    step = sum(phases.values()) / n
    params = sum(p.numel() for p in model.parameters()) / 1e6
    m = cfg.model
    print(f"model: {m.backbone.name} hidden {m.hidden_dim} heads {m.nheads} layers {m.enc_layers}+{m.dec_layers} "
          f"queries {m.num_queries} dn {m.dn_number} ffn {m.ffn.type}/{m.ffn.hidden_dim}; {params:.1f} M params")
    print(f"input: batch {args.batch} x {args.size}x{args.size}, threads {args.threads}, {n} timed steps")
    print(f"step (forward + loss + backward): {step * 1000:.0f} ms")
    for k in ("forward", "loss", "backward"):
        print(f"  {k:<9} {phases[k] / n * 1000:8.1f} ms  {phases[k] / n / step:6.1%} of step")
    fwd = phases["forward"] / n
    print("share of forward time:")
    for k in ("backbone", "deform_attn"):
        print(f"  {k:<12} {timer.total[k] / n * 1000:8.1f} ms  {timer.total[k] / n / fwd:6.1%}")
    loss_t = phases["loss"] / n
    match = timer.total["matcher"] / n
    print("share of loss time:")
    print(f"  {'matcher':<12} {match * 1000:8.1f} ms  {match / loss_t:6.1%}")
    print(f"  {'loss terms':<12} {(loss_t - match) * 1000:8.1f} ms  {(loss_t - match) / loss_t:6.1%}")
    print("share of step time: " + ", ".join(
        f"{k} {v:.1%}" for k, v in (("backbone fwd", timer.total["backbone"] / n / step),
                                    ("deform_attn fwd", timer.total["deform_attn"] / n / step),
                                    ("matcher", match / step), ("loss terms", (loss_t - match) / step),
                                    ("backward", phases["backward"] / n / step))))
    sampling_share = profile_grid_sample(model, crit, images, pad, src, targets)
    print(f"grid_sample (deformable sampling core) forward + backward, one profiled step: "
          f"{sampling_share:.1%} of operator time")
    return 0


def profile_grid_sample(model, crit, images, pad, src, targets) -> float:
    """Fraction of the self CPU time of one training step spent in grid_sample (fwd + bwd)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        losses = crit(model(images, pad, src, targets), targets)
        model.zero_grad(set_to_none=True)
        losses["loss"].backward()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    grid = sum(e.self_cpu_time_total for e in events if "grid_sampler" in e.key)
    return grid / max(total, 1e-9)


if __name__ == "__main__":
    raise SystemExit(main())
