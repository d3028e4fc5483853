"""A run folder before training starts: stale checkpoints set aside, stale temp files removed.

`come train` calls `prepare_run_dir(out, config_signature(cfg))` before training, whoever runs
it (Snakemake, DVC, a user's shell): a checkpoint written under another signature (the run's
config changed since) moves to `checkpoints.stale/` with its `train_log.jsonl`, so the run
trains from scratch; a checkpoint of the same signature is resumed. Temp files a killed
checkpoint save left behind (`.last.pt.*.tmp`) are deleted. No torch import here: the
Snakefile reads `config_signature` through `come.workflow.plan`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from come.config.loader import to_dict
from come.config.schema import Config
from come.utils.io import atomic_write_bytes

SIGNATURE_FILE = "train.signature"
STALE_DIR = "checkpoints.stale"
log = logging.getLogger("come.train")


def experts_used(cfg: Config) -> set[str]:
    """Shared experts a run's FFN reads: subset of {"structure", "semantic"}."""
    ffn = cfg.model.ffn
    if ffn.type != "come":
        return set()
    return ({"structure"} if ffn.use_ste else set()) | ({"semantic"} if ffn.use_see else set())


def config_signature(cfg: Config) -> str:
    """16-hex hash of what training depends on: `synth`, `data`, `model`, `train` (and
    `experts` when the run uses one) and the run's datasets; not `eval`, `workflow`, `grid`
    or the tables a run serves.

    `train.epochs` and `train.checkpoint_every` do not count for the DINO-family engine: they
    say where training stops and how often it saves, not what a step does, so a run given more
    epochs resumes its checkpoint and continues (the schedule is `lr_drop_epochs`, which does
    count). A checkpoint past the new epoch count is set aside by `prepare_run_dir(epochs=)`.
    The YOLO baselines keep `epochs` (ultralytics' schedule depends on it)."""
    from come.baselines import YOLO_ARCHS        # light module: no torch, no ultralytics
    d = to_dict(cfg)
    keys = ("synth", "data", "model", "train") + (("experts",) if experts_used(cfg) else ())
    payload = {k: d[k] for k in keys}
    if cfg.model.arch not in YOLO_ARCHS:
        payload["train"] = {k: v for k, v in d["train"].items() if k not in ("epochs", "checkpoint_every")}
    payload["run"] = {"train": cfg.run.train_datasets, "eval": cfg.run.eval_datasets}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete `.<name>.*.tmp` files of an interrupted atomic write in `folder`; return them."""
    gone = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for p in gone:
        if p.is_file():
            p.unlink()
            log.warning("%s: removed a temp file left by an interrupted save", p)
    return gone


def _trained_epochs(ckpts: Path) -> float | None:
    """Epochs `ckpts/last.pt` has trained, a mid-epoch save counting half an epoch more
    (None when absent or unreadable)."""
    from come.engine.checkpoint import CheckpointError, load_checkpoint
    try:
        ckpt = load_checkpoint(ckpts / "last.pt")
    except (FileNotFoundError, CheckpointError):
        return None
    mid = int(ckpt.get("sampler", {}).get("position", 0)) > 0
    return int(ckpt.get("epoch", 0)) + (0.5 if mid else 0.0)


def prepare_run_dir(out: str | Path, signature: str, epochs: int | None = None) -> bool:
    """Set aside a checkpoint of another signature (or, with `epochs`, one that already trained
    more epochs than the run now asks for) and record `signature`; True when set aside.

    A checkpoint folder without a recorded signature counts as stale (its config is unknown).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sig_file, ckpts = out / SIGNATURE_FILE, out / "checkpoints"
    old = sig_file.read_text().strip() if sig_file.is_file() else None
    moved = False
    past = None
    if ckpts.is_dir() and old == signature and epochs is not None:
        done = _trained_epochs(ckpts)
        past = done if done is not None and done > epochs else None
    if ckpts.is_dir() and (old != signature or past is not None):
        stale = out / STALE_DIR
        if stale.exists():
            shutil.rmtree(stale)               # the previous set-aside run of this folder
        ckpts.rename(stale)
        if (out / "train_log.jsonl").is_file():
            (out / "train_log.jsonl").rename(stale / "train_log.jsonl")
        if past is not None:
            log.warning("%s: checkpoint trained %g epochs, the run now asks for %d; moved to %s; "
                        "training from scratch", out, past, epochs, stale)
        else:
            log.warning("%s: checkpoints of another config (signature %s, now %s) moved to %s; "
                        "training from scratch", out, old, signature, stale)
        moved = True
    remove_stale_temps(ckpts)
    from come.engine.checkpoint import restore_missing_last   # torch: imported only here
    restore_missing_last(ckpts / "last.pt")
    atomic_write_bytes(sig_file, (signature + "\n").encode())
    return moved


def wait_for_signature(out: str | Path, signature: str, timeout: float = 600.0) -> None:
    """Non-zero ranks of a torchrun job: wait until rank 0 has prepared the folder."""
    sig_file, t0 = Path(out) / SIGNATURE_FILE, time.monotonic()
    while not (sig_file.is_file() and sig_file.read_text().strip() == signature):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{sig_file}: rank 0 did not prepare the run folder in {timeout:.0f} s")
        time.sleep(0.2)


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
