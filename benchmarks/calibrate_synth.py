"""Measure the real lesion/speckle statistics the synthetic sources are compared with.

    come convert BUSBRA --raw ../shared/data/busbra --out /tmp/real/BUSBRA
    come convert DDTI_PRE --raw ../shared/data/ddti --out /tmp/real/DDTI
    python benchmarks/calibrate_synth.py --real /tmp/real [--synth results/data] [--write]

Prints, per organ, the real statistics (BUS-BRA: breast, DDTI crops: thyroid) and, with --synth,
every synthetic source's distance to its organ's reference (come.data.synth.calibration) beside
its distance before calibration (come/data/synth/calibration_before.json, measured at 49b3986);
--write stores the reference quantiles in come/data/synth/reference_stats.json (what the data
cards of the embedded benchmark compare against; a user's machine has no real data).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from come.config import ORGAN_OF  # noqa: E402
from come.data.coco import load_coco  # noqa: E402
from come.data.synth import calibration as cal  # noqa: E402

REAL = {"breast": ("BUSBRA", "BUS-BRA (complete release)"), "thyroid": ("DDTI", "DDTI (public 300x300 crops)")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True, help="folder with BUSBRA/ and DDTI/ from `come convert`")
    ap.add_argument("--synth", default=None, help="synthetic data root (results/data)")
    ap.add_argument("--images", type=int, default=150, help="real images sampled per dataset")
    ap.add_argument("--write", action="store_true", help=f"write {cal.REFERENCE_FILE}")
    args = ap.parse_args(argv)
    real = {}
    for organ, (ds, label) in REAL.items():
        real[organ] = cal.image_stats(load_coco(Path(args.real) / ds / "annotations.json"), args.real, args.images)
        print(organ, label, json.dumps(cal.summary(real[organ])))
    if args.write:
        entry = {o: cal.reference_entry(real[o], REAL[o][1]) for o in REAL}
        text = json.dumps({"measured_by": "python benchmarks/calibrate_synth.py --real <converted> --write",
                           "images_per_dataset": args.images, "organs": entry}, indent=1, sort_keys=True)
        cal.REFERENCE_FILE.write_text(text + "\n")
        print(f"wrote {cal.REFERENCE_FILE}")
    if args.synth:
        before = cal.load_before()
        for ds, organ in ORGAN_OF.items():
            coco_path = Path(args.synth) / ds / "annotations.json"
            if coco_path.is_file():
                d = cal.distance(real[organ], cal.image_stats(load_coco(coco_path), args.synth, 40))
                b = before.get(ds, {})
                print(f"{ds:7s} vs {REAL[organ][0]} (before -> now): "
                      + ", ".join(f"{k} {b.get(k, float('nan')):.3f} -> {v:.3f}" for k, v in d.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
