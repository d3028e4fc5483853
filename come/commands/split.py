"""`come split --coco A --out DIR --seed S --test-fraction F`: grouped, stratified 8:2 split."""
from __future__ import annotations

import json


def configure(parser) -> None:
    parser.add_argument("--coco", required=True, help="annotations.json of one dataset")
    parser.add_argument("--out", required=True, help="folder for train.json and test.json")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of images in test (default: %(default)s)")
    parser.add_argument("--align-with", default=None,
                        help="reference split folder (e.g. results/splits/DDTI): images whose --align-key "
                             "value is in it follow its side (TUS de-duplicated against DDTI)")
    parser.add_argument("--align-key", default="ddti_case", help="image field to align on (default: %(default)s)")


def run(args) -> int:
    from come.data.splits import write_split
    summary = write_split(args.coco, args.out, args.seed, args.test_fraction, args.align_with, args.align_key)
    print(json.dumps(summary))
    return 0
