"""DVC on the tiny configuration: `dvc repro` twice does nothing the second time; `dvc push`
then `dvc pull` into a fresh clone restores data and checkpoints (slow tier)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import tool, tool_env

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci", "-c", "init.defaultBranch=main"]


def sh(cwd: Path, *cmd: str, timeout: int = 900) -> str:
    res = subprocess.run(list(cmd), cwd=cwd, env=tool_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-4000:]}"
    return res.stdout + res.stderr


def test_repro_twice_then_push_and_pull_into_a_fresh_clone(tmp_path, repo_copy):
    dvc = tool("dvc")
    if not shutil.which("git"):
        pytest.skip("git is not installed (DVC here works inside a git repository)")
    params = repo_copy / "params.yaml"
    params.write_text(params.read_text().replace("config: config/config.yaml",
                                                 "config: config/tiny.yaml"))
    sh(repo_copy, *GIT, "init", "-q")
    if not (repo_copy / ".dvc" / "config").exists():
        sh(repo_copy, dvc, "init", "-q")
    sh(repo_copy, dvc, "config", "core.analytics", "false")
    remote = tmp_path / "remote"
    sh(repo_copy, dvc, "remote", "add", "-d", "-f", "ci", str(remote))
    sh(repo_copy, *GIT, "add", "-A")
    sh(repo_copy, *GIT, "commit", "-qm", "pipeline")

    first = sh(repo_copy, dvc, "repro")
    assert "Running stage 'train'" in first
    second = sh(repo_copy, dvc, "repro")
    assert "Running stage" not in second, second
    assert "up to date" in second or second.count("didn't change") == 5

    sh(repo_copy, *GIT, "add", "-A")
    sh(repo_copy, *GIT, "commit", "-qm", "lock")
    sh(repo_copy, dvc, "push")
    clone = tmp_path / "clone"
    sh(tmp_path, *GIT, "clone", "-q", str(repo_copy), str(clone))
    assert not (clone / "results/runs").exists()
    sh(clone, dvc, "pull")
    for rel in ("results/data/BUSI/annotations.json", "results/splits/DDTI/test.json",
                "results/runs/tiny-dino/checkpoints/last.pt", "results/runs/tiny-dino/metrics.json",
                "results/metrics/summary.csv"):
        assert (clone / rel).read_bytes() == (repo_copy / rel).read_bytes(), rel
    assert "up to date" in sh(clone, dvc, "status")
