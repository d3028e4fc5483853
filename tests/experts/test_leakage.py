"""Issue 12 item 7: no run's shared experts saw an image of a dataset it is tested on as unseen.

- The embedded structure expert is MIM-pretrained on a separate synthetic corpus (own seed),
  never on benchmark images (before: on results/splits/merged/all/train.json).
- The semantic expert is fine-tuned once per training set, on that set's training splits only
  (before: one expert on every dataset's prompts, so Table 4's "train BUSI only" COME run used
  an expert fine-tuned on BUV/BUS-BRA/BUSC). Every test here fails on that code.
"""
from __future__ import annotations

import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from come.commands import pretrain_structure
from come.config import ConfigError, load_config
from come.data.coco import load_coco
from come.data.synth import generate
from come.experts.bank import expert_paths
from come.experts.corpus import corpus_hashes, render_corpus
from come.experts.trainset import datasets_of_key, trainset_key
from come.utils.io import read_json
from come.workflow.grid import resolve_run
from come.workflow.plan import Plan

REPO = Path(__file__).resolve().parents[2]
SMALL = ["synth.images_per_source=4", "synth.image_size=64", "synth.sources=[BUSI,DDTI]",
         "data.datasets=[BUSI,DDTI]", "experts.structure.pretrain_images_per_source=4",
         "experts.structure.mim_epochs=1", "experts.structure.depth=1", "experts.structure.batch_size=4"]


def test_structure_corpus_is_disjoint_from_the_benchmark(tmp_path: Path):
    torch.set_num_threads(1)
    cfg = load_config(None, SMALL)
    written = generate(cfg, tmp_path / "bench")
    bench = set().union(*(corpus_hashes(load_coco(p), tmp_path / "bench") for p in written.values()))
    sc = cfg.experts.structure
    corpus = render_corpus(cfg, sc.pretrain_seed, sc.pretrain_images_per_source, tmp_path / "corpus", "structure")
    hashes = corpus_hashes(corpus, tmp_path / "corpus")
    assert len(bench) == 8 and len(hashes) == 8 and not bench & hashes
    with pytest.raises(ConfigError, match="structure.pretrain_seed"):
        load_config(None, SMALL + [f"experts.structure.pretrain_seed={cfg.synth.seed}"])


def test_pretrain_structure_mims_on_the_corpus_only(tmp_path: Path):
    """Without --train, `come pretrain-structure` renders its corpus and never reads a split."""
    torch.set_num_threads(1)
    out = tmp_path / "experts" / "structure"
    args = Namespace(config=None, overrides=SMALL + [f"data.root={tmp_path / 'nothing'}"], train="", out=str(out))
    assert pretrain_structure.run(args) == 0
    report = read_json(out / "structure_report.json")
    assert report["n_images"] == 8 and "synthetic corpus" in report["images"]
    assert (out / "encoder.pt").is_file() and (out / "corpus" / "annotations.json").is_file()


def test_trainset_keys():
    assert trainset_key(["BUSI"]) == "BUSI"
    assert trainset_key(["BUSC", "BUSI", "BUV", "BUSBRA"]) == "breast"
    assert trainset_key(["DDTI", "BUSI"]) == "BUSI+DDTI" and datasets_of_key("BUSI+DDTI") == ["BUSI", "DDTI"]
    with pytest.raises(ValueError, match="not canonical"):
        datasets_of_key("DDTI+BUSI")


def test_workflow_plans_the_experts_of_a_run_from_its_own_training_set(monkeypatch):
    monkeypatch.chdir(REPO)
    plan = Plan.build("config/config.yaml")
    splits = plan.splits_root
    for spec in plan.runs:
        if "semantic" not in plan.experts_of[spec.id]:
            continue
        key = trainset_key(spec.train_datasets)
        sem = [f for f in plan.train_inputs(spec.id)["experts"] if "semantic" in f]
        assert sem == [f"{plan.experts_root}/trainset/{key}/semantic/encoder.pt"]
        built_from = plan.semantic_inputs(key)
        assert built_from["train"] == [f"{splits}/{d}/train.json" for d in spec.train_datasets], spec.id
        assert all(Path(f).parent.name in spec.train_datasets for f in built_from["test"])
    # Table 4: the COME run trained on BUSI only, tested on the four breast sets
    t4 = plan.train_inputs("single-come-f2c-BUSI")
    assert any(f.endswith("/trainset/BUSI/semantic/encoder.pt") for f in t4["experts"])
    assert plan.semantic_inputs("BUSI")["train"] == [f"{splits}/BUSI/train.json"]
    # the bank of that run loads exactly the file the workflow built for it
    paths = expert_paths(resolve_run("config/config.yaml", "single-come-f2c-BUSI"))
    assert sorted(str(p) for p in paths.values()) == sorted(t4["experts"])
    # one fine-tuning job per distinct training set, not per run
    assert sorted(plan.trainsets) == ["BUSI", "all", "breast", "thyroid"]


def test_snakemake_jobs_of_the_experts_read_no_other_training_set():
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(Path.home())}
    res = subprocess.run([str(bin_dir / "snakemake"), "-n", "-p", "experts"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    busi = re.search(r"come finetune-semantic .* --out \S+/trainset/BUSI/semantic", out).group(0)
    assert re.findall(r"splits/(\w+)/(?:train|test)\.json", busi) == ["BUSI", "BUSI"]
    structure = re.search(r"come pretrain-structure [^>]*", out).group(0)
    assert "--train" not in structure and "splits" not in structure
    assert len(re.findall(r"^rule finetune_semantic:", out, re.M)) == 4
