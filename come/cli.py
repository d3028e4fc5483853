"""`come` command line: one subcommand per module in `come/commands/`.

Each module defines `configure(parser)` (its arguments) and `run(args) -> int`. Modules are
imported only when their subcommand runs, so `come --help` stays fast and light.

Expected failures (a bad config: exit 2; a missing, malformed or damaged file, a refused
operation: exit 1) print one line naming the file; only bugs keep a traceback, and
COME_DEBUG=1 shows the traceback always.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from come import __version__
from come.config import ConfigError
from come.utils import warm
from come.utils.errors import ComeError

# failures caused by the input or the environment, not by a bug: one line, exit 1
EXPECTED = (ComeError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
            PermissionError, ValueError, TimeoutError)

# name -> (module, one-line help). Add a subcommand by adding a module and a row here.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("come.commands.synth", "generate the embedded synthetic ultrasound benchmark"),
    "fetch": ("come.commands.fetch", "download a public dataset (sha256-checked) or print manual steps"),
    "convert": ("come.commands.convert", "convert a dataset's native format to COCO with source ids"),
    "split": ("come.commands.split", "seeded, grouped, stratified 8:2 split of one dataset"),
    "merge": ("come.commands.merge", "intra-/inter-organ merges of split files"),
    "datacard": ("come.commands.datacard", "data card (JSON + figure) of a converted dataset"),
    "prompts": ("come.commands.prompts", "build image-text prompt pairs for the semantic expert"),
    "pretrain-semantic": ("come.commands.pretrain_semantic", "pretrain the embedded semantic expert on a synthetic corpus"),
    "finetune-semantic": ("come.commands.finetune_semantic", "fine-tune the semantic shared expert (CLIP)"),
    "pretrain-structure": ("come.commands.pretrain_structure", "MIM-pretrain or load the structure shared expert"),
    "train": ("come.commands.train", "train one detector run"),
    "evaluate": ("come.commands.evaluate", "COCO evaluation of a trained run per dataset"),
    "grid": ("come.commands.grid", "list / validate the experiment grid"),
    "summarize": ("come.commands.summarize", "collect every run's metrics into summary.csv"),
    "tables": ("come.commands.tables", "build the paper tables beside the paper's numbers"),
    "figures": ("come.commands.figures", "draw the paper figures"),
    "report": ("come.commands.report", "write results/README.md, the index of tables and figures"),
    "config": ("come.commands.config", "show the resolved config or export its JSON schema"),
    "readme": ("come.commands.readme", "regenerate README.md's Measured table and demo preview"),
    "warm": ("come.commands.warm", "start/stop the warm server that saves local jobs their torch import"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="come", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"come {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        if name == load:
            importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None and os.environ.get(warm.ENV_SOCKET):
        # a local workflow job: let the warm server (come warm start) run it, else run it here
        code = warm.run_warm(sys.argv[1:])
        if code is not None:
            return code
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(name if name in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (ConfigError, *EXPECTED, KeyboardInterrupt) as exc:
        if os.environ.get("COME_DEBUG"):
            raise
        if isinstance(exc, KeyboardInterrupt):
            print(f"come {args.command}: interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, ConfigError):
            print(f"come {args.command}: config error: {exc}", file=sys.stderr)
            return 2
        print(f"come {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
