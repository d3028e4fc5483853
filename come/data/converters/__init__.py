"""Native format -> project COCO converters, one module per format family.

`convert_dataset` runs one converter into a temporary twin of the output folder, writes
`annotations.json`, `quarantine.json` and the data card, then swaps the folder into place, so a
failed run never leaves half a dataset and two runs give byte-identical files. The swap only
ever replaces a previous conversion: an `out` holding anything else, or equal to, inside or
above `raw`, is refused before anything is written (`check_out`).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from come.data.converters import busbra, busi, buv, ddti, maskfolders
from come.data.converters.base import ConvertContext, LayoutError
from come.utils.io import public_mode

# files only our conversions (or the synthetic benchmark) write; Snakemake deletes a job's
# declared output (annotations.json) before re-running it, so any one of them will do
CONVERSION_MARKERS = ("annotations.json", "quarantine.json", "convert_summary.json")


def check_out(raw: str | Path, out: str | Path) -> None:
    """Refuse an `out` that a conversion must not replace: equal to, inside or above `raw`, or
    an existing non-empty folder that is not a previous conversion (it would be deleted)."""
    raw_r, out_r = Path(raw).resolve(), Path(out).resolve()
    if out_r == raw_r or raw_r in out_r.parents or out_r in raw_r.parents:
        rel = "equal to" if out_r == raw_r else ("inside" if raw_r in out_r.parents else "above")
        raise LayoutError(f"--out {out} is {rel} --raw {raw}: the conversion replaces --out "
                          "wholesale; pick a separate folder, e.g. results/data/<DS>")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LayoutError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).is_file() for m in CONVERSION_MARKERS):
        raise LayoutError(f"--out {out} exists and is not a previous conversion (none of "
                          f"{', '.join(CONVERSION_MARKERS)}); it would be replaced wholesale: "
                          "empty it or pick another folder")

# registry `format` -> (converter, verified on real files in this project)
FORMATS: dict[str, tuple[Callable[[ConvertContext, Path], None], bool]] = {
    "busi_kaggle": (busi.convert, False),
    "busbra": (busbra.convert, True),
    "buv_cocovid": (buv.convert, False),
    "busc_mendeley": (maskfolders.convert_busc, False),
    "ddti_xml": (ddti.convert_original, False),
    "ddti_preprocessed": (ddti.convert_preprocessed, True),
    "ddti_neu": (ddti.convert_neu, False),
    "tn3k": (maskfolders.convert_tn3k, False),
    "tnscui": (maskfolders.convert_tnscui, False),
    "tus_kaggle": (maskfolders.convert_tus, False),
    "tud_neu": (maskfolders.convert_tud, False),
}


def convert_dataset(name: str, fmt: str, organ: str, raw: str | Path, out: str | Path,
                    link: bool = True, logger=None, card: bool = True,
                    project_name: str | None = None, keep_normal: bool = False) -> dict:
    """Convert `raw` (native layout `fmt`) into `out`; return the run summary.

    `project_name` is the `source` written on every image (default: `name`; DDTI_PRE -> DDTI).
    `keep_normal`: keep BUSI's lesion-free `normal` images (default: left out, as the paper).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown native format {fmt!r} (known: {sorted(FORMATS)})")
    func, verified = FORMATS[fmt]
    out = Path(out)
    check_out(raw, out)
    source = project_name or name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = public_mode(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        ctx = ConvertContext(dataset=source, organ=organ, out=tmp, prefix=f"{out.name}/images", link=link,
                             keep_normal=keep_normal)
        ctx.quarantine.logger = logger
        func(ctx, Path(raw))
        if not ctx.builder.images:
            raise LayoutError(f"{raw}: {name}: no image could be converted "
                              f"(quarantined: {ctx.quarantine.counts()})")
        ctx.builder.info = {"dataset": source, "registry_name": name, "format": fmt,
                            "verified_on_real_files": verified, "organ": organ,
                            **({"excluded_by_config": ctx.excluded} if ctx.excluded else {})}
        with ctx.timed("write"):
            ctx.builder.write(tmp / "annotations.json")
            ctx.quarantine.write(tmp / "quarantine.json")
        summary = ctx.summary()
        summary.update({"registry_name": name, "format": fmt, "verified_on_real_files": verified,
                        "excluded_by_config": dict(ctx.excluded)})
        if card:
            from come.data.datacard import write_datacard
            write_datacard(tmp / "annotations.json", tmp, name=source)
        _swap_into_place(tmp, out)
        return summary
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` (old content removed only after the new one is complete)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["FORMATS", "convert_dataset", "ConvertContext", "LayoutError"]
