"""Subcommand modules: each exposes `configure(parser)` and `run(args) -> int`."""
from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The common `--config FILE --set key=value ...` pair."""
    parser.add_argument("--config", default="config/config.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=2 (repeatable)")
