"""A realistic fake `results/` tree: tiny ultrasound-like images, test splits, runs with
metrics.json / config.yaml / predictions / routing.csv / cluster_features.npz, data cards.

Predictions are the true boxes jittered by a method-dependent noise plus low-score false
positives, and metrics.json holds the pycocotools metrics of exactly those predictions, as
`come evaluate` would write them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from come.engine.coco_eval import coco_metrics, mean_metrics

REPO = Path(__file__).resolve().parents[2]
PAPER_CSV = REPO / "config" / "paper_tables.csv"
DATASETS = {"BUSI": "breast", "BUV": "breast", "DDTI": "thyroid"}
N_TEST = 8
NOISE = {"DINO": 0.09, "DINO-MoE": 0.08, "DAMEX": 0.07, "COME (Fine2Coarse)": 0.045,
         "COME (Multi-Step)": 0.04, "COME (Mixing)": 0.05}


def _image(rng, w: int, h: int, boxes: list[list[float]]) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = 90 + 40 * np.exp(-((yy - h * 0.2) ** 2) / (h * h * 0.3)) + rng.gamma(4.0, 8.0, (h, w))
    for x, y, bw, bh in boxes:
        cx, cy = x + bw / 2, y + bh / 2
        inside = ((xx - cx) / (bw / 2)) ** 2 + ((yy - cy) / (bh / 2)) ** 2 <= 1
        img[inside] *= 0.35
    return np.clip(img, 0, 255).astype(np.uint8)


def make_split(root: Path, ds: str, organ: str, seed: int) -> dict:
    """Write `data/<ds>/images/*.png` and `splits/<ds>/test.json`; return the COCO dict."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, N_TEST + 1):
        w, h = int(rng.integers(72, 96)), int(rng.integers(56, 72))
        boxes = []
        for _ in range(1 + int(rng.random() < 0.25)):
            bw, bh = rng.uniform(14, 28), rng.uniform(12, 22)
            boxes.append([round(float(rng.uniform(2, w - bw - 2)), 2), round(float(rng.uniform(2, h - bh - 2)), 2),
                          round(float(bw), 2), round(float(bh), 2)])
        fn = f"{ds}/images/{ds.lower()}_{i:03d}.png"
        (root / "data" / ds / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(rng, w, h, boxes)).save(root / "data" / fn)
        pathology = ["benign", "malignant"][i % 2]
        images.append({"id": i, "file_name": fn, "width": w, "height": h, "source": ds, "organ": organ,
                       "pathology": pathology, "group_id": f"{ds}:{i}"})
        for b in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1 + (i % 2), "bbox": b,
                         "area": round(b[2] * b[3], 2), "iscrowd": 0})
    coco = {"info": {"dataset": ds}, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "benign"}, {"id": 2, "name": "malignant"}, {"id": 3, "name": "lesion"}]}
    (root / "splits" / ds).mkdir(parents=True, exist_ok=True)
    (root / "splits" / ds / "test.json").write_text(json.dumps(coco))
    return coco


