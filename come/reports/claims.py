"""Does the paper's claim hold here? Paired bootstrap differences and a verdict per claim.

Each `Claim` compares run A (a grid row) with the best of runs B1..Bn on one metric:
`diff = metric(A) - max_i metric(Bi)`, where metric = the mean over the claim's datasets of the
per-dataset COCO AP (or Recall). Pairing: `come.reports.bootstrap.run_bootstrap` draws test
images with a seed made of the run's seed and the dataset name only, so runs of one seed share
their resampled image sets, and each replicate's difference is taken on the same images.
With several seeds (row ids `<row>-seed~N`), replicate b also resamples the common seeds
with replacement and averages their replicate-b differences: the interval covers test images
and seeds. Timing claims have no per-image replicates: their interval resamples seeds only
(needs >= 2 seeds). `verdict` turns the 95% interval into holds / contradicted / inconclusive.
AP floor (`eval.claim_ap_floor`): when every run of an image-metric claim has a mean AP below it,
the models learned too little to be compared and the verdict is inconclusive whatever the
interval (an interval around differences of 1e-4 between untrained runs is narrow, not telling).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np

from come.reports.runs import RunInfo

Kind = Literal["greater", "less", "comparable"]
SEED_SUFFIX = re.compile(r"^(?P<row>.+?)-seed~(?P<seed>\d+)$")
BootFn = Callable[[RunInfo], Optional[dict]]        # run -> run_bootstrap cache (or None)


@dataclass(frozen=True)
class Claim:
    """A: grid row id; B: rows of the comparison. diff = A - max(B) ("greater", "comparable"),
    A - min(B) ("less": A below every B, e.g. the largest drop or the fastest)."""
    text: str
    a: str
    b: tuple[str, ...]
    kind: Kind = "greater"
    metric: str = "AP"                       # AP | Recall | clustering_ms
    unseen_only: bool = False                # Table 4: only evaluation datasets A did not train on
    margin: float = 0.0                      # "comparable": the equivalence band +- margin
    paper: tuple[tuple[str, ...], ...] = ()  # paper csv (table, paradigm, method, variant) of A, B...


T2, T3, AB = "table2_main", "table3_experts_topk", "appendix_table1_ablation"
F2C = "COME (Fine2Coarse)"
CLAIMS: tuple[Claim, ...] = (
    Claim("COME above DINO (inter-organ mean AP)", "inter-come-f2c", ("inter-dino",),
          paper=((T2, "inter-organ", F2C, ""), (T2, "inter-organ", "DINO", ""))),
    Claim("COME above DINO-MoE (inter-organ mean AP)", "inter-come-f2c", ("inter-dinomoe",),
          paper=((T2, "inter-organ", F2C, ""), (T2, "inter-organ", "DINO-MoE", ""))),
    Claim("COME above DAMEX (inter-organ mean AP)", "inter-come-f2c", ("inter-damex",),
          paper=((T2, "inter-organ", F2C, ""), (T2, "inter-organ", "DAMEX", ""))),
    Claim("Fine2Coarse and Multi-Step comparable (inter-organ mean AP, |diff| <= 0.02)",
          "inter-come-f2c", ("inter-come-ms",), kind="comparable", margin=0.02,
          paper=((T2, "inter-organ", F2C, ""), (T2, "inter-organ", "COME (Multi-Step)", ""))),
    Claim("Fine2Coarse faster than Multi-Step (clustering ms per step, inter-organ)",
          "inter-come-f2c", ("inter-come-ms",), kind="less", metric="clustering_ms",
          paper=(("table6_clustering", "", F2C, "Fine2Coarse", "all"),
                 ("table6_clustering", "", "COME (Multi-Step)", "Multi-Step", "all"))),
    Claim("-DSE the largest ablation drop: below w/o SEE and w/o STE (inter-organ mean AP)",
          "inter-come-f2c-no-dse", ("inter-come-f2c-no-see", "inter-come-f2c-no-ste"), kind="less",
          paper=((AB, "inter-organ", F2C, "w/o dual shared experts (-DSE)"), (AB, "inter-organ", F2C, "w/o SEE"),
                 (AB, "inter-organ", F2C, "w/o STE"))),
    Claim("w/o SEE drops more than w/o STE", "inter-come-f2c-no-see", ("inter-come-f2c-no-ste",), kind="less",
          paper=((AB, "inter-organ", F2C, "w/o SEE"), (AB, "inter-organ", F2C, "w/o STE"))),
    Claim("w/o STE below full COME", "inter-come-f2c-no-ste", ("inter-come-f2c",), kind="less",
          paper=((AB, "inter-organ", F2C, "w/o STE"), (AB, "inter-organ", F2C, "full"))),
    Claim("E=8 best among E=4, 8, 10 (K=1, inter-organ mean AP)", "inter-come-f2c-e8k1",
          ("inter-come-f2c-e4k1", "inter-come-f2c-e10k1"),
          paper=((T3, "inter-organ", F2C, "experts=8"), (T3, "inter-organ", F2C, "experts=4"),
                 (T3, "inter-organ", F2C, "experts=10"))),
    Claim("K=3 best among K=1..4 (E=8, inter-organ mean AP)", "inter-come-f2c",
          ("inter-come-f2c-e8k1", "inter-come-f2c-e8k2", "inter-come-f2c-e8k4"),
          paper=((T3, "inter-organ", F2C, "top_k=3"), (T3, "inter-organ", F2C, "top_k=1"),
                 (T3, "inter-organ", F2C, "top_k=2"), (T3, "inter-organ", F2C, "top_k=4"))),
    Claim("COME best in Table 4 (trained on BUSI, mean AP on the unseen breast sets)",
          "single-come-f2c-BUSI", ("single-dino-BUSI", "single-damex-BUSI"), unseen_only=True,
          paper=tuple(("table4_domain_generalization", "single (train BUSI only)", m, "BUSI")
                      for m in ("COME", "DINO", "DAMEX"))),
    Claim("COME best in Table 5 (intra-organ breast, mean Recall)", "intra-come-f2c-breast",
          ("intra-dino-breast", "intra-dinomoe-breast", "intra-damex-breast"), metric="Recall",
          paper=tuple(("table5_recall", "intra-organ (breast)", m, "")
                      for m in (F2C, "DINO", "DINO-MoE", "DAMEX"))),
)


def verdict(kind: Kind, lo: Optional[float], hi: Optional[float], margin: float = 0.0) -> str:
    """holds / contradicted / inconclusive from the 95% interval [lo, hi] of diff = A - best B.
    greater: holds when lo > 0, contradicted when hi < 0. less: the mirror image. comparable:
    holds when the interval lies inside [-margin, margin], contradicted when it lies wholly
    outside it."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] is reversed")
    if kind == "greater":
        return "holds" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    if kind == "less":
        return "holds" if hi < 0 else "contradicted" if lo > 0 else "inconclusive"
    if kind == "comparable":
        if margin <= 0:
            raise ValueError("a 'comparable' claim needs a margin > 0")
        if -margin <= lo and hi <= margin:
            return "holds"
        return "contradicted" if lo > margin or hi < -margin else "inconclusive"
    raise ValueError(f"unknown claim kind {kind!r}")


