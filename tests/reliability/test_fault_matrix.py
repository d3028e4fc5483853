"""Fault matrix (issue 15): each fault, its asserted outcome, and nothing outside the run folder
changed. Training runs are real `come train` processes on a tiny on-disk benchmark.

| fault                       | outcome                                                      |
|-----------------------------|--------------------------------------------------------------|
| SIGKILL during a save       | temp removed, last.pt restored from prev.pt, resumed         |
| corrupt last.pt             | resumed from prev.pt (warning); without prev.pt: named error |
| corrupt image               | named error before the first step, no checkpoint written     |
| stale .part of another URL  | dropped, fresh download (see also test_fetch_hostile.py)     |
| malformed grid              | named error before any job (`snakemake -n` fails, no output) |
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from come.cli import main
from come.config import ConfigError
from come.engine.checkpoint import load_checkpoint
from come.workflow.plan import Plan

from .helpers import snapshot

REPO = Path(__file__).resolve().parents[2]

# `come train` that SIGKILLs itself inside the N-th checkpoint save: the temp file is written
# and fsync'd, the old last.pt already renamed to prev.pt, the rename into last.pt never happens.
KILLER = """
import os, signal, sys
n, real = [0], os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith("last.pt") and ".last.pt." in str(src):
        n[0] += 1
        if n[0] == int(os.environ["KILL_AT_SAVE"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from come.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _come(*args, env: dict | None = None, killer: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable] + (["-c", KILLER] if killer else ["-m", "come"]) + [str(a) for a in args]
    full = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=REPO, env=full, capture_output=True, text=True, timeout=300)


def _train(cfg: Path, run: Path, **kw) -> subprocess.CompletedProcess:
    return _come("train", "--config", cfg, "--out", run, **kw)


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_kill_during_save_resumes(setup):
    cfg, run, root = setup
    outside = snapshot(root, skip=run)
    res = _train(cfg, run, env={"KILL_AT_SAVE": "3"}, killer=True)
    assert res.returncode == -9, res.stderr[-2000:]
    ckpts = run / "checkpoints"
    assert list(ckpts.glob(".last.pt.*.tmp")), "the kill should leave the unrenamed temp file"
    assert not (ckpts / "last.pt").exists() and load_checkpoint(ckpts / "prev.pt")["step"] == 2
    res = _train(cfg, run)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "removed a temp file" in res.stderr and "restored from" in res.stderr
    assert "resumed from" in res.stderr and "step 2" in res.stderr
    assert not list(ckpts.glob(".*.tmp"))
    assert load_checkpoint(ckpts / "last.pt")["finished"] and _steps(run) == [1, 2, 3]
    assert snapshot(root, skip=run) == outside


def test_corrupt_checkpoint_falls_back_to_prev_else_named_error(setup, capsys):
    cfg, run, root = setup
    train = ["train", "--config", str(cfg), "--out", str(run)]
    assert main(train) == 0
    ckpts = run / "checkpoints"
    assert load_checkpoint(ckpts / "prev.pt")["step"] == 2 and _steps(run) == [1, 2, 3]
    outside = snapshot(root, skip=run)
    (ckpts / "last.pt").write_bytes(b"\x00" * 100)                 # a damaged disk block
    assert main(train) == 0                                         # resumed from prev.pt (step 2)
    assert (ckpts / "last.pt.corrupt").read_bytes() == b"\x00" * 100
    assert load_checkpoint(ckpts / "last.pt")["finished"] and _steps(run) == [1, 2, 3]
    (ckpts / "prev.pt").unlink()
    (ckpts / "last.pt").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(train) == 1                                         # nothing to fall back to
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"delete {ckpts / 'last.pt'}" in line and "cannot read checkpoint" in line
    assert (ckpts / "last.pt").read_bytes() == b"garbage"           # nothing deleted for the user
    assert snapshot(root, skip=run) == outside


def test_corrupt_image_is_named_before_training(setup, capsys):
    cfg, run, root = setup
    bad = root / "bench" / "data" / "DDTI" / "images" / "003.png"
    bad.write_bytes(bad.read_bytes()[:60])                          # truncated PNG
    outside = snapshot(root, skip=run)
    assert main(["train", "--config", str(cfg), "--out", str(run)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "DDTI/train.json: 1 image(s) unusable" in line and f"{bad}: cannot be decoded" in line
    assert not (run / "checkpoints").exists() and not (run / "train_log.jsonl").exists()
    assert snapshot(root, skip=run) == outside


def test_stale_part_is_dropped(server, tmp_path):
    base, handler = server
    from come.data.fetch import fetch

    handler.files["/a.bin"] = b"A" * 500
    dest = tmp_path / "raw" / "X"
    part = dest.parent / ".X.download.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"B" * 200)                                    # another download's leftover
    rec = fetch(f"{base}/a.bin", dest, log=lambda *_: None)
    assert rec["resumed_from"] == 0 and (dest / "a.bin").read_bytes() == b"A" * 500
    assert handler.ranges == [] and not part.exists()
    assert sorted(snapshot(tmp_path)) == ["raw", "raw/X", "raw/X/.fetch.json", "raw/X/a.bin"]


BAD_ROWS = {
    "top_k > num_experts": ("model.ffn.type: moe\n      model.ffn.num_experts: 2\n      model.ffn.top_k: 5",
                            "top_k"),
    "hidden_dim % nheads": ("model.hidden_dim: 63", "not divisible by nheads"),
    "negative lr": ("train.lr: -1", "train.lr"),
    "zero epochs": ("train.epochs: 0", "epochs"),
    "negative epochs": ("train.epochs: -1", "epochs"),
}


def _grid_config(tmp_path: Path, override: str, extra: str = "") -> Path:
    grid = (REPO / "config" / "grid_tiny.yaml").read_text()
    grid = grid.replace("methods_file: methods.yaml", f"methods_file: {REPO / 'config' / 'methods.yaml'}")
    grid = grid.replace('train_datasets: "all"\n    serves:',
                        f'train_datasets: "all"\n    overrides:\n      {override}\n    serves:', 1)
    (tmp_path / "grid.yaml").write_text(grid)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"base: {REPO / 'config' / 'tiny.yaml'}\ngrid: {{file: {tmp_path / 'grid.yaml'}{extra}}}\n"
                   f"results: {tmp_path / 'results'}\npaper_tables: {REPO / 'config' / 'paper_tables.csv'}\n")
    return cfg


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_malformed_grid_row_is_named_before_any_job(tmp_path, case):
    """Old Plan.build expanded rows without resolving them: every one of these passed."""
    override, needle = BAD_ROWS[case]
    with pytest.raises(ConfigError, match=rf"run 'tiny-dino'.*{needle}"):
        Plan.build(_grid_config(tmp_path, override))


def test_epochs_scale_must_be_positive(tmp_path):
    for scale in ("0", "-0.5"):
        with pytest.raises(ConfigError, match="grid.epochs_scale"):
            Plan.build(_grid_config(tmp_path, "train.lr: 0.001", extra=f", epochs_scale: {scale}"))


def test_snakemake_dry_run_refuses_a_malformed_grid(tmp_path):
    cfg = _grid_config(tmp_path, BAD_ROWS["top_k > num_experts"][0])
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "all", "--snakefile",
                          str(REPO / "Snakefile"), "--configfile", str(cfg)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode != 0
    assert "run 'tiny-dino'" in res.stderr + res.stdout and "top_k" in res.stderr + res.stdout
    assert not (tmp_path / "results").exists()
