"""MoE benchmarks: routed layer vs dense FFN at equal active parameters; clustering cost.

    .venv/bin/python benchmarks/bench_moe.py [--reps 3] [--threads 1] [--quick] [--device cpu]
                                             [--only layers|clustering|step]

1. Forward+backward time of MoELayer (both dispatch implementations, "bmm" and "loop") vs a
   dense FFN, tokens = 4 x 1000, D = 256, dense hidden 2048, expert hidden 2048 // K (so the
   K active experts hold the dense FFN's parameters and FLOPs), capacity factor 1.25 (paper),
   E in {4, 8, 10}, K in {1..4}. Target: routed <= 1.5 x dense.
2. Clustering per call (Fine2Coarse, Multi-Step residual and repeat, Mixing) on the tokens of
   4 images, with the Multi-Step / Fine2Coarse time ratio beside the paper's (Table 6: 615 / 132
   = 4.7x, read from config/paper_tables.csv), and its share of a measured training step of the
   embedded default detector with COME in every encoder/decoder layer (batch 4, 128 px).
   Target: Fine2Coarse <= 15 % of a step. `--device cuda` times the calls on GPU (synchronised).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from come.config.schema import Config, FFNConfig
from come.model.moe.clustering import build_clusterer
from come.model.moe.layer import MoELayer
from come.model.moe.stats import clustering_time_ms, device_clock


def clock(device: torch.device = torch.device("cpu")) -> float:
    """CPU: CPU time of this process (s): with one torch thread it is the compute time,
    unaffected by other processes competing for the cores (wall time on a shared machine is
    not). CUDA: wall time after torch.cuda.synchronize (stats.device_clock)."""
    return time.process_time() if device.type == "cpu" else device_clock(device)


def timed(fn, reps: int, device: torch.device = torch.device("cpu")) -> float:
    """Best time (ms) of fn() over `reps` runs after one warm-up."""
    fn()
    out = []
    for _ in range(reps):
        t0 = clock(device)
        fn()
        out.append((clock(device) - t0) * 1000)
    return min(out)


def timed_interleaved(fns: dict, reps: int) -> dict:
    """Best CPU time (ms) of each fn, runs interleaved so load changes hit all alike."""
    for f in fns.values():
        f()
    out = {n: [] for n in fns}
    for _ in range(reps):
        for n, f in fns.items():
            t0 = clock()
            f()
            out[n].append((clock() - t0) * 1000)
    return {n: min(v) for n, v in out.items()}


def fwd_bwd(module: nn.Module, x: torch.Tensor):
    def run():
        module.zero_grad(set_to_none=True)
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        y.pow(2).mean().backward()
    return run


def bench_layers(reps: int, quick: bool) -> None:
    torch.manual_seed(0)
    n, d, hd = 4 * 1000, 256, 2048
    x = torch.randn(n, d)
    dense = nn.Sequential(nn.Linear(d, hd), nn.ReLU(), nn.Linear(hd, d))
    print(f"\n[1] fwd+bwd, N={n} tokens, D={d}, dense hidden {hd}, capacity factor 1.25")
    print(f"{'E':>3} {'K':>2} {'H/expert':>8} {'dense ms':>8} {'bmm ms':>8} {'loop ms':>8} "
          f"{'bmm/dense':>9} {'loop/dense':>10} {'best':>5}")
    worst = 0.0
    for e in ([8] if quick else [4, 8, 10]):
        for k in range(1, 5):
            h = hd // k
            fns = {"dense": fwd_bwd(dense, x)}
            for impl in ("bmm", "loop"):
                torch.manual_seed(0)
                fns[impl] = fwd_bwd(MoELayer(d, h, e, k, capacity_factor=1.25, impl=impl).train(), x)
            t = timed_interleaved(fns, reps)
            best = min(("bmm", "loop"), key=t.get)
            worst = max(worst, t[best] / t["dense"])
            print(f"{e:>3} {k:>2} {h:>8} {t['dense']:>8.1f} {t['bmm']:>8.1f} {t['loop']:>8.1f} "
                  f"{t['bmm'] / t['dense']:>9.2f} {t['loop'] / t['dense']:>10.2f} {best:>5}")
    print(f"worst best-impl ratio = {worst:.2f} x dense (target <= 1.5): "
          f"{'MET' if worst <= 1.5 else 'NOT MET'}")


def paper_time_ratio() -> float:
    """Table 6's Multi-Step / Fine2Coarse clustering time (config/paper_tables.csv)."""
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "config" / "paper_tables.csv"
    times = {r["variant"]: float(r["value"]) for r in csv.DictReader(path.open())
             if r["table"] == "table6_clustering" and r["metric"].startswith("time")}
    return times["Multi-Step"] / times["Fine2Coarse"]


