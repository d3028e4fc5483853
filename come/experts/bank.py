"""The frozen shared-expert feature bank the COME detector reads.

    bank = load_shared_experts(cfg, device)      # None unless model.ffn.type == "come" with STE/SEE
    feats = bank(images, pad_mask)               # images [B, 3, H, W] ImageNet-normalised, padded
                                                 # bottom/right; pad_mask [B, H, W] True = padding
    feats["structure"]:       [B, C_s, h, w]  patch-token map of the structure ViT
    feats["semantic"]:        [B, C_t, h', w'] dense joint-space map (experts.semantic.features
                              = "dense", each location L2-normalised) or [B, C_t] (= "global")
    feats["semantic_prompt"]: [B, 1, h', w']  cosine similarity of each location to the test
                              prompt "Diagnosis for Ultrasound Image" ("dense" only)
A key is present only when its expert is enabled (model.ffn.use_ste / use_see).

Every map is in the image's OWN frame: each image is cropped to its unpadded extent (from
pad_mask), resized to the expert's square input (bilinear, aspect not kept, as the experts
were trained) and re-normalised with the expert's mean/std, so its features do not depend on
its batch partners or the batch size. Sample them at reference points normalised to the
unpadded image (docs/architecture.md, coordinate conventions). The test prompt's text
embedding is read once from the semantic expert's encoder.pt when the bank is loaded.

The semantic expert is the one fine-tuned on the run's own training set
(`come.experts.trainset.semantic_dir(experts.root, run.train_datasets)`); the structure
expert (USFM or MIM on a synthetic corpus) never saw a benchmark image and is shared.

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
from come.experts.trainset import semantic_dir
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


def valid_extents(pad_mask: Tensor | None, b: int, h: int, w: int) -> list[tuple[int, int]]:
    """(height, width) of each image's unpadded top-left region; pad_mask [B, H, W] True = padding."""
    if pad_mask is None:
        return [(h, w)] * b
    if pad_mask.shape != (b, h, w):
        raise ValueError(f"SharedExpertBank: pad_mask {tuple(pad_mask.shape)} does not match images {(b, h, w)}")
    valid = ~pad_mask.bool()
    out = []
    for i in range(b):
        hi, wi = int(valid[i].any(1).sum()), int(valid[i].any(0).sum())
        if hi == 0 or wi == 0 or int(valid[i].sum()) != hi * wi or not bool(valid[i, :hi, :wi].all()):
            raise ValueError(f"SharedExpertBank: image {i}'s unpadded region is not a non-empty top-left "
                             "rectangle (the detector pads bottom/right)")
        out.append((hi, wi))
    return out


class SharedExpertBank(nn.Module):
    """Frozen STE / SEE encoders; forward(images [B,3,H,W], pad_mask [B,H,W]) -> feature dict."""

    def __init__(self, structure_enc: nn.Module | None, semantic_enc: nn.Module | None, cache: bool = False,
                 semantic_features: str = "dense"):
        super().__init__()
        if structure_enc is None and semantic_enc is None:
            raise ValueError("SharedExpertBank needs at least one expert")
        if semantic_features not in ("dense", "global"):
            raise ValueError(f"experts.semantic.features: {semantic_features!r} is not 'dense' or 'global'")
        self.structure = structure_enc
        self.semantic = semantic_enc
        self.semantic_features = semantic_features
        if semantic_enc is not None and semantic_features == "dense":
            # the test prompt is embedded once (at export) and read once here
            self.register_buffer("test_prompt", semantic_enc.test_prompt_embedding.clone(), persistent=False)
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
            if self.semantic_features == "dense":
                out["semantic_prompt"] = 1
        return out

    @staticmethod
    def _prep(raw: Tensor, extents: list[tuple[int, int]], enc: nn.Module) -> Tensor:
        """Each image's unpadded crop resized to the expert's square input: [B, 3, S, S]."""
        crops = [resize_square(raw[i:i + 1, :, :h, :w], enc.image_size) for i, (h, w) in enumerate(extents)]
        return normalize(torch.cat(crops), enc.mean, enc.std)

    def _encode(self, name: str, fn, x: Tensor) -> Tensor:
        return self.cache.run(name, fn, x) if self.cache is not None else fn(x)

    @torch.no_grad()
    def forward(self, images: Tensor, pad_mask: Tensor | None = None) -> dict[str, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"SharedExpertBank expects images [B, 3, H, W], got {tuple(images.shape)}")
        b, _, h, w = images.shape
        extents = valid_extents(pad_mask, b, h, w)
        raw = denormalize(images.float(), IMAGENET_MEAN, IMAGENET_STD)
        feats = {}
        if self.structure is not None:
            feats["structure"] = self._encode("structure", self.structure, self._prep(raw, extents, self.structure))
        if self.semantic is not None:
            x = self._prep(raw, extents, self.semantic)
            if self.semantic_features == "global":
                feats["semantic"] = self._encode("semantic", self.semantic, x)
            else:
                dense = self._encode("semantic_dense", self.semantic.dense, x)
                feats["semantic"] = dense
                feats["semantic_prompt"] = torch.einsum("bchw,c->bhw", dense, self.test_prompt.to(dense))[:, None]
        return feats


def expert_paths(cfg: Config) -> dict[str, Path]:
    """The structure expert (shared) and the semantic expert of the run's own training set."""
    root = Path(cfg.experts.root)
    return {"structure": root / "structure" / "encoder.pt",
            "semantic": semantic_dir(root, cfg.run.train_datasets) / "encoder.pt"}


def load_shared_experts(cfg: Config, device: torch.device | str = "cpu") -> SharedExpertBank | None:
    """The frozen bank for `cfg`, or None when the method uses no shared expert."""
    ffn = cfg.model.ffn
    if ffn.type != "come" or not (ffn.use_ste or ffn.use_see):
        return None
    paths = expert_paths(cfg)
    ste = structure.load_encoder(paths["structure"]) if ffn.use_ste else None
    see = semantic.load_encoder(paths["semantic"]) if ffn.use_see else None
    return SharedExpertBank(ste, see, cache=cfg.experts.cache_features,
                            semantic_features=cfg.experts.semantic.features).to(device)