def make_predictions(coco: dict, noise: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    dets = []
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        if rng.random() < 0.9:
            j = rng.normal(0, noise, 4) * [w, h, w, h]
            dets.append({"image_id": a["image_id"], "category_id": 3, "score": round(float(rng.uniform(0.5, 0.95)), 4),
                         "bbox": [round(float(v), 2) for v in (x + j[0], y + j[1], max(w + j[2], 2), max(h + j[3], 2))]})
    for im in coco["images"]:
        for _ in range(2):
            w, h = rng.uniform(8, 20, 2)
            dets.append({"image_id": im["id"], "category_id": 3, "score": round(float(rng.uniform(0.05, 0.6)), 4),
                         "bbox": [round(float(rng.uniform(0, im["width"] - w)), 2),
                                  round(float(rng.uniform(0, im["height"] - h)), 2), round(float(w), 2), round(float(h), 2)]})
    return dets


def make_run(root: Path, splits: dict[str, dict], run_id: str, method: str, paradigm: str, cells: list[str],
             datasets: list[str], variant: str = "", seed: int = 0, noise: float | None = None,
             timing: dict | None = None, moe: bool = False, multistep: bool = False, cells_in_config: bool = False,
             recorder: bool = False, train: list[str] | None = None) -> Path:
    """One run directory. `recorder`: routing.csv / cluster_features.npz / routing_summary.json in
    the layout of `come.model.moe.stats` (long csv, labels_* keys, clustering time in the summary)
    instead of the wide layout of the brief (timing in metrics.json)."""
    run_dir = root / "runs" / run_id
    (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
    per_ds = {}
    for k, ds in enumerate(datasets):
        dets = make_predictions(splits[ds], NOISE[method] if noise is None else noise,
                                seed=1000 * seed + 17 * k + len(run_id))
        (run_dir / "predictions" / f"{ds}.json").write_text(json.dumps(dets))
        per_ds[ds] = coco_metrics(splits[ds], dets, "lesion")
    metrics = {"run": run_id, "method": method, "paradigm": paradigm, "variant": variant, "seed": seed,
               "datasets": per_ds, "mean": mean_metrics(per_ds),
               "timing": {"train_seconds": 300.0 + 10 * len(run_id), "eval_seconds": 12.5,
                          **({} if recorder else timing or {})}}
    if not cells_in_config:
        metrics["tables"] = cells
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    cfg = {"run": {"id": run_id, "method": method, "paradigm": paradigm, "variant": variant,
                   "train_datasets": train or datasets, "test_datasets": datasets, "tables": cells},
           "train": {"seed": seed}, "data": {"class_mode": "lesion"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    rng = np.random.default_rng([seed, sum(map(ord, run_id))])
    if moe:
        n_exp = 8
        counts = rng.integers(5, 40, (len(datasets), n_exp))
        counts[np.arange(len(datasets)), np.arange(len(datasets)) % n_exp] += 400
        if recorder:
            lines = ["layer,source,expert,top1,topk"]
            for layer, part in (("decoder.0", counts // 2), ("decoder.1", counts - counts // 2), ("all", counts)):
                lines += [f"{layer},{ds},{e},{part[s, e]},{2 * part[s, e]}" for s, ds in enumerate(datasets)
                          for e in range(n_exp)]
            ms = (timing or {}).get("clustering_ms_per_step", 0.0)
            (run_dir / "routing_summary.json").write_text(json.dumps({"clustering_ms_per_forward": ms}))
        else:
            lines = ["source," + ",".join(f"expert_{e}" for e in range(n_exp))]
            lines += [ds + "," + ",".join(str(int(c)) for c in counts[s]) for s, ds in enumerate(datasets)]
        (run_dir / "routing.csv").write_text("\n".join(lines) + "\n")
        n, d = 600, 16
        source = rng.integers(0, len(datasets), n)
        centers = rng.normal(0, 3, (len(datasets), d))
        feats = centers[source] + rng.normal(0, 1, (n, d))
        fine = (source * 5 + rng.integers(0, 5, n)) % 16
        if recorder:
            arrays = {"features": feats.astype(np.float32), "source_ids": source, "layer": np.array("decoder.0")}
            arrays.update({"labels_fine": fine, "labels_coarse": fine // 2} if not multistep else
                          {f"labels_step{r + 1}": (fine + r * (r > 2)) % 4 for r in range(5)})
        else:
            arrays = {"features": feats.astype(np.float32), "source": source, "fine": fine, "coarse": fine // 2}
            if multistep:
                arrays["multistep"] = np.stack([(fine + r) % 4 for r in range(5)])
        np.savez(run_dir / "cluster_features.npz", **arrays)
    return run_dir


def build_fake_results(root: Path) -> dict:
    from come.data.datacard import build_datacard
    splits = {ds: make_split(root, ds, organ, seed=i) for i, (ds, organ) in enumerate(DATASETS.items())}
    (root / "datacards").mkdir(parents=True, exist_ok=True)
    for ds, coco in splits.items():
        (root / "datacards" / f"{ds}.json").write_text(json.dumps(build_datacard(coco, None, ds)))
    breast, thyroid, every = ["BUSI", "BUV"], ["DDTI"], ["BUSI", "BUV", "DDTI"]
    t2 = "table2_main|{p}|{m}|"
    for m in ("DINO", "DINO-MoE", "DAMEX", "COME (Fine2Coarse)", "COME (Multi-Step)"):
        slug = m.lower().replace(" ", "").replace("(", "-").replace(")", "")
        come = m.startswith("COME")
        strat = m[6:-1] if come else ""
        t6b = [f"table6_clustering||{m}|{strat}|intra-breast"] if come else []
        t6t = [f"table6_clustering||{m}|{strat}|intra-thyroid"] if come else []
        recall = [f"table5_recall|intra-organ (breast)|{m}|"] if m != "COME (Multi-Step)" else []
        timing = {"clustering_ms_per_step": 3.0 if "Fine" in m else 11.0} if come else None
        make_run(root, splits, f"{slug}-intra-breast", m, "intra-organ", [t2.format(p="intra-organ", m=m)] + recall + t6b,
                 breast, timing=timing, moe=m != "DINO", multistep="Multi" in m, recorder=True)
        make_run(root, splits, f"{slug}-intra-thyroid", m, "intra-organ", [t2.format(p="intra-organ", m=m)] + t6t,
                 thyroid, timing=timing, moe=m != "DINO", recorder="Multi" in m)
    for s in (0, 1, 2):      # several seeds: mean +- sd
        make_run(root, splits, f"dino-inter-seed~{s}", "DINO", "inter-organ", [t2.format(p="inter-organ", m="DINO")],
                 every, seed=s)
    f2c = "COME (Fine2Coarse)"
    make_run(root, splits, "come-f2c-inter", f2c, "inter-organ",
             [t2.format(p="inter-organ", m=f2c), f"appendix_table1_ablation|inter-organ|{f2c}|full",
              f"table3_experts_topk|inter-organ|{f2c}|experts=8", f"table3_experts_topk|inter-organ|{f2c}|top_k=1",
              f"table6_clustering||{f2c}|Fine2Coarse|inter-organ"],
             every, timing={"clustering_ms_per_step": 4.0}, moe=True, cells_in_config=True)
    for v, noise in (("w/o STE", 0.06), ("w/o dual shared experts (-DSE)", 0.08)):
        make_run(root, splits, "ablation-" + v.replace("/", "").replace(" ", "-"), f2c, "inter-organ",
                 [f"appendix_table1_ablation|inter-organ|{f2c}|{v}"], every, variant=v, noise=noise)
    for k, noise in ((4, 0.06), (10, 0.05)):
        make_run(root, splits, f"experts-{k}", f2c, "inter-organ", [f"table3_experts_topk|inter-organ|{f2c}|experts={k}"],
                 every, variant=f"experts={k}", noise=noise)
    make_run(root, splits, "topk-2", f2c, "inter-organ", [f"table3_experts_topk|inter-organ|{f2c}|top_k=2"],
             every, variant="top_k=2", noise=0.05)
    make_run(root, splits, "dg-come", f2c, "single", ["table4_domain_generalization|single (train BUSI only)|COME|BUSI"],
             breast, noise=0.06)
    make_run(root, splits, "dino-single-busi", "DINO", "single",
             ["table2_main|single|DINO|", "table4_domain_generalization|single (train BUSI only)|DINO|BUSI"],
             breast, train=["BUSI"])
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "train.log").write_text("done\n")
    cfg = {"results": str(root), "paper_tables": str(PAPER_CSV),
           "data": {"root": str(root / "data"), "splits_root": str(root / "splits")},
           "eval": {"bootstrap": 30, "score_threshold": 0.3}}
    cfg_path = root / "reports.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return {"root": root, "config": cfg_path, "splits": splits}
