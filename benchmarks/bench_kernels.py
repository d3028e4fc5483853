"""Two CPU hot spots of the detector, today's code against the earlier reading, side by side.

    .venv/bin/python benchmarks/bench_kernels.py [--reps 7] [--threads 1]

1. Deformable attention's PyTorch core: the level-by-level weighted sum against stacking every
   level's samples first. Sizes: the embedded default's encoder (128 px: 16x16..2x2 maps, D 64,
   4 heads, batch 4) and config/real-cpu.yaml's (256 px: 32x32..4x4, D 128, 8 heads, batch 8
   as in evaluation); every encoder token is a query.
2. FrozenBatchNorm2d without gradients (evaluation, the frozen stem): the fused batch_norm
   kernel against the two broadcast ops it uses when a gradient flows, on EfficientNet-Lite0
   activation sizes at 256 px, batch 8.
3. AdamW's step, the plain update against the fused one (`come.engine.optim.adamw`), on the
   trainable parameters of the detector (both configs) and of the embedded CLIP.
4. The whole detector with the earlier readings swapped back in, against today's: a training
   step (forward, loss, backward, AdamW; batch 4) and an evaluation forward (no grad; batch 8) of
   config/config.yaml (128 px) and config/real-cpu.yaml (256 px), random images and weights.
Prints the best of --reps interleaved calls per variant (both see the same machine load), the
speed-up and the largest difference between the outputs (the same arithmetic in another order).
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

import come.model.deform_attn as deform_attn
from come.config.loader import load_config
from come.engine.optim import adamw
from come.model.backbone import FrozenBatchNorm2d
from come.model.deform_attn import ms_deform_attn_pytorch
from come.model.detector import build_criterion, build_detector

REPO = Path(__file__).resolve().parents[1]

SIZES = {"embedded 128 px": (4, 4, 16, [[16, 16], [8, 8], [4, 4], [2, 2]]),
         "real-cpu 256 px": (8, 8, 16, [[32, 32], [16, 16], [8, 8], [4, 4]])}   # batch, heads, Dh, maps


def stacked(value, spatial_shapes, sampling_locations, attention_weights):
    """The earlier reading: sample every level, stack [B*H, Dh, Lq, L, P], weight, sum."""
    b, _, n_heads, dh = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    values = value.split([int(h) * int(w) for h, w in spatial_shapes.tolist()], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * n_heads, dh, int(h), int(w))
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = attention_weights.transpose(1, 2).reshape(b * n_heads, 1, lq, n_levels * n_points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1)
    return out.view(b, n_heads * dh, lq).transpose(1, 2).contiguous()


def inputs(batch: int, heads: int, dh: int, maps: list[list[int]], points: int = 4):
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor(maps)
    n = int(shapes.prod(1).sum())
    value = torch.randn(batch, n, heads, dh, generator=g)
    loc = torch.rand(batch, n, heads, len(maps), points, 2, generator=g)
    weights = torch.rand(batch, n, heads, len(maps), points, generator=g).softmax(-1)
    return value, shapes, loc, weights


def best_time(fn, args, grad: bool, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        xs = [a.clone().requires_grad_(grad) if a.is_floating_point() else a for a in args]
        t0 = time.perf_counter()
        with torch.set_grad_enabled(grad):
            out = fn(*xs)
            if grad:
                out.sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best


def frozen_bn_rows(reps: int) -> None:
    print(f"\n{'FrozenBatchNorm2d, no grad':<34}{'broadcast ms':>14}{'fused ms':>10}{'speed-up':>10}{'max diff':>10}")
    g = torch.Generator().manual_seed(0)
    for shape in ((8, 32, 128, 128), (8, 96, 64, 64), (8, 144, 32, 32), (8, 480, 16, 16)):
        bn = FrozenBatchNorm2d(shape[1])
        for buf in (bn.weight, bn.bias, bn.running_mean):
            buf.copy_(torch.randn(shape[1], generator=g))
        bn.running_var.copy_(torch.rand(shape[1], generator=g) + 0.5)
        x = torch.randn(*shape, generator=g)
        times = {"old": float("inf"), "now": float("inf")}
        with torch.no_grad():
            diff = (bn(x) - bn.broadcast(x)).abs().max().item()
            for _ in range(reps):
                for key, fn in (("old", lambda: bn.broadcast(x)), ("now", lambda: bn(x))):
                    t0 = time.perf_counter()
                    fn()
                    times[key] = min(times[key], time.perf_counter() - t0)
        print(f"{'x'.join(map(str, shape)):<34}{times['old'] * 1e3:>14.2f}{times['now'] * 1e3:>10.2f}"
              f"{times['old'] / times['now']:>9.2f}x{diff:>10.1e}")


def adamw_rows(reps: int) -> None:
    from come.config.schema import SemanticExpertConfig
    from come.experts.semantic import build_clip

    print(f"\n{'AdamW step':<46}{'plain ms':>12}{'fused ms':>10}{'speed-up':>10}")
    models = {f"detector, {name}": build_detector(load_config(REPO / "config" / name))
              for name in ("config.yaml", "real-cpu.yaml")}
    models["embedded CLIP (semantic expert)"] = build_clip(SemanticExpertConfig(), 0.07)[0]
    for label, model in models.items():
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        optimisers = {"plain": torch.optim.AdamW(params, lr=1e-4), "fused": adamw(params, lr=1e-4)}
        times = {k: float("inf") for k in optimisers}
        for _ in range(reps):
            for key, opt in optimisers.items():
                t0 = time.perf_counter()
                opt.step()
                times[key] = min(times[key], time.perf_counter() - t0)
        n = sum(p.numel() for p in params) / 1e6
        print(f"{label + f' ({n:.1f} M)':<46}{times['plain'] * 1e3:>12.1f}{times['fused'] * 1e3:>10.1f}"
              f"{times['plain'] / times['fused']:>9.2f}x")


@contextmanager
def earlier_readings(on: bool):
    """Swap the earlier deformable core and FrozenBatchNorm2d forward in (on=True) for a block."""
    core, bn_forward = deform_attn.ms_deform_attn_pytorch, FrozenBatchNorm2d.forward
    if on:
        deform_attn.ms_deform_attn_pytorch, FrozenBatchNorm2d.forward = stacked, FrozenBatchNorm2d.broadcast
    try:
        yield
    finally:
        deform_attn.ms_deform_attn_pytorch, FrozenBatchNorm2d.forward = core, bn_forward


def detector_rows(reps: int) -> None:
    print(f"\n{'detector':<46}{'earlier ms':>12}{'now ms':>10}{'speed-up':>10}")
    for cfg_name, size in (("config.yaml", 128), ("real-cpu.yaml", 256)):
        cfg = load_config(REPO / "config" / cfg_name)
        torch.manual_seed(0)
        model, criterion = build_detector(cfg), build_criterion(cfg)
        g = torch.Generator().manual_seed(0)
        images = torch.randn(8, 3, size, size, generator=g)
        pad = torch.zeros(8, size, size, dtype=torch.bool)
        sources = torch.zeros(8, dtype=torch.long)
        targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3]]), "labels": torch.tensor([0])}] * 4

        params = [p for p in model.parameters() if p.requires_grad]
        optimisers = {True: torch.optim.AdamW(params, lr=1e-6), False: adamw(params, lr=1e-6)}

        def train_step(earlier: bool):
            model.train()
            out = model(images[:4], pad[:4], sources[:4], targets=targets)
            criterion(out, targets)["loss"].backward()
            optimisers[earlier].step()
            model.zero_grad(set_to_none=True)

        def eval_forward(earlier: bool):
            model.eval()
            with torch.no_grad():
                model(images, pad, sources, targets=None)

        for label, fn in (("train step, batch 4", train_step), ("eval forward, batch 8", eval_forward)):
            fn(False)                                       # warm-up
            times = {True: float("inf"), False: float("inf")}
            for _ in range(max(3, reps // 2)):
                for earlier in (True, False):
                    with earlier_readings(earlier):
                        t0 = time.perf_counter()
                        fn(earlier)
                        times[earlier] = min(times[earlier], time.perf_counter() - t0)
            print(f"{cfg_name + ' ' + str(size) + ' px, ' + label:<46}{times[True] * 1e3:>12.0f}"
                  f"{times[False] * 1e3:>10.0f}{times[True] / times[False]:>9.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'size':<18}{'pass':<16}{'stacked ms':>12}{'per level ms':>14}{'speed-up':>10}")
    for name, (batch, heads, dh, maps) in SIZES.items():
        xs = inputs(batch, heads, dh, maps)
        diff = (ms_deform_attn_pytorch(*xs) - stacked(*xs)).abs().max().item()
        for grad, label in ((False, "no grad (eval)"), (True, "with backward")):
            times = {"stacked": float("inf"), "now": float("inf")}
            for _ in range(args.reps):      # interleaved: both variants see the same machine load
                times["stacked"] = min(times["stacked"], best_time(stacked, xs, grad, 1))
                times["now"] = min(times["now"], best_time(ms_deform_attn_pytorch, xs, grad, 1))
            print(f"{name:<18}{label:<16}{times['stacked'] * 1e3:>12.1f}{times['now'] * 1e3:>14.1f}"
                  f"{times['stacked'] / times['now']:>9.2f}x")
        print(f"{name:<18}largest output difference {diff:.2e}")
    frozen_bn_rows(args.reps)
    adamw_rows(args.reps)
    detector_rows(args.reps)


if __name__ == "__main__":
    main()
