"""Free-disk preflight: refuse, with the numbers, work that would stop half-way for lack of space.

A pip install or a training job that meets a full disk fails deep inside a library with
"[Errno 28] No space left on device" and leaves a half-built venv or results tree. This checks
first and names the directory, what is free and what the work needs.

Standard library only: `make venv` runs this file by path with the system Python, before the
package (or torch) is installed:

    python3 come/utils/diskspace.py .venv 8 "the Python environment (.venv)"
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

GIB = 2 ** 30


class DiskSpaceError(OSError):
    """Too little free space under a directory; the message names it and both amounts."""


def existing_parent(path: str | Path) -> Path:
    """`path` itself when it exists, else its nearest existing parent (where it would be made)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def require_free(path: str | Path, need_gib: float, what: str) -> float:
    """Raise DiskSpaceError unless `need_gib` GiB are free where `path` lives; return the free GiB."""
    if need_gib < 0:
        raise ValueError(f"need_gib must be >= 0, got {need_gib}")
    where = existing_parent(path)
    free = shutil.disk_usage(where).free / GIB
    if free < need_gib:
        raise DiskSpaceError(
            f"{Path(path)}: {free:.1f} GiB free on its disk ({where}), "
            f"{what} needs about {need_gib:g} GiB; free some space "
            f"and run again")
    return free


def main(argv: list[str] | None = None) -> int:
    """`diskspace.py PATH NEED_GIB [WHAT]`: exit 1 with the message when too little is free."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: diskspace.py PATH NEED_GIB [WHAT]", file=sys.stderr)
        return 2
    try:
        require_free(args[0], float(args[1]), args[2] if len(args) == 3 else "this step")
    except (DiskSpaceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
