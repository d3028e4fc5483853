"""A known non-zero AP through the real path: detector postprocess -> predictions -> metrics.json
-> `come summarize` -> `come tables` -> table cell, checked against pycocotools.

The stand-in "oracle" reads the lesion (the one bright rectangle of the toy benchmark) off each
image: on BUSI (evaluated at its original size) it returns the true box, AP about 1.0; on DDTI
it returns the box enlarged 1.17x about its centre (IoU about 0.73: a hit at IoU 0.50-0.70, a
miss from 0.75), AP about 0.5.
"""
from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from torch import nn

from come.cli import main
from come.config import to_dict
from come.engine.checkpoint import save_checkpoint
from come.engine.evaluate import evaluate_run
from come.engine.parts import DetectorParts
from come.model.postprocess import postprocess
from tests.coco_reference import pycocotools_ap

from .conftest import tiny_config

GROW = {0: 1.0, 1: 1.17}                  # source id (BUSI, DDTI) -> box scale


class Oracle(nn.Module):
    """One query per image: the bright rectangle's box (cxcywh normalised to the unpadded
    image), scaled by GROW[source]; logits [B, 1, 1], boxes [B, 1, 4]."""

    def forward(self, images, pad_mask, source_ids, targets=None, shared=None):
        boxes = []
        for img, pad, src in zip(images, pad_mask, source_ids.tolist()):
            valid = ~pad
            h, w = int(valid.any(1).sum()), int(valid.any(0).sum())
            x = img[0, :h, :w]
            ys, xs = torch.nonzero(x > (x.max() + x.min()) / 2, as_tuple=True)
            x0, x1 = xs.min().item(), xs.max().item() + 1
            y0, y1 = ys.min().item(), ys.max().item() + 1
            g = GROW[src]
            boxes.append([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, g * (x1 - x0) / w, g * (y1 - y0) / h])
        return {"pred_logits": torch.full((len(images), 1, 1), 4.0),
                "pred_boxes": torch.tensor(boxes)[:, None]}


def oracle_parts() -> DetectorParts:
    return DetectorParts(lambda cfg: Oracle(), lambda cfg: None,
                         lambda out, sizes: postprocess(out, sizes, num_select=10))


def test_known_ap_reaches_the_table_cell(bench, tmp_path):
    """Mutations caught: AP halved in `come.engine.coco_eval.coco_metrics`
    (`"AP": stats[0] / 2`); postprocess scaling boxes by (h, w, h, w) instead of (w, h, w, h);
    the summary storing 3 significant digits (`:.3g`). Each moves a number the test compares
    with pycocotools."""
    runs = tmp_path / "results" / "runs"
    cfg = tiny_config(*bench, data__image_size=56, run__id="oracle", run__method="DINO",
                      run__paradigm="inter-organ", run__tables='["table2_main|inter-organ|DINO|"]',
                      eval__qualitative_per_dataset=0, results=tmp_path / "results")
    save_checkpoint(runs / "oracle" / "checkpoints" / "last.pt",
                    {"model": {}, "step": 1, "epoch": 1, "finished": True})
    metrics = evaluate_run(cfg, runs / "oracle", oracle_parts())
    ref = {ds: pycocotools_ap(bench[1] / ds / "test.json", runs / "oracle" / "predictions" / f"{ds}.json")
           for ds in ("BUSI", "DDTI")}
    assert ref["BUSI"] > 0.95 and 0.3 < ref["DDTI"] < 0.7, ref
    for ds, ap in ref.items():
        assert metrics["datasets"][ds]["AP"] == pytest.approx(ap, rel=1e-9)
    assert json.loads((runs / "oracle" / "metrics.json").read_text())["datasets"] == metrics["datasets"]

    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(to_dict(cfg)))
    summary, tables = tmp_path / "results" / "metrics" / "summary.csv", tmp_path / "results" / "tables"
    assert main(["summarize", "--config", str(cfg_file), "--runs", str(runs), "--out", str(summary)]) == 0
    assert main(["tables", "--config", str(cfg_file), "--summary", str(summary), "--out", str(tables),
                 "--no-bootstrap"]) == 0
    cells = {(r["paradigm"], r["method"], r["variant"], r["column"]): r
             for r in csv.DictReader((tables / "table2_main_long.csv").open())}
    for ds, ap in ref.items():          # summary.csv and the table store 6 significant digits
        assert float(cells[("inter-organ", "DINO", "", ds)]["ours"]) == pytest.approx(ap, rel=1e-5)
