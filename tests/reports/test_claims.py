"""Claims table: the verdict logic on made-up intervals, the paired bootstrap on made-up runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from come.reports.claims import (CLAIMS, ONE_SEED_NOTE, Claim, by_row, claims_markdown, evaluate_claim,
                                 paper_difference, verdict)
from come.reports.runs import RunInfo

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind,lo,hi,margin,expected", [
    ("greater", 0.01, 0.20, 0.0, "holds"),
    ("greater", -0.01, 0.20, 0.0, "inconclusive"),
    ("greater", -0.30, -0.02, 0.0, "contradicted"),
    ("greater", 0.0, 0.1, 0.0, "inconclusive"),          # touching 0 is not enough
    ("less", -0.5, -0.1, 0.0, "holds"),
    ("less", 0.1, 0.5, 0.0, "contradicted"),
    ("less", -0.1, 0.1, 0.0, "inconclusive"),
    ("comparable", -0.01, 0.015, 0.02, "holds"),
    ("comparable", -0.03, 0.01, 0.02, "inconclusive"),   # leaves the band on one side
    ("comparable", 0.03, 0.09, 0.02, "contradicted"),
    ("comparable", -0.09, -0.021, 0.02, "contradicted"),
    ("greater", None, None, 0.0, "inconclusive"),
])
def test_verdict_follows_from_the_interval(kind, lo, hi, margin, expected):
    assert verdict(kind, lo, hi, margin) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="reversed"):
        verdict("greater", 0.2, 0.1)
    with pytest.raises(ValueError, match="margin"):
        verdict("comparable", -0.1, 0.1)
    with pytest.raises(ValueError, match="unknown claim kind"):
        verdict("bigger", 0.1, 0.2)  # type: ignore[arg-type]


def fake_run(run_id: str, seed: int, reps: dict[str, np.ndarray], ms: float | None = None) -> tuple[RunInfo, dict]:
    """A run with a bootstrap cache whose per-dataset AP replicates are `reps`."""
    info = RunInfo(run_id, Path(run_id), "m", "inter-organ", "", seed, [],
                   {ds: {"AP": float(r.mean())} for ds, r in reps.items()},
                   timing={} if ms is None else {"clustering_ms_per_step": ms}, train_datasets=list(reps))
    cache = {"datasets": {ds: {"point": {"AP": float(r.mean()), "Recall": 0.5},
                               "replicates": {"AP": r.tolist(), "Recall": [0.5] * len(r)}}
                          for ds, r in reps.items()}}
    return info, cache


def evaluate(claim: Claim, runs: list[tuple[RunInfo, dict]], ap_floor: float = 0.0):
    caches = {id(r): c for r, c in runs}
    return evaluate_claim(claim, by_row([r for r, _ in runs]), lambda r: caches[id(r)], resamples=400,
                          ap_floor=ap_floor)


def test_paired_difference_is_narrow_when_images_move_together():
    """A beats B by 0.01 on every resample, while the resamples spread over +-0.2: paired, the
    interval is [0.01, 0.01] -> holds. Mutation: pairing A's replicate b with another B
    replicate (e.g. reversing B's list) gives a wide interval -> inconclusive."""
    rng = np.random.default_rng(0)
    shared = {ds: 0.4 + 0.2 * rng.standard_normal(300) for ds in ("D1", "D2")}
    a = fake_run("a", 0, {ds: v + 0.01 for ds, v in shared.items()})
    b = fake_run("b", 0, shared)
    res = evaluate(Claim("a above b", "a", ("b",)), [a, b])
    assert res.diff == pytest.approx(0.01) and res.lo == pytest.approx(0.01) and res.hi == pytest.approx(0.01)
    assert res.verdict == "holds" and res.seeds == [0]
    assert res.note == ONE_SEED_NOTE                    # a decisive one-seed verdict says what it leaves out
    worse = evaluate(Claim("b above a", "b", ("a",)), [a, b])
    assert worse.verdict == "contradicted" and worse.note == ONE_SEED_NOTE


def test_best_of_several_and_seeds():
    """diff = A - max(B1, B2) per replicate; three seeds are grouped by row and resampled."""
    runs = []
    for s, gap in ((0, 0.05), (1, 0.04), (2, -0.03)):
        base = np.full(50, 0.5) + 0.01 * np.arange(50) / 50
        runs += [fake_run(f"a-seed~{s}", s, {"D": base + gap}), fake_run(f"b1-seed~{s}", s, {"D": base}),
                 fake_run(f"b2-seed~{s}", s, {"D": base - 0.1})]
    res = evaluate(Claim("a best", "a", ("b1", "b2")), runs)
    assert res.seeds == [0, 1, 2] and res.diff == pytest.approx(0.02)
    assert -0.03 - 1e-9 <= res.lo < 0 < res.hi <= 0.05 + 1e-9   # seed resampling spans the seeds' gaps
    assert res.verdict == "inconclusive" and res.note == ""
    clear = [(r, c) for r, c in runs if not r.run.startswith("a-")]
    clear += [fake_run(f"a-seed~{s}", s, {"D": np.full(50, 0.9)}) for s in range(3)]
    decided = evaluate(Claim("a best", "a", ("b1", "b2")), clear)
    assert decided.verdict == "holds" and decided.note == ""    # three seeds: no one-seed caveat


def test_missing_runs_and_timing_claims():
    a = fake_run("a", 0, {"D": np.full(10, 0.5)}, ms=1.0)
    res = evaluate(Claim("a above c", "a", ("c",)), [a])
    assert res.verdict == "inconclusive" and res.note == "no run: c"
    runs = [fake_run(f"f-seed~{s}", s, {"D": np.full(10, 0.5)}, ms=1.0 + 0.1 * s) for s in range(3)]
    runs += [fake_run(f"m-seed~{s}", s, {"D": np.full(10, 0.5)}, ms=3.0 + 0.1 * s) for s in range(3)]
    timing = Claim("f faster", "f", ("m",), kind="less", metric="clustering_ms")
    res = evaluate(timing, runs)
    assert res.diff == pytest.approx(-2.0) and res.verdict == "holds"
    one = evaluate(timing, [runs[0], runs[3]])
    assert one.verdict == "inconclusive" and "one seed" in one.note
    lines = claims_markdown([res, one])
    assert "Does the paper's claim hold here?" in "\n".join(lines) and "**holds**" in lines[-2]


def test_claim_rows_exist_and_paper_differences():
    """Every claim names grid rows of config/grid.yaml; the paper's own differences agree with
    the paper's verdicts (COME above DINO by 0.0795 inter-organ mean AP)."""
    import yaml
    rows = {r["id"] for r in yaml.safe_load((REPO / "config" / "grid.yaml").read_text())["runs"]}
    for c in CLAIMS:
        assert {c.a, *c.b} <= rows, c.text
    csv_path = REPO / "config" / "paper_tables.csv"
    assert paper_difference(CLAIMS[0], csv_path) == pytest.approx(0.6587 - 0.5792)
    for c in CLAIMS:
        d = paper_difference(c, csv_path)
        assert d is not None, c.text
        if c.kind == "comparable":
            assert abs(d) <= c.margin
        else:
            assert (d > 0) == (c.kind == "greater"), c.text


def test_untrained_runs_are_inconclusive_below_the_ap_floor():
    """Two runs that learned nothing (AP 0.0003 vs 0.0001 on every resample) give a narrow interval
    wholly below 0: the interval alone says contradicted, the floor says inconclusive and why.
    With the floor off, or one run above it, the verdict follows the interval again; a timing
    claim ignores the floor. Mutation: comparing the floor with A's AP only (or the lowest run's)
    flips the third case to inconclusive."""
    low_a = fake_run("a", 0, {"D1": np.full(50, 0.0001), "D2": np.full(50, 0.0001)})
    low_b = fake_run("b", 0, {"D1": np.full(50, 0.0003), "D2": np.full(50, 0.0003)})
    claim = Claim("a above b", "a", ("b",))
    floored = evaluate(claim, [low_a, low_b], ap_floor=0.05)
    assert floored.hi < 0 and floored.verdict == "inconclusive"
    assert "below AP 0.05" in floored.note and floored.best_ap == pytest.approx(0.0003)
    assert "eval.claim_ap_floor" in claims_markdown([floored])[-1]
    assert evaluate(claim, [low_a, low_b], ap_floor=0.0).verdict == "contradicted"
    trained_b = fake_run("b", 0, {"D1": np.full(50, 0.30), "D2": np.full(50, 0.02)})   # mean 0.16
    assert evaluate(claim, [low_a, trained_b], ap_floor=0.05).verdict == "contradicted"
    assert evaluate(Claim("b above a", "b", ("a",)), [low_a, trained_b], ap_floor=0.05).verdict == "holds"
    timing = Claim("f faster", "f", ("m",), kind="less", metric="clustering_ms")
    runs = [fake_run(f"f-seed~{s}", s, {"D": np.zeros(5)}, ms=1.0 + 0.1 * s) for s in range(3)]
    runs += [fake_run(f"m-seed~{s}", s, {"D": np.zeros(5)}, ms=3.0 + 0.1 * s) for s in range(3)]
    assert evaluate(timing, runs, ap_floor=0.05).verdict == "holds"


def test_the_ap_floor_is_validated():
    from come.config.schema import Config, ConfigError
    cfg = Config()
    cfg.eval.claim_ap_floor = 1.5
    with pytest.raises(ConfigError, match="claim_ap_floor"):
        cfg.eval.validate()
