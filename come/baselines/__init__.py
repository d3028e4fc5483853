"""Table 2 baselines beside our DINO family: YOLOv10, CerberusDet (ultralytics modules) and
Open-GroundingDINO (Grounding DINO's parts on our DINO). `come train` / `come evaluate`
dispatch here by `model.arch`:

    is_baseline(cfg)                 # True for yolov10 | cerberusdet (own loop, own evaluator input)
    train_baseline(cfg, out_dir)     # -> checkpoints/last.pt
    evaluate_baseline(cfg, run_dir)  # -> metrics.json dict (scored by come.engine.coco_eval)

Grounding DINO runs through the regular engine with its own `DetectorParts`
(`come.baselines.grounding.parts.grounding_parts`), selected in `come.engine.parts.default_parts`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from come.config.schema import Config

YOLO_ARCHS = ("yolov10", "cerberusdet")


def table_notes(cfg: Config) -> dict[str, str]:
    """Method -> what our row of that baseline is (shown under the tables by `come tables`)."""
    from come.baselines.grounding.text import encoder_label

    b = cfg.baselines
    return {"YOLOv10": f"ultralytics {b.yolo.variant}, trained from "
                       f"{'a local checkpoint' if b.yolo.pretrained else 'scratch'} on our splits",
            "CerberusDet": f"our re-implementation on a shared ultralytics {b.cerberus.variant} trunk, "
                           "one head per dataset",
            "Open-GroundingDINO": f"Grounding DINO parts on our DINO; text encoder "
                                  f"{encoder_label(b.grounding.text_encoder)}"}


def is_baseline(cfg: Config) -> bool:
    """True when the run's detector is trained by come.baselines' own YOLO loop."""
    return cfg.model.arch in YOLO_ARCHS


def train_baseline(cfg: Config, out_dir: str | Path) -> Path:
    from come.baselines.yolo_train import train_yolo

    return train_yolo(cfg, out_dir)


def evaluate_baseline(cfg: Config, run_dir: str | Path, checkpoint: Optional[Path] = None) -> dict:
    from come.baselines.yolo_predict import evaluate_yolo

    return evaluate_yolo(cfg, run_dir, checkpoint)
