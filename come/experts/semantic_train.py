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
from come.engine.optim import adamw
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


def augment(x: Tensor, gen: torch.Generator, zoom: tuple[float, float] = (0.8, 1.0),
            gain: float = 0.2, contrast: float = 0.2) -> Tensor:
    """Seeded batch augmentation of images x [B, 3, S, S] in [0, 1]: a random zoom-in (side
    fraction in `zoom`) at a random position, then brightness x (1 +- gain) and contrast about
    the image mean x (1 +- contrast). Returns [B, 3, S, S] in [0, 1]."""
    b = x.shape[0]
    u = torch.rand(b, 5, generator=gen, dtype=x.dtype)
    side = zoom[0] + (zoom[1] - zoom[0]) * u[:, 0]                       # [B] kept side fraction
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, 0, 2] = (1 - side) * (2 * u[:, 1] - 1)                      # shift within the margin
    theta[:, 1, 2] = (1 - side) * (2 * u[:, 2] - 1)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = (1 + contrast * (2 * u[:, 3] - 1)).view(-1, 1, 1, 1)
    g = (1 + gain * (2 * u[:, 4] - 1)).view(-1, 1, 1, 1)
    return ((x - mean) * c + mean).mul(g).clamp(0, 1)


def finetune(model: nn.Module, tokenizer: Callable, info: dict, pairs: dict, cfg: Config,
             log: Callable[[str], None] = print, epochs: int | None = None, lr: float | None = None,
             stage: str = "semantic") -> dict:
    """Contrastive training on `pairs` (fine-tuning; the corpus pretraining passes `epochs`/`lr` =
    experts.semantic.pretrain_epochs/pretrain_lr); returns {"step_losses", "epoch_losses", "seconds"}."""
    sc = cfg.experts.semantic
    n_epochs = sc.epochs if epochs is None else int(epochs)
    lr = sc.lr if lr is None else float(lr)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    tokens = tokenizer(pairs["texts"])                          # [T, L]
    n = len(pairs["text_ids"])
    bs = min(sc.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    total = steps_per_epoch * n_epochs
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    step_losses, epoch_losses, t0 = [], [], time.time()
    model.train()
    for epoch in range(n_epochs):
        perm = torch.randperm(n, generator=gen)
        ep = []
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            use_crop = (torch.rand(len(idx), generator=gen) < sc.lesion_crop_prob) & pairs["has_box"][idx]
            x = to_float(torch.where(use_crop.view(-1, 1, 1, 1), pairs["crop"][idx], pairs["whole"][idx]))
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            if sc.augment:
                x = augment(x, gen)
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
        log(f"{stage} epoch {epoch + 1}/{n_epochs}: loss {epoch_losses[-1]:.4f}")
    model.eval()
    return {"step_losses": step_losses, "epoch_losses": epoch_losses, "seconds": time.time() - t0}


def plot_loss(hist: dict, path: str | Path, pretrain_epochs: list[float] | None = None) -> Path:
    """Loss figure: corpus pretraining (when given) then fine-tuning, per step and per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = ([("corpus pretraining", None, pretrain_epochs)] if pretrain_epochs else []) + \
        [("fine-tuning on the training prompts", hist["step_losses"], hist["epoch_losses"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, (title, steps, epochs) in zip(axes[0], panels):
        if steps:
            per_epoch = len(steps) / max(1, len(epochs))
            ax.plot([(i + 1) / per_epoch for i in range(len(steps))], steps, color="0.75", lw=0.8,
                    label="step")
        ax.plot(range(1, len(epochs) + 1), epochs, "o-", color="tab:blue", label="epoch mean")
        ax.set(title=title, xlabel="epoch", ylabel="contrastive loss")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle("Semantic expert (CLIP) training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
