"""DDTI (Pedraza et al. 2015), two layouts.

* original (`DDTI`): `<case>.xml` + `<case>_<n>.jpg`. Each XML holds the case's TI-RADS grade
  and one `<mark>` per image whose `<svg>` is a JSON list of freehand polygons
  (`{"points": [{"x":..,"y":..}, ...]}`), one polygon per nodule. Group = case (patient).
* preprocessed (`DDTI_PRE`, /work/shared/data/ddti): `cropped/<img>_<frame>(<k>).png`, one nodule
  per crop, `mask/<same>.gif`, `diagnosis.csv` (no header: name, TI-RADS, binary label).
  Group = source frame (name before `(k)`), so crops of one frame never straddle a split.

* NEU-LX ThyroidDatasets copy (`DDTI_NEU`, the paper's DDTI per the TUD publisher's README):
  `images/{training,test}/`, `annotations/{training,test}/` (same names), 391 + 261 = 652
  images resized to 512x512, masks valued {0, 1}; no grade, no case id -> pathology unknown,
  group = the image unless its name keeps DDTI's `<case>_<n>`.
Every image records `ddti_case` (the DDTI case number) where the file names carry it, the key
that aligns TUS (DDTI re-processed) with DDTI's split (`come.data.splits.align_split`).

Pathology is derived from TI-RADS (2-3 -> benign, 4a-5 -> malignant, none -> unknown): DDTI has
no histopathology; every image records `tirads` and `pathology_basis: "tirads"`.
"""
from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from come.data.converters.base import ConvertContext, LayoutError, list_images, read_text
from come.data.converters.common import candidate_roots, find_root

_CROP = re.compile(r"^(?P<frame>.+?)\((?P<k>\d+)\)$")
_CASE = re.compile(r"^(?P<case>\d+)_(?P<n>\d+)")       # DDTI's `<case>_<n>` image names


def ddti_case(stem: str) -> str:
    """The DDTI case number of an image name `<case>_<n>...`, '' when the name does not carry it."""
    m = _CASE.match(stem)
    return m.group("case") if m else ""


RELEASE_MARKERS = {"DDTI_PRE": ["cropped", "mask", "diagnosis.csv"], "DDTI_NEU": ["images", "annotations"]}


def detect_release(raw: str | Path) -> str:
    """Registry entry of the DDTI release placed in `raw` (`data.registry_entries: {DDTI: auto}`):
    DDTI_PRE (cropped/, mask/, diagnosis.csv), DDTI_NEU (images/, annotations/) or DDTI (the
    publisher's `<case>.xml` files), each in `raw` or up to two folders down. Raises LayoutError
    naming the folder when none or several releases match."""
    raw = Path(raw)
    found = []
    for name, markers in RELEASE_MARKERS.items():
        try:
            find_root(raw, markers, name)
            found.append(name)
        except LayoutError:
            pass
    if raw.is_dir() and any(next(d.glob("*.xml"), None) for d in candidate_roots(raw)):
        found.append("DDTI")
    if len(found) != 1:
        what = "no DDTI release" if not found else f"several DDTI releases ({', '.join(found)})"
        raise LayoutError(f"{raw}: {what} found: expected exactly one of cropped/+mask/+diagnosis.csv "
                          "(DDTI_PRE), images/+annotations/ (DDTI_NEU) or <case>.xml files (DDTI); "
                          "or name the release in data.registry_entries")
    return found[0]


TIRADS_GRADES = ("2", "3", "4", "4a", "4b", "4c", "5", "none", "")   # documented values


def pathology_from_tirads(grade: str) -> str:
    g = (grade or "").strip().lower()
    if g in ("2", "3"):
        return "benign"
    if g in ("4", "4a", "4b", "4c", "5"):
        return "malignant"
    return "unknown"


def convert_preprocessed(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["cropped", "mask", "diagnosis.csv"], "DDTI (preprocessed)")
    labels: dict[str, tuple[str, str]] = {}
    for r in csv.reader(io.StringIO(read_text(root / "diagnosis.csv"), newline="")):
        if r and r[0].strip():
            r = r + ["", ""]
            labels[r[0].strip()] = (r[1].strip(), r[2].strip())
    for img in list_images(root / "cropped", ctx.quarantine):
        name = img.stem
        if name not in labels:
            ctx.quarantine.add(img.name, "missing_label", "no row in diagnosis.csv")
            continue
        grade, binary = labels[name]
        if grade.lower() not in TIRADS_GRADES:
            ctx.quarantine.add(img.name, "unknown_label", f"TI-RADS grade {grade!r} in diagnosis.csv "
                               f"is not one of {[g for g in TIRADS_GRADES if g]}")
        size = ctx.read_image(img, img.name)
        if size is None:
            continue
        mask_path = next((p for p in (root / "mask").glob(f"{glob_escape(name)}.*")), root / "mask" / f"{name}.gif")
        mask = ctx.read_mask(mask_path, size, img.name)
        if mask is None:
            continue
        boxes = ctx.boxes_from_mask(mask, img.name, one_lesion=True)
        if not boxes:
            ctx.quarantine.add(img.name, "empty_mask", "mask has no foreground pixel")
            continue
        m = _CROP.match(name)
        frame = m.group("frame") if m else name
        pathology = {"1": "malignant", "0": "benign"}.get(binary, pathology_from_tirads(grade))
        ctx.add_image(img, out_crop_name(name, img.suffix), size, pathology, f"DDTI:frame{frame}", boxes,
                      tirads=grade if grade.lower() != "none" else "", pathology_basis="tirads",
                      native_id=name, ddti_case=ddti_case(frame))


