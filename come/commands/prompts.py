"""`come prompts`: one diagnosis prompt per training image, as a JSONL of image-text pairs."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from come.commands import add_config_args
from come.config import dump_config, load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--train", required=True, help="COCO training split (e.g. results/splits/merged/all/train.json)")
    parser.add_argument("--out", required=True, help="output JSONL (e.g. results/prompts/train.jsonl)")


def run(args) -> int:
    from come.data.coco import load_coco
    from come.experts.prompts import build_prompt_records, write_jsonl

    cfg = load_config(args.config, args.overrides)
    coco = load_coco(args.train)
    records = build_prompt_records(coco, cfg.data.root, where=args.train)
    out = write_jsonl(records, args.out)
    dump_config(cfg, Path(out).with_suffix(".config.yaml"))
    counts = Counter(r["text"] for r in records)
    print(f"wrote {len(records)} prompts to {out}")
    for text, n in sorted(counts.items()):
        print(f"  {n:5d}  {text}")
    return 0
