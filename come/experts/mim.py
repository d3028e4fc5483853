"""Masked image modelling (MIM) pretraining of the structure expert, USFM-style.

Formulation (one training step, images x [B, 3, S, S] normalised with ImageNet mean/std):
  1. Frequency-domain masking: X = FFT2(x) per channel; a radial band
     r0 <= r < r0 + w of the normalised frequency radius r = |f| / max|f| (w = mim_freq_mask_ratio,
     r0 ~ U[0, 1 - w] per image) is zeroed; x_f = Re(IFFT2(X * (1 - band))).
  2. Spatial masking: a random `mim_mask_ratio` share of the patches of x_f is replaced by a
     learned mask token after patch embedding.
  3. The ViT encodes the tokens; a light decoder (per-token MLP D -> D -> p*p*3) predicts the
     pixels of every patch of the ORIGINAL x.
  4. Loss = MSE over masked patches + mim_visible_weight * MSE over visible patches (visible
     patches are still frequency-corrupted, so restoring them is the frequency task).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from come.config.schema import Config
from come.engine.optim import adamw
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize, to_float
from come.experts.structure import vit_tokens
from come.utils.seed import seed_everything


def patchify(x: Tensor, p: int) -> Tensor:
    """[B, C, S, S] -> [B, N, p*p*C] (row-major patches)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(t: Tensor, p: int, c: int = 3) -> Tensor:
    """Inverse of `patchify`: [B, N, p*p*C] -> [B, C, S, S]."""
    b, n, _ = t.shape
    g = int(round(math.sqrt(n)))
    x = t.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, g * p, g * p)


def random_patch_mask(b: int, n: int, ratio: float, gen: torch.Generator) -> Tensor:
    """[B, N] bool with exactly round(ratio * N) True (masked) entries per row."""
    k = int(round(ratio * n))
    order = torch.rand(b, n, generator=gen).argsort(dim=1)
    mask = torch.zeros(b, n, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def frequency_mask(x: Tensor, width: float, gen: torch.Generator) -> Tensor:
    """Zero a random radial band (relative width `width`) of each image's 2-D spectrum. [B,C,H,W]."""
    if width <= 0:
        return x
    b, _, h, w = x.shape
    fy = torch.fft.fftfreq(h).view(h, 1)
    fx = torch.fft.fftfreq(w).view(1, w)
    r = torch.sqrt(fy ** 2 + fx ** 2)
    r = r / r.max()                                             # [H, W] in [0, 1]
    start = torch.rand(b, generator=gen) * max(0.0, 1.0 - width)
    band = (r.unsqueeze(0) >= start.view(b, 1, 1)) & (r.unsqueeze(0) < (start + width).view(b, 1, 1))
    spec = torch.fft.fft2(x) * (~band).unsqueeze(1).to(x.dtype)
    return torch.fft.ifft2(spec).real


def locality_init(vit: nn.Module) -> None:
    """From-scratch only: start every block's relative position table at -slope_h * distance
    (ALiBi-like 2-D prior, slope 2^-h for head h), so mask tokens know where they are from the
    first step (timm zero-initialises the tables, which leaves all mask tokens identical)."""
    for blk in vit.blocks:
        table = getattr(blk.attn, "relative_position_bias_table", None)
        if table is None:
            continue
        w = blk.attn.window_size[0]
        r = torch.arange(-(w - 1), w)
        dist = torch.sqrt(r.view(-1, 1).float() ** 2 + r.view(1, -1).float() ** 2).reshape(-1)
        slopes = 2.0 ** -torch.arange(table.shape[1]).float()
        with torch.no_grad():
            table.zero_()
            table[: dist.numel()] = -dist.view(-1, 1) * slopes.view(1, -1)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, layer scales, tokens and relative position tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        flat = p.ndim <= 1 or name.endswith(("_token", "relative_position_bias_table"))
        (no_decay if flat else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class MIMModel(nn.Module):
    """Structure ViT + mask token + light per-token pixel decoder."""

    def __init__(self, vit: nn.Module, patch_size: int):
        super().__init__()
        self.vit = vit
        d = vit.embed_dim
        self.patch_size = patch_size
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, patch_size * patch_size * 3))

    def forward(self, x_in: Tensor, mask: Tensor) -> Tensor:
        """x_in [B, 3, S, S] (corrupted), mask [B, N] -> predicted patches [B, N, p*p*3]."""
        tok = vit_tokens(self.vit, x_in, mask, self.mask_token)[:, 1:]
        return self.decoder(tok)


