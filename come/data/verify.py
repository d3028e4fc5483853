"""Decode every image of a split when the dataset is built, not mid-epoch.

`verify_images(paths_sizes, cache_dir)` fully decodes each file (threads, PIL releases the GIL
while decoding) and checks its size against the annotation's width x height. Files that passed
are remembered by content hash in `verified.json` of the user cache (`$COME_CACHE_DIR`, else
`$XDG_CACHE_HOME/come` or `~/.cache/come`: outside every tracked output folder), so a second
build (a resume, `come evaluate`) only hashes them. Every bad file is named in one
`ImageCheckError`.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from come.utils.errors import ComeError
from come.utils.io import write_json

CACHE_NAME = "verified.json"
MAX_LISTED = 10


class ImageCheckError(ComeError, ValueError):
    """Images of a split cannot be decoded or do not match their annotation."""


def _check(path: Path, size: tuple[int, int], known: dict[str, str]) -> tuple[str, str | None]:
    """(content sha1, problem or None) of one image; `size` is (width, height)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return "", f"cannot read ({exc.strerror or exc})"
    digest = hashlib.sha1(data).hexdigest()
    want = f"{size[0]}x{size[1]}"
    if known.get(digest) == want:
        return digest, None
    try:
        with Image.open(path) as im:
            im.load()
            got = f"{im.width}x{im.height}"
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a broken file
        return digest, f"cannot be decoded ({type(exc).__name__}: {exc})"
    if got != want:
        return digest, f"decoded size {got} differs from the annotation's width x height {want}"
    return digest, None


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cache_dir() -> Path:
    """Folder of the verification cache (see the module docstring)."""
    if os.environ.get("COME_CACHE_DIR"):
        return Path(os.environ["COME_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "come"


def verify_images(items: list[tuple[Path, tuple[int, int]]], source: str,
                  workers: int | None = None) -> int:
    """Check every (path, (width, height)); return how many were decoded (not cached).

    Raises ImageCheckError naming each bad file (`source`: the split file they come from).
    """
    cache = cache_dir() / CACHE_NAME
    known = _read_cache(cache)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda it: _check(it[0], it[1], known), items))
    bad = [f"{p}: {problem}" for (p, _), (_, problem) in zip(items, results) if problem]
    if bad:
        more = f"; ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise ImageCheckError(f"{source}: {len(bad)} image(s) unusable: " + "; ".join(bad[:MAX_LISTED])
                              + more + " (re-run `come convert`, which quarantines them, or replace the files)")
    fresh = {d: f"{s[0]}x{s[1]}" for (_, s), (d, _) in zip(items, results) if known.get(d) != f"{s[0]}x{s[1]}"}
    if fresh:
        try:
            write_json(cache, {**_read_cache(cache), **fresh}, indent=None)
        except OSError:
            pass                                   # a read-only data root: verified, not cached
    return len(fresh)
