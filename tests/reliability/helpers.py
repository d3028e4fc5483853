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


def write_png(path: Path, size: tuple[int, int] = (40, 30), box: tuple[int, int, int, int] | None = None,
              seed: int = 0) -> Path:
    """A noisy grayscale PNG of `size` (w, h); with `box` (x, y, w, h) a binary mask instead."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if box is None:
        arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    else:
        arr = np.zeros((size[1], size[0]), dtype=np.uint8)
        arr[box[1]:box[1] + box[3], box[0]:box[0] + box[2]] = 255
    Image.fromarray(arr).save(path)
    return path


def busbra_raw(root: Path, n: int = 3) -> Path:
    """A BUS-BRA release of `n` images in its documented layout."""
    lines = ["ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"]
    for k in range(1, n + 1):
        rid = f"bus_{k:04d}-l"
        write_png(root / "Images" / f"{rid}.png", seed=k)
        write_png(root / "Masks" / f"mask_{k:04d}-l.png", box=(5, 5, 10, 8))
        lines.append(f'{rid},{k},x,benign,4,dev,40,30,left,"[6,6,9,7]"')
    (root / "bus_data.csv").write_text("\n".join(lines) + "\n")
    return root
