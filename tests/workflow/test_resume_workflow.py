"""Interrupting the workflow mid-training and re-running it resumes: no finished job re-runs and
the interrupted training continues from its checkpoint (slow tier)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .helpers import tool, tool_env

pytestmark = pytest.mark.slow


def test_interrupt_mid_training_then_resume(repo_copy):
    cfg = repo_copy / "config" / "resume.yaml"
    cfg.write_text("base: tiny.yaml\ntrain:\n  epochs: 8\n  max_steps_per_epoch: 3\n")
    cmd = [tool("snakemake"), "--cores", "2", "all", "--configfile", str(cfg)]
    run = repo_copy / "results" / "runs" / "tiny-dino"
    proc = subprocess.Popen(cmd, cwd=repo_copy, env=tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (run / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None, f"workflow ended before a checkpoint:\n{proc.stdout.read()[-3000:]}"
            assert time.time() < deadline, "no checkpoint after 600 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)            # Ctrl-C to snakemake and its jobs
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (run / "train.done").exists(), "training finished before the interrupt"
    assert (run / "checkpoints" / "last.pt").exists(), "the interrupt must keep the checkpoint"
    split = repo_copy / "results" / "splits" / "BUSI" / "train.json"
    before = split.stat().st_mtime_ns

    res = subprocess.run(cmd, cwd=repo_copy, env=tool_env(), capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert split.stat().st_mtime_ns == before, "a finished job re-ran"
    for rule in ("synth", "split", "datacard"):
        assert f"rule {rule}:" not in out, f"finished rule {rule} re-ran"
    assert "rule train_run:" in out
    log = (repo_copy / "results" / "logs" / "train" / "tiny-dino.log").read_text()
    assert "resumed from" in log, log[-2000:]
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and len(steps) == 8 * 3
    assert (run / "metrics.json").is_file()

    # a changed run config re-runs training from scratch (old checkpoint set aside, no resume)
    grid = repo_copy / "config" / "grid_tiny.yaml"
    grid.write_text(grid.read_text().replace('train_datasets: "all"',
                                             'train_datasets: "all"\n    overrides: {model.ffn.hidden_dim: 48}'))
    res = subprocess.run(cmd, cwd=repo_copy, env=tool_env(), capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "Params have changed" in out and "rule synth:" not in out
    assert (run / "checkpoints.stale" / "last.pt").is_file()
    log = (repo_copy / "results" / "logs" / "train" / "tiny-dino.log").read_text()
    assert "resumed from" not in log