def bench_clustering_calls(reps: int, device: torch.device) -> None:
    """Per call on the tokens of 4 images; Multi-Step both readings (residual = default)."""
    print("\n[2a] clustering per call (4 images, kmeans_iters=10, fine 16->coarse 8, 5 x k=4; "
          f"{'CPU time' if device.type == 'cpu' else 'wall time, CUDA synchronised'})")
    print(f"{'tokens/img':>10} {'D':>4} {'fine2coarse ms':>15} {'multistep ms':>13} {'repeat ms':>10} "
          f"{'mixing ms':>10} {'MS/F2C':>7}")
    ratios = []
    for length, d in ((340, 64), (1000, 256)):
        x = torch.randn(4, length, d, device=device)
        t = {}
        for name, mode in (("fine2coarse", "residual"), ("multistep", "residual"),
                           ("repeat", "repeat"), ("mixing", "residual")):
            clu = build_clusterer(FFNConfig(type="come", clustering="multistep" if name == "repeat"
                                            else name, multistep_mode=mode))
            t[name] = timed(lambda: clu(x), reps, device)
        ratios.append(t["multistep"] / t["fine2coarse"])
        print(f"{length:>10} {d:>4} {t['fine2coarse']:>15.2f} {t['multistep']:>13.2f} "
              f"{t['repeat']:>10.2f} {t['mixing']:>10.2f} {ratios[-1]:>7.2f}")
    print(f"Multi-Step / Fine2Coarse time per call: {ratios[0]:.2f}x (340 tokens, D 64), "
          f"{ratios[1]:.2f}x (1000 tokens, D 256); paper Table 6: {paper_time_ratio():.2f}x")


def bench_clustering_step(reps: int) -> None:
    from come.model.detector import build_criterion, build_detector

    print("\n[2b] share of a training step (embedded default detector, COME in all 4 layers, "
          "batch 4 at 128 px, no shared features)")
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 128, 128, generator=g)
    pad = torch.zeros(4, 128, 128, dtype=torch.bool)
    src = torch.tensor([0, 1, 2, 3])
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]])}] * 4
    for name in ("fine2coarse", "multistep", "mixing"):
        cfg = Config()
        cfg.model.ffn.type, cfg.model.ffn.clustering = "come", name
        cfg.model.ffn.use_ste = cfg.model.ffn.use_see = False
        torch.manual_seed(0)
        model, crit = build_detector(cfg).train(), build_criterion(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        cl = []

        def step():
            out = model(images, pad, src, targets)
            loss = crit(out, targets)["loss"] + sum(out["aux_ffn"].values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            cl.append(clustering_time_ms(model))

        t_step = timed(step, reps)
        c = min(cl)
        target = " (target <= 15 %: " + ("MET)" if c / t_step <= 0.15 else "NOT MET)") \
            if name == "fine2coarse" else ""
        print(f"{name:>12}: step {t_step:7.1f} ms, clustering {c:6.1f} ms = {100 * c / t_step:5.1f} %{target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="E = 8 only in the layer benchmark")
    ap.add_argument("--device", default="cpu", help="device of the clustering-per-call benchmark")
    ap.add_argument("--only", choices=["layers", "clustering", "step"], default=None,
                    help="run one part only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, reps {args.reps} (best CPU time of)")
    if args.only in (None, "layers"):
        bench_layers(args.reps, args.quick)
    if args.only in (None, "clustering"):
        bench_clustering_calls(args.reps, torch.device(args.device))
    if args.only in (None, "step"):
        bench_clustering_step(args.reps)


if __name__ == "__main__":
    main()
