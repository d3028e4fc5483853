"""Helpers of the fault tests: a snapshot of a folder tree to prove nothing else changed."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """{relative path: kind + content hash or link target} of every entry under `root`
    (links not followed, hidden files included); entries under `skip` are left out."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if skip is not None and (p == skip or skip in p.parents):
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out
