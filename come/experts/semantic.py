"""The semantic expert (SEE): an open_clip CLIP model and its exported frozen image encoder.

Model sources, in order of precedence:
  1. `experts.semantic.local_dir`: a local open_clip directory (open_clip_config.json + weights),
     loaded through open_clip's `local-dir:` schema (offline).
  2. `experts.semantic.model_name`: an open_clip name, e.g. the paper's
     "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224" (needs the hub or its cache).
  3. neither: the embedded small CLIP built from `embedded_model_cfg` (small timm CNN or ViT + small
     text transformer, open_clip's bundled 'simple' BPE tokenizer, random init), which
     `come pretrain-semantic` first pretrains on a synthetic image-text corpus
     (come.experts.semantic_pretrain) before it is fine-tuned like BiomedCLIP.

`encoder.pt` (written by `export_encoder`) holds the vision tower's weights plus everything
needed to rebuild it (open_clip vision config, embed dim, input size, mean/std), and the text
embeddings of the zero-shot class prompts; `load_encoder` reads it with weights_only=True.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import _build_vision_tower
from torch import Tensor, nn

from come.config.schema import SemanticExpertConfig
from come.experts.prompts import TEST_PROMPT
from come.utils.torchio import load_payload, save_payload

FORMAT = "come-semantic-encoder/1"


def embedded_model_cfg(cfg: SemanticExpertConfig) -> dict[str, Any]:
    """open_clip model config of the embedded small CLIP (random init).

    Vision tower (`embedded_vision`): a timm CNN (default resnet10t, average pooled, linear
    projection) or "vit" (open_clip ViT: 4 layers, width 128, 8x8 patch grid). Text tower: 2-layer
    transformer, width 64, 32 tokens. Measured (benchmarks/bench_experts.py): from a few hundred
    images the CNN learns benign/malignant appearance where the ViT stays near chance.
    """
    if cfg.image_size < 32:
        raise ValueError(f"experts.semantic.image_size: {cfg.image_size} must be >= 32")
    if cfg.embedded_vision == "vit":
        if cfg.image_size % 8:
            raise ValueError(f"experts.semantic.image_size: {cfg.image_size} must be a multiple of 8 for 'vit'")
        vision = {"image_size": cfg.image_size, "patch_size": cfg.image_size // 8, "layers": 4,
                  "width": 128, "head_width": 32, "mlp_ratio": 2.0}
    else:
        import timm
        if not timm.is_model(cfg.embedded_vision):
            raise ValueError(f"experts.semantic.embedded_vision: {cfg.embedded_vision!r} is neither 'vit' "
                             "nor a timm model name")
        vision = {"timm_model_name": cfg.embedded_vision, "timm_model_pretrained": False,
                  "timm_pool": "avg", "timm_proj": "linear", "image_size": cfg.image_size}
    return {
        "embed_dim": cfg.embed_dim,
        "quick_gelu": False,
        "vision_cfg": vision,
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2, "mlp_ratio": 2.0},
    }


def _source_name(cfg: SemanticExpertConfig) -> str:
    if cfg.local_dir:
        return f"local-dir:{cfg.local_dir}"
    return cfg.model_name


def _read_model_cfg(cfg: SemanticExpertConfig) -> dict[str, Any]:
    """The open_clip model config of a local directory or hub model."""
    if cfg.local_dir:
        path = Path(cfg.local_dir) / "open_clip_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (experts.semantic.local_dir must hold an "
                                    "open_clip_config.json and a weights file)")
        try:
            return json.loads(path.read_text())["model_cfg"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}: not an open_clip config (need a 'model_cfg' mapping): {exc}") from None
    schema, ident = open_clip.factory.parse_model_name(cfg.model_name)
    if schema == "hf-hub":
        return open_clip.factory._get_hf_config(ident)["model_cfg"]
    model_cfg = open_clip.get_model_config(cfg.model_name)
    if model_cfg is None:
        raise ValueError(f"experts.semantic.model_name: {cfg.model_name!r} is not a known open_clip model")
    return model_cfg


def build_clip(cfg: SemanticExpertConfig, temperature: float | None = None) -> tuple[nn.Module, Callable, dict]:
    """(model, tokenizer, info). info: model_cfg, image_size, mean, std, source.

    `temperature` initialises the logit scale (1 / temperature) of the embedded random-init model.
    """
    name = _source_name(cfg)
    if name:
        model_cfg = _read_model_cfg(cfg)
        model = open_clip.create_model(name)
        tokenizer = open_clip.get_tokenizer(name)
        pp = getattr(model.visual, "preprocess_cfg", {}) or {}
        mean = tuple(pp.get("mean", OPENAI_DATASET_MEAN))
        std = tuple(pp.get("std", OPENAI_DATASET_STD))
    else:
        model_cfg = embedded_model_cfg(cfg)
        model = open_clip.CLIP(**model_cfg)
        tokenizer = open_clip.tokenizer.SimpleTokenizer(
            context_length=model_cfg["text_cfg"]["context_length"])
        mean, std = tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)
        name = "embedded"
    if temperature is not None and name == "embedded":      # pretrained models keep their own scale
        with torch.no_grad():
            model.logit_scale.fill_(float(torch.log(torch.tensor(1.0 / temperature))))
    size = model_cfg["vision_cfg"].get("image_size", cfg.image_size)
    size = size[0] if isinstance(size, (list, tuple)) else int(size)
    info = {"model_cfg": model_cfg, "image_size": size, "mean": list(mean), "std": list(std), "source": name}
    return model, tokenizer, info


def dense_features(visual: nn.Module, x: Tensor) -> Tensor:
    """The vision tower's last feature map through its projection: [B, 3, S, S] -> [B, C_t, h, w].

    Not normalised: with average pooling and a linear projection its spatial mean IS the global
    (pre-normalisation) embedding, so each location lives in the same joint space. Supported:
    open_clip's TimmModel (CNN map [B, C, h, w] or ViT tokens [B, P + N, C]) with a linear/MLP
    head, and open_clip's VisionTransformer (patch tokens after ln_post, times proj).
    """
    if hasattr(visual, "trunk") and hasattr(visual, "head"):
        f = visual.trunk.forward_features(x)
        if f.dim() == 3:                                          # timm ViT: drop prefix tokens
            f = f[:, int(getattr(visual.trunk, "num_prefix_tokens", 1)):]
            g = int(round(f.shape[1] ** 0.5))
            if g * g != f.shape[1]:
                raise ValueError(f"semantic expert: {f.shape[1]} patch tokens are not a square grid")
            f = f.reshape(f.shape[0], g, g, f.shape[2])
        elif f.dim() == 4:
            f = f.permute(0, 2, 3, 1)                             # [B, h, w, C]
        else:
            raise ValueError(f"semantic expert: unsupported trunk feature shape {tuple(f.shape)}")
        for name, layer in visual.head.named_children():
            if name == "pool":
                raise ValueError("semantic expert: an attention-pooled tower has no dense projection; "
                                 "set experts.semantic.features=global")
            f = layer(f)
        return f.permute(0, 3, 1, 2)
    if hasattr(visual, "transformer") and hasattr(visual, "_pool"):
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError("semantic expert: an attention-pooled ViT has no dense projection; "
                             "set experts.semantic.features=global")
        t = visual.transformer(visual._embeds(x))
        _, tok = visual._pool(t)
        if getattr(visual, "final_ln_after_pool", False):
            tok = visual.ln_post(tok)
        if visual.proj is not None:
            tok = tok @ visual.proj
        g = int(round(tok.shape[1] ** 0.5))
        return tok.reshape(tok.shape[0], g, g, tok.shape[2]).permute(0, 3, 1, 2)
    raise ValueError(f"semantic expert: no dense features for a {type(visual).__name__} tower; "
                     "set experts.semantic.features=global")


class SemanticEncoder(nn.Module):
    """Frozen image encoder. forward: images [B, 3, S, S] normalised with `mean`/`std` -> [B, C_t]
    L2-normalised embeddings in the joint image-text space; `dense(x)` -> [B, C_t, h, w] (each
    location L2-normalised); `prompt_map(dense)` -> [B, 1, h, w] cosine similarity to the test
    prompt "Diagnosis for Ultrasound Image", whose text embedding was computed once, when the
    expert was exported (`test_prompt_embedding` [C_t])."""

    def __init__(self, visual: nn.Module, image_size: int, mean: list[float], std: list[float],
                 embed_dim: int, prompt_texts: list[str] | None = None,
                 prompt_embeddings: Tensor | None = None):
        super().__init__()
        self.visual = visual
        self.image_size = int(image_size)
        self.mean, self.std = list(mean), list(std)
        self.embed_dim = int(embed_dim)
        self.prompt_texts = list(prompt_texts or [])
        emb = prompt_embeddings if prompt_embeddings is not None else torch.zeros(0, embed_dim)
        self.register_buffer("prompt_embeddings", emb.clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.visual(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return torch.nn.functional.normalize(out, dim=-1)

    def dense(self, x: Tensor) -> Tensor:
        """[B, 3, S, S] -> [B, C_t, h, w], L2-normalised over C_t at each location."""
        return torch.nn.functional.normalize(dense_features(self.visual, x), dim=1)

    @property
    def test_prompt_embedding(self) -> Tensor:
        """[C_t] L2-normalised text embedding of TEST_PROMPT (stored in encoder.pt)."""
        if TEST_PROMPT not in self.prompt_texts:
            raise ValueError(f"semantic expert: encoder.pt holds no embedding of the test prompt {TEST_PROMPT!r} "
                             f"(stored prompts: {self.prompt_texts[:3]}); re-export it with come finetune-semantic")
        t = self.prompt_embeddings[self.prompt_texts.index(TEST_PROMPT)]
        return torch.nn.functional.normalize(t.float(), dim=0)

    def prompt_map(self, dense: Tensor) -> Tensor:
        """dense [B, C_t, h, w] (normalised) -> [B, 1, h, w] cosine similarity to the test prompt."""
        t = self.test_prompt_embedding.to(dense)
        return torch.einsum("bchw,c->bhw", dense, t)[:, None]


def export_encoder(model: nn.Module, info: dict, path: str | Path, prompt_texts: list[str],
                   prompt_embeddings: Tensor, extra: dict | None = None) -> Path:
    """Save the vision tower + rebuild config (+ class-prompt text embeddings) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_cfg = info["model_cfg"]
    payload = {
        "format": FORMAT,
        "embed_dim": int(model_cfg["embed_dim"]),
        "quick_gelu": bool(model_cfg.get("quick_gelu", False)),
        # the weights are stored here: never fetch timm's pretrained weights when rebuilding
        "vision_cfg": {**model_cfg["vision_cfg"], "timm_model_pretrained": False},
        "image_size": int(info["image_size"]),
        "mean": [float(v) for v in info["mean"]],
        "std": [float(v) for v in info["std"]],
        "source": str(info["source"]),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.visual.state_dict().items()},
        "prompt_texts": list(prompt_texts),
        "prompt_embeddings": prompt_embeddings.detach().cpu().float(),
        "extra": extra or {},
    }
    return save_payload(payload, path)


def load_encoder(path: str | Path) -> SemanticEncoder:
    """Rebuild the frozen semantic image encoder from `encoder.pt` (weights_only=True)."""
    path = Path(path)
    payload = load_payload(path, "semantic expert", FORMAT,
                           f"come finetune-semantic --config C --prompts P --test T --out {path.parent}")
    visual = _build_vision_tower(payload["embed_dim"], payload["vision_cfg"], payload["quick_gelu"])
    try:
        visual.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the stored vision config: {exc}") from None
    enc = SemanticEncoder(visual, payload["image_size"], payload["mean"], payload["std"],
                          payload["embed_dim"], payload["prompt_texts"], payload["prompt_embeddings"])
    return enc.eval()
