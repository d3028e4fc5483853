"""`come readme`: regenerate README.md's "Measured" table and its demo preview.

    come readme                                  # Measured table from docs/measured.json
    come readme --preview-from results           # + table excerpt and figure of a finished demo
    come readme --check                          # exit 1 when README.md is not what would be written
"""
from __future__ import annotations

import sys
from pathlib import Path


def configure(parser) -> None:
    parser.add_argument("--readme", default="README.md", help="README to update (default: %(default)s)")
    parser.add_argument("--measured", default="docs/measured.json",
                        help="measurement records (written by benchmarks/measure.py; default: %(default)s)")
    parser.add_argument("--preview-from", default=None, metavar="RESULTS",
                        help="results folder of a finished run to take the preview from (e.g. results)")
    parser.add_argument("--preview-out", default="docs/preview",
                        help="where the preview's table excerpt and figure go (default: %(default)s)")
    parser.add_argument("--preview-source", default="",
                        help="one line saying which run made the preview, e.g. 'make demo on commit abc1234'")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the Measured table is out of date")


def run(args) -> int:
    from come.reports.readme import Block, build_preview, load_measured, read_block, render_measured, replace_block
    from come.utils.io import atomic_write_bytes

    readme = Path(args.readme)
    if not readme.exists():
        raise FileNotFoundError(f"{readme}: no such README")
    text = readme.read_text(encoding="utf-8")
    measured = render_measured(load_measured(args.measured))
    if args.check:
        if read_block(text, "measured") != measured:
            print(f"{readme}: the Measured table differs from {args.measured}: run `come readme`",
                  file=sys.stderr)
            return 1
        print(f"{readme}: Measured table is current")
        return 0
    text = replace_block(text, Block("measured", measured), str(readme))
    if args.preview_from:
        text = replace_block(text, Block("preview", build_preview(args.preview_from, args.preview_out, args.preview_source)), str(readme))
    atomic_write_bytes(readme, text.encode("utf-8"))
    print(f"wrote {readme}")
    return 0
