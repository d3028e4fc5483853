"""Engine test fixtures: a tiny on-disk COCO benchmark and a stand-in detector.

The stand-in honours the detector contract of docs/architecture.md (model(images, pad_mask,
source_ids, targets=, shared=) -> {pred_logits, pred_boxes}; criterion(out, targets) -> dict
with "loss"; postprocess(out, orig_sizes) -> list of {scores, labels, boxes xyxy px}) and, like
DINO's denoising, draws from the global torch RNG during training, so resume tests exercise
the RNG restore.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torch import nn

from come.config import load_config
from come.data.coco import CocoBuilder, category_for, subset
from come.engine.parts import DetectorParts

SOURCES = {"BUSI": "breast", "DDTI": "thyroid"}


def make_benchmark(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """Write `root/data/<DS>/images/*.png` + `root/splits/<DS>/{train,test}.json`.

    Each image (sizes vary per source) holds one bright rectangle (a "lesion") on speckle;
    pathology alternates benign/malignant, and one train image per source is "unknown".
    """
    rng = np.random.default_rng(seed)
    data_root, splits_root = root / "data", root / "splits"
    for ds, organ in SOURCES.items():
        b = CocoBuilder(info={"source": ds})
        h, w = (40, 56) if ds == "BUSI" else (48, 48)
        for i in range(n_train + n_test):
            img = (rng.random((h, w)) * 60).astype(np.uint8)
            bw, bh = int(rng.integers(10, 20)), int(rng.integers(8, 16))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            img[y:y + bh, x:x + bw] = 200
            rel = f"{ds}/images/{i:03d}.png"
            (data_root / ds / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(data_root / rel)
            path = "unknown" if i == 1 else ("benign" if i % 2 == 0 else "malignant")
            iid = b.add_image(rel, w, h, ds, organ, path)
            b.add_box(iid, [x, y, bw, bh], category_for(path))
        full = b.to_dict()
        ids = [im["id"] for im in full["images"]]
        for split, keep in (("train", ids[:n_train]), ("test", ids[n_train:])):
            out = splits_root / ds / f"{split}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(subset(full, keep)))
    return data_root, splits_root


def tiny_run_config(data_root: Path, splits_root: Path, ffn: str = "dense", steps: int = 1,
                    epochs: int = 1) -> dict:
    """A `come train` config of a tiny DINO on `make_benchmark`'s two sources (48 px, ResNet-18
    from scratch, 1+1 layers), one thread."""
    return {"data": {"datasets": ["BUSI", "DDTI"], "root": str(data_root), "splits_root": str(splits_root),
                     "image_size": 48, "min_size": 32},
            "run": {"train_datasets": ["BUSI", "DDTI"]},
            "model": {"backbone": {"name": "resnet18", "pretrained": "", "freeze_bn": False, "frozen_stages": -1},
                      "hidden_dim": 32, "nheads": 2, "enc_layers": 1, "dec_layers": 1, "num_queries": 10,
                      "dn_number": 4, "num_select": 10, "ffn": {"type": ffn, "hidden_dim": 64, "num_experts": 4}},
            "train": {"epochs": epochs, "batch_size": 2, "max_steps_per_epoch": steps, "threads": 1},
            "eval": {"batch_size": 2}}


@pytest.fixture()
def bench(tmp_path: Path) -> tuple[Path, Path]:
    return make_benchmark(tmp_path / "bench")


def tiny_config(data_root: Path, splits_root: Path, **extra: object):
    """A small config for the engine tests (the stand-in ignores the model section)."""
    overrides = [f"data.root={data_root}", f"data.splits_root={splits_root}",
                 "run.train_datasets=[BUSI, DDTI]", "data.datasets=[BUSI, DDTI]",
                 "data.image_size=48", "data.min_size=32", "train.batch_size=2", "train.epochs=2",
                 "train.lr=0.001", "train.checkpoint_every=2", "train.threads=1",
                 "eval.batch_size=3"]
    overrides += [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]
    return load_config(None, overrides)


class TinyDetector(nn.Module):
    """Stand-in detector: conv features -> Q boxes + class logits, with training-time noise."""

    def __init__(self, num_queries: int = 4, num_classes: int = 1):
        super().__init__()
        self.q, self.c = num_queries, num_classes
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4))
        self.sampling_offsets = nn.Linear(8 * 16, 8 * 16)
        self.source_embed = nn.Embedding(4, 8 * 16)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(8 * 16, num_queries * (num_classes + 4))

    def forward(self, images, pad_mask, source_ids, targets=None, shared=None):
        x = images * (~pad_mask)[:, None].float()
        f = self.backbone(x).flatten(1)
        f = f + self.sampling_offsets(f) + self.source_embed(source_ids.clamp(min=0))
        if self.training:                               # like DINO's dn noise: global RNG
            f = self.drop(f) + 0.01 * torch.randn_like(f)
        out = self.head(f).view(-1, self.q, self.c + 4)
        return {"pred_logits": out[..., : self.c], "pred_boxes": out[..., self.c:].sigmoid()}


def tiny_criterion(out: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
    """Hungarian-matched L1 box loss + sigmoid BCE on the matched queries."""
    l1, ce = [], []
    for i, t in enumerate(targets):
        pb, pl = out["pred_boxes"][i], out["pred_logits"][i]
        goal = torch.zeros_like(pl)
        if len(t["boxes"]):
            cost = torch.cdist(pb.detach(), t["boxes"], p=1).numpy()
            r, c = linear_sum_assignment(cost)
            l1.append((pb[r] - t["boxes"][c]).abs().sum(-1).mean())
            goal[r, t["labels"][c]] = 1.0
        ce.append(nn.functional.binary_cross_entropy_with_logits(pl, goal))
    loss_bbox = torch.stack(l1).mean() if l1 else out["pred_boxes"].sum() * 0
    loss_ce = torch.stack(ce).mean()
    return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss": loss_ce + 5 * loss_bbox}


def tiny_postprocess(out: dict, orig_sizes: torch.Tensor) -> list[dict]:
    probs = out["pred_logits"].sigmoid()
    res = []
    for p, b, (h, w) in zip(probs, out["pred_boxes"], orig_sizes.tolist()):
        scores, labels = p.max(-1)
        cx, cy, bw, bh = b.unbind(-1)
        xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
        res.append({"scores": scores, "labels": labels,
                    "boxes": xyxy * torch.tensor([w, h, w, h], dtype=xyxy.dtype)})
    return res


def tiny_parts() -> DetectorParts:
    return DetectorParts(lambda cfg: TinyDetector(num_classes=1 if cfg.data.class_mode == "lesion" else 2),
                         lambda cfg: tiny_criterion, tiny_postprocess)


@pytest.fixture()
def parts() -> DetectorParts:
    torch.set_num_threads(1)
    return tiny_parts()
