"""`come train` of a DINO or DINO-MoE run evaluates in its own process without importing
open_clip, matplotlib, seaborn or pandas (per-job start-up: one interpreter, one torch import,
one model build per run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import make_benchmark, tiny_run_config

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from come.cli import main
rc = main(sys.argv[1:])
HEAVY = ("open_clip", "matplotlib", "seaborn", "pandas")
print("HEAVY=" + json.dumps(sorted(m for m in HEAVY if m in sys.modules)))
sys.exit(rc)
"""


@pytest.mark.parametrize("ffn", ["dense", "moe"])
def test_come_train_evaluates_in_process_without_heavy_imports(tmp_path, ffn):
    """Failed on older code: `come train` wrote no metrics.json (a second `come evaluate`
    process did, importing matplotlib for qualitative.png); the MoE run drew routing.png with
    seaborn (1.1-1.4 s of import per MoE-family job, benchmarks/bench_demo_time.py)."""
    data_root, splits_root = make_benchmark(tmp_path / "bench", n_train=4, n_test=2)
    cfg = tiny_run_config(data_root, splits_root, ffn=ffn)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "runs" / "dino"
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", PROBE, "train", "--config", str(path), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    heavy = json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("HEAVY="))[6:])
    assert heavy == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"] == "dino" and set(metrics["datasets"]) == {"BUSI", "DDTI"}
    assert (out / "predictions" / "DDTI.json").is_file() and (out / "qualitative.png").is_file()
    assert (out / "routing.png").is_file() == (ffn == "moe")
