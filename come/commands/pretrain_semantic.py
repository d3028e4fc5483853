"""`come pretrain-semantic`: pretrain the embedded CLIP semantic expert on a synthetic image-text
corpus (the stand-in for BiomedCLIP's pretraining; come.experts.semantic_pretrain).

Writes <out>/clip.pt (both towers), <out>/corpus/ (images + COCO), <out>/corpus_prompts.jsonl,
<out>/pretrain_log.json and <out>/config.yaml. `come finetune-semantic --init <out>/clip.pt`
then fine-tunes it on the benchmark's training prompts.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from come.commands import add_config_args
from come.config import dump_config, load_config


def configure(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--out", required=True, help="output folder (e.g. results/experts/semantic_pretrain)")


def run(args) -> int:
    import torch

    from come.experts import semantic, semantic_pretrain as sp, semantic_train as st
    from come.utils.io import write_json

    cfg = load_config(args.config, args.overrides)
    sc = cfg.experts.semantic
    sc.validate()
    torch.set_num_threads(max(1, cfg.train.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    records = sp.build_corpus(cfg, out)
    mix = Counter(r["text"] for r in records)
    print(f"corpus: {len(records)} images (seed {sc.pretrain_seed}) -> {out / 'corpus'}")
    for text, n in sorted(mix.items()):
        print(f"  {n:5d}  {text}")
    torch.manual_seed(cfg.train.seed)
    model, tokenizer, info = semantic.build_clip(sc, sc.temperature)
    pairs = st.prepare_pairs(records, info["image_size"], sc.crop_context, cfg.train.seed)
    hist = st.finetune(model, tokenizer, info, pairs, cfg, epochs=sc.pretrain_epochs,
                      lr=sc.pretrain_lr, stage="pretrain")
    log = {"n_images": len(records), "seed": sc.pretrain_seed, "epochs": sc.pretrain_epochs, "lr": sc.pretrain_lr,
           "vision": sc.embedded_vision, "loss": sc.loss, "prompt_counts": dict(sorted(mix.items())),
           "loss_curve": {"step": hist["step_losses"], "epoch": hist["epoch_losses"]},
           "seconds": hist["seconds"]}
    sp.save_clip(model, info, out / "clip.pt", extra={"epoch_losses": hist["epoch_losses"],
                                                      "n_images": len(records)})
    write_json(out / "pretrain_log.json", log)
    print(f"pretrained the embedded CLIP on {len(records)} corpus pairs in {hist['seconds']:.1f}s: loss "
          f"{hist['epoch_losses'][0]:.4f} -> {hist['epoch_losses'][-1]:.4f}; wrote {out / 'clip.pt'}")
    return 0
