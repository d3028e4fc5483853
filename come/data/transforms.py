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


def crop(img: Tensor, boxes: Tensor, region: tuple[int, int, int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Crop [3, H, W] to region (top, left, h, w); boxes [n, 4] xyxy px shifted and clipped.
    Returns (img, boxes [m, 4], keep [n] bool): boxes left with zero area are dropped (DINO)."""
    top, left, h, w = region
    img = img[:, top:top + h, left:left + w]
    shift = torch.tensor([left, top, left, top], dtype=boxes.dtype)
    out = boxes - shift
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return img, out[keep], keep


class DetectionTransform:
    """DINO's pipeline, sized by the config.

    Train: flip (p 0.5), then either the multi-scale resize (shorter side from `scales`, longest
    <= max_size) or, with p 0.5 when `crop_resize` is set, DINO's RandomSizeCrop branch: resize
    to a shorter side from `crop_resize`, crop a random [crop_min, crop_max] px window, then the
    multi-scale resize. Eval: shorter side `eval_short` (0 = max_size), longest <= max_size.
    Then ImageNet normalisation. `scales` = min_size..max_short (0 = max_size) step `step`.

    __call__(img [3, H, W] in [0, 1], boxes [n, 4] xyxy px, rng[, labels [n]]) -> (img [3, h, w]
    normalised, boxes [m, 4] xyxy px in the output image[, labels [m]]); m < n only after a crop.
    """

    def __init__(self, train: bool, min_size: int, max_size: int, flip: bool = True, step: int = 32,
                 max_short: int = 0, eval_short: int = 0, crop_resize: list[int] | tuple[int, ...] = (),
                 crop_min: int = 384, crop_max: int = 600):
        top = max_short or max_size
        if min_size < 1 or top < min_size or max_size < min_size:
            raise ValueError(f"transform: need 1 <= min_size ({min_size}) <= max_short ({top}) and "
                             f"<= image_size ({max_size})")
        self.train, self.min_size, self.max_size, self.flip = train, min_size, max_size, flip
        self.eval_short = eval_short or max_size
        # DINO samples the shorter side from a discrete list; we use multiples of `step`.
        sizes = list(range(min_size, top + 1, step))
        self.scales = sizes if sizes[-1] == top else sizes + [top]
        self.crop_resize, self.crop_min, self.crop_max = list(crop_resize), crop_min, crop_max

    def _crop_branch(self, img: Tensor, boxes: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
        h, w = img.shape[-2:]
        short = int(self.crop_resize[int(rng.integers(len(self.crop_resize)))])
        img, boxes = resize(img, boxes, target_size(h, w, short, 10 ** 9))
        h, w = img.shape[-2:]
        cw = int(rng.integers(min(self.crop_min, w), min(w, self.crop_max) + 1))
        ch = int(rng.integers(min(self.crop_min, h), min(h, self.crop_max) + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop(img, boxes, (top, left, ch, cw))

    def __call__(self, img: Tensor, boxes: Tensor, rng: np.random.Generator, labels: Tensor | None = None):
        keep = torch.ones(len(boxes), dtype=torch.bool)
        if self.train:        # draw order: scale, flip, crop (without crop: as before the crop existed)
            short = int(self.scales[int(rng.integers(len(self.scales)))])
            if self.flip and bool(rng.random() < 0.5):
                img, boxes = hflip(img, boxes)          # flip commutes with the resizes
            if self.crop_resize and bool(rng.random() < 0.5):
                img, boxes, keep = self._crop_branch(img, boxes, rng)
        else:
            short = self.eval_short
        h, w = img.shape[-2:]
        img, boxes = resize(img, boxes, target_size(h, w, short, self.max_size))
        if labels is None:
            return normalize(img), boxes
        return normalize(img), boxes, labels[keep]


def build_transform(data, train: bool) -> DetectionTransform:
    """The transform of a `DataConfig` (train or eval)."""
    return DetectionTransform(train, data.min_size, data.image_size, flip=data.hflip and train,
                              step=data.scale_step, max_short=data.max_short, eval_short=data.eval_short,
                              crop_resize=data.crop_resize, crop_min=data.crop_min, crop_max=data.crop_max)
