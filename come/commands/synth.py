"""`come synth`: generate the embedded synthetic ultrasound benchmark (8 sources)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from come.commands import add_config_args
from come.config import load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--out", default="results/data", help="data root to write (default: %(default)s)")


def run(args) -> int:
    from come.data.coco import load_coco
    from come.data.synth import generate

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    t0 = time.perf_counter()
    written = generate(cfg, out)
    dt = time.perf_counter() - t0
    for name, path in written.items():                 # re-read: validates what was written
        coco = load_coco(path)
        mix = Counter(im["pathology"] for im in coco["images"])
        print(f"  {name:<7s} {len(coco['images']):4d} images, {len(coco['annotations']):4d} lesions, "
              f"patients {len({im['group_id'] for im in coco['images']}):4d}, "
              + ", ".join(f"{k} {mix[k]}" for k in ("benign", "malignant", "normal")))
    n = cfg.synth.images_per_source * len(written)
    print(f"come synth: {n} images from {len(written)} sources in {dt:.1f} s -> {out} "
          f"(contact sheet: {out / 'synth_contact_sheet.png'}, config: {out / 'synth_config.yaml'})")
    return 0
