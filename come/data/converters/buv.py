"""BUV (Lin et al., MICCAI 2022): breast ultrasound videos with per-frame boxes.

Published layout (CVA-Net): `rawframes/{benign,malignant}/<video>/<frame>.png` plus COCO-VID
JSON files (`train.json`, `val.json`, or `annotations/instances_*.json`): `videos`, `images`
(`file_name` relative to `rawframes/`, `video_id`, `frame_id`), `annotations` (`bbox` xywh px).
Group = video (frames of one video never straddle a split); pathology = the video's class.
"""
from __future__ import annotations

import json
from pathlib import Path

from come.data.converters.base import ConvertContext, LayoutError
from come.data.converters.common import out_name


def _annotation_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
    return [p for p in files if p.is_file()]


def _find_root(raw: Path) -> Path:
    for cand in [raw] + sorted(p for p in raw.iterdir() if p.is_dir()):
        if (cand / "rawframes").is_dir() and _annotation_files(cand):
            return cand
    raise LayoutError(f"{raw}: not a BUV layout: expected rawframes/ and train.json/val.json "
                      "(or annotations/*.json)")


def _pathology(file_name: str, cat_name: str) -> str:
    for token in [cat_name.lower()] + [p.lower() for p in Path(file_name).parts]:
        if token in ("benign", "malignant"):
            return token
    return "unknown"


def convert(ctx: ConvertContext, raw: Path) -> None:
    root = _find_root(Path(raw))
    seen: set[str] = set()
    for ann_file in _annotation_files(root):
        with ctx.timed("read"):
            try:
                data = json.loads(ann_file.read_text())
                videos = {v["id"]: v.get("name", str(v["id"])) for v in data.get("videos", [])}
                cats = {c["id"]: c.get("name", "") for c in data.get("categories", [])}
                images, anns = data["images"], data["annotations"]
            except (ValueError, KeyError, TypeError) as exc:
                ctx.quarantine.add(ann_file.name, "bad_annotation", f"{type(exc).__name__}: {exc}")
                continue
        by_image: dict[int, list[dict]] = {}
        for a in anns:
            by_image.setdefault(a.get("image_id"), []).append(a)
        for im in sorted(images, key=lambda i: str(i.get("file_name", ""))):
            fn = str(im.get("file_name", ""))
            if not fn or fn in seen:
                continue
            seen.add(fn)
            src = root / "rawframes" / fn
            if not src.is_file():
                src = root / fn
            size = ctx.read_image(src, fn)
            if size is None:
                continue
            boxes, cat_name = [], ""
            for a in by_image.get(im.get("id"), []):
                x, y, w, h = (float(v) for v in a["bbox"])
                x0, y0 = max(x, 0.0), max(y, 0.0)
                w, h = min(x + w, size[0]) - x0, min(y + h, size[1]) - y0
                if w > 0 and h > 0:
                    boxes.append([x0, y0, w, h])
                    cat_name = cats.get(a.get("category_id"), cat_name)
            if not boxes:
                ctx.quarantine.add(fn, "missing_box", f"{ann_file.name}: no usable box")
                continue
            video = videos.get(im.get("video_id"), str(Path(fn).parent))
            ctx.add_image(src, out_name(*Path(fn).parts), size, _pathology(fn, cat_name),
                          f"BUV:video{video}", boxes, frame_id=im.get("frame_id"), native_id=fn)
