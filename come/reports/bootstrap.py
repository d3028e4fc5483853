"""Bootstrap 95% intervals of COCO AP / Recall over test images, cached per run.

One resample draws the test image ids with replacement and recomputes the COCO metrics with
pycocotools on the resampled set. The per-image matching (`COCOeval.evaluate`) does not depend
on which images are drawn, so it runs once; each resample rebuilds `evalImgs` for the drawn ids
(duplicates included) and reruns pycocotools' `accumulate` (area `all`, largest maxDets only). This equals evaluating
a renumbered copy of the resampled set (checked in tests/reports/test_bootstrap.py).

Semantics match `come.engine.coco_eval.coco_metrics`: lesion mode maps every box to one class;
AP = stats[0], Recall = AR@max_dets = stats[8].
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from come.reports.runs import RunInfo
from come.utils.io import read_json, write_json

METRICS = ("AP", "Recall")
CACHE_VERSION = 1


def _prepare(gt: dict, dets: list[dict], class_mode: str) -> tuple[dict, list[dict]]:
    gt = copy.deepcopy(gt)
    dets = [dict(d) for d in dets]
    if class_mode == "lesion":
        for a in gt["annotations"]:
            a["category_id"] = 3
        for d in dets:
            d["category_id"] = 3
        gt["categories"] = [{"id": 3, "name": "lesion", "supercategory": "lesion"}]
    else:
        gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] in (1, 2)]
        gt["categories"] = [c for c in gt["categories"] if c["id"] in (1, 2)]
        dets = [d for d in dets if d["category_id"] in (1, 2)]
    for a in gt["annotations"]:
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2] * a["bbox"][3]))
    return gt, dets


def _evaluator(gt: dict, dets: list[dict], max_dets: int):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
    return ev


def _stats_for(ev, orig_ids: list[int], draw: list[int]) -> dict[str, float]:
    """Metrics of the multiset of images `draw` (ids) from an evaluated COCOeval.

    Only the `all` area range at the largest maxDets is accumulated: AP = mean precision over
    IoU thresholds and recall points (summarize's stats[0]), Recall = mean recall over IoU
    thresholds (stats[8])."""
    n0 = len(orig_ids)
    pos = {i: k for k, i in enumerate(orig_ids)}
    pe = ev._paramsEval
    n_cat, n_area = len(pe.catIds), len(pe.areaRng)
    a_all = list(pe.areaRngLbl).index("all")
    base = ev.evalImgs
    e = copy.copy(ev)
    e.params = copy.copy(ev.params)
    e._paramsEval = copy.copy(pe)
    for p in (e.params, e._paramsEval):
        p.imgIds = list(draw)
        p.areaRng = [pe.areaRng[a_all]]
        p.areaRngLbl = ["all"]
        p.maxDets = [pe.maxDets[-1]]
    e.evalImgs = [base[c * n_area * n0 + a_all * n0 + pos[i]] for c in range(n_cat) for i in draw]
    with contextlib.redirect_stdout(io.StringIO()):
        e.accumulate()
    prec, rec = e.eval["precision"], e.eval["recall"]
    ap = prec[prec > -1].mean() if (prec > -1).any() else 0.0
    ar = rec[rec > -1].mean() if (rec > -1).any() else 0.0
    return {"AP": float(ap), "Recall": float(ar)}


def bootstrap_metrics(gt: dict, dets: list[dict], class_mode: str = "lesion", resamples: int = 200,
                      seed: int = 0, max_dets: int = 100) -> Optional[dict]:
    """{"point": {AP, Recall}, "replicates": {AP: [B], Recall: [B]}}; None without any true box."""
    gt, dets = _prepare(gt, dets, class_mode)
    if not gt["annotations"]:
        return None
    ids = sorted(im["id"] for im in gt["images"])
    rng = np.random.default_rng(seed)
    draws = [sorted(rng.choice(ids, size=len(ids), replace=True).tolist()) for _ in range(resamples)]
    if not dets:
        zero = {"AP": 0.0, "Recall": 0.0}
        return {"point": zero, "replicates": {m: [0.0] * resamples for m in METRICS}}
    ev = _evaluator(gt, dets, max_dets)
    point = _stats_for(ev, ids, ids)
    reps = [_stats_for(ev, ids, d) for d in draws]
    return {"point": point, "replicates": {m: [r[m] for r in reps] for m in METRICS}}


def interval(replicates: list[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates."""
    a = np.asarray(replicates, dtype=float)
    lo, hi = np.percentile(a, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def run_bootstrap(run: RunInfo, splits_root: str | Path, resamples: int, max_dets: int = 100) -> dict:
    """Per-dataset bootstrap of one run, cached in `<run>/bootstrap.json`.

    Test splits come from the run's own resolved config (`data.splits_root` of its config.yaml,
    what `come evaluate` used), else from `splits_root`. Seeded by the run's seed and the
    dataset name; a dataset is recomputed when its predictions or test split change (sha256) or
    the resample count changes. Datasets without predictions or test split are left out."""
    splits_root = (run.config.get("data") or {}).get("splits_root") or splits_root
    cache_path = run.path / "bootstrap.json"
    cache = {}
    if cache_path.is_file():
        try:
            cache = read_json(cache_path)
        except ValueError:
            cache = {}
    if cache.get("version") != CACHE_VERSION or cache.get("resamples") != resamples \
            or cache.get("seed") != run.seed or cache.get("class_mode") != run.class_mode:
        cache = {"version": CACHE_VERSION, "resamples": resamples, "seed": run.seed,
                 "class_mode": run.class_mode, "datasets": {}}
    changed = False
    for ds in sorted(run.datasets):
        pred = run.path / "predictions" / f"{ds}.json"
        test = Path(splits_root) / ds / "test.json"
        if not pred.is_file() or not test.is_file():
            continue
        digest = _digest(pred, test)
        entry = cache["datasets"].get(ds)
        if entry is not None and entry.get("digest") == digest:
            continue
        dets = read_json(pred)
        if not isinstance(dets, list):
            raise ValueError(f"{pred}: expected a list of COCO detections")
        res = bootstrap_metrics(read_json(test), dets, run.class_mode, resamples,
                                seed=run.seed * 1_000_003 + zlib.crc32(ds.encode()), max_dets=max_dets)
        cache["datasets"][ds] = {"digest": digest, **(res or {"point": None, "replicates": None})}
        changed = True
    if changed or not cache_path.is_file():
        write_json(cache_path, cache, indent=None)
    return cache
