"""`come merge --splits-root R --datasets DS... --out DIR`: merged train/test keeping `source`."""
from __future__ import annotations

import json


def configure(parser) -> None:
    parser.add_argument("--splits-root", required=True, help="folder with <DS>/{train,test}.json")
    parser.add_argument("--datasets", nargs="+", required=True,
                        help="dataset names, or one of: breast thyroid all")
    parser.add_argument("--out", required=True, help="folder for the merged train.json and test.json")


def run(args) -> int:
    from come.data.merge import GROUPS, merge_splits
    datasets = GROUPS[args.datasets[0]] if len(args.datasets) == 1 and args.datasets[0] in GROUPS else args.datasets
    summary = merge_splits(args.splits_root, list(datasets), args.out)
    print(json.dumps(summary))
    return 0
