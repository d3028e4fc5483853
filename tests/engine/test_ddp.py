"""DDP through torchrun on CPU (gloo): 2 ranks shard the epoch and resume exactly."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from come.engine.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(bench: Path, out: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(WORKER), str(bench), str(out)] + ([str(kill_at)] if kill_at else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[2])


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_rank_training_shards_and_resumes(bench, tmp_path):
    """Mutation caught: `Trainer.resume = lambda self: False` (the relaunch restarts at step 1:
    no "resumed from" line, the interrupted run's log lines are rewritten with new times)."""
    root = bench[0].parent
    done = launch(root, tmp_path / "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 8                              # 2 epochs x 16 images / (2 ranks x batch 2)
    assert all(r["images"] == 4 for r in log)
    ck = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    assert ck["finished"] and len(ck["rng"]) == 2 and ck["sampler"]["world_size"] == 2
    killed = launch(root, tmp_path / "resumed", kill_at=3)
    assert killed.returncode != 0
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"]
    assert saved == 2
    before = (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()[:saved]
    again = launch(root, tmp_path / "resumed")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr and f"step {saved} " in again.stderr, again.stderr[-3000:]
    after = (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()
    assert after[:saved] == before and len(after) == len(log)
    assert [json.loads(x)["step"] for x in after] == list(range(1, len(log) + 1))
    a = ck["model"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