def glob_escape(name: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def out_crop_name(name: str, suffix: str) -> str:
    """`100_1(2)` -> `100_1_2.png` (parentheses are awkward in paths)."""
    m = _CROP.match(name)
    return f"{m.group('frame')}_{m.group('k')}{suffix.lower()}" if m else f"{name}{suffix.lower()}"


def polygons_from_svg(text: str) -> list[list[tuple[float, float]]]:
    """JSON list of `{"points": [{"x","y"}...]}` -> list of polygons (list of (x, y))."""
    data = json.loads(text)
    polys = []
    for region in data if isinstance(data, list) else [data]:
        pts = [(float(p["x"]), float(p["y"])) for p in region.get("points", [])]
        if len(pts) >= 3:
            polys.append(pts)
    return polys


def box_of_polygon(pts: list[tuple[float, float]], size: tuple[int, int]) -> list[float] | None:
    """Pixel-edge box of polygon vertices (vertex coordinates are pixel indices), clipped."""
    xs = [min(max(x, 0.0), size[0] - 1.0) for x, _ in pts]
    ys = [min(max(y, 0.0), size[1] - 1.0) for _, y in pts]
    w, h = max(xs) + 1.0 - min(xs), max(ys) + 1.0 - min(ys)
    return [min(xs), min(ys), w, h] if w > 1 and h > 1 else None


def convert_original(ctx: ConvertContext, raw: Path) -> None:
    xmls = sorted(Path(raw).rglob("*.xml"), key=lambda p: (len(p.stem), p.stem))
    if not xmls:
        raise ValueError(f"{raw}: not a DDTI original layout: no <case>.xml file found")
    for xml in xmls:
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            ctx.quarantine.add(xml.name, "bad_annotation", f"XML: {exc}")
            continue
        case = (tree.findtext("number") or xml.stem).strip()
        grade = (tree.findtext("tirads") or "").strip()
        for mark in tree.findall("mark"):
            idx = (mark.findtext("image") or "").strip()
            img = xml.parent / f"{xml.stem}_{idx}.jpg"
            label = img.name
            svg = (mark.findtext("svg") or "").strip()
            try:
                polys = polygons_from_svg(svg) if svg else []
            except (ValueError, KeyError, TypeError) as exc:
                ctx.quarantine.add(label, "bad_annotation", f"{xml.name}: svg: {exc}")
                continue
            size = ctx.read_image(img, label)
            if size is None:
                continue
            with ctx.timed("label"):
                boxes = [b for b in (box_of_polygon(p, size) for p in polys) if b]
            if not boxes:
                ctx.quarantine.add(label, "empty_mask", f"{xml.name}: mark {idx} has no polygon")
                continue
            ctx.add_image(img, img.name, size, pathology_from_tirads(grade), f"DDTI:case{case}", boxes,
                          tirads=grade, pathology_basis="tirads", native_id=img.stem, ddti_case=case)


def convert_neu(ctx: ConvertContext, raw: Path) -> None:
    """The 652-image DDTI of NEU-LX's ThyroidDatasets (see the module docstring)."""
    from come.data.converters.common import Pair, convert_pairs
    from come.data.converters.maskfolders import pair_folders

    root = find_root(raw, ["images", "annotations"], "DDTI (NEU-LX ThyroidDatasets)")
    pairs: list[Pair] = []
    for part in ("training", "test"):
        if not (root / "images" / part).is_dir():
            raise LayoutError(f"{root}/images/{part}: missing (DDTI_NEU layout: images/{{training,test}}, "
                              "annotations/{training,test})")
        for p in pair_folders(ctx, root / "images" / part, root / "annotations" / part, part, None):
            case = ddti_case(p.image.stem)
            p.group_id = f"DDTI:case{case}" if case else None
            p.extra = {**(p.extra or {}), "ddti_case": case}
            pairs.append(p)
    convert_pairs(ctx, pairs, one_lesion_per_mask=False)
