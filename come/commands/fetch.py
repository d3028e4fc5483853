"""`come fetch NAME --dest DIR`: download a registered dataset, or print its manual steps (exit 3)."""
from __future__ import annotations

import sys
from pathlib import Path

from come.commands import add_config_args


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("name", help="registry key, e.g. BUSBRA (see config/datasets.yaml)")
    parser.add_argument("--dest", required=True, help="folder that receives the raw files")
    parser.add_argument("--registry", default=None, help="registry file (default: data.registry of the config)")
    parser.add_argument("--url", default=None, help="override the source URL (a mirror)")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the download (overrides the registry)")
    parser.add_argument("--timeout", type=float, default=30.0, help="socket timeout in seconds")
    parser.add_argument("--force", action="store_true",
                        help="fetch even if --dest is not empty (replaces only the files the download brings)")
    parser.add_argument("--allow-file-url", action="store_true",
                        help="accept a file:// URL (a local mirror); by default only http(s)")


AUTO_RELEASE = ("DDTI",)   # datasets whose release `auto` recognises (come.data.converters.ddti)


def resolve_entry(args, raw: str | Path | None = None):
    """Registry entry of `args.name`: the config's `data.registry_entries` may redirect it
    (e.g. DDTI -> DDTI_PRE), or say `auto`: the release is then recognised from the files in
    `raw` (`come convert --raw`; before any file is placed, as for `come fetch`, the dataset's
    own entry). `--registry` overrides the config's `data.registry` file."""
    from come.data.registry import RegistryError, get_entry

    registry, name = args.registry, args.name
    if Path(args.config).is_file():
        from come.config import load_config
        data = load_config(args.config, args.overrides).data
        registry = registry or data.registry
        name = data.registry_entries.get(name, name)
        if name == "auto":
            if args.name not in AUTO_RELEASE:
                raise RegistryError(f"{args.config}: data.registry_entries.{args.name}: auto is only known for "
                                    f"{sorted(AUTO_RELEASE)}; name the registry entry")
            name = args.name
            if raw is not None and Path(raw).is_dir() and any(Path(raw).iterdir()):
                from come.data.converters.ddti import detect_release
                name = detect_release(raw)
    return get_entry(name, registry)


def run(args) -> int:
    from come.data.fetch import EXIT_MANUAL, FetchError, fetch, manual_steps
    from come.data.registry import RegistryError

    try:
        entry = resolve_entry(args)
    except RegistryError as exc:
        print(f"come fetch: {exc}", file=sys.stderr)
        return 2
    url = args.url or entry.url
    if url is None:
        dest = Path(args.dest)
        if dest.is_dir() and any(not p.name.startswith(".") for p in dest.iterdir()):
            print(f"{args.name}: manual source; files already placed in {dest} (nothing to fetch)")
            return 0
        print(manual_steps(entry, dest))
        return EXIT_MANUAL
    sha = args.sha256 or entry.archive_sha256     # a mirror must serve the same archive
    try:
        rec = fetch(url, args.dest, sha, timeout=args.timeout, force=args.force,
                    allow_file=args.allow_file_url)
    except (FetchError, ValueError) as exc:
        print(f"come fetch: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {rec}")
    return 0
