"""The frozen shared-expert feature bank the COME detector reads.

    bank = load_shared_experts(cfg, device)      # None unless model.ffn.type == "come" with STE/SEE
    feats = bank(images)                         # images [B, 3, H, W], ImageNet-normalised
    feats["structure"]: [B, C_s, h, w]  patch-token map of the structure ViT (C_s = embed dim)
    feats["semantic"]:  [B, C_t]        L2-normalised image embedding in the CLIP joint space
A key is present only when its expert is enabled (model.ffn.use_ste / use_see).

Each expert gets the images resized to its own square input size (bilinear, no aspect kept,
matching how the experts were trained) and re-normalised with its own mean/std.

Feature caching (experts.cache_features, default False). Caching by image id would be wrong:
the detector trains on randomly resized and flipped images, so features of an id change from
epoch to epoch (and a flipped map must not be served for an unflipped image). With the
option on, the cache is content-addressed instead: the key is a hash of the exact image after
resizing to the expert's input, so a hit is always the same input and returns the same
features (useful when the same un-augmented images are seen again, e.g. evaluation passes).
It is off by default because with augmentation hits are rare and the embedded experts are
small (one forward costs a few ms per image), so the cache would only spend memory.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from come.config.schema import Config
from come.experts import semantic, structure
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize, resize_square


class _FeatureCache:
    """Bounded LRU map: hash of one resized image -> its feature tensor (CPU)."""

    def __init__(self, max_items: int = 4096):
        self.max_items = max_items
        self.store: OrderedDict[str, Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(name: str, x: Tensor) -> str:
        return name + hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()

    def run(self, name: str, fn, x: Tensor) -> Tensor:
        """Apply `fn` to the batch x [B, ...], computing only the images not cached yet."""
        keys = [self.key(name, xi) for xi in x]
        todo = [i for i, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            out = fn(x[todo])
            for j, i in enumerate(todo):
                self.store[keys[i]] = out[j].detach().cpu()
                if len(self.store) > self.max_items:
                    self.store.popitem(last=False)
        for k in keys:
            self.store.move_to_end(k)
        return torch.stack([self.store[k] for k in keys]).to(x.device)


class SharedExpertBank(nn.Module):
    """Frozen STE / SEE encoders; forward(images [B,3,H,W] ImageNet-normalised) -> feature dict."""

    def __init__(self, structure_enc: nn.Module | None, semantic_enc: nn.Module | None, cache: bool = False):
        super().__init__()
        if structure_enc is None and semantic_enc is None:
            raise ValueError("SharedExpertBank needs at least one expert")
        self.structure = structure_enc
        self.semantic = semantic_enc
        self.cache = _FeatureCache() if cache else None
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "SharedExpertBank":
        """Always stays in eval mode: the experts are frozen."""
        return super().train(False)

    @property
    def channels(self) -> dict[str, int]:
        """Feature width per key (C_s, C_t) for the COME block's projections."""
        out = {}
        if self.structure is not None:
            out["structure"] = self.structure.embed_dim
        if self.semantic is not None:
            out["semantic"] = self.semantic.embed_dim
        return out

    def _prep(self, raw: Tensor, enc: nn.Module) -> Tensor:
        return normalize(resize_square(raw, enc.image_size), enc.mean, enc.std)

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"SharedExpertBank expects images [B, 3, H, W], got {tuple(images.shape)}")
        raw = denormalize(images.float(), IMAGENET_MEAN, IMAGENET_STD)
        feats = {}
        for name, enc in (("structure", self.structure), ("semantic", self.semantic)):
            if enc is None:
                continue
            x = self._prep(raw, enc)
            feats[name] = self.cache.run(name, enc, x) if self.cache is not None else enc(x)
        return feats


def expert_paths(cfg: Config) -> dict[str, Path]:
    root = Path(cfg.experts.root)
    return {"structure": root / "structure" / "encoder.pt", "semantic": root / "semantic" / "encoder.pt"}


def load_shared_experts(cfg: Config, device: torch.device | str = "cpu") -> SharedExpertBank | None:
    """The frozen bank for `cfg`, or None when the method uses no shared expert."""
    ffn = cfg.model.ffn
    if ffn.type != "come" or not (ffn.use_ste or ffn.use_see):
        return None
    paths = expert_paths(cfg)
    ste = structure.load_encoder(paths["structure"]) if ffn.use_ste else None
    see = semantic.load_encoder(paths["semantic"]) if ffn.use_see else None
    return SharedExpertBank(ste, see, cache=cfg.experts.cache_features).to(device)
