"""A run folder before training starts: stale checkpoints set aside, stale temp files removed.

`come train` calls `prepare_run_dir(out, run_signature(cfg))` before training, whoever runs
it (Snakemake, DVC, a user's shell): a checkpoint written under another signature (the run's
config, its train split or its experts changed since) moves to `checkpoints.stale/` with its
`train_log.jsonl`, so the run trains from scratch; a checkpoint of the same signature is
resumed. Temp files a killed checkpoint save left behind (`.last.pt.*.tmp`) are deleted. No
torch import here: the Snakefile reads `config_signature` through `come.workflow.plan`.
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


# Where data and experts live, and how they are read: locations, not what a step computes. A run
# whose data moved (another raw_root, a registry alias, `datasets: auto` finding one more dataset)
# keeps its checkpoint; what it trains on counts through `inputs_signature` (file contents).
LOCATION_KEYS = {"data": ("datasets", "raw_root", "root", "splits_root", "registry", "registry_entries",
                          "num_workers"),
                 "experts": ("root",)}


def _signature(cfg: Config, sections: tuple[str, ...], drop_locations: bool) -> str:
    """16-hex hash of `sections` of the resolved config (+ the run's datasets); the DINO-family
    engine leaves out `train.epochs` and `train.checkpoint_every`."""
    from come.baselines import YOLO_ARCHS        # light module: no torch, no ultralytics
    d = to_dict(cfg)
    payload = {k: dict(d[k]) for k in sections}
    for section, names in LOCATION_KEYS.items() if drop_locations else ():
        for name in names if section in payload else ():
            payload[section].pop(name, None)
    if cfg.model.arch not in YOLO_ARCHS:
        payload["train"] = {k: v for k, v in d["train"].items() if k not in ("epochs", "checkpoint_every")}
    payload["run"] = {"train": cfg.run.train_datasets, "eval": cfg.run.eval_datasets}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_signature(cfg: Config) -> str:
    """16-hex hash of the config keys training depends on: `data`, `model`, `train` (and
    `experts` when the run uses one), `synth` in synthetic mode, and the run's datasets; not
    `eval`, `workflow`, `grid`, the tables a run serves, nor the location keys of
    `LOCATION_KEYS` (what lies at those locations counts through `inputs_signature`).

    `train.epochs` and `train.checkpoint_every` do not count for the DINO-family engine: they
    say where training stops and how often it saves, not what a step does, so a run given more
    epochs resumes its checkpoint and continues (the schedule is `lr_drop_epochs`, which does
    count). A checkpoint past the new epoch count is set aside by `prepare_run_dir(epochs=)`.
    The YOLO baselines keep `epochs` (ultralytics' schedule depends on it)."""
    sections = ("data", "model", "train") + (("experts",) if experts_used(cfg) else ())
    sections += ("synth",) if cfg.data.source == "synth" else ()
    return _signature(cfg, sections, drop_locations=True)


def legacy_config_signature(cfg: Config) -> str:
    """The signature runs recorded before `inputs_signature` existed (all of `synth` and `data`,
    locations included): a checkpoint carrying it is adopted, not retrained."""
    sections = ("synth", "data", "model", "train") + (("experts",) if experts_used(cfg) else ())
    return _signature(cfg, sections, drop_locations=False)


def training_inputs(cfg: Config) -> list[Path]:
    """The files a run's training reads besides the config: the train split of each training
    set (`<splits_root>/<DS>/train.json`, boxes and file names) and the shared experts it loads."""
    from come.experts.trainset import semantic_dir   # light module: no torch
    files = [Path(cfg.data.splits_root) / ds / "train.json" for ds in cfg.run.train_datasets]
    used = experts_used(cfg)
    if "structure" in used:
        files.append(Path(cfg.experts.root) / "structure" / "encoder.pt")
    if "semantic" in used:
        files.append(semantic_dir(cfg.experts.root, cfg.run.train_datasets) / "encoder.pt")
    return files


def inputs_signature(cfg: Config) -> str:
    """16-hex hash of the contents of `training_inputs(cfg)` (an absent file counts as absent):
    re-converted data or a re-trained expert under the same config is another run. Image
    pixels are not hashed; a split lists each image's file name and size with its boxes."""
    h = hashlib.sha1()
    for path in training_inputs(cfg):
        h.update(path.name.encode())
        if path.is_file():
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(b"<absent>")
    return h.hexdigest()[:16]


def run_signature(cfg: Config) -> str:
    """What `come train` records in `train.signature`: `<config>-<inputs>`."""
    return f"{config_signature(cfg)}-{inputs_signature(cfg)}"


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


def prepare_run_dir(out: str | Path, signature: str, epochs: int | None = None,
                    adopt: tuple[str, ...] = ()) -> bool:
    """Set aside a checkpoint of another signature (or, with `epochs`, one that already trained
    more epochs than the run now asks for) and record `signature`; True when set aside.

    A recorded signature in `adopt` (the same run under an older signature scheme) counts as
    `signature`. A checkpoint folder without a recorded signature counts as stale (its config
    is unknown).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sig_file, ckpts = out / SIGNATURE_FILE, out / "checkpoints"
    old = sig_file.read_text().strip() if sig_file.is_file() else None
    if old is not None and old in adopt:
        log.info("%s: adopting the checkpoint recorded under the older signature %s", out, old)
        old = signature
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
