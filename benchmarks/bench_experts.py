"""Benchmark of the shared experts on the embedded synthetic benchmark (prints figures).

Steps: `come synth` (unless --data exists) -> seeded 80/20 split per dataset grouped by
`group_id` (come.data.coco.subset) -> inter-organ merge -> `come prompts` ->
`come pretrain-semantic` (synthetic corpus, when the config uses one) -> `come finetune-semantic`
-> `come pretrain-structure` -> bank throughput. Prints the zero-shot accuracy vs chance, MIM
loss first/last epoch, wall times and bank images/s. `--seeds 0 1 2` repeats the semantic expert
(pretraining + fine-tuning) with train.seed = s and pretrain_seed = 1000 + s: one line per seed.

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
from come.config import load_config
from come.config.schema import ALL_DATASETS
from come.data.coco import load_coco, merge, subset
from come.experts.trainset import semantic_dir
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed values (pretrain_seed = 1000 + s)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config overrides (repeatable), e.g. experts.semantic.pretrain_epochs=20")
    args = ap.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    data = work / "data"
    t0 = time.time()
    if not (data / ALL_DATASETS[-1] / "annotations.json").is_file():
        synth_sets = [a for kv in args.overrides if kv.startswith("synth.") for a in ("--set", kv)]
        assert come(["synth", "--config", args.config, *synth_sets, "--out", str(data)]) == 0
    t_synth = time.time() - t0
    train, test = split_merged(data, work, seed=0, test_fraction=0.2)
    sets = ["--set", f"data.root={data}", "--set", f"experts.root={out}"]
    sets += [a for kv in args.overrides for a in ("--set", kv)]
    prompts = work / "prompts" / "train.jsonl"
    assert come(["prompts", "--config", args.config, *sets, "--train", str(train), "--out", str(prompts)]) == 0
    loss = ["--set", f"experts.semantic.loss={args.loss}"] if args.loss else []
    per_seed = []
    for seed in args.seeds:
        seeded = [*sets, *loss, "--set", f"train.seed={seed}", "--set", f"experts.semantic.pretrain_seed={1000 + seed}"]
        t1 = time.time()
        init = []
        if load_config(args.config, [s for s in seeded if s != "--set"]).experts.semantic.uses_corpus():
            pre = work / f"semantic_pretrain_{seed}"
            assert come(["pretrain-semantic", "--config", args.config, *seeded, "--out", str(pre)]) == 0
            init = ["--init", str(pre / "clip.pt")]
        t_pre = time.time() - t1
        sem = semantic_dir(out, load_config(args.config).run.train_datasets)   # where the bank looks
        assert come(["finetune-semantic", "--config", args.config, *seeded, *init,
                     "--prompts", str(prompts), "--test", str(test), "--out", str(sem)]) == 0
        per_seed.append((seed, read_json(sem.parent / "semantic_eval.json"), t_pre, time.time() - t1 - t_pre))
    t2 = time.time()
    # MIM on the structure expert's own synthetic corpus (never benchmark images)
    assert come(["pretrain-structure", "--config", args.config, *sets, "--out", str(out / "structure")]) == 0
    t_ste = time.time() - t2

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

    st = read_json(out / "structure" / "structure_report.json")
    n_train = len(load_coco(train)["images"])
    print("\n=== bench_experts ===")
    print(f"synthetic images: {n_train} train / {len(load_coco(test)['images'])} test (synth {t_synth:.1f}s)")
    for seed, ev, t_pre, t_ft in per_seed:
        print(f"semantic seed {seed} ({ev['loss']}, init {ev.get('init', '?')}): zero-shot accuracy "
              f"{ev['zero_shot_accuracy']:.3f} vs chance {ev['chance_level']:.3f} (one-sided binomial "
              f"p={ev['p_value_vs_chance']:.3g}) on {ev['n_images']} held-out lesion images (generic prompt "
              f"{ev['zero_shot_accuracy_generic_prompt']:.3f}, before fine-tuning "
              f"{ev['zero_shot_accuracy_before_finetune']:.3f}); pretrain command {t_pre:.1f}s, "
              f"fine-tune {ev['seconds']:.1f}s, command {t_ft:.1f}s")
    accs = [ev["zero_shot_accuracy"] for _, ev, _, _ in per_seed]
    if len(accs) > 1:
        print(f"semantic over {len(accs)} seeds: accuracy min {min(accs):.3f} mean {sum(accs) / len(accs):.3f} "
              f"max {max(accs):.3f}; seeds with p < 0.05: "
              f"{sum(ev['p_value_vs_chance'] < 0.05 for _, ev, _, _ in per_seed)}/{len(accs)}")
    print(f"structure MIM: loss epoch 1 {st['epoch_losses'][0]:.4f} -> epoch {len(st['epoch_losses'])} "
          f"{st['epoch_losses'][-1]:.4f}; pretrain {st['seconds']:.1f}s, command {t_ste:.1f}s")
    print(f"bank (1 thread, 128x128 input): {ips:.1f} images/s; structure {tuple(feats['structure'].shape)}, "
          f"semantic {tuple(feats['semantic'].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
