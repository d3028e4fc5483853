"""Checkpoints: atomic save, `weights_only=True` load, RNG state capture/restore.

A checkpoint is a dict of tensors and plain types only (so `torch.load(weights_only=True)`
accepts it): model, optimizer, scheduler, grad scaler, sampler state, RNG states of every
rank (python / numpy / torch / cuda), the global step, the epoch and a "finished" flag.

Each save writes and fsyncs the new file first, then renames the checkpoint it replaces to
`prev.pt` and the new one to `last.pt`. A kill between the two renames leaves only `prev.pt`
(`restore_missing_last` copies it back); `load_for_resume` falls back to `prev.pt` with a
warning when `last.pt` is unreadable (the unreadable file is kept as `last.pt.corrupt`).
"""
from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from come.utils.errors import ComeError
from come.utils.io import atomic_write_bytes

CHECKPOINT_VERSION = 1
log = logging.getLogger("come.train")


class CheckpointError(ComeError, RuntimeError):
    """A checkpoint file cannot be read; the message names it and what to do."""


def prev_path(path: str | Path) -> Path:
    """Where the checkpoint before `path` is kept (`checkpoints/prev.pt`)."""
    return Path(path).with_name("prev.pt")


def rng_state() -> dict[str, Any]:
    """The process's RNG states as tensors / plain types."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"].cpu())          # a checkpoint loaded to CUDA moves these
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Serialise to memory, write a temp file (fsync), move the current file to `prev.pt`,
    rename the temp file to `path`."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, **payload}, buf)

    def keep_previous() -> None:
        if path.is_file():
            os.replace(path, prev_path(path))
    return atomic_write_bytes(path, buf.getvalue(), before_replace=keep_previous)


def restore_missing_last(path: str | Path) -> bool:
    """A save killed between its two renames leaves `prev.pt` only: copy it to `path`."""
    path, prev = Path(path), prev_path(path)
    if path.exists() or not prev.is_file():
        return False
    atomic_write_bytes(path, prev.read_bytes())
    log.warning("%s missing after an interrupted save; restored from %s", path, prev)
    return True


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`; a missing or corrupt file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first = (str(exc).strip().splitlines() or [""])[0]     # torch adds paragraphs of advice
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a COME checkpoint (no 'model' entry)")
    return ckpt


def load_for_resume(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`last.pt` to resume from; when it is unreadable, `prev.pt` (one save older) with a
    warning: the bad file is kept as `last.pt.corrupt` and `prev.pt` copied to `last.pt`.
    Neither readable -> CheckpointError saying which file to delete to start afresh."""
    path = Path(path)
    try:
        return load_checkpoint(path, map_location)
    except (CheckpointError, FileNotFoundError) as exc:     # missing: another rank is repairing it
        prev = prev_path(path)
        try:
            ckpt = load_checkpoint(prev, map_location)
        except (CheckpointError, FileNotFoundError):
            raise CheckpointError(f"{exc}; no readable {prev.name} to fall back to: delete {path} "
                                  f"to train this run from scratch") from None
    if int(os.environ.get("RANK", "0")) != 0:                # rank 0 repairs the files
        return ckpt
    bad = path.with_name(path.name + ".corrupt")
    os.replace(path, bad)
    atomic_write_bytes(path, prev.read_bytes())
    log.warning("%s unreadable (kept as %s); resuming from %s (one checkpoint older)", path, bad.name, prev)
    return ckpt


def is_finished(path: str | Path) -> bool:
    """True when `path` holds a checkpoint of a run that completed all its epochs."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return bool(load_checkpoint(path).get("finished", False))
    except CheckpointError:
        return False


def finished_epochs(path: str | Path) -> int | None:
    """Epoch count of a finished run's checkpoint; None when absent, unfinished or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return None
    return int(ckpt.get("epoch", 0)) if ckpt.get("finished", False) else None


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    return ckpt["model"]
