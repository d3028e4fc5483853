"""The training loop: seeded, resumable exactly, DDP-aware, logged as JSON lines.

`train(cfg, out_dir)` trains `cfg.train.epochs` epochs and writes into `out_dir`:
`config.yaml` (resolved), `train_log.jsonl` (one line per optimiser step: step, epoch, every
loss term, lr, time) and `checkpoints/last.pt` (saved atomically at the end of every epoch and
every `train.checkpoint_every` steps; `"finished": True` after the last epoch). When
`last.pt` exists the run resumes from it exactly (model, optimiser, scheduler, grad scaler,
sampler position, RNG states, step); when it finished `train.epochs` epochs, `train` is a
no-op (a finished run given more epochs continues from its last epoch).
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from come.config.loader import dump_config
from come.config.schema import Config
from come.data.dataset import build_dataset, collate
from come.data.sampler import ResumableSampler
from come.engine import distributed as D
from come.engine.checkpoint import finished_epochs, load_for_resume, rng_state, save_checkpoint, set_rng_state
from come.engine.optim import build_optimizer, build_scheduler
from come.engine.parts import DetectorParts, default_parts, load_bank, shared_features
from come.utils.io import get_logger
from come.utils.seed import resolve_device, seed_everything

StepHook = Callable[[int], None]


def use_amp(cfg: Config, device: torch.device) -> bool:
    """AMP only on CUDA: "auto" -> on with CUDA; "on" on CPU is ignored (with a warning)."""
    return cfg.train.amp != "off" and device.type == "cuda"


def to_device(targets: list[dict], device: torch.device) -> list[dict[str, torch.Tensor]]:
    """The detector's view of the targets: labels long[n] and boxes cxcywh [n, 4]."""
    return [{"labels": t["labels"].to(device), "boxes": t["boxes"].to(device)} for t in targets]


def truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines past the resumed checkpoint's step (they will be produced again)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= last_step]
    path.write_text("".join(ln + "\n" for ln in keep))


