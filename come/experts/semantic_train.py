"""Fine-tuning the semantic expert on prompt pairs, and its zero-shot benign/malignant test.

Training batches mix whole images and lesion-centred crops (probability
`experts.semantic.lesion_crop_prob`, crops of `crop_context` x the lesion box) so the small
model learns lesion appearance; evaluation and the exported encoder use whole images only.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.stats import binomtest
from torch import Tensor, nn

from come.config.schema import Config
from come.experts.images import crop_box, normalize, read_rgb, resize_square, to_float, to_uint8
from come.experts.losses import contrastive_loss
from come.experts.prompts import class_prompt, image_label
from come.utils.seed import seed_everything


def prepare_pairs(records: list[dict], size: int, context: float, seed: int) -> dict[str, Tensor]:
    """Load every prompt record -> whole / crop [N,3,S,S] uint8, has_box [N], text_ids [N]."""
    rng = np.random.default_rng(seed)
    whole, crops, has_box = [], [], []
    for rec in records:
        img = read_rgb(rec["image"])
        whole.append(to_uint8(resize_square(img, size)))
        boxes = rec.get("boxes") or []
        if boxes:
            box = boxes[int(rng.integers(len(boxes)))]
            crops.append(to_uint8(resize_square(crop_box(img, box, context, rng), size)))
        else:
            crops.append(whole[-1])
        has_box.append(bool(boxes))
    texts = sorted({r["text"] for r in records})
    ids = torch.tensor([texts.index(r["text"]) for r in records], dtype=torch.long)
    return {"whole": torch.stack(whole), "crop": torch.stack(crops),
            "has_box": torch.tensor(has_box), "text_ids": ids, "texts": texts}


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Callable, texts: list[str]) -> Tensor:
    """[T, C] L2-normalised text embeddings."""
    return nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1)


@torch.no_grad()
def encode_images(model: nn.Module, images: Tensor, mean, std, batch: int = 64) -> Tensor:
    """images [N, 3, S, S] in [0, 1] -> [N, C] L2-normalised embeddings."""
    outs = [model.encode_image(normalize(images[i:i + batch], mean, std)) for i in range(0, len(images), batch)]
    return nn.functional.normalize(torch.cat(outs), dim=-1)


def eval_set(coco: dict, data_root: str | Path, size: int) -> dict:
    """Held-out images with a benign/malignant lesion: images [N,3,S,S], labels [N] (1 = malignant), organs."""
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    imgs, labels, organs = [], [], []
    for im in sorted(coco["images"], key=lambda r: r["id"]):
        label = image_label(im, by_image.get(im["id"], []))
        if label == "Omit":
            continue
        imgs.append(resize_square(read_rgb(Path(data_root) / im["file_name"]), size))
        labels.append(int(label == "Malignant"))
        organs.append(im["organ"])
    if not imgs:
        raise ValueError("zero-shot evaluation: the test split holds no benign/malignant lesion image")
    return {"images": torch.stack(imgs), "labels": torch.tensor(labels), "organs": organs}


@torch.no_grad()
def zero_shot(model: nn.Module, tokenizer: Callable, ev: dict, mean, std) -> dict:
    """Accuracy of argmax similarity to the Benign vs Malignant prompt (per organ and generic)."""
    model.eval()
    feats = encode_images(model, ev["images"], mean, std)
    labels = ev["labels"]
    per_organ = torch.empty(len(labels), dtype=torch.long)
    for organ in sorted(set(ev["organs"])):
        idx = torch.tensor([i for i, o in enumerate(ev["organs"]) if o == organ])
        t = encode_texts(model, tokenizer, [class_prompt(organ, "Benign"), class_prompt(organ, "Malignant")])
        per_organ[idx] = (feats[idx] @ t.t()).argmax(1)
    tg = encode_texts(model, tokenizer, [class_prompt(None, "Benign"), class_prompt(None, "Malignant")])
    generic = (feats @ tg.t()).argmax(1)
    n_mal = int(labels.sum())
    chance = max(n_mal, len(labels) - n_mal) / len(labels)
    correct = int((per_organ == labels).sum())
    return {"zero_shot_accuracy": correct / len(labels),
            "p_value_vs_chance": float(binomtest(correct, len(labels), chance, alternative="greater").pvalue),
            "zero_shot_accuracy_generic_prompt": float((generic == labels).float().mean()),
            "chance_level": chance,
            "n_images": len(labels), "n_malignant": n_mal, "n_benign": len(labels) - n_mal}


def finetune(model: nn.Module, tokenizer: Callable, info: dict, pairs: dict, cfg: Config,
             log: Callable[[str], None] = print) -> dict:
    """Contrastive fine-tuning; returns {"step_losses", "epoch_losses", "seconds"}."""
    sc = cfg.experts.semantic
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    tokens = tokenizer(pairs["texts"])                          # [T, L]
    n = len(pairs["text_ids"])
    bs = min(sc.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    total = steps_per_epoch * sc.epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=sc.lr, weight_decay=0.05)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    step_losses, epoch_losses, t0 = [], [], time.time()
    model.train()
    for epoch in range(sc.epochs):
        perm = torch.randperm(n, generator=gen)
        ep = []
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            use_crop = (torch.rand(len(idx), generator=gen) < sc.lesion_crop_prob) & pairs["has_box"][idx]
            x = to_float(torch.where(use_crop.view(-1, 1, 1, 1), pairs["crop"][idx], pairs["whole"][idx]))
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            tid = pairs["text_ids"][idx]
            img = nn.functional.normalize(model.encode_image(normalize(x, info["mean"], info["std"])), dim=-1)
            txt = nn.functional.normalize(model.encode_text(tokens[tid]), dim=-1)
            loss = contrastive_loss(sc.loss, img, txt, tid, model.logit_scale.exp().clamp(max=100.0), sc.dhn_beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            ep.append(loss.item())
        step_losses += ep
        epoch_losses.append(float(np.mean(ep)))
        log(f"semantic epoch {epoch + 1}/{sc.epochs}: loss {epoch_losses[-1]:.4f}")
    model.eval()
    return {"step_losses": step_losses, "epoch_losses": epoch_losses, "seconds": time.time() - t0}
