"""Benchmark `come synth`: 8 sources x N images at S px on one core; prints images/s (wall and
CPU) and the CPU time per pipeline stage.

    .venv/bin/python benchmarks/bench_synth.py [--images 100] [--size 128] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from come.config import load_config  # noqa: E402
from come.data.synth import StageTimer, generate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100, help="images per source")
    ap.add_argument("--size", type=int, default=128, help="synth.image_size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="output root (default: a temporary folder, removed)")
    args = ap.parse_args()
    cfg = load_config(None, [f"synth.images_per_source={args.images}", f"synth.image_size={args.size}",
                             f"synth.seed={args.seed}"])
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    timer = StageTimer()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        generate(cfg, out, timer)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    n = args.images * len(cfg.synth.sources)
    print(f"come synth benchmark: {len(cfg.synth.sources)} sources x {args.images} images at {args.size} px")
    print(f"  total wall {wall:.2f} s, cpu {cpu:.2f} s -> {n / wall:.1f} images/s wall, "
          f"{n / cpu:.1f} images/s cpu, {1000 * wall / n:.1f} ms/image wall, {1000 * cpu / n:.1f} ms/image cpu")
    staged = sum(timer.totals.values())
    print("  CPU time per stage:")
    for name, sec in sorted(timer.totals.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<14s} {sec:7.2f} s  {100 * sec / cpu:5.1f} %  {1000 * sec / n:6.2f} ms/image")
    print(f"  {'other':<14s} {cpu - staged:7.2f} s  (contact sheet, config dump, planning)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
