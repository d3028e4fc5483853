"""Snakemake: lint, dry runs (paper grid: one train job per grid row), config validation."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from come.config import ConfigError, load_config
from come.workflow.coverage import coverage
from come.workflow.grid import load_grid
from come.workflow.plan import Plan

from .helpers import REPO, tool, tool_env


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([tool("snakemake"), *args], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_lint_passes():
    res = snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr


def test_paper_dry_run_lists_a_job_for_every_paper_cell(monkeypatch):
    res = snakemake("-n", "-p", "all", "--configfile", "config/paper.yaml")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    trained = set(re.findall(r"\btrain --config \S+ --run (\S+) ", out))
    evaluated = set(re.findall(r"runs/([^/\s]+)/metrics\.json", out))   # the train job evaluates
    monkeypatch.chdir(REPO)
    cfg = load_config("config/paper.yaml")
    cov = coverage(cfg, load_grid(cfg.grid.file, cfg.paper_tables))
    assert not cov.missing
    for row in cov.covered:                    # every paper cell: its run trains and evaluates
        assert set(row["runs"]) <= trained and set(row["runs"]) <= evaluated, row
    assert len(trained) == 85                  # 66 DINO-family (incl. extra seeds) + 19 baseline runs
    assert "torchrun --standalone --nproc_per_node=2 -m come train" in out   # train_gpus: 2
    for rule in ("fetch", "convert", "datacard", "split", "merge", "prompts", "pretrain_structure",
                 "finetune_semantic", "summarize", "tables", "figures", "report"):
        assert re.search(rf"^rule {rule}:|^localrule {rule}:", out, re.M), rule
    assert "rule pretrain_semantic:" not in out and "--init" not in out   # BiomedCLIP is pretrained
    assert "rule synth:" not in out            # real data: fetch + convert instead


def test_embedded_and_tiny_dry_runs():
    """Two launches: the embedded default, and tiny through the local profile (the Slurm
    profile's dry run is tests/workflow/test_slurm_dryrun.py, with the paper config)."""
    out = snakemake("-n", "-p", "all").stdout
    assert "rule synth:" in out and "rule fetch:" not in out
    assert len(re.findall(r"^rule train_run:", out, re.M)) == 85
    # the embedded CLIP is pretrained on the synthetic corpus, then fine-tuned from it
    assert "rule pretrain_semantic:" in out and "--init results/experts/semantic_pretrain/clip.pt" in out
    res = snakemake("-n", "--profile", "workflow/profiles/local", "all", "--configfile", "config/tiny.yaml")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(re.findall(r"^rule train_run:", res.stdout, re.M)) == 2   # tiny-dino, tiny-come
    assert "rule pretrain_structure:" in res.stdout   # the COME run needs the shared experts


MALFORMED = [
    ("base: {base}\nmodel:\n  ffn:\n    topk: 3\n", "model.ffn.topk: unknown key", "bad.yaml"),
    ("base: {base}\ntrain:\n  epochs: many\n", "train.epochs: expected int", "bad.yaml"),
    ("base: {base}\ngrid:\n  file: {grid}\n", "duplicate id", "grid.yaml"),
]


def write_malformed(tmp_path: Path, text: str) -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text("methods_file: %s\nruns:\n" % (REPO / "config/methods.yaml")
                    + "".join("  - {id: a, method: DINO, paradigm: single, train_datasets: BUSI,"
                              " serves: [[table2_main, single, DINO, '']]}\n" for _ in range(2)))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.format(base=REPO / "config/config.yaml", grid=grid))
    return bad


def test_malformed_config_fails_before_any_job(tmp_path):
    """One snakemake launch; every case through `Plan.build`, what common.smk calls first."""
    text, needle, named = MALFORMED[0]
    bad = write_malformed(tmp_path, text)
    res = snakemake("-n", "all", "--configfile", str(bad))
    assert res.returncode != 0
    assert needle in res.stdout + res.stderr and str(tmp_path / named) in res.stdout + res.stderr
    assert "rule synth" not in res.stdout
    for i, (text, needle, named) in enumerate(MALFORMED):
        (tmp_path / str(i)).mkdir()
        with pytest.raises(ConfigError) as err:
            Plan.build(str(write_malformed(tmp_path / str(i), text)))
        assert needle in str(err.value) and str(tmp_path / str(i) / named) in str(err.value)


def test_snakemake_config_overrides_are_refused():
    res = snakemake("-n", "all", "--config", "train={epochs: 1}")
    assert res.returncode != 0 and "--config is not supported" in res.stdout + res.stderr
