"""BUS-BRA (Gomez-Flores et al. 2024): Images/bus_XXXX-s.png, Masks/mask_XXXX-s.png, bus_data.csv.

Boxes come from the masks (one lesion per image; speckle components dropped) and are checked
against the published `BBOX` column (1-based MATLAB convention: x = xmin + 1, w = xmax - xmin);
a disagreement of more than 2 px is flagged (`bbox_disagrees`), not hidden. Group = patient
(`Case`), pathology = biopsy result (`Pathology`).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from come.data.converters.base import ConvertContext, LayoutError, list_images, read_text
from come.data.converters.common import find_root

BBOX_TOL_PX = 2.0
REQUIRED_COLUMNS = ("ID", "Case", "Pathology")


def published_box(text: str) -> list[float] | None:
    """`"[x,y,w,h]"` (1-based) -> pixel-edge `[x, y, w, h]` comparable to mask boxes."""
    try:
        x, y, w, h = (float(v) for v in json.loads(text))
    except (ValueError, TypeError):
        return None
    return [x - 1.0, y - 1.0, w + 1.0, h + 1.0]


def convert(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["Images", "Masks", "bus_data.csv"], "BUS-BRA")
    table = root / "bus_data.csv"
    reader = csv.DictReader(io.StringIO(read_text(table), newline=""))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise LayoutError(f"{table}: missing column(s) {missing} (have {reader.fieldnames})")
    rows = {r["ID"].strip(): r for r in reader}
    seen = set()
    for img in list_images(root / "Images", ctx.quarantine):
        key = img.stem
        seen.add(key)
        row = rows.get(key)
        if row is None:
            ctx.quarantine.add(img.name, "missing_label", "no row in bus_data.csv")
            continue
        size = ctx.read_image(img, img.name)
        if size is None:
            continue
        w, h = (row.get("Width") or "").strip(), (row.get("Height") or "").strip()
        if w and h and (w, h) != (str(size[0]), str(size[1])):
            ctx.quarantine.add(img.name, "size_disagrees", f"csv says {w}x{h}, file is {size[0]}x{size[1]}")
        mask = ctx.read_mask(root / "Masks" / f"mask_{key[4:]}{img.suffix}", size, img.name)
        if mask is None:
            continue
        boxes = ctx.boxes_from_mask(mask, img.name, one_lesion=True)
        if not boxes:
            ctx.quarantine.add(img.name, "empty_mask", "mask has no foreground pixel")
            continue
        pub = published_box(row.get("BBOX", ""))
        if pub is not None:
            diff = max(abs(a - b) for a, b in zip(boxes[0], pub))
            if diff > BBOX_TOL_PX:
                ctx.quarantine.add(img.name, "bbox_disagrees",
                                   f"mask box {boxes[0]} vs BBOX {row['BBOX']} ({diff:.0f} px)")
        pathology = row.get("Pathology", "").strip().lower()
        ctx.add_image(img, img.name, size, pathology if pathology in ("benign", "malignant") else "unknown",
                      f"BUSBRA:case{row['Case'].strip()}", boxes,
                      birads=row.get("BIRADS", ""), histology=row.get("Histology", ""),
                      device=row.get("Device", ""), native_id=key)
    for key in sorted(set(rows) - seen):
        ctx.quarantine.add(f"{key}.png", "missing_image", "row in bus_data.csv but no file in Images/")
