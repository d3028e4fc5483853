"""The tiny workflow through real Slurm jobs (`snakemake --profile slurm`), and a failing job
reported as failed, not hung. Needs a running cluster: `.ci/slurm-up.sh` (root, Debian)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .helpers import tool, tool_env

pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def _cluster():
    if not shutil.which("sinfo"):
        pytest.skip("Slurm is not installed (start it with .ci/slurm-up.sh)")
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0 or not {"idle", "mixed", "allocated"} & set(res.stdout.split()):
        pytest.skip(f"no usable Slurm node (sinfo: {res.stdout.strip() or res.stderr.strip()})")


def run_profile(cwd, *targets: str, timeout: int) -> subprocess.CompletedProcess:
    cmd = [tool("snakemake"), "--profile", "slurm", "--seconds-between-status-checks", "2",
           *targets]
    # KILL on timeout: a hung snakemake ignores SIGTERM (workflow-notes.md)
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), *cmd], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True)


def test_tiny_workflow_completes_through_slurm_jobs(repo_copy):
    res = run_profile(repo_copy, "all", "--configfile", "config/tiny.yaml", timeout=1200)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "submitted with SLURM jobid" in out
    for rule in ("synth", "split", "train_run", "summarize"):
        assert f"rule_{rule}" in out, rule            # each ran as its own Slurm job
    metrics = json.loads((repo_copy / "results/runs/tiny-dino/metrics.json").read_text())
    assert set(metrics["datasets"]) == {"BUSI", "DDTI"}
    assert (repo_copy / "results/README.md").is_file()
    assert (repo_copy / "results/runs/tiny-dino/checkpoints/last.pt").is_file()


def test_failing_job_is_reported_as_failed(tmp_path, repo_copy):
    (tmp_path / "wf").mkdir()
    shutil.copytree(repo_copy / "slurm", tmp_path / "wf" / "slurm")
    (tmp_path / "wf" / "Snakefile").write_text(
        'rule all:\n    input:\n        "out.txt",\n\n\n'
        'rule boom:\n    output:\n        "out.txt",\n    log:\n        "logs/boom.log",\n'
        '    shell:\n        "echo failing on purpose > {log}; exit 3"\n')
    res = run_profile(tmp_path / "wf", "all", timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode not in (0, -9, 137), f"expected a failure, not success or a hang:\n{out[-3000:]}"
    assert "FAILED" in out and "Error in rule boom" in out
    assert not (tmp_path / "wf" / "out.txt").exists()
