"""The structure expert (STE): a BEiT-style ViT (timm `Beit`) shaped like USFM.

USFM is a BEiT ViT-B/16 at 224 px with relative position bias; its release is a plain
state_dict (possibly under "model"/"state_dict") whose relative position bias is either shared
(`rel_pos_bias.relative_position_bias_table`) or per block. `load_usfm_checkpoint` copies the
shared table into every block's `attn.relative_position_bias_table` (bicubic resize when the
window differs), drops the window-dependent index buffers, and loads with strict=False, returning
the missing / unexpected keys. The embedded default is the same architecture at img 64, patch 8,
dim 96, depth 4 (`experts.structure`), pretrained by `come.experts.mim`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.beit import Beit
from torch import Tensor, nn

from come.config.schema import StructureExpertConfig
from come.experts.images import IMAGENET_MEAN, IMAGENET_STD
from come.utils.torchio import load_payload, save_payload

FORMAT = "come-structure-encoder/1"
_PREFIXES = ("module.", "encoder.", "backbone.", "model.")


def arch_from_cfg(cfg: StructureExpertConfig) -> dict[str, Any]:
    """Architecture kwargs (JSON-able) of the structure ViT."""
    if cfg.img_size % cfg.patch_size:
        raise ValueError(f"experts.structure: img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
    if cfg.embed_dim % cfg.num_heads:
        raise ValueError(f"experts.structure: embed_dim {cfg.embed_dim} is not divisible by num_heads {cfg.num_heads}")
    return {"img_size": cfg.img_size, "patch_size": cfg.patch_size, "embed_dim": cfg.embed_dim,
            "depth": cfg.depth, "num_heads": cfg.num_heads, "mlp_ratio": 4.0,
            "init_values": cfg.init_values if cfg.init_values > 0 else None}


def build_vit(arch: dict[str, Any]) -> Beit:
    """timm BEiT with per-block relative position bias, no absolute position embedding, no head."""
    return Beit(img_size=arch["img_size"], patch_size=arch["patch_size"], embed_dim=arch["embed_dim"],
                depth=arch["depth"], num_heads=arch["num_heads"], mlp_ratio=arch["mlp_ratio"],
                init_values=arch["init_values"], num_classes=0, global_pool="token",
                use_abs_pos_emb=False, use_rel_pos_bias=True, use_shared_rel_pos_bias=False)


def vit_tokens(vit: Beit, x: Tensor, mask: Tensor | None = None, mask_token: Tensor | None = None) -> Tensor:
    """x [B, 3, S, S] -> normalised tokens [B, 1 + N, D] (cls first).

    mask [B, N] bool (True = masked patch) replaces those patch embeddings by `mask_token` [1, 1, D].
    """
    t = vit.patch_embed(x)
    if mask is not None:
        w = mask.unsqueeze(-1).to(t.dtype)
        t = t * (1 - w) + mask_token.to(t.dtype) * w
    t = torch.cat([vit.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
    if vit.pos_embed is not None:
        t = t + vit.pos_embed
    t = vit.pos_drop(t)
    shared = vit.rel_pos_bias() if vit.rel_pos_bias is not None else None
    for blk in vit.blocks:
        t = blk(t, shared_rel_pos_bias=shared)
    return vit.norm(t)


class StructureEncoder(nn.Module):
    """images [B, 3, S, S] normalised with ImageNet mean/std -> patch map [B, D, S/p, S/p]."""

    def __init__(self, vit: Beit, arch: dict[str, Any], mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.vit = vit
        self.arch = dict(arch)
        self.image_size = int(arch["img_size"])
        self.embed_dim = int(arch["embed_dim"])
        self.grid = self.image_size // int(arch["patch_size"])
        self.mean, self.std = list(mean), list(std)

    def forward(self, x: Tensor) -> Tensor:
        tok = vit_tokens(self.vit, x)[:, 1:]
        b, n, d = tok.shape
        return tok.transpose(1, 2).reshape(b, d, self.grid, self.grid)


def resize_rel_table(table: Tensor, num_rows: int) -> Tensor:
    """Bicubic resize of a BEiT table [(2W-1)^2 + 3, H] to `num_rows` rows (square windows)."""
    if table.shape[0] == num_rows:
        return table
    old = int(round(math.sqrt(table.shape[0] - 3)))
    new = int(round(math.sqrt(num_rows - 3)))
    if old * old + 3 != table.shape[0] or new * new + 3 != num_rows:
        raise ValueError(f"relative position table of {table.shape[0]} rows is not a square window + 3")
    grid = table[:-3].t().reshape(1, -1, old, old)
    grid = F.interpolate(grid.float(), size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([grid.reshape(-1, new * new).t().to(table.dtype), table[-3:]], dim=0)


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    """The state_dict inside a checkpoint (top level or under "model"/"state_dict"/"module")."""
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: not a state_dict (expected a mapping of parameter names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: not a plain state_dict: entries {bad[:3]} are not tensors")
    out = {}
    for k, v in obj.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def remap_usfm_state(sd: dict[str, Tensor], vit: Beit) -> tuple[dict[str, Tensor], list[str]]:
    """Copy/resize the shared rel-pos table into each block; drop index buffers. -> (state, notes)."""
    notes, out = [], {}
    shared = sd.get("rel_pos_bias.relative_position_bias_table")
    for k, v in sd.items():
        if k.endswith("relative_position_index"):
            continue                                    # rebuilt from the window by timm
        if k.startswith("rel_pos_bias.") and vit.rel_pos_bias is None:
            continue
        out[k] = v
    for i, blk in enumerate(vit.blocks):
        table = getattr(blk.attn, "relative_position_bias_table", None)
        if table is None:
            continue
        key = f"blocks.{i}.attn.relative_position_bias_table"
        src = out.get(key, shared)
        if src is None:
            continue
        if src.shape[1] != table.shape[1]:
            raise ValueError(f"{key}: checkpoint has {src.shape[1]} heads, model has {table.shape[1]}")
        if src.shape[0] != table.shape[0]:
            notes.append(f"{key}: resized {tuple(src.shape)} -> {tuple(table.shape)}")
        if key not in sd:
            notes.append(f"{key}: copied from rel_pos_bias.relative_position_bias_table")
        out[key] = resize_rel_table(src, table.shape[0])
    return out, notes


def load_usfm_checkpoint(vit: Beit, path: str | Path) -> dict[str, list[str]]:
    """Load a USFM/BEiT state_dict into `vit` (strict=False). -> {"missing", "unexpected", "notes"}.

    Raises ValueError naming the file when it is unreadable, not a state_dict, holds no block
    weights of this architecture, or has tensors of the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: structure checkpoint not found (experts.structure.checkpoint)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt/unsafe file
        raise ValueError(f"{path}: cannot read the checkpoint (corrupt or not a torch file): {exc}") from None
    sd, notes = remap_usfm_state(_unwrap(obj, path), vit)
    own = vit.state_dict()
    if not any(k.startswith("blocks.") and k in own for k in sd):
        raise ValueError(f"{path}: no transformer block weights of a BEiT/USFM ViT found "
                         f"(first keys: {sorted(sd)[:5]}) - wrong checkpoint?")
    wrong = [f"{k}: {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{path}: checkpoint does not fit experts.structure "
                         f"(img/patch/dim/depth/heads): {wrong[:3]}")
    res = vit.load_state_dict(sd, strict=False)
    return {"missing": list(res.missing_keys), "unexpected": list(res.unexpected_keys), "notes": notes}


def export_encoder(vit: Beit, arch: dict, path: str | Path, source: str, extra: dict | None = None) -> Path:
    """Save the ViT weights + architecture to `path` (readable with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "arch": dict(arch), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
               "source": source, "extra": extra or {},
               "state_dict": {k: v.detach().cpu().clone() for k, v in vit.state_dict().items()}}
    return save_payload(payload, path)


def load_encoder(path: str | Path) -> StructureEncoder:
    """Rebuild the structure encoder from `encoder.pt` (weights_only=True), in eval mode."""
    path = Path(path)
    payload = load_payload(path, "structure expert", FORMAT,
                           f"come pretrain-structure --config C --train T --out {path.parent}")
    vit = build_vit(payload["arch"])
    try:
        vit.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the stored architecture: {exc}") from None
    return StructureEncoder(vit, payload["arch"], payload["mean"], payload["std"]).eval()