def by_row(runs: list[RunInfo]) -> dict[str, dict[int, RunInfo]]:
    """row id -> {seed: run}; `<row>-seed~N` ids are grouped under `<row>`."""
    out: dict[str, dict[int, RunInfo]] = {}
    for r in runs:
        m = SEED_SUFFIX.match(r.run)
        out.setdefault(m["row"] if m else r.run, {})[r.seed] = r
    return out


def claim_datasets(claim: Claim, run: RunInfo) -> list[str]:
    trained = set(run.train_datasets)
    if claim.unseen_only:
        return [d for d in run.datasets if d not in trained]
    return [d for d in run.datasets if not trained or d in trained]


def _replicates(cache: Optional[dict], datasets: list[str], metric: str) -> Optional[tuple[float, np.ndarray]]:
    """(point, [B] replicates) of the mean over `datasets`; None when one dataset lacks them."""
    if not cache:
        return None
    points, reps = [], []
    for ds in datasets:
        entry = (cache.get("datasets") or {}).get(ds) or {}
        if not entry.get("replicates"):
            return None
        points.append(entry["point"][metric])
        reps.append(np.asarray(entry["replicates"][metric], dtype=float))
    if not reps or len({len(r) for r in reps}) != 1:
        return None
    return float(np.mean(points)), np.mean(reps, axis=0)


