"""End to end, default tier: the whole DAG on config/tiny.yaml (synth -> ... -> tables, figures).

Two synthetic sources, one DINO and one COME run (shared experts pretrained and fine-tuned on
the fly), about 30-60 s on 2 cores. Checks that every table and figure family is produced, that
the numbers in the tables are the ones pycocotools computes from the saved predictions, and
that a second invocation has nothing left to do.
"""
from __future__ import annotations

import csv
import json
import subprocess

import pytest

from come.reports.figures import FIGURES
from tests.coco_reference import pycocotools_ap
from tests.workflow.helpers import copy_repo, tool, tool_env

TABLES = ["table2_main", "table3_experts_topk", "table4_domain_generalization", "table5_recall",
          "table6_clustering", "appendix_table1_ablation", "appendix_table2_experts_thyroid"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    cmd = [tool("snakemake"), "all", "--cores", "2", "--configfile", "config/tiny.yaml"]
    res = subprocess.run(cmd, cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return repo


def test_every_table_and_figure_is_produced(tiny_results):
    res = tiny_results / "results"
    for name in TABLES:
        for ext in (".csv", ".md", ".tex"):
            assert (res / "tables" / f"{name}{ext}").stat().st_size > 0, name + ext
    figures = json.loads((res / "figures" / "figures.json").read_text())
    assert [e["name"] for e in figures] == list(FIGURES)           # an empty manifest fails
    written = [e for e in figures if e["status"] == "written"]
    assert written, "no figure was drawn"
    for e in written:
        assert e["files"] and all((res / "figures" / f).stat().st_size > 0 for f in e["files"]), e
    for png in res.glob("figures/*.png"):
        assert png.with_suffix(".pdf").exists()
    index = (res / "README.md").read_text()
    assert "table2_main" in index
    # the semantic expert of the training set of tiny-come ("all" = the tiny config's BUSI + DDTI)
    for f in ("trainset/BUSI+DDTI/semantic_eval.json", "trainset/BUSI+DDTI/semantic_loss.png", "mim_loss.png",
              "mim_reconstructions.png", "structure/corpus/annotations.json",
              "semantic_pretrain/clip.pt", "semantic_pretrain/corpus_prompts.jsonl"):
        assert (res / "experts" / f).exists(), f
    assert "fine-tuned on training set BUSI+DDTI" in index


def test_resolved_config_beside_every_output(tiny_results):
    res = tiny_results / "results"
    for run in ("tiny-dino", "tiny-come"):
        assert (res / "runs" / run / "config.yaml").exists()
    assert (res / "tables" / "tables.config.yaml").exists()
    assert (res / "figures" / "figures.config.yaml").exists()
    assert (res / "data" / "synth_config.yaml").exists()


def test_table_values_are_pycocotools_on_the_saved_predictions(tiny_results):
    res = tiny_results / "results"
    rows = list(csv.DictReader((res / "metrics" / "summary.csv").open()))
    assert {r["run"] for r in rows} == {"tiny-dino", "tiny-come"}
    checked = 0
    for r in rows:
        if r["metric"] != "AP" or r["dataset"] == "Mean" or r["table"] != "table2_main":
            continue
        gt = res / "splits" / r["dataset"] / "test.json"
        det = res / "runs" / r["run"] / "predictions" / f"{r['dataset']}.json"
        # summary.csv stores 6 significant digits (the values may be 0 after the tiny training;
        # tests/engine/test_ap_path.py drives a known non-zero AP through the same path)
        assert float(r["value"]) == pytest.approx(pycocotools_ap(gt, det), rel=1e-5, abs=1e-9)
        checked += 1
    assert checked == 4
    table = (res / "tables" / "table2_main.md").read_text()
    assert "missing" in table and "paper" in table          # rows the tiny grid does not train


def test_second_run_has_nothing_to_do(tiny_results):
    res = subprocess.run([tool("snakemake"), "all", "-n", "--cores", "2", "--configfile", "config/tiny.yaml"],
                         cwd=tiny_results, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr


def test_pipeline_outputs_leave_git_status_clean(tiny_results):
    """Everything the pipeline writes (results/, logs, Snakemake's state) is ignored by git, so a
    user's `git status` after `make demo` shows only their own changes. Mutation caught: removing
    `/results/*` (or the results/README.md rule) from .gitignore."""
    res = subprocess.run(["git", "status", "--porcelain"], cwd=tiny_results, capture_output=True, text=True,
                         check=True)
    assert res.stdout == "", res.stdout


def test_local_jobs_ran_in_the_warm_server(tiny_results):
    """The Snakefile starts a warm server on a local run, jobs use it, and it stops with the
    workflow (fails if onstart/onsuccess or the jobs' hand-over break)."""
    import re
    import time

    log = tiny_results / "results" / "logs" / "warm.log"
    deadline = time.time() + 30
    while "stopped after" not in (log.read_text() if log.exists() else ""):
        assert time.time() < deadline, log.read_text() if log.exists() else "no warm.log"
        time.sleep(0.2)
    served = int(re.search(r"stopped after (\d+) requests", log.read_text()).group(1))
    assert served >= 3, log.read_text()
    train_logs = [(tiny_results / "results" / "logs" / "train" / f"{r}.log").read_text()
                  for r in ("tiny-dino", "tiny-come")]
    assert any("fresh interpreter" not in t for t in train_logs), train_logs
