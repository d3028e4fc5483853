"""Benchmark of the shared experts on the embedded synthetic benchmark (prints figures).

Steps: `come synth` (unless --data exists) -> seeded 80/20 split per dataset grouped by
`group_id` (come.data.coco.subset) -> inter-organ merge -> `come prompts` ->
`come finetune-semantic` -> `come pretrain-structure` -> bank throughput. Prints the zero-shot
accuracy vs chance, MIM loss first/last epoch, wall times and bank images/s.

    .venv/bin/python benchmarks/bench_experts.py --work /tmp/bench_experts --out results/experts
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from come.cli import main as come
from come.config.schema import ALL_DATASETS
from come.data.coco import load_coco, merge, subset
from come.utils.io import read_json, write_json


def split_merged(data: Path, work: Path, seed: int, test_fraction: float) -> tuple[Path, Path]:
    """Grouped seeded split of every dataset, merged into one train and one test file."""
    trains, tests = [], []
    for ds in ALL_DATASETS:
        coco = load_coco(data / ds / "annotations.json")
        groups = sorted({im["group_id"] for im in coco["images"]})
        random.Random(f"{seed}:{ds}").shuffle(groups)
        test_groups = set(groups[:max(1, round(test_fraction * len(groups)))])
        test_ids = [im["id"] for im in coco["images"] if im["group_id"] in test_groups]
        train_ids = [im["id"] for im in coco["images"] if im["group_id"] not in test_groups]
        trains.append(subset(coco, train_ids))
        tests.append(subset(coco, test_ids))
    tr = write_json(work / "splits" / "train.json", merge(trains, {"split": "train"}))
    te = write_json(work / "splits" / "test.json", merge(tests, {"split": "test"}))
    return tr, te


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bench_experts", help="folder for the synthetic data and splits")
    ap.add_argument("--out", default="results/experts", help="experts output root")
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--loss", default="", choices=["", "infonce", "dhn_nce"], help="default: the config's")
    args = ap.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    data = work / "data"
    t0 = time.time()
    if not (data / ALL_DATASETS[-1] / "annotations.json").is_file():
        assert come(["synth", "--config", args.config, "--out", str(data)]) == 0
    t_synth = time.time() - t0
    train, test = split_merged(data, work, seed=0, test_fraction=0.2)
    sets = ["--set", f"data.root={data}", "--set", f"experts.root={out}"]
    prompts = work / "prompts" / "train.jsonl"
    assert come(["prompts", "--config", args.config, *sets, "--train", str(train), "--out", str(prompts)]) == 0
    t1 = time.time()
    loss = ["--set", f"experts.semantic.loss={args.loss}"] if args.loss else []
    assert come(["finetune-semantic", "--config", args.config, *sets, *loss,
                 "--prompts", str(prompts), "--test", str(test), "--out", str(out / "semantic")]) == 0
    t_sem = time.time() - t1
    t2 = time.time()
    assert come(["pretrain-structure", "--config", args.config, *sets, "--train", str(train),
                 "--out", str(out / "structure")]) == 0
    t_ste = time.time() - t2

    from come.config import load_config
    from come.experts.bank import load_shared_experts
    cfg = load_config(args.config, [f"experts.root={out}", "model.ffn.type=come"])
    torch.set_num_threads(1)
    bank = load_shared_experts(cfg, "cpu")
    x = torch.randn(8, 3, 128, 128)
    bank(x)
    t3 = time.time()
    reps = 10
    for _ in range(reps):
        feats = bank(x)
    ips = reps * len(x) / (time.time() - t3)

    ev = read_json(out / "semantic_eval.json")
    st = read_json(out / "structure" / "structure_report.json")
    n_train = len(load_coco(train)["images"])
    print("\n=== bench_experts ===")
    print(f"synthetic images: {n_train} train / {len(load_coco(test)['images'])} test (synth {t_synth:.1f}s)")
    print(f"semantic ({ev['loss']}): zero-shot accuracy {ev['zero_shot_accuracy']:.3f} vs chance "
          f"{ev['chance_level']:.3f} (one-sided binomial p={ev['p_value_vs_chance']:.3g}) on {ev['n_images']} held-out lesion images "
          f"(generic prompt {ev['zero_shot_accuracy_generic_prompt']:.3f}, before fine-tuning "
          f"{ev['zero_shot_accuracy_before_finetune']:.3f}); fine-tune {ev['seconds']:.1f}s, command {t_sem:.1f}s")
    print(f"structure MIM: loss epoch 1 {st['epoch_losses'][0]:.4f} -> epoch {len(st['epoch_losses'])} "
          f"{st['epoch_losses'][-1]:.4f}; pretrain {st['seconds']:.1f}s, command {t_ste:.1f}s")
    print(f"bank (1 thread, 128x128 input): {ips:.1f} images/s; structure {tuple(feats['structure'].shape)}, "
          f"semantic {tuple(feats['semantic'].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
