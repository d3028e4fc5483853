"""Conversion throughput on the real BUS-BRA copy (../shared/data/busbra) and where time goes.

Prints images/s for one full conversion (hard-linked images) and the split of its time into
read (decode image + mask), label (connected components, boxes) and write (link/copy, JSON),
plus the remainder (data card, bookkeeping). Usage:
    .venv/bin/python benchmarks/bench_convert.py [--raw DIR] [--copy] [--repeat N]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from come.data.converters import convert_dataset

DEFAULT_RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("--copy", action="store_true", help="copy images instead of hard-linking")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    raw = Path(args.raw)
    if not raw.is_dir():
        print(f"bench_convert: {raw} not found (needs ../shared/data/busbra)")
        return 1
    for r in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
        try:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = convert_dataset("BUSBRA", "busbra", "breast", raw, tmp / "BUSBRA", link=not args.copy)
            total = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        t = s["timings_s"]
        other = total - sum(t.values())
        print(f"run {r}: {s['images']} images, {s['boxes']} boxes, {total:.2f} s total, "
              f"{s['images'] / total:.1f} images/s ({'copy' if args.copy else 'hard link'})")
        for key in ("read", "label", "write"):
            print(f"  {key:<6} {t[key]:6.2f} s  {100 * t[key] / total:5.1f} %  {1000 * t[key] / s['images']:.2f} ms/image")
        print(f"  other  {other:6.2f} s  {100 * other / total:5.1f} %  (data card, quarantine, bookkeeping)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
