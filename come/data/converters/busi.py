"""BUSI (Al-Dhabyani et al. 2020), Kaggle layout.

`Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (n).png` with `<class> (n)_mask.png` and,
for further lesions, `_mask_1.png`, `_mask_2.png`, ... Each mask file is one lesion. Normal
images have (empty) masks and no lesion. No patient id is published: group = the image.
The paper counts 633 BUSI cases, i.e. the lesion images only: `normal` images are left out
unless `ctx.keep_normal` (config `data.keep_normal: true`); the count left out is recorded.
"""
from __future__ import annotations

import re
from pathlib import Path

from come.data.converters.base import ConvertContext, list_images
from come.data.converters.common import Pair, convert_pairs, find_root, out_name

CLASSES = ("benign", "malignant", "normal")
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<k>\d+))?$")


def convert(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, list(CLASSES), "BUSI")
    pairs: list[Pair] = []
    for cls in CLASSES:
        files = list_images(root / cls)
        if cls == "normal" and not ctx.keep_normal:
            ctx.excluded["normal"] = sum(1 for f in files if not _MASK.match(f.stem))
            ctx.notes.append(f"{ctx.excluded['normal']} normal images left out (data.keep_normal: false)")
            continue
        masks: dict[str, list[tuple[int, Path]]] = {}
        images = []
        for f in files:
            m = _MASK.match(f.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append((int(m.group("k") or 0), f))
            else:
                images.append(f)
        for img in images:
            found = [p for _, p in sorted(masks.pop(img.stem, []))]
            label = f"{cls}/{img.name}"
            if not found:
                ctx.quarantine.add(label, "missing_mask", f"expected {img.stem}_mask.png")
                continue
            pairs.append(Pair(img, found, cls, None, out_name(img.name), label,
                              expect_lesion=cls != "normal", extra={"native_id": f"{cls}/{img.stem}"}))
        for stem, orphans in sorted(masks.items()):
            for _, p in orphans:
                ctx.quarantine.add(f"{cls}/{p.name}", "missing_image", f"mask without image {stem}.png")
    convert_pairs(ctx, pairs, one_lesion_per_mask=True)
