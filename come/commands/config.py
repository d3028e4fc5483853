"""`come config`: print the resolved config, or export the JSON schema."""
from __future__ import annotations

import json

import yaml

from come.commands import add_config_args
from come.config import load_config, to_dict


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--schema", action="store_true", help="print the JSON schema instead")


def run(args) -> int:
    if args.schema:
        from come.config.jsonschema import config_json_schema
        print(json.dumps(config_json_schema(), indent=1))
        return 0
    print(yaml.safe_dump(to_dict(load_config(args.config, args.overrides)), sort_keys=False))
    return 0
