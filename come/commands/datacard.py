"""`come datacard --coco A --out DIR`: DIR/<DS>.json + DIR/<DS>.png for one dataset."""
from __future__ import annotations



def configure(parser) -> None:
    parser.add_argument("--coco", required=True, help="annotations.json (quarantine.json beside it is read)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--name", default=None, help="dataset name (default: from the file)")


def run(args) -> int:
    from come.data.datacard import write_datacard
    card = write_datacard(args.coco, args.out, args.name)
    c = card["counts"]
    print(f"{card['dataset']}: {c['images']} images, {c['boxes']} boxes, {c['groups']} groups -> {args.out}")
    return 0
