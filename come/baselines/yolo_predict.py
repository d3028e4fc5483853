"""Evaluation of the YOLO-family baselines, scored by the same COCO evaluator as DINO.

`evaluate_yolo(cfg, run_dir)` loads `run_dir/checkpoints/last.pt`, predicts every test image of
each `cfg.run.eval_datasets` dataset and writes `predictions/<DS>.json` (COCO results, xywh in
original pixels), `metrics.json` (the docs/architecture.md format) and `qualitative.png`.

Pre-processing mirrors ultralytics' evaluation letterbox: the longest side resized to
`data.image_size`, padded right/bottom with grey 114 to a multiple of 32; boxes are mapped back
by the resize ratio and clipped. YOLOv10 keeps the one-to-one branch's top `eval.max_dets`
(NMS-free); CerberusDet runs each image through its own dataset's head (class-aware NMS).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from come.baselines.ultra_env import import_ultralytics
from come.config.schema import Config
from come.data.dataset import Record, read_records, split_file
from come.engine.checkpoint import load_checkpoint
from come.engine.coco_eval import to_coco_results
from come.engine.evaluate import metrics_record, score_dataset, train_seconds
from come.engine.qualitative import draw_qualitative
from come.utils.io import get_logger, write_json
from come.utils.seed import resolve_device

log = get_logger("come.baselines")
PAD_VALUE = 114.0 / 255.0


def letterbox(image: Tensor, size: int, stride: int = 32) -> tuple[Tensor, float]:
    """[3, h, w] in [0, 1] -> ([3, H, W] with H, W multiples of `stride`, resize ratio)."""
    h, w = image.shape[-2:]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    x = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    ph, pw = -nh % stride, -nw % stride
    return F.pad(x, (0, pw, 0, ph), value=PAD_VALUE), r


def head_of(cfg: Config, dataset: str) -> int:
    """The head an image of `dataset` goes through: its own dataset's head (CerberusDet)."""
    if cfg.model.arch != "cerberusdet":
        return 0
    if dataset not in cfg.run.train_datasets:
        raise ValueError(f"CerberusDet run {cfg.run.id}: no head for {dataset} (heads: "
                         f"{cfg.run.train_datasets}); evaluate it only on its training datasets")
    return list(cfg.run.train_datasets).index(dataset)


@torch.no_grad()
def predict_records(model, records: list[Record], head: int, cfg: Config,
                    device: torch.device) -> list[dict]:
    """COCO results of `model` (head `head`) on `records`."""
    from come.data.transforms import load_image

    model.eval()
    results: list[dict] = []
    bs = max(1, cfg.eval.batch_size)
    for i in range(0, len(records), bs):
        chunk = records[i:i + bs]
        boxed = [letterbox(load_image(r.path), cfg.data.image_size) for r in chunk]
        H = max(b[0].shape[1] for b in boxed)
        W = max(b[0].shape[2] for b in boxed)
        batch = torch.stack([F.pad(b[0], (0, W - b[0].shape[2], 0, H - b[0].shape[1]), value=PAD_VALUE)
                             for b in boxed]).to(device)
        out = model.detect(batch, head=head, max_det=cfg.eval.max_dets).float().cpu()
        dets = []
        for row, (_, r), rec in zip(out, boxed, chunk):
            keep = row[:, 4] >= 0
            boxes = row[keep, :4] / r
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, rec.width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, rec.height)
            dets.append({"scores": row[keep, 4], "labels": row[keep, 5].long(), "boxes": boxes})
        results += to_coco_results(dets, [r.image_id for r in chunk], cfg.data.class_mode, cfg.eval.max_dets)
    return results


def evaluate_yolo(cfg: Config, run_dir: str | Path, checkpoint: Optional[Path] = None) -> dict:
    """Evaluate a YOLOv10 / CerberusDet run directory; returns metrics.json's dict."""
    from come.baselines.yolo_train import build_model

    run_dir = Path(run_dir)
    import_ultralytics(run_dir)
    torch.set_num_threads(max(1, cfg.train.threads))
    device = resolve_device(cfg.train.device)
    path = checkpoint or run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path, map_location=device)
    if not ckpt.get("finished", False):
        log.warning("%s: training did not finish (epoch %s); evaluating it anyway", path, ckpt.get("epoch"))
    model = build_model(cfg).to(device)
    model.load_state_dict(ckpt["model"])
    per_ds, samples, n_images, t0 = {}, {}, 0, time.perf_counter()
    for name in cfg.run.eval_datasets:
        records, _ = read_records(split_file(cfg, name, "test"), Path(cfg.data.root), name, 0,
                                  cfg.data.class_mode)
        dets = predict_records(model, records, head_of(cfg, name), cfg, device)
        per_ds[name], samples[name] = score_dataset(cfg, run_dir, name, dets)
        n_images += len(records)
    eval_s = time.perf_counter() - t0
    timing = {"eval_seconds": round(eval_s, 3), "train_seconds": train_seconds(run_dir),
              "eval_images": n_images, "eval_images_per_second": round(n_images / max(eval_s, 1e-9), 3)}
    metrics = metrics_record(cfg, per_ds, timing, ckpt)
    metrics["detector"] = {"arch": cfg.model.arch, "heads": ckpt.get("heads")}
    write_json(run_dir / "metrics.json", metrics)
    if cfg.eval.qualitative_per_dataset > 0:
        draw_qualitative(samples, run_dir / "qualitative.png", cfg.eval.score_threshold)
    return metrics
