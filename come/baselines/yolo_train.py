"""Training of the YOLO-family baselines (YOLOv10, CerberusDet) on our splits.

`train_yolo(cfg, out_dir)` writes what every `come train` run writes: `config.yaml`,
`train_log.jsonl` (one line per optimiser step: step, epoch, loss terms, lr, time) and
`checkpoints/last.pt` (each epoch end; `"finished": True` after the last). A finished run is a
no-op; an interrupted one resumes from its last finished epoch.

Data: one task per head. YOLOv10: one task over all training datasets (single paradigm: one).
CerberusDet: one task per training dataset, each with its own loader (ultralytics' YOLODataset
over the cached YOLO labels, with its train augmentation: mosaic, flips, HSV, affine). Each
optimiser step samples `baselines.cerberus.tasks_per_step` datasets (0 = all, in a shuffled
order), runs each dataset's batch through the shared trunk and that dataset's head, and
averages the task losses before one backward pass, so the shared trunk receives the mean of
the per-dataset gradients. An epoch has as many steps as the merged training set has batches
(divided by the tasks per step), so every method sees the same number of images.
Optimiser: AdamW with linear warm-up and linear decay to 1 % (ultralytics' short-schedule
choice), grad-norm clip 10, AMP only on CUDA, no plots.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import ConcatDataset, DataLoader

from come.baselines.ultra_env import import_ultralytics
from come.baselines.yolo_labels import yolo_split
from come.baselines.yolo_models import MultiHeadYolo
from come.config.loader import dump_config
from come.config.schema import Config
from come.data.dataset import num_classes
from come.engine.checkpoint import finished_epochs, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from come.engine.optim import adamw
from come.utils.io import get_logger
from come.utils.seed import resolve_device, seed_everything

log = get_logger("come.baselines")


def hyperparameters(cfg: Config) -> Any:
    """ultralytics' default hyperparameters with ours on top (image size, augmentation, epochs)."""
    from ultralytics.cfg import get_cfg

    y = cfg.baselines.yolo
    return get_cfg(overrides={"imgsz": cfg.data.image_size, "epochs": cfg.train.epochs,
                              "mosaic": y.mosaic, "fliplr": y.fliplr, "plots": False, "amp": False,
                              "workers": cfg.data.num_workers, "seed": cfg.train.seed,
                              "deterministic": cfg.train.deterministic, "batch": cfg.train.batch_size})


def task_datasets(cfg: Config) -> list[list[str]]:
    """The datasets behind each head: CerberusDet one per dataset, YOLOv10 all in one."""
    ds = list(cfg.run.train_datasets)
    return [[d] for d in ds] if cfg.model.arch == "cerberusdet" else [ds]


def build_model(cfg: Config, hyp: Any = None) -> MultiHeadYolo:
    arch = cfg.model.arch
    variant = cfg.baselines.cerberus.variant if arch == "cerberusdet" else cfg.baselines.yolo.variant
    return MultiHeadYolo(variant, num_classes(cfg.data.class_mode), len(task_datasets(cfg)), hyp,
                         cfg.baselines.yolo.pretrained)


def _loader(cfg: Config, hyp: Any, names: list[str], seed: int) -> DataLoader:
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.dataset import YOLODataset

    nc = num_classes(cfg.data.class_mode)
    data = {"names": {i: n for i, n in enumerate(["lesion"] if nc == 1 else ["benign", "malignant"])},
            "nc": nc, "channels": 3}
    parts = [build_yolo_dataset(hyp, str(yolo_split(cfg, n, "train").root / "images"),
                                cfg.train.batch_size, data, mode="train", stride=32) for n in names]
    dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    return DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=False,
                      num_workers=cfg.data.num_workers, collate_fn=YOLODataset.collate_fn,
                      generator=torch.Generator().manual_seed(seed))


