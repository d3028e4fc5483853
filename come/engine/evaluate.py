"""Evaluation of a trained run: predictions, COCO metrics per dataset, figures.

`evaluate_run(cfg, run_dir)` loads `run_dir/checkpoints/last.pt`, runs the detector on the
test split of every dataset of `cfg.run.eval_datasets` and writes into `run_dir`:
`predictions/<DS>.json` (COCO results, boxes xywh in original pixels), `metrics.json`
(docs/architecture.md: run, method, paradigm, variant, seed, datasets, mean, timing),
`qualitative.png`, and, for MoE models, the routing statistics of
`come.model.moe.stats.record_routing` (routing.csv / routing.png / ...).
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from come.config.schema import Config
from come.data.coco import load_coco
from come.data.dataset import DetectionDataset, build_dataset, collate, split_file
from come.engine.checkpoint import load_checkpoint
from come.engine.coco_eval import coco_metrics, mean_metrics, to_coco_results
from come.engine.parts import DetectorParts, default_parts, load_bank, shared_features
from come.engine.qualitative import draw_qualitative, pick_samples
from come.utils.io import get_logger, write_json
from come.utils.seed import resolve_device

log = get_logger("come.evaluate")


@torch.no_grad()
def predict(model: torch.nn.Module, postprocess: Callable, dataset: DetectionDataset, cfg: Config,
            device: torch.device, bank: Any = None) -> list[dict]:
    """COCO results of `model` on `dataset` (eval transforms), best `eval.max_dets` per image."""
    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.eval.batch_size, shuffle=False, collate_fn=collate,
                        num_workers=cfg.data.num_workers)
    results: list[dict] = []
    for batch in tqdm(loader, desc="evaluate", leave=False, mininterval=30.0):
        images = batch["images"].to(device)
        out = model(images, batch["pad_mask"].to(device),
                    batch["source_ids"].to(device), targets=None,
                    shared=shared_features(bank, images, batch["pad_mask"].to(device)))
        orig = torch.stack([t["orig_size"] for t in batch["targets"]]).to(device)
        dets = postprocess(out, orig)
        ids = [t["image_id"] for t in batch["targets"]]
        results += to_coco_results(dets, ids, cfg.data.class_mode, cfg.eval.max_dets)
    return results


def train_seconds(run_dir: Path) -> Optional[float]:
    """Total optimiser-step time recorded in train_log.jsonl (None without a log)."""
    path = run_dir / "train_log.jsonl"
    if not path.is_file():
        return None
    total = 0.0
    for line in path.read_text().splitlines():
        if line.strip():
            total += float(json.loads(line).get("time", 0.0))
    return total


def routing_context(model: torch.nn.Module, cfg: Config):
    """`record_routing(model, sources)` for MoE models when the MoE stats module exists."""
    if cfg.model.ffn.type == "dense":
        return nullcontext(None)
    try:
        from come.model.moe.stats import record_routing
    except ImportError as exc:
        log.warning("routing statistics skipped: come.model.moe.stats not importable (%s)", exc)
        return nullcontext(None)
    return record_routing(model, list(cfg.run.train_datasets))


def clustering_timing(routing: Any) -> dict[str, float]:
    """Clustering cost measured by the routing recorder during the evaluation forwards."""
    summary = routing.summary() if hasattr(routing, "summary") else {}
    out = {}
    if "clustering_ms_per_forward" in summary:
        out["clustering_ms_per_step"] = round(float(summary["clustering_ms_per_forward"]), 4)
    if "clustering_ms_per_call" in summary:
        out["clustering_ms_per_call"] = round(float(summary["clustering_ms_per_call"]), 4)
    return out


def load_model(cfg: Config, run_dir: Path, parts: DetectorParts, device: torch.device,
               checkpoint: Optional[Path] = None) -> tuple[torch.nn.Module, dict]:
    path = checkpoint or run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path, map_location=device)
    if not ckpt.get("finished", False):
        log.warning("%s: training did not finish (epoch %s, step %s); evaluating it anyway",
                    path, ckpt.get("epoch"), ckpt.get("step"))
    model = parts.build_model(cfg).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def score_dataset(cfg: Config, run_dir: Path, name: str, dets: list[dict]) -> tuple[dict, list]:
    """Write predictions/<name>.json, score it against the test split (come.engine.coco_eval);
    returns (metrics, qualitative samples). Shared by every detector family."""
    write_json(run_dir / "predictions" / f"{name}.json", dets, indent=None)
    gt = load_coco(split_file(cfg, name, "test"))
    metrics = coco_metrics(gt, dets, cfg.data.class_mode, cfg.eval.max_dets)
    samples = pick_samples(gt, dets, Path(cfg.data.root), name, cfg.eval.qualitative_per_dataset,
                           cfg.eval.score_threshold)
    log.info("%s: %s", name, {k: (round(v, 4) if v is not None else None) for k, v in metrics.items()})
    return metrics, samples


def metrics_record(cfg: Config, per_ds: dict, timing: dict, ckpt: dict) -> dict:
    """The metrics.json dict of docs/architecture.md. A dataset without a ground-truth box has
    AP null and is left out of the mean, with a warning; `mean_over` says what the mean covers."""
    covered = [n for n, m in per_ds.items() if m.get("AP") is not None]
    for name in sorted(set(per_ds) - set(covered)):
        log.warning("%s: no ground-truth box in its test split: AP is null and %s is left out of "
                    "the mean (mean_over in metrics.json)", name, name)
    return {"run": cfg.run.id, "method": cfg.run.method, "paradigm": cfg.run.paradigm,
            "variant": cfg.run.variant, "seed": cfg.train.seed, "tables": list(cfg.run.tables),
            "datasets": per_ds, "mean": mean_metrics(per_ds), "timing": timing,
            "mean_over": {"datasets": covered, "count": len(covered), "of": len(per_ds)},
            "checkpoint": {"step": ckpt.get("step"), "epoch": ckpt.get("epoch"),
                           "finished": bool(ckpt.get("finished", False))}}


def evaluate_run(cfg: Config, run_dir: str | Path, parts: Optional[DetectorParts] = None,
                 checkpoint: Optional[Path] = None) -> dict:
    """Evaluate a run directory; returns the metrics dict also written to metrics.json."""
    run_dir = Path(run_dir)
    torch.set_num_threads(max(1, cfg.train.threads))
    device = resolve_device(cfg.train.device)
    parts = parts or default_parts(cfg)
    model, ckpt = load_model(cfg, run_dir, parts, device, checkpoint)
    bank = load_bank(cfg, device)
    per_ds: dict[str, dict] = {}
    samples: dict[str, list] = {}
    n_images, t0 = 0, time.perf_counter()
    # every test split is read and checked before anything is written (no half evaluation)
    datasets = {name: build_dataset(cfg, "test", [name]) for name in cfg.run.eval_datasets}
    with routing_context(model, cfg) as routing:
        for name, dataset in datasets.items():
            dets = predict(model, parts.postprocess, dataset, cfg, device, bank)
            per_ds[name], samples[name] = score_dataset(cfg, run_dir, name, dets)
            n_images += len(dataset)
    eval_s = time.perf_counter() - t0
    timing = {"eval_seconds": round(eval_s, 3), "train_seconds": train_seconds(run_dir),
              "eval_images": n_images, "eval_images_per_second": round(n_images / max(eval_s, 1e-9), 3)}
    if routing is not None and hasattr(routing, "save"):
        routing.save(run_dir)
        timing.update(clustering_timing(routing))
    metrics = metrics_record(cfg, per_ds, timing, ckpt)
    write_json(run_dir / "metrics.json", metrics)
    if cfg.eval.qualitative_per_dataset > 0:
        draw_qualitative(samples, run_dir / "qualitative.png", cfg.eval.score_threshold)
    return metrics
