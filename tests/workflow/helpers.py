"""Helpers of the workflow tests: a throw-away copy of the repository and a PATH with `come`."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", "data",
        "cache", "tmp", "benchmarks", "come_repro.egg-info", "logs"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == REPO
    dvc = Path(folder).name == ".dvc"
    return {n for n in names if n == "__pycache__" or n == ".pytest_cache"
            or (top and n in SKIP) or (dvc and n in {"cache", "tmp"})}


def copy_repo(dest: Path) -> Path:
    """Copy the working tree (no venv, results, git history, caches) to `dest`."""
    shutil.copytree(REPO, dest, ignore=_ignore, symlinks=True)
    return dest


def tool_env() -> dict[str, str]:
    """Environment whose PATH starts with this interpreter's bin (come, snakemake, dvc)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.skip(f"{name} is not installed in this environment")
        return found
    return str(path)
