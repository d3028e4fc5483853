"""Image loading for the experts: COCO / prompt records -> square RGB tensors in [0, 1].

The experts see whole images resized (without keeping the aspect ratio) to their square input
size, exactly as the feature bank resizes the detector's images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_rgb(path: str | Path) -> Tensor:
    """Read an image file as a float RGB tensor [3, H, W] in [0, 1] (grey is replicated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: cannot read image: {exc}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def resize_square(img: Tensor, size: int) -> Tensor:
    """[3, H, W] or [B, 3, H, W] -> same rank with spatial size (size, size), bilinear."""
    batched = img.dim() == 4
    x = img if batched else img.unsqueeze(0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x if batched else x[0]


def crop_box(img: Tensor, box_xywh: Sequence[float], context: float, rng: np.random.Generator) -> Tensor:
    """Crop [3, H, W] around a lesion box enlarged `context` times (random jitter of the centre)."""
    _, h, w = img.shape
    x, y, bw, bh = (float(v) for v in box_xywh)
    side = max(bw, bh) * context
    cx = x + bw / 2 + rng.uniform(-0.15, 0.15) * bw
    cy = y + bh / 2 + rng.uniform(-0.15, 0.15) * bh
    x0, x1 = int(max(0, cx - side / 2)), int(min(w, cx + side / 2))
    y0, y1 = int(max(0, cy - side / 2)), int(min(h, cy + side / 2))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return img
    return img[:, y0:y1, x0:x1]


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Channel normalisation of [B, 3, H, W] (or [3, H, W])."""
    shape = (1, 3, 1, 1) if x.dim() == 4 else (3, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s


def denormalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Inverse of `normalize`."""
    shape = (1, 3, 1, 1) if x.dim() == 4 else (3, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return x * s + m


def coco_image_paths(coco: dict, data_root: str | Path) -> list[Path]:
    """Absolute-or-relative paths of every image of a COCO dict, resolved against the data root."""
    return [Path(data_root) / im["file_name"] for im in coco["images"]]


def load_stack(paths: Sequence[str | Path], size: int) -> Tensor:
    """Read and resize a list of images -> [N, 3, size, size] uint8 (see `to_float`)."""
    if not paths:
        raise ValueError("no images to load (empty image list)")
    return torch.stack([to_uint8(resize_square(read_rgb(p), size)) for p in paths])


def to_uint8(x: Tensor) -> Tensor:
    """[0, 1] float -> uint8 (4x less memory for image stacks held during training)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def to_float(x: Tensor) -> Tensor:
    """uint8 -> [0, 1] float (identity for float input)."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x
