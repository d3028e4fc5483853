"""`come finetune-semantic`: fine-tune the CLIP semantic expert on prompt pairs, export its
frozen image encoder (<out>/encoder.pt, with the text embeddings of the test prompt and the
class prompts, computed once here) and write <out>/../semantic_eval.json (zero-shot
benign/malignant accuracy on held-out lesion images, chance level, loss curve).

The pairs come from `--train SPLIT...` (the training splits of ONE training set: the workflow
fine-tunes one expert per training set, so no run's expert saw another set's images; the
prompts are written to <out>/prompts.jsonl) or from a `--prompts` JSONL of `come prompts`."""
from __future__ import annotations

from pathlib import Path

from come.commands import add_config_args
from come.config import dump_config, load_config


def configure(parser) -> None:
    add_config_args(parser)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--train", nargs="+", help="COCO training splits of the training set (prompts built here)")
    src.add_argument("--prompts", help="JSONL from `come prompts`")
    parser.add_argument("--test", required=True, nargs="+",
                        help="COCO test split(s) for the zero-shot evaluation (the training set's)")
    parser.add_argument("--out", required=True, help="output folder (e.g. results/experts/semantic)")
    parser.add_argument("--init", default="", help="start from this corpus-pretrained clip.pt "
                        "(`come pretrain-semantic`); default: experts.semantic's model as built")


def run(args) -> int:
    import torch

    from come.data.coco import load_coco, merge
    from come.experts import semantic, semantic_pretrain as sp, semantic_train as st
    from come.experts.prompts import (LABELS, TEST_PROMPT, build_prompt_records, class_prompt, read_prompts,
                                      write_jsonl)
    from come.utils.io import write_json

    cfg = load_config(args.config, args.overrides)
    cfg.experts.semantic.validate()
    torch.set_num_threads(max(1, cfg.train.threads))
    sc = cfg.experts.semantic
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    if args.train:
        records = build_prompt_records(merge([load_coco(p) for p in args.train]), cfg.data.root,
                                       where=" ".join(args.train))
        write_jsonl(records, out / "prompts.jsonl")
    else:
        records = read_prompts(args.prompts)
    test = merge([load_coco(p) for p in args.test])
    torch.manual_seed(cfg.train.seed)
    if sc.uses_corpus() and not args.init:
        print("note: experts.semantic expects a corpus-pretrained model (come pretrain-semantic) but no "
              "--init was given: fine-tuning the embedded CLIP from random weights")
    model, tokenizer, info = sp.init_clip(sc, args.init)
    size = info["image_size"]
    ev = st.eval_set(test, cfg.data.root, size)
    before = st.zero_shot(model, tokenizer, ev, info["mean"], info["std"])
    pairs = st.prepare_pairs(records, size, sc.crop_context, cfg.train.seed)
    hist = st.finetune(model, tokenizer, info, pairs, cfg)
    after = st.zero_shot(model, tokenizer, ev, info["mean"], info["std"])
    texts = [TEST_PROMPT] + [class_prompt(o, lab) for o in (None, "breast", "thyroid") for lab in LABELS]
    semantic.export_encoder(model, info, out / "encoder.pt", texts, st.encode_texts(model, tokenizer, texts),
                            extra={"source": info["source"]})
    result = {**after, "zero_shot_accuracy_before_finetune": before["zero_shot_accuracy"],
              "model": info["source"], "loss": sc.loss, "epochs": sc.epochs,
              "n_train_pairs": len(records), "loss_curve": {"step": hist["step_losses"], "epoch": hist["epoch_losses"]},
              "seconds": hist["seconds"], "test": list(args.test), "prompts": str(args.prompts or out / "prompts.jsonl"),
              "train": list(args.train or [])}
    result["init"] = str(args.init) if args.init else info["source"]
    eval_path = write_json(out.parent / "semantic_eval.json", result)
    st.plot_loss(hist, out.parent / "semantic_loss.png", info.get("pretrain_epoch_losses"))
    print(f"zero-shot benign/malignant accuracy {after['zero_shot_accuracy']:.3f} "
          f"(generic prompt {after['zero_shot_accuracy_generic_prompt']:.3f}, chance {after['chance_level']:.3f}, "
          f"before fine-tuning {before['zero_shot_accuracy']:.3f}, n={after['n_images']}); "
          f"wrote {out / 'encoder.pt'} and {eval_path}")
    return 0