def mim_loss(pred: Tensor, target: Tensor, mask: Tensor, visible_weight: float) -> Tensor:
    """pred/target [B, N, P], mask [B, N] bool -> masked MSE + weight * visible MSE."""
    per_patch = ((pred - target) ** 2).mean(-1)
    m = mask.float()
    masked = (per_patch * m).sum() / m.sum().clamp_min(1)
    visible = (per_patch * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
    return masked + visible_weight * visible


def corrupt(x: Tensor, cfg: Config, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(frequency-masked x [B,3,S,S], spatial mask [B,N])."""
    sc = cfg.experts.structure
    n = (sc.img_size // sc.patch_size) ** 2
    return frequency_mask(x, sc.mim_freq_mask_ratio, gen), random_patch_mask(x.shape[0], n, sc.mim_mask_ratio, gen)


def pretrain(model: MIMModel, images: Tensor, cfg: Config, log: Callable[[str], None] = print) -> dict:
    """images [N, 3, S, S] in [0, 1] (float) or uint8. -> {"step_losses", "epoch_losses", "seconds"}."""
    sc = cfg.experts.structure
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    n = len(images)
    bs = min(sc.batch_size, n)
    steps = max(1, n // bs)
    total = steps * sc.mim_epochs
    opt = adamw(param_groups(model, 0.05), lr=sc.mim_lr, betas=(0.9, 0.95))
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    step_losses, epoch_losses, t0 = [], [], time.time()
    model.train()
    for epoch in range(sc.mim_epochs):
        perm = torch.randperm(n, generator=gen)
        ep = []
        for s in range(steps):
            x = normalize(to_float(images[perm[s * bs:(s + 1) * bs]]), IMAGENET_MEAN, IMAGENET_STD)
            flip = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            x_in, mask = corrupt(x, cfg, gen)
            loss = mim_loss(model(x_in, mask), patchify(x, sc.patch_size), mask, sc.mim_visible_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            opt.step()
            sched.step()
            ep.append(loss.item())
        step_losses += ep
        epoch_losses.append(float(np.mean(ep)))
        log(f"MIM epoch {epoch + 1}/{sc.mim_epochs}: loss {epoch_losses[-1]:.4f}")
    model.eval()
    return {"step_losses": step_losses, "epoch_losses": epoch_losses, "seconds": time.time() - t0}


def plot_loss(hist: dict, path: str | Path, visible_weight: float = 0.5) -> Path:
    """Loss curve PNG: per-step loss and per-epoch mean."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = hist["step_losses"]
    per_epoch = max(1, len(steps) // max(1, len(hist["epoch_losses"])))
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    ax.plot(np.arange(1, len(steps) + 1), steps, lw=1, alpha=0.6, label="step")
    ax.plot(np.arange(1, len(hist["epoch_losses"]) + 1) * per_epoch, hist["epoch_losses"], "o-", label="epoch mean")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"loss: masked MSE + {visible_weight:g} x visible MSE")
    ax.set_title("Structure expert: spatial + frequency MIM pretraining")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


@torch.no_grad()
def plot_reconstructions(model: MIMModel, images: Tensor, cfg: Config, path: str | Path, n: int = 6) -> Path:
    """Rows: original / masked input (frequency band removed, masked patches grey) / reconstruction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = cfg.experts.structure.patch_size
    gen = torch.Generator().manual_seed(cfg.train.seed + 2)
    x = normalize(to_float(images[:n]), IMAGENET_MEAN, IMAGENET_STD)
    x_in, mask = corrupt(x, cfg, gen)
    model.eval()
    pred = unpatchify(model(x_in, mask), p)
    shown_in = patchify(x_in, p).masked_fill(mask.unsqueeze(-1), 0.0)   # 0 = the mean colour
    rows = [("original", x), ("masked input", unpatchify(shown_in, p)), ("reconstruction", pred)]
    fig, axes = plt.subplots(3, len(x), figsize=(1.6 * len(x), 5.2), dpi=120, squeeze=False)
    for r, (name, t) in enumerate(rows):
        vis = denormalize(t, IMAGENET_MEAN, IMAGENET_STD).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        for c in range(len(x)):
            axes[r, c].imshow(vis[c])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name)
    fig.suptitle("Structure expert MIM reconstructions (held-out mask draw)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
