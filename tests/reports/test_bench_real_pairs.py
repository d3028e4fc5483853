"""The real-data benchmark's paired differences (benchmarks/bench_real.py `paired_lines`):
verdicts follow the interval, the two-dataset mean stays paired draw by draw."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_real", REPO / "benchmarks" / "bench_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pair_verdicts_follow_the_interval():
    """Made-up replicates: COME clearly above DINO on DDTI, below on BUS-BRA, the mean a tie of
    two opposite shifts. Mutations caught: the mean averaged before pairing (noise of two
    unpaired runs would hide the +0.1 shift), a verdict from the point estimate alone."""
    rng = np.random.default_rng(0)
    noise = {ds: rng.normal(0, 0.05, 400) for ds in ("BUSBRA", "DDTI")}   # shared draws: paired
    reps = {("inter-dino", "BUSBRA"): (0.30, 0.30 + noise["BUSBRA"]),
            ("inter-dino", "DDTI"): (0.40, 0.40 + noise["DDTI"]),
            ("inter-come-f2c", "BUSBRA"): (0.20, 0.20 + noise["BUSBRA"] + rng.normal(0, 0.01, 400)),
            ("inter-come-f2c", "DDTI"): (0.50, 0.50 + noise["DDTI"] + rng.normal(0, 0.01, 400))}
    lines = {ln.split(":")[0]: ln for ln in _bench().paired_lines(reps)}
    assert set(lines) == {f"- inter-come-f2c - inter-dino on {d}" for d in ("BUSBRA", "DDTI", "mean")}
    assert lines["- inter-come-f2c - inter-dino on DDTI"].endswith("(inter-come-f2c better)")
    assert lines["- inter-come-f2c - inter-dino on BUSBRA"].endswith("(inter-dino better)")
    mean = lines["- inter-come-f2c - inter-dino on mean"]
    assert "+0.0000" in mean and mean.endswith("(no significant difference)")
    reps[("inter-come-f2c", "DDTI")] = (0.55, 0.55 + noise["DDTI"])              # mean now +0.025, paired
    mean = {ln.split(":")[0]: ln for ln in _bench().paired_lines(reps)}["- inter-come-f2c - inter-dino on mean"]
    assert "+0.0250" in mean and mean.endswith("(inter-come-f2c better)")