def _mean_ap(cache: dict, datasets: list[str]) -> float:
    """The run's point AP averaged over `datasets` (the floor's measure, whatever the claim's metric)."""
    return float(np.mean([cache["datasets"][ds]["point"]["AP"] for ds in datasets]))


@dataclass
class ClaimResult:
    claim: Claim
    diff: Optional[float] = None
    lo: Optional[float] = None
    hi: Optional[float] = None
    seeds: list[int] = field(default_factory=list)
    paper_diff: Optional[float] = None
    verdict: str = "inconclusive"
    note: str = ""
    best_ap: Optional[float] = None          # highest mean AP among the claim's runs (image metrics)


def _best(claim: Claim, values: np.ndarray) -> np.ndarray:
    """The comparison value over B (axis 0): min for "less" claims, else max."""
    return values.min(axis=0) if claim.kind == "less" else values.max(axis=0)


def seed_resample(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """per_seed [S, B] replicate differences -> [B]: replicate b averages the replicate-b
    differences of S seeds drawn with replacement."""
    s, b = per_seed.shape
    draw = rng.integers(0, s, size=(b, s))
    return per_seed[draw, np.arange(b)[:, None]].mean(axis=1)


ONE_SEED_NOTE = "one seed: the interval covers test images, not the spread between training runs"


def below_floor(best_ap: Optional[float], floor: float) -> bool:
    """True when the claim's best run is under the AP floor (floor <= 0: never)."""
    return floor > 0 and best_ap is not None and best_ap < floor


def evaluate_claim(claim: Claim, rows: dict[str, dict[int, RunInfo]], boot: BootFn,
                   resamples: int = 1000, seed: int = 0, ap_floor: float = 0.0) -> ClaimResult:
    """Difference A - best B with its 95% interval and verdict (inconclusive + note when a run
    or its bootstrap is missing, or when every run's mean AP is below `ap_floor`)."""
    res = ClaimResult(claim)
    groups = [rows.get(claim.a, {})] + [rows.get(b, {}) for b in claim.b]
    missing = [name for name, g in zip((claim.a,) + claim.b, groups) if not g]
    if missing:
        res.note = "no run: " + ", ".join(missing)
        return res
    seeds = sorted(set.intersection(*(set(g) for g in groups)))
    if not seeds:
        res.note = "no seed common to all runs"
        return res
    res.seeds = seeds
    rng = np.random.default_rng(seed)
    if claim.metric == "clustering_ms":
        vals = np.array([[g[s].clustering_ms() if g[s].clustering_ms() is not None else np.nan
                          for s in seeds] for g in groups])
        if np.isnan(vals).any():
            res.note = "clustering time not recorded"
            return res
        d = vals[0] - _best(claim, vals[1:])
        res.diff = float(d.mean())
        if len(seeds) < 2:
            res.note = "one seed: no interval for a timing"
            return res
        boots = d[rng.integers(0, len(seeds), size=(max(resamples, 200), len(seeds)))].mean(axis=1)
    else:
        per_seed, points, aps = [], [], []
        for s in seeds:
            datasets = claim_datasets(claim, groups[0][s])
            caches = [boot(g[s]) for g in groups]
            reps = [_replicates(c, datasets, claim.metric) for c in caches]
            if any(r is None for r in reps) or not datasets:
                res.note = f"no bootstrap replicates (seed {s})"
                return res
            aps.append([_mean_ap(c, datasets) for c in caches])
            per_seed.append(reps[0][1] - _best(claim, np.stack([r[1] for r in reps[1:]])))
            points.append(reps[0][0] - float(_best(claim, np.array([r[0] for r in reps[1:]]))))
        res.diff = float(np.mean(points))
        boots = seed_resample(np.stack(per_seed), rng)
        res.best_ap = float(np.max(np.mean(aps, axis=0)))        # per run: mean over seeds
    res.lo, res.hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    res.verdict = verdict(claim.kind, res.lo, res.hi, claim.margin)
    if below_floor(res.best_ap, ap_floor):
        res.verdict = "inconclusive"
        res.note = (f"every run below AP {ap_floor:g}, best {res.best_ap:.3f}: too little learned to compare; "
                    "eval.claim_ap_floor")
    elif len(seeds) == 1 and res.verdict != "inconclusive":   # a one-seed timing returned above
        res.note = ONE_SEED_NOTE
    return res


def paper_difference(claim: Claim, paper_csv: Path) -> Optional[float]:
    """The same difference from the paper's numbers (Mean row, else mean of its dataset rows)."""
    if not claim.paper or not paper_csv.is_file():
        return None
    with paper_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    metric = "AP" if claim.metric == "clustering_ms" else claim.metric
    unseen = {"BUV", "BUSBRA", "BUSC"} if claim.unseen_only else None

    def value(cell: tuple[str, ...]) -> Optional[float]:
        hit = [r for r in rows if (r["table"], r["paradigm"], r["method"], r["variant"]) == cell[:4]]
        if len(cell) == 5:
            hit = [r for r in hit if r["dataset"] == cell[4]]
            return float(hit[0]["value"]) if hit else None
        hit = [r for r in hit if r["metric"] == metric]
        mean = [r for r in hit if r["dataset"] == "Mean"]
        if mean and unseen is None:
            return float(mean[0]["value"])
        vals = [float(r["value"]) for r in hit if r["dataset"] != "Mean" and (unseen is None or r["dataset"] in unseen)]
        return float(np.mean(vals)) if vals else None

    vals = [value(c) for c in claim.paper]
    if any(v is None for v in vals):
        return None
    best = min(vals[1:]) if claim.kind == "less" else max(vals[1:])
    return vals[0] - best


def claims_markdown(results: list[ClaimResult]) -> list[str]:
    """The README section: one row per claim."""
    lines = ["", "## Does the paper's claim hold here?", "",
             "diff = A minus the best comparison run (for a below-claim: minus the lowest), 95% paired bootstrap interval "
             "over test images (and over seeds when there are several); verdict: holds when the interval "
             "is on the claimed side of 0 (comparable: inside the +-margin band), contradicted when it is "
             "wholly on the other side, else inconclusive; inconclusive too when every run of the claim "
             "is below the AP floor (`eval.claim_ap_floor`). A decisive verdict from one seed is marked: "
             "its interval leaves out the spread between training runs. Computed by `come.reports.claims`.", "",
             "| claim | paper diff | our diff [95% CI] | seeds | verdict |", "|---|---|---|---|---|"]
    for r in results:
        paper = "n/a" if r.paper_diff is None else f"{r.paper_diff:+.4f}"
        ours = "n/a" if r.diff is None else f"{r.diff:+.4f}"
        if r.lo is not None:
            ours += f" [{r.lo:+.4f}, {r.hi:+.4f}]"
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.claim.text} | {paper} | {ours} | {len(r.seeds)} | **{r.verdict}**{note} |")
    return lines


def evaluate_claims(runs: list[RunInfo], boot: BootFn, paper_csv: Path,
                    resamples: int = 1000, ap_floor: float = 0.0) -> list[ClaimResult]:
    rows = by_row(runs)
    out = []
    for i, claim in enumerate(CLAIMS):
        res = evaluate_claim(claim, rows, boot, resamples, seed=i, ap_floor=ap_floor)
        res.paper_diff = paper_difference(claim, paper_csv)
        out.append(res)
    return out
