"""Image decoding and detection transforms (resize, flip, normalise, box conversion).

Every random choice takes an explicit `numpy.random.Generator`, so the dataset can derive one
per (seed, epoch, index): augmentation is then identical across resumes and worker counts.
Boxes travel in absolute `xyxy` pixels until `to_target`, which converts them to the
detector's `cxcywh` normalised to the (unpadded) resized image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path) -> Tensor:
    """Decode an image file to float [3, H, W] in [0, 1] (grayscale is repeated to 3 channels).

    Raises a RuntimeError naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I", "F"):       # 16-bit / float grayscale
                arr = np.asarray(im, dtype=np.float32)
                peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
                arr = np.clip(arr / peak, 0.0, 1.0)
            elif im.mode in ("1", "L", "LA"):
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RuntimeError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    if arr.size == 0:
        raise RuntimeError(f"{path}: image has zero size")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def normalize(img: Tensor) -> Tensor:
    """ImageNet mean/std normalisation of [3, H, W] in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype).view(3, 1, 1)
    return (img - mean) / std


def denormalize(img: Tensor) -> Tensor:
    """Inverse of `normalize` (for figures), clamped to [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype).view(3, 1, 1)
    return (img * std + mean).clamp(0.0, 1.0)


def target_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """(new_h, new_w) with the shorter side `short`, then shrunk so the longer side <= max_size."""
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def resize(img: Tensor, boxes: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Bilinear resize of [3, H, W] to `size` (h, w); boxes [n, 4] xyxy px scaled alike."""
    h, w = img.shape[-2:]
    nh, nw = size
    if (nh, nw) != (h, w):
        img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False,
                            antialias=True)[0]
    scale = torch.tensor([nw / w, nh / h, nw / w, nh / h], dtype=boxes.dtype)
    return img, boxes * scale


def hflip(img: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal flip of [3, H, W] and its boxes [n, 4] xyxy px."""
    w = img.shape[-1]
    flipped = boxes.clone()
    flipped[:, 0] = w - boxes[:, 2]
    flipped[:, 2] = w - boxes[:, 0]
    return img.flip(-1), flipped


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[n, 4] COCO xywh -> xyxy."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def to_target(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """[n, 4] xyxy px in an image of `size` (h, w) -> cxcywh normalised to [0, 1]."""
    h, w = size
    x0, y0, x1, y1 = boxes.unbind(-1)
    out = torch.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], dim=-1)
    return out.clamp(0.0, 1.0)


class DetectionTransform:
    """Train: random shorter side in [min_size, max_size] (longest <= max_size) + optional flip.
    Eval: fixed shorter side max_size (longest <= max_size). Then ImageNet normalisation.

    __call__(img [3, H, W] in [0, 1], boxes [n, 4] xyxy px, rng) -> (img [3, h, w] normalised,
    boxes [n, 4] xyxy px in the resized image).
    """

    def __init__(self, train: bool, min_size: int, max_size: int, flip: bool = True, step: int = 32):
        if min_size < 1 or max_size < min_size:
            raise ValueError(f"transform: need 1 <= min_size ({min_size}) <= image_size ({max_size})")
        self.train, self.min_size, self.max_size, self.flip = train, min_size, max_size, flip
        # DINO samples the shorter side from a discrete list; we use multiples of `step`.
        sizes = list(range(min_size, max_size + 1, step))
        self.scales = sizes if sizes[-1] == max_size else sizes + [max_size]

    def __call__(self, img: Tensor, boxes: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        h, w = img.shape[-2:]
        if self.train:
            short = int(self.scales[int(rng.integers(len(self.scales)))])
            do_flip = self.flip and bool(rng.random() < 0.5)
        else:
            short, do_flip = self.max_size, False
        img, boxes = resize(img, boxes, target_size(h, w, short, self.max_size))
        if do_flip:
            img, boxes = hflip(img, boxes)
        return normalize(img), boxes
