"""Image verification at dataset build (`come.data.verify`): cold (decode every image) vs
warm (content-hash cache) on the real BUS-BRA release, 1 and 2 threads.

Run: python benchmarks/bench_verify.py [--root ../shared/data/busbra/Images]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "busbra" / "Images"))
    args = parser.parse_args()
    from PIL import Image

    from come.data.verify import verify_images

    paths = sorted(Path(args.root).glob("*.png"))
    if not paths:
        print(f"{args.root}: no PNG found (real data absent)")
        return 0
    items = []
    for p in paths:
        with Image.open(p) as im:
            items.append((p, (im.width, im.height)))
    for workers in (1, 2):
        os.environ["COME_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-verify-")
        t = time.perf_counter()
        n = verify_images(items, args.root, workers=workers)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        verify_images(items, args.root, workers=workers)
        warm = time.perf_counter() - t
        print(f"{len(items)} images, {workers} thread(s): cold {cold:6.2f} s ({n} decoded), warm {warm:5.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
