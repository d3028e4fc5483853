"""Tiny ultrasound-like COCO datasets built in tmp_path for the expert tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from come.data.coco import CocoBuilder, bbox_from_mask, category_for

os.environ.setdefault("MPLBACKEND", "Agg")


def _lesion_image(rng: np.random.Generator, size: int, pathology: str, organ: str) -> tuple[np.ndarray, np.ndarray]:
    """Speckled background + (benign: smooth oval, malignant: irregular dark + shadow) lesion."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = 0.45 if organ == "breast" else 0.55
    img = base * rng.gamma(4.0, 0.25, (size, size)).astype(np.float32)
    mask = np.zeros((size, size), bool)
    if pathology in ("benign", "malignant"):
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.12, 0.2) * size
        ang = np.arctan2(yy - cy, xx - cx)
        if pathology == "benign":
            rad = r * np.sqrt(((xx - cx) / 1.4) ** 2 + (yy - cy) ** 2) / r
            mask = rad < r * 0.9
            level = 0.35
        else:
            wobble = 1 + 0.35 * np.sin(7 * ang + rng.uniform(0, 6.3)) + 0.2 * np.sin(3 * ang)
            mask = np.hypot(xx - cx, (yy - cy) / 1.3) < r * wobble
            level = 0.08
            img[(yy > cy) & (np.abs(xx - cx) < r * 0.7)] *= 0.5
        img[mask] = level * rng.gamma(4.0, 0.25, int(mask.sum()))
    return np.clip(img, 0, 1), mask


def make_dataset(root: Path, n_per_source: int = 12, size: int = 64, seed: int = 0,
                 sources=(("BUSI", "breast"), ("DDTI", "thyroid"))) -> Path:
    """Write PNGs under root/<DS>/images and a pooled COCO file root/pool.json; return its path."""
    rng = np.random.default_rng(seed)
    coco = CocoBuilder()
    for ds, organ in sources:
        (root / ds / "images").mkdir(parents=True, exist_ok=True)
        for i in range(n_per_source):
            pathology = ["benign", "malignant", "benign", "malignant", "normal", "unknown"][i % 6]
            lesion_path = "benign" if pathology == "unknown" else pathology
            arr, mask = _lesion_image(rng, size, lesion_path, organ)
            name = f"{ds}/images/{ds.lower()}_{i:03d}.png"
            Image.fromarray((arr * 255).astype(np.uint8)).save(root / name)
            iid = coco.add_image(name, size, size, ds, organ, pathology)
            box = bbox_from_mask(mask)
            if box is not None:
                coco.add_box(iid, box, category_for(pathology))
    return coco.write(root / "pool.json")


def usfm_state_dict(img: int, patch: int, dim: int, depth: int, heads: int, seed: int = 0) -> dict:
    """A BEiT/USFM pretraining state_dict with the real key names, at a reduced size."""
    g = torch.Generator().manual_seed(seed)
    win = img // patch
    rows = (2 * win - 1) ** 2 + 3

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    sd = {"cls_token": r(1, 1, dim), "mask_token": r(1, 1, dim),
          "patch_embed.proj.weight": r(dim, 3, patch, patch), "patch_embed.proj.bias": r(dim),
          "rel_pos_bias.relative_position_bias_table": r(rows, heads),
          "rel_pos_bias.relative_position_index": torch.zeros(win * win + 1, win * win + 1, dtype=torch.long),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim)}
    for i in range(depth):
        p = f"blocks.{i}."
        sd.update({p + "gamma_1": r(dim), p + "gamma_2": r(dim),
                   p + "norm1.weight": 1 + r(dim), p + "norm1.bias": r(dim),
                   p + "attn.q_bias": r(dim), p + "attn.v_bias": r(dim),
                   p + "attn.qkv.weight": r(3 * dim, dim),
                   p + "attn.proj.weight": r(dim, dim), p + "attn.proj.bias": r(dim),
                   p + "norm2.weight": 1 + r(dim), p + "norm2.bias": r(dim),
                   p + "mlp.fc1.weight": r(4 * dim, dim), p + "mlp.fc1.bias": r(4 * dim),
                   p + "mlp.fc2.weight": r(dim, 4 * dim), p + "mlp.fc2.bias": r(dim)})
    return sd


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Path:
    """A 24-image two-source COCO (root = tmp_path/data); returns the COCO path."""
    torch.set_num_threads(1)
    return make_dataset(tmp_path / "data")


def write_experts(root: Path, sem_size: int = 64, vision: str = "resnet10t") -> None:
    """Random-init structure + semantic experts as the bank reads them for the default training
    set (all datasets): root/structure/encoder.pt, root/trainset/all/semantic/encoder.pt."""
    from come.config.schema import SemanticExpertConfig, StructureExpertConfig
    from come.experts import semantic, structure
    from come.experts.prompts import TEST_PROMPT

    torch.manual_seed(0)
    arch = structure.arch_from_cfg(StructureExpertConfig(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2))
    structure.export_encoder(structure.build_vit(arch), arch, root / "structure" / "encoder.pt", source="test")
    model, tok, info = semantic.build_clip(SemanticExpertConfig(image_size=sem_size, embed_dim=16,
                                                                embedded_vision=vision))
    texts = [TEST_PROMPT, f"{TEST_PROMPT}: Benign"]
    emb = torch.nn.functional.normalize(model.encode_text(tok(texts)), dim=-1).detach()
    semantic.export_encoder(model, info, root / "trainset" / "all" / "semantic" / "encoder.pt", texts, emb)
