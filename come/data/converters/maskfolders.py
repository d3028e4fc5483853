"""Image-folder + mask-folder layouts (thyroid sets and BUSC); each mask component is a lesion.

* TN3K (Gong et al. 2021): `{trainval,test}-image/`, `{trainval,test}-mask/` (same names),
  `label4trainval.csv`, `label4test.csv` (`name,label`, 0 benign / 1 malignant).
* TN-SCUI 2020 challenge: `image/`, `mask/` (same names), `train.csv` (`ID,CATE`, 0/1).
* TUS (Kaggle eiraoi/thyroidultrasound): 256x256 images and binary masks in two folders
  (`images/` + `masks/`, same names); no pathology published. Its publisher describes it as DDTI
  re-processed (same patients): names of the form `<case>_<n>` record `ddti_case` (group = that
  case), the key `come split --align-with` uses to keep a patient on one side of both splits.
* TUD (NEU-LX/TUD-Datebase): `images/{training,test}/`, `annotations/{training,test}/`
  (512x512, label values 0/1), `normal_thyroid/` (no nodule); no pathology published.
* BUSC (Mendeley vckdnhtw26, masks for Rodrigues 2017): `{benign,malignant}/` each with either
  `images/` + `masks/` sub-folders or `<name>_mask.<ext>` beside `<name>.<ext>`.
Masks are matched by file stem (any image extension).
"""
from __future__ import annotations

from pathlib import Path

from come.data.converters.base import ConvertContext, LayoutError, list_images
from come.data.converters.common import (BINARY_PATHOLOGY, Pair, convert_pairs, find_root, out_name,
                                         read_label_csv)

MASK_SUFFIXES = ("_mask", "_Mask", "_gt", "_GT", "_label")


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in list_images(folder)}


def pair_folders(ctx: ConvertContext, image_dir: Path, mask_dir: Path | None, tag: str,
                 labels: dict[str, str] | None, expect_lesion: bool = True) -> list[Pair]:
    """Pairs of an image folder and a same-name mask folder (mask_dir None = no masks)."""
    masks = _by_stem(mask_dir) if mask_dir is not None else {}
    pairs = []
    for img in list_images(image_dir):
        label = f"{tag}/{img.name}"
        pathology = "normal" if not expect_lesion else "unknown"
        if labels is not None:
            raw_label = labels.get(img.stem)
            if raw_label is None:
                ctx.quarantine.add(label, "missing_label", "no row in the label file")
                continue
            pathology = BINARY_PATHOLOGY.get(raw_label.lower(), "unknown")
        mask_list: list[Path] = []
        if mask_dir is not None:
            mask = masks.get(img.stem)
            if mask is None:
                ctx.quarantine.add(label, "missing_mask", f"no {img.stem}.* in {mask_dir.name}/")
                continue
            mask_list = [mask]
        pairs.append(Pair(img, mask_list, pathology, None, out_name(tag, img.name), label,
                          expect_lesion=expect_lesion, extra={"native_id": f"{tag}/{img.stem}"}))
    return pairs


def convert_tn3k(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["trainval-image", "trainval-mask", "test-image", "test-mask"], "TN3K")
    pairs = []
    for part, csv_name in (("trainval", "label4trainval.csv"), ("test", "label4test.csv")):
        labels = read_label_csv(root / csv_name)
        pairs += pair_folders(ctx, root / f"{part}-image", root / f"{part}-mask", part, labels)
    convert_pairs(ctx, pairs, one_lesion_per_mask=False)


def convert_tnscui(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["image", "mask", "train.csv"], "TN-SCUI")
    labels = read_label_csv(root / "train.csv")
    convert_pairs(ctx, pair_folders(ctx, root / "image", root / "mask", "tnscui", labels),
                  one_lesion_per_mask=False)


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def convert_tus(ctx: ConvertContext, raw: Path) -> None:
    img_names, mask_names = ("images", "image", "Images", "img"), ("masks", "mask", "Masks", "labels")
    root = None
    for cand in [Path(raw)] + sorted(p for p in Path(raw).rglob("*") if p.is_dir()):
        if _first_dir(cand, img_names) and _first_dir(cand, mask_names):
            root = cand
            break
    if root is None:
        raise LayoutError(f"{raw}: not a TUS layout: expected an images/ and a masks/ folder")
    pairs = pair_folders(ctx, _first_dir(root, img_names), _first_dir(root, mask_names), "tus", None)
    from come.data.converters.ddti import ddti_case
    for p in pairs:          # TUS is DDTI re-processed: keep DDTI's case where the name carries it
        case = ddti_case(p.image.stem)
        if case:
            p.extra = {**(p.extra or {}), "ddti_case": case}
            p.group_id = f"TUS:ddticase{case}"
    convert_pairs(ctx, pairs, one_lesion_per_mask=False)


def convert_tud(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["images", "annotations"], "TUD")
    pairs = []
    for part in ("training", "test"):
        if not (root / "images" / part).is_dir():
            raise LayoutError(f"{root}/images/{part}: missing (TUD layout: images/{{training,test}})")
        pairs += pair_folders(ctx, root / "images" / part, root / "annotations" / part, part, None)
    if (root / "normal_thyroid").is_dir():
        pairs += pair_folders(ctx, root / "normal_thyroid", None, "normal", None, expect_lesion=False)
    convert_pairs(ctx, pairs, one_lesion_per_mask=False)


def convert_busc(ctx: ConvertContext, raw: Path) -> None:
    root = find_root(raw, ["benign", "malignant"], "BUSC")
    pairs = []
    for cls in ("benign", "malignant"):
        folder = root / cls
        img_dir, mask_dir = _first_dir(folder, ("images", "image")), _first_dir(folder, ("masks", "mask"))
        if img_dir and mask_dir:
            pairs += pair_folders(ctx, img_dir, mask_dir, cls, {p.stem: cls for p in list_images(img_dir)})
            continue
        files = list_images(folder)
        masks = {}
        for f in files:
            for suf in MASK_SUFFIXES:
                if f.stem.endswith(suf):
                    masks[f.stem[: -len(suf)]] = f
        for img in files:
            if img in masks.values():
                continue
            label = f"{cls}/{img.name}"
            if img.stem not in masks:
                ctx.quarantine.add(label, "missing_mask", f"expected {img.stem}_mask.*")
                continue
            pairs.append(Pair(img, [masks[img.stem]], cls, None, out_name(cls, img.name), label,
                              extra={"native_id": f"{cls}/{img.stem}"}))
    convert_pairs(ctx, pairs, one_lesion_per_mask=False)
