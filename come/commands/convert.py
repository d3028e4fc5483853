"""`come convert NAME --raw DIR --out DIR`: native format -> project COCO + quarantine + data card."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("name", help="registry key, e.g. BUSBRA, DDTI_PRE (see config/datasets.yaml)")
    parser.add_argument("--raw", required=True, help="folder holding the native files")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/data/<DS>")
    parser.add_argument("--registry", default=None, help="registry file (default: data.registry of the config)")
    parser.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")


def run(args) -> int:
    from come.commands.fetch import resolve_entry
    from come.data.converters import FORMATS, LayoutError, convert_dataset
    from come.data.quarantine import ConversionWarning
    from come.data.registry import RegistryError
    from come.utils.io import get_logger, write_json

    keep_normal = False
    if Path(args.config).is_file():
        from come.config import load_config
        keep_normal = load_config(args.config, args.overrides).data.keep_normal
    try:
        entry = resolve_entry(args, raw=args.raw)
    except LayoutError as exc:
        print(f"come convert: {exc}", file=sys.stderr)
        return 1
    except RegistryError as exc:
        print(f"come convert: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    logger = get_logger(f"come.convert.{args.name}")
    if entry.name != args.name:
        logger.info("%s: converting %s as registry entry %s", args.name, args.raw, entry.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConversionWarning)   # the logger already prints them
            summary = convert_dataset(entry.name, entry.format, entry.organ, args.raw, out,
                                      link=not args.copy, logger=logger, project_name=entry.project_name,
                                      keep_normal=keep_normal)
    except (LayoutError, ValueError, FileNotFoundError) as exc:
        print(f"come convert: {exc}", file=sys.stderr)
        return 1
    summary["expected_images"] = expected = entry.expected_images
    seen = summary["images"] + summary["quarantined"] + sum(summary["excluded_by_config"].values())
    if expected is not None and seen != expected:
        print(f"warning: {entry.name}: {summary['images']} converted + {summary['quarantined']} quarantined "
              f"= {seen} images, the publisher states {expected}", file=sys.stderr)
    write_json(out / "convert_summary.json", {k: v for k, v in summary.items() if k != "timings_s"})
    print(json.dumps(summary))
    if not FORMATS[entry.format][1]:
        print(f"note: the {entry.format} converter is tested on files built to the documented layout, "
              "not on the real release (verified_on_real_files: false)", file=sys.stderr)
    return 0
