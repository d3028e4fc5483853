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
    assert lines["- inter-come-f2c - inter-dino on DDTI"].endswith("(inter-come-f2c better; seed 0)")
    assert lines["- inter-come-f2c - inter-dino on BUSBRA"].endswith("(inter-dino better; seed 0)")
    mean = lines["- inter-come-f2c - inter-dino on mean"]
    assert "+0.0000" in mean and mean.endswith("(no significant difference; seed 0)")
    reps[("inter-come-f2c", "DDTI")] = (0.55, 0.55 + noise["DDTI"])              # mean now +0.025, paired
    mean = {ln.split(":")[0]: ln for ln in _bench().paired_lines(reps)}["- inter-come-f2c - inter-dino on mean"]
    assert "+0.0250" in mean and mean.endswith("(inter-come-f2c better; seed 0)")


def test_several_seeds_resample_the_seeds_too():
    """Seeds 0 and 1 (ids `<row>-seed~1`): COME ahead by 0.12 at seed 0 and behind by 0.04 at
    seed 1, with little image noise. The point is the mean over seeds (+0.04); the interval must
    include the seed spread (mutation caught: averaging the seeds' replicates draw by draw only,
    a narrow interval around +0.04 that calls COME better)."""
    bench = _bench()
    rng = np.random.default_rng(1)
    reps = {}
    for seed, shift in ((0, 0.12), (1, -0.04)):
        for ds in ("BUSBRA", "DDTI"):
            noise = rng.normal(0, 0.005, 400)
            reps[(bench.run_id("inter-dino", seed), ds)] = (0.30, 0.30 + noise)
            reps[(bench.run_id("inter-come-f2c", seed), ds)] = (0.30 + shift, 0.30 + shift + noise)
    reps[("inter-come-ms", "DDTI")] = (0.5, 0.5 + rng.normal(0, 0.005, 400))     # seed 0 only
    reps[("inter-come-ms", "BUSBRA")] = (0.5, 0.5 + rng.normal(0, 0.005, 400))
    lines = {ln.split(":")[0]: ln for ln in bench.paired_lines(reps, [0, 1])}
    mean = lines["- inter-come-f2c - inter-dino on mean"]
    assert "+0.0400" in mean and mean.endswith("(no significant difference; 2 seeds [0, 1])")
    lo = float(mean.split("[")[1].split(",")[0])
    assert lo < -0.03                                           # reaches the worse seed
    assert lines["- inter-come-ms - inter-dino on mean"].endswith("(inter-come-ms better; seed 0)")
    assert bench.run_id("inter-dino", 0) == "inter-dino" and bench.run_id("inter-dino", 2) == "inter-dino-seed~2"


def test_replicates_are_cached_until_the_predictions_change(tmp_path, monkeypatch):
    """`_replicates` stores each run's bootstrap under W/bootstrap and reuses it; new predictions
    (a retrained run) or another resample count recompute it. Mutations caught: a cache keyed by
    run id alone (stale replicates after retraining), no cache (every report recomputes)."""
    import json

    from come.reports import bootstrap

    bench = _bench()
    calls = []
    real = bootstrap.bootstrap_metrics
    monkeypatch.setattr(bootstrap, "bootstrap_metrics", lambda *a, **k: calls.append(1) or real(*a, **k))
    gt = {"images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2, 3)],
          "annotations": [{"id": i, "image_id": i, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0,
                           "category_id": 1} for i in (1, 2, 3)],
          "categories": [{"id": 1, "name": "benign"}]}
    run = tmp_path / "results" / "runs" / "inter-dino"
    (run / "predictions").mkdir(parents=True)
    (tmp_path / "splits" / "DDTI").mkdir(parents=True)
    (tmp_path / "splits" / "DDTI" / "test.json").write_text(json.dumps(gt))
    (run / "metrics.json").write_text(json.dumps({"datasets": {"DDTI": {"AP": 0.5}}}))

    def predict(shift):
        dets = [{"image_id": i, "bbox": [10 + shift * i, 10, 30, 30], "score": 0.9, "category_id": 1}
                for i in (1, 2, 3)]
        (run / "predictions" / "DDTI.json").write_text(json.dumps(dets))

    predict(0)
    first = bench._replicates(tmp_path, "inter-dino", "DDTI", 50)[1]
    again = bench._replicates(tmp_path, "inter-dino", "DDTI", 50)[1]
    assert len(calls) == 1 and np.array_equal(first, again) and first.shape == (50,)
    predict(8)                                                   # retrained: boxes moved
    moved = bench._replicates(tmp_path, "inter-dino", "DDTI", 50)[1]
    assert len(calls) == 2 and moved.mean() < first.mean()
    bench._replicates(tmp_path, "inter-dino", "DDTI", 60)
    assert len(calls) == 3