def _cycle(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


def _to_device(batch: dict, device: torch.device) -> dict:
    out = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
    out["img"] = out["img"].float() / 255.0
    return out


class YoloTrainer:
    def __init__(self, cfg: Config, out_dir: str | Path):
        self.cfg, self.out = cfg, Path(out_dir)
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.log_path = self.out / "train_log.jsonl"

    def setup(self) -> None:
        cfg = self.cfg
        import_ultralytics(self.out)
        torch.set_num_threads(max(1, cfg.train.threads))
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        self.amp = cfg.train.amp != "off" and self.device.type == "cuda"
        self.hyp = hyperparameters(cfg)
        self.tasks = task_datasets(cfg)
        self.loaders = [_loader(cfg, self.hyp, names, cfg.train.seed + i) for i, names in enumerate(self.tasks)]
        self.iters = [_cycle(ld) for ld in self.loaders]
        self.model = build_model(cfg, self.hyp).to(self.device)
        self.criterion = self.model.criterion()
        y = cfg.baselines.yolo
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = adamw([{"params": decay, "weight_decay": y.weight_decay},
                                {"params": no_decay, "weight_decay": 0.0}], lr=y.lr, betas=(0.9, 0.999))
        per_step = cfg.baselines.cerberus.tasks_per_step or len(self.tasks)
        per_step = min(per_step, len(self.tasks))
        n_images = sum(len(ld.dataset) for ld in self.loaders)
        self.tasks_per_step = per_step
        self.steps_per_epoch = max(1, math.ceil(n_images / (cfg.train.batch_size * per_step)))
        if cfg.train.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.train.max_steps_per_epoch)
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step, self.epoch = 0, 0
        self.task_rng = random.Random(cfg.train.seed)

    def lr_at(self, step: int) -> float:
        y = self.cfg.baselines.yolo
        if step < y.warmup_steps:
            return y.lr * (step + 1) / (y.warmup_steps + 1)
        frac = step / max(1, self.total_steps)
        return y.lr * ((1 - frac) * 0.99 + 0.01)

    def resume(self) -> None:
        if not self.ckpt_path.is_file():
            self.log_path.unlink(missing_ok=True)
            return
        ckpt = load_checkpoint(self.ckpt_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        set_rng_state(ckpt["rng"])
        self.task_rng.setstate(tuple(json.loads(ckpt["task_rng"])))
        for _ in range(self.epoch):
            if hasattr(self.criterion, "update"):
                self.criterion.update()
        keep = [ln for ln in (self.log_path.read_text().splitlines() if self.log_path.is_file() else [])
                if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
        self.log_path.write_text("".join(ln + "\n" for ln in keep))
        log.info("resumed %s at epoch %d step %d", self.ckpt_path, self.epoch, self.step)

    def save(self, finished: bool) -> None:
        st = self.task_rng.getstate()
        save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(), "task_rng": json.dumps([st[0], list(st[1]), st[2]]),
            "step": self.step, "epoch": self.epoch, "finished": finished, "run": self.cfg.run.id,
            "arch": self.cfg.model.arch, "heads": [",".join(t) for t in self.tasks]})

    def train_step(self) -> dict[str, float]:
        """One optimiser step over the sampled tasks; returns the logged terms."""
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.step)
        order = list(range(len(self.tasks)))
        self.task_rng.shuffle(order)
        chosen = order[:self.tasks_per_step]
        terms: dict[str, float] = {}
        total = 0.0
        for k in chosen:
            batch = _to_device(next(self.iters[k]), self.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                loss, items = self.criterion(self.model(batch["img"], head=k), batch)
            loss = loss.sum() / len(chosen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {self.step + 1} (head {k})")
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
            name = "+".join(self.tasks[k])
            terms[f"loss_{name}"] = float(loss.detach()) * len(chosen)
            for key, v in (items.items() if isinstance(items, dict) else []):
                terms[key] = terms.get(key, 0.0) + float(v.detach().sum()) / len(chosen)
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": total, **terms}

    def fit(self) -> Path:
        done = finished_epochs(self.ckpt_path)
        if done is not None and done >= self.cfg.train.epochs:
            log.info("%s: run already finished (%d epochs), nothing to do", self.ckpt_path, done)
            return self.ckpt_path
        self.setup()
        dump_config(self.cfg, self.out / "config.yaml")
        self.resume()
        self.step = self.epoch * self.steps_per_epoch
        while self.epoch < self.cfg.train.epochs:
            for _ in range(self.steps_per_epoch):
                t0 = time.perf_counter()
                terms = self.train_step()
                self.step += 1
                with self.log_path.open("a") as fh:
                    fh.write(json.dumps({"step": self.step, "epoch": self.epoch, **terms,
                                         "lr": self.optimizer.param_groups[0]["lr"],
                                         "time": time.perf_counter() - t0}, sort_keys=True) + "\n")
            if hasattr(self.criterion, "update"):
                self.criterion.update()          # YOLOv10: one-to-many weight decays per epoch
            self.epoch += 1
            self.save(finished=self.epoch >= self.cfg.train.epochs)
            log.info("epoch %d/%d done (step %d)", self.epoch, self.cfg.train.epochs, self.step)
        return self.ckpt_path


def train_yolo(cfg: Config, out_dir: str | Path) -> Path:
    """Train on one device. Under torchrun (workflow.train_gpus > 1) rank 0 trains and the other
    ranks return at once: this loop is not data-parallel."""
    rank = int(os.environ.get("RANK", "0"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and rank != 0:
        log.info("rank %d: the YOLO-family baselines train on rank 0 only", rank)
        return Path(out_dir) / "checkpoints" / "last.pt"
    return YoloTrainer(cfg, out_dir).fit()
