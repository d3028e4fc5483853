"""Real BUS-BRA images (../shared/data, skipped when absent): prompts follow the released
pathology labels, and the experts' preprocessing handles real, non-square grey images."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from come.data.coco import CocoBuilder, category_for
from come.experts.bank import SharedExpertBank
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, normalize, read_rgb, resize_square
from come.experts.prompts import build_prompt_records

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.realdata


@pytest.fixture()
def busbra() -> Path:
    root = SHARED / "busbra"
    if not (root / "bus_data.csv").is_file():
        pytest.skip(f"real data not available: {root}/bus_data.csv is absent")
    return root


def test_prompts_and_features_on_busbra(busbra: Path):
    torch.set_num_threads(1)
    with open(busbra / "bus_data.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:6]
    coco = CocoBuilder()
    for r in rows:
        iid = coco.add_image(f"Images/{r['ID']}.png", int(r["Width"]), int(r["Height"]), "BUSBRA",
                             "breast", r["Pathology"], group_id=r["Case"])
        coco.add_box(iid, json.loads(r["BBOX"]), category_for(r["Pathology"]))
    recs = build_prompt_records(coco.to_dict(), busbra)
    for r, rec in zip(rows, recs):
        assert rec["text"] == f"Diagnosis for Breast Ultrasound Image: {r['Pathology'].capitalize()}"
    imgs = [read_rgb(rec["image"]) for rec in recs]
    assert all(im.shape[0] == 3 and im.shape[1:] == (int(r["Height"]), int(r["Width"])) for im, r in zip(imgs, rows))
    batch = normalize(torch.stack([resize_square(im, 96) for im in imgs]), IMAGENET_MEAN, IMAGENET_STD)

    class _Stub(torch.nn.Module):
        image_size, embed_dim, mean, std = 32, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

        def forward(self, x):
            return x.mean(dim=(2, 3))

    feats = SharedExpertBank(None, _Stub(), semantic_features="global")(batch)["semantic"]
    # the bank undoes the detector's normalisation and applies the expert's (identity here):
    # the stub sees the raw grey pixels again
    raw = torch.stack([resize_square(im, 32) for im in imgs]).mean(dim=(2, 3))
    assert feats.shape == (6, 3) and torch.allclose(feats, raw, atol=0.02)
    assert torch.allclose(feats[:, 0], feats[:, 1], atol=1e-4)