class Trainer:
    """One training run. `step_hook(step)` is called after every optimiser step (and its
    checkpoint), e.g. to interrupt a run in tests."""

    def __init__(self, cfg: Config, out_dir: str | Path, parts: Optional[DetectorParts] = None,
                 step_hook: Optional[StepHook] = None):
        self.cfg, self.out = cfg, Path(out_dir)
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.log_path = self.out / "train_log.jsonl"
        self.parts, self.step_hook = parts, step_hook
        self.log = get_logger("come.train")

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(max(1, cfg.train.threads))
        self.device = D.init_distributed(resolve_device(cfg.train.device))
        self.rank, self.world = D.rank(), D.world_size()
        seed_everything(cfg.train.seed + self.rank, cfg.train.deterministic)
        if cfg.train.amp == "on" and self.device.type != "cuda":
            self.log.warning("train.amp=on ignored: AMP is used on CUDA only")
        self.amp = use_amp(cfg, self.device)
        parts = self.parts or default_parts(cfg)
        self.parts = parts
        self.dataset = build_dataset(cfg, "train")
        self.sampler = ResumableSampler(self.dataset.source_ids, seed=cfg.train.seed,
                                        balanced=cfg.train.balanced_sampler)
        # A private generator: creating a loader iterator must not consume the global torch RNG.
        self.loader = DataLoader(self.dataset, batch_size=cfg.train.batch_size, sampler=self.sampler,
                                 collate_fn=collate, num_workers=cfg.data.num_workers,
                                 generator=torch.Generator().manual_seed(cfg.train.seed),
                                 persistent_workers=False)
        self.model = parts.build_model(cfg).to(self.device)
        crit = parts.build_criterion(cfg)
        self.criterion = crit.to(self.device) if isinstance(crit, torch.nn.Module) else crit
        self.bank = load_bank(cfg, self.device)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step, self.epoch = 0, 0
        self.batches_per_epoch = math.ceil(self.sampler.per_rank / cfg.train.batch_size)

    def resume(self) -> bool:
        """Load `last.pt` when it exists; True when resumed."""
        if not self.ckpt_path.is_file():
            return False
        ckpt = load_for_resume(self.ckpt_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        states = ckpt["rng"]
        set_rng_state(states[self.rank] if self.rank < len(states) else states[0])
        self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        if D.is_main():
            truncate_log(self.log_path, self.step)
        self.log.info("resumed from %s at epoch %d step %d (position %d)", self.ckpt_path,
                      self.epoch, self.step, self.sampler.position)
        return True

    # ---------------------------------------------------------------- checkpoint
    def save(self, finished: bool = False) -> None:
        states = [rng_state()]
        if D.is_distributed():
            gathered: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if D.is_main():
            save_checkpoint(self.ckpt_path, {
                "model": D.unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.amp else {},
                "sampler": self.sampler.state_dict(), "rng": states, "step": self.step,
                "epoch": self.epoch, "finished": finished, "run": self.cfg.run.id})
        D.barrier()

    # ---------------------------------------------------------------- loop
    def forward_backward(self, batch: dict, model: torch.nn.Module, sync: bool) -> dict[str, float]:
        """One micro-batch; returns its loss terms as floats."""
        images = batch["images"].to(self.device)
        pad_mask = batch["pad_mask"].to(self.device)
        source_ids = batch["source_ids"].to(self.device)
        targets = to_device(batch["targets"], self.device)
        shared = shared_features(self.bank, images, pad_mask)
        no_sync = model.no_sync if (D.is_distributed() and not sync) else nullcontext
        with no_sync():
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                out = model(images, pad_mask, source_ids, targets=targets, shared=shared)
                losses = self.criterion(out, targets)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                terms = {k: float(v.detach()) for k, v in losses.items()}
                raise FloatingPointError(f"non-finite loss at step {self.step + 1}: {terms}")
            self.scaler.scale(loss / self.cfg.train.grad_accum_steps).backward()
        return {k: float(v.detach()) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}

    def optimizer_step(self) -> None:
        if self.cfg.train.clip_max_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def write_log(self, record: dict) -> None:
        if D.is_main():
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")

    def run_epoch(self, model: torch.nn.Module) -> None:
        cfg, accum = self.cfg.train, self.cfg.train.grad_accum_steps
        self.dataset.set_epoch(self.epoch)
        limit = self.batches_per_epoch
        if cfg.max_steps_per_epoch:
            limit = min(limit, cfg.max_steps_per_epoch * accum)
        done = math.ceil(self.sampler.position / cfg.batch_size)
        if done >= limit:
            return
        model.train()
        bar = tqdm(total=limit, initial=done, desc=f"epoch {self.epoch}", disable=not D.is_main(),
                   file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        sums: dict[str, float] = {}
        micro, n_img, t0 = 0, 0, time.perf_counter()
        for batch in self.loader:
            micro += 1
            done += 1
            last = done >= limit
            terms = self.forward_backward(batch, model, sync=(micro == accum or last))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            self.sampler.advance(len(batch["targets"]))
            n_img += len(batch["targets"])
            bar.update(1)
            if micro == accum or last:
                self.optimizer_step()
                self.step += 1
                terms = D.all_reduce_mean({k: v / micro for k, v in sums.items()}, self.device)
                dt = time.perf_counter() - t0
                self.write_log({"step": self.step, "epoch": self.epoch, **terms,
                                "lr": self.optimizer.param_groups[0]["lr"],
                                "lrs": {g["name"]: g["lr"] for g in self.optimizer.param_groups},
                                "images": n_img * self.world, "time": dt})
                bar.set_postfix(loss=f"{terms.get('loss', float('nan')):.4f}", refresh=False)
                sums, micro, n_img, t0 = {}, 0, 0, time.perf_counter()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
                    self.save()
                if self.step_hook is not None:
                    self.step_hook(self.step)
            if last:
                break
        bar.close()

    def fit(self) -> Path:
        """Train to the end (resuming when possible); returns the checkpoint path."""
        done = finished_epochs(self.ckpt_path)
        if done is not None and done >= self.cfg.train.epochs:
            self.log.info("%s: run already finished (%d epochs), nothing to do", self.ckpt_path, done)
            return self.ckpt_path
        try:
            self.setup()
            if D.is_main():
                dump_config(self.cfg, self.out / "config.yaml")
            if not self.resume() and D.is_main():
                self.log_path.unlink(missing_ok=True)
            model = D.wrap_model(self.model, self.device)
            while self.epoch < self.cfg.train.epochs:
                self.run_epoch(model)
                self.scheduler.step()
                self.epoch += 1
                self.sampler.set_epoch(self.epoch, 0)
                self.save(finished=self.epoch >= self.cfg.train.epochs)
                self.log.info("epoch %d/%d done (step %d)", self.epoch, self.cfg.train.epochs, self.step)
        finally:
            D.cleanup()
        return self.ckpt_path


def train(cfg: Config, out_dir: str | Path, parts: Optional[DetectorParts] = None,
          step_hook: Optional[StepHook] = None) -> Path:
    """Train (or resume, or skip when finished) one run into `out_dir`."""
    return Trainer(cfg, out_dir, parts, step_hook).fit()
