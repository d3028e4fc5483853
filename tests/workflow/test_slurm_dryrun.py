"""A dry run through the Slurm profile (`snakemake --profile slurm`, slurm/config.yaml) with the
paper config: the resources each heavy job would ask Slurm for (no cluster needed)."""
from __future__ import annotations

import re
import subprocess

from come.config import load_config

from .helpers import REPO, tool, tool_env

TARGETS = ["results/runs/inter-come-f2c/train.done", "results/runs/inter-come-f2c/metrics.json"]


def job_resources(out: str) -> dict[str, dict[str, str]]:
    """rule name -> its printed `resources:` (key -> value) in a `snakemake -n` listing."""
    found: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if head and res:
            found[head[1]] = dict(kv.split("=", 1) for kv in res[1].split(", "))
    return found


def test_paper_config_through_the_slurm_profile_asks_for_the_paper_resources(tmp_path):
    """Mutations caught: the train rule requesting `gpu=min(train_gpus, 1)`; `**SLURM` (the
    partition / account pass-through) dropped from a heavy rule; a heavy rule without
    `cpus_per_task` (the profile's default of 1 CPU would then override its threads)."""
    cfg_file = tmp_path / "cluster.yaml"
    cfg_file.write_text(f"base: {REPO / 'config/paper.yaml'}\n"
                        "workflow:\n  slurm_partition: gpu-long\n  slurm_account: lab42\n")
    wf = load_config(cfg_file).workflow
    assert wf.train_gpus == 2
    res = subprocess.run([tool("snakemake"), "-n", "--profile", "slurm", *TARGETS,
                          "--configfile", str(cfg_file)],
                         cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = job_resources(out)
    # train_run also evaluates in the same process: it asks for the larger of the two memories
    heavy = {"train_run": (wf.train_gpus, max(wf.train_mem_mb, wf.eval_mem_mb), wf.train_threads),
             "pretrain_structure": (1, wf.train_mem_mb, wf.experts_threads),
             "finetune_semantic": (1, wf.train_mem_mb, wf.experts_threads)}
    for rule, (gpus, mem, cpus) in heavy.items():
        r = jobs[rule]
        assert r["gpu"] == str(gpus) and r["mem_mb"] == str(mem), (rule, r)
        assert r["runtime"] == str(wf.train_runtime_min) and r["cpus_per_task"] == str(cpus), (rule, r)
        assert r["slurm_partition"] == "gpu-long" and r["slurm_account"] == "lab42", (rule, r)
    assert jobs["train_run"]["gpu"] == "2" and jobs["train_run"]["mem_mb"] == "48000"
    light = jobs["split"]                        # the profile's default resources
    assert light["mem_mb"] == "2000" and light["runtime"] == "30" and "gpu" not in light, light
    assert "torchrun --standalone --nproc_per_node=2 -m come train" in out
